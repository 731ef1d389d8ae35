package esxsim

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/heapguard/heapguard/host"
)

// Runner is a host.Runner that runs the simulated host's tools inside the
// calling process, as host.Exec would run them from the root's bin folders
// (absolute paths under the root, bare names from <root>/bin), without the
// exec: tests that make thousands of calls then measure heapguard, not
// process start-up. What a tool prints and its exit status are the same;
// a tool that hangs (a scenario fault) is given up on at the timeout as a
// killed process would be, and its goroutine sleeps on until the fault's
// HangFor ends. Use host.Exec where the process itself matters.
type Runner struct {
	Root string
}

var _ host.Runner = Runner{}

// Run runs argv; errors have host.Exec's shape (a *host.CommandError,
// wrapping host.ErrTimeout on a timeout).
func (r Runner) Run(ctx context.Context, timeout time.Duration, argv ...string) (host.Result, error) {
	res := host.Result{Argv: argv, ExitCode: -1}
	if len(argv) == 0 {
		return res, fmt.Errorf("run: empty argument vector")
	}
	if timeout <= 0 {
		timeout = host.DefaultTimeout
	}
	path := argv[0]
	if strings.HasPrefix(path, "/") {
		path = host.Path(r.Root, path)
	} else {
		path = filepath.Join(r.Root, "bin", path)
	}
	if _, err := os.Stat(path); err != nil {
		return res, &host.CommandError{Argv: argv, ExitCode: -1, Err: fmt.Errorf("exec: %q: %w", argv[0], exec.ErrNotFound)}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	start := time.Now()
	go func() {
		done <- Main(append([]string{path}, argv[1:]...), strings.NewReader(""), &stdout, &stderr)
	}()
	var cerr *host.CommandError
	select {
	case code := <-done:
		res.ExitCode = code
		if code != 0 {
			cerr = &host.CommandError{Argv: argv, ExitCode: code}
		}
	case <-ctx.Done():
		cerr = &host.CommandError{Argv: argv, ExitCode: -1, Err: ctx.Err()}
		if ctx.Err() == context.DeadlineExceeded {
			cerr.Err = fmt.Errorf("%w after %s", host.ErrTimeout, timeout)
		}
	}
	res.Duration = time.Since(start)
	res.Stdout, res.Stderr = stdout.snapshot(), stderr.snapshot()
	if cerr == nil {
		return res, nil
	}
	cerr.Stderr = firstLine(res.Stderr)
	return res, cerr
}

// lockedBuffer lets a tool given up on keep writing while the caller reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) snapshot() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

func firstLine(b []byte) string {
	b = bytes.TrimSpace(b)
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
