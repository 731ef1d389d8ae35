package follow

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const waitTimeout = 10 * time.Second

// gateClock lets a test run the follower one poll at a time: Sleep blocks
// until the test calls step, so nothing is read between two file
// operations unless the test says so.
type gateClock struct {
	asleep chan struct{}
	wake   chan struct{}
}

func newGateClock() *gateClock {
	return &gateClock{asleep: make(chan struct{}), wake: make(chan struct{})}
}

func (g *gateClock) Now() time.Time { return time.Date(2026, 4, 10, 8, 0, 0, 0, time.UTC) }

func (g *gateClock) Sleep(ctx context.Context, d time.Duration) error {
	select {
	case g.asleep <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-g.wake:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitAsleep waits until the follower finished its current poll.
func (g *gateClock) waitAsleep(t *testing.T) {
	t.Helper()
	select {
	case <-g.asleep:
	case <-time.After(waitTimeout):
		t.Fatal("follower did not finish its poll")
	}
}

// step runs exactly one more poll and waits for its end and until every
// line it sent has been collected.
func (h *harness) step() {
	h.t.Helper()
	select {
	case h.clock.wake <- struct{}{}:
	case <-time.After(waitTimeout):
		h.t.Fatal("follower is not sleeping")
	}
	h.clock.waitAsleep(h.t)
	deadline := time.After(waitTimeout)
	for {
		h.mu.Lock()
		n := uint64(len(h.lines))
		h.mu.Unlock()
		if n == h.f.Stats().Lines {
			return
		}
		select {
		case <-h.notify:
		case <-deadline:
			h.t.Fatalf("collected %d lines, follower sent %d", n, h.f.Stats().Lines)
		}
	}
}

// harness runs a Follower and collects everything it sends.
type harness struct {
	t      *testing.T
	f      *Follower
	clock  *gateClock
	mu     sync.Mutex
	lines  []Line
	errs   []error
	notify chan struct{}
	done   chan struct{}
}

// follow starts a follower on path; with gated true the test drives its
// polls (h.clock.step), else it polls every 10 ms of real time.
func follow(t *testing.T, path string, pos Position, gated bool, opt Options) *harness {
	t.Helper()
	h := &harness{t: t, notify: make(chan struct{}, 1), done: make(chan struct{})}
	if opt.Poll == 0 {
		opt.Poll = 10 * time.Millisecond
	}
	if gated {
		h.clock = newGateClock()
		opt.Clock = h.clock
	}
	f, err := New(path, pos, opt)
	if err != nil {
		t.Fatal(err)
	}
	h.f = f
	go func() {
		defer close(h.done)
		for l := range f.Lines() {
			h.mu.Lock()
			if l.Err != nil {
				h.errs = append(h.errs, l.Err)
			} else {
				h.lines = append(h.lines, l)
			}
			h.mu.Unlock()
			select {
			case h.notify <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(h.stop)
	if gated {
		h.clock.waitAsleep(t)
	}
	return h
}

func (h *harness) stop() {
	h.f.Stop()
	<-h.done
}

// texts returns the texts of the lines received so far.
func (h *harness) texts() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, len(h.lines))
	for i, l := range h.lines {
		out[i] = string(l.Text)
	}
	return out
}

func (h *harness) last() Line {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.lines) == 0 {
		return Line{}
	}
	return h.lines[len(h.lines)-1]
}

func (h *harness) errors() []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]error(nil), h.errs...)
}

// waitFor waits until a line with text want arrived (real-time followers;
// a gated one must be stepped instead).
func (h *harness) waitFor(want string) {
	h.t.Helper()
	deadline := time.After(waitTimeout)
	for {
		for _, s := range h.texts() {
			if s == want {
				return
			}
		}
		select {
		case <-h.notify:
		case <-deadline:
			h.t.Fatalf("line %q did not arrive; got %q, errors %v", want, h.texts(), h.errors())
		}
	}
}

// waitErr waits until an error report arrived.
func (h *harness) waitErr() error {
	h.t.Helper()
	deadline := time.After(waitTimeout)
	for {
		if errs := h.errors(); len(errs) > 0 {
			return errs[0]
		}
		select {
		case <-h.notify:
		case <-deadline:
			h.t.Fatalf("no error reported; got lines %q", h.texts())
		}
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// lines makes n numbered lines "<prefix>1\n…" with a log-like header, so
// every file starts with its own first line.
func lines(prefix string, from, n int) string {
	var b strings.Builder
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, "2026-04-10T08:27:13.470Z cpu2:2097999)%s%d\n", prefix, i)
	}
	return b.String()
}

// want splits what lines returned into texts.
func want(parts ...string) []string {
	out := []string{}
	for _, p := range parts {
		out = append(out, strings.Split(strings.TrimSuffix(p, "\n"), "\n")...)
	}
	return out
}

// gzipTo compresses src into dst and removes src, as the ESXi rotator
// leaves vmkernel.0.gz.
func gzipTo(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(out)
	if _, err := io.Copy(zw, in); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	// The kernel stamps files from a coarse clock that can lag time.Now()
	// by a few ms; stamp the copy precisely, as the tests run faster than
	// any real rotation (doc.go, Limits).
	now := time.Now()
	if err := os.Chtimes(dst, now, now); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(src); err != nil {
		t.Fatal(err)
	}
}

// rotateESXi rotates dir/vmkernel.log the way ESXi keeps it: older
// vmkernel.N.gz move up one, the log is renamed to vmkernel.0, a new log
// is created with first, and vmkernel.0 is compressed to vmkernel.0.gz.
func rotateESXi(t *testing.T, path, first string) {
	t.Helper()
	dir := filepath.Dir(path)
	for n := 8; n >= 0; n-- {
		old := filepath.Join(dir, fmt.Sprintf("vmkernel.%d.gz", n))
		if _, err := os.Stat(old); err == nil {
			if err := os.Rename(old, filepath.Join(dir, fmt.Sprintf("vmkernel.%d.gz", n+1))); err != nil {
				t.Fatal(err)
			}
		}
	}
	zero := filepath.Join(dir, "vmkernel.0")
	if err := os.Rename(path, zero); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, first)
	gzipTo(t, zero, zero+".gz")
}
