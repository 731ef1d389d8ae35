package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// DefaultTimeout bounds every command that does not set its own.
const DefaultTimeout = 30 * time.Second

// maxOutput caps what is kept of a command's stdout and stderr each, so a
// command that floods cannot exhaust memory.
const maxOutput = 4 << 20

// Result is what a finished command left behind.
type Result struct {
	Argv     []string
	Stdout   []byte
	Stderr   []byte
	ExitCode int // -1 when the command did not exit normally (timeout, signal, not started)
	Duration time.Duration
}

// ErrTimeout is wrapped by the error of a command killed because it ran past its timeout.
var ErrTimeout = errors.New("command timed out")

// CommandError tells which command failed and how.
type CommandError struct {
	Argv     []string
	ExitCode int
	Stderr   string // first line of stderr, if any
	Err      error
}

func (e *CommandError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "run %q", e.Argv)
	if e.ExitCode >= 0 {
		fmt.Fprintf(&b, ": exit status %d", e.ExitCode)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.Stderr != "" {
		fmt.Fprintf(&b, ": %s", e.Stderr)
	}
	return b.String()
}

func (e *CommandError) Unwrap() error { return e.Err }

// Runner runs one argument vector. Implementations never go through a shell.
type Runner interface {
	Run(ctx context.Context, timeout time.Duration, argv ...string) (Result, error)
}

// Exec runs commands on this machine. The root's bin folders (/bin, /sbin,
// /usr/bin, /usr/sbin, under Root when it is not "" or "/") come before
// the inherited PATH, so a simulated host's vsish, vim-cmd, … are the ones
// found, and absolute command paths are resolved under the root.
type Exec struct {
	Root string
	// Env is added to the inherited environment (KEY=VALUE).
	Env []string
}

var _ Runner = Exec{}

// Run runs argv with the given timeout (DefaultTimeout when zero or less).
// A non-zero exit, a timeout or a failure to start is returned as a
// *CommandError; the Result is filled in as far as it got.
func (x Exec) Run(ctx context.Context, timeout time.Duration, argv ...string) (Result, error) {
	res := Result{Argv: argv, ExitCode: -1}
	if len(argv) == 0 {
		return res, errors.New("run: empty argument vector")
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	name, err := x.lookPath(argv[0])
	if err != nil {
		return res, &CommandError{Argv: argv, ExitCode: -1, Err: err}
	}
	cmd := exec.CommandContext(ctx, name, argv[1:]...)
	cmd.Env = x.environ()
	cmd.Stdin = nil
	var stdout, stderr capBuffer
	stdout.max, stderr.max = maxOutput, maxOutput
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A child that forks a grandchild holding our pipes must not keep us
	// waiting past the timeout.
	cmd.WaitDelay = 2 * time.Second

	start := time.Now()
	err = cmd.Run()
	res.Duration = time.Since(start)
	res.Stdout, res.Stderr = stdout.Bytes(), stderr.Bytes()
	if cmd.ProcessState != nil && cmd.ProcessState.Exited() {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	if err == nil {
		return res, nil
	}
	cerr := &CommandError{Argv: argv, ExitCode: res.ExitCode, Stderr: firstLine(res.Stderr)}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		cerr.Err = fmt.Errorf("%w after %s", ErrTimeout, timeout)
	case ctx.Err() != nil:
		cerr.Err = ctx.Err()
	default:
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			cerr.Err = err
		}
	}
	return res, cerr
}

// binDirs are the root's command folders, searched before the inherited
// PATH, on the real root too: cron and inetd start heapguard with a PATH
// that may lack /sbin (esxcfg-vmknic), and a root daemon should not run
// whatever an inherited PATH names first.
func (x Exec) binDirs() []string {
	return []string{Path(x.Root, "/bin"), Path(x.Root, "/sbin"), Path(x.Root, "/usr/bin"), Path(x.Root, "/usr/sbin")}
}

// lookPath resolves argv[0]: absolute paths under the root, bare names in
// the root's bin folders first (exec.Command alone would search only this
// process's PATH).
func (x Exec) lookPath(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return Path(x.Root, name), nil
	}
	if !strings.Contains(name, "/") {
		for _, d := range x.binDirs() {
			p := filepath.Join(d, name)
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
				return p, nil
			}
		}
	}
	return exec.LookPath(name)
}

// environ is this process's environment with binDirs first in PATH, so
// the commands' own children (an init script's) find the same ones.
func (x Exec) environ() []string {
	env := os.Environ()
	prefix := strings.Join(x.binDirs(), ":")
	replaced := false
	for i, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			env[i] = "PATH=" + prefix + ":" + kv[len("PATH="):]
			replaced = true
		}
	}
	if !replaced {
		env = append(env, "PATH="+prefix)
	}
	return append(env, x.Env...)
}

func firstLine(b []byte) string {
	b = bytes.TrimSpace(b)
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

// capBuffer keeps the first max bytes written and silently drops the rest,
// so the child never blocks on a full pipe. Its ReadFrom keeps the cap
// (bytes.Buffer's would not).
type capBuffer struct {
	buf       bytes.Buffer
	max       int
	truncated bool
}

func (c *capBuffer) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room < len(p) {
		c.truncated = true
		if room > 0 {
			c.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return c.buf.Write(p)
}

// ReadFrom reads r to its end straight into the buffer, up to the cap, and
// discards the rest. os/exec copies each output pipe with io.Copy, which
// otherwise allocates 32 KB per stream of every command: most of what a
// poll allocates, for outputs of a few hundred bytes.
func (c *capBuffer) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	var discard []byte
	for {
		var p []byte
		room := c.max - c.buf.Len()
		if room > 0 {
			c.buf.Grow(min(room, 512))
			p = c.buf.AvailableBuffer()
			p = p[:min(cap(p), room)]
		} else {
			if discard == nil {
				discard = make([]byte, 4096)
			}
			p = discard
		}
		n, err := r.Read(p)
		total += int64(n)
		if room > 0 {
			c.buf.Write(p[:n])
		} else if n > 0 {
			c.truncated = true
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (c *capBuffer) Bytes() []byte { return c.buf.Bytes() }
