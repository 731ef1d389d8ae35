// Command esxiprobe exercises, at the Go runtime level, what heapguard does
// on an ESXi host: timers and tickers (netpoller), child processes with a
// timeout, signal delivery, following a growing file by polling, many
// goroutines, returning a large heap to the OS (madvise), random numbers,
// plain file I/O and a loopback socket.
//
// scripts/esxi-test.sh runs it under strace with the syscalls ESXi lacks
// answering ENOSYS, as a stand-in for `heapguard report|check|doctor` until
// those exist. A stock build must die in the netpoller; a build with the
// tools/rtpatch overlay must print "esxiprobe: ok" and exit 0.
//
// Usage: esxiprobe [-stages list] [-dir folder]
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/heapguard/heapguard/collector/follow"
)

// childEnv marks a re-executed probe as the child helper (os/exec tests use
// the same trick), so the probe needs no other program on the host.
const childEnv = "ESXIPROBE_CHILD"

// stage is one runtime feature the probe exercises.
type stage struct {
	name string
	run  func(ctx context.Context, dir string) error
}

var allStages = []stage{
	{"timers", stageTimers},
	{"goroutines", stageGoroutines},
	{"alloc", stageAlloc},
	{"exec", stageExec},
	{"signal", stageSignal},
	{"tail", stageTail},
	{"rand", stageRand},
	{"files", stageFiles},
	{"net", stageNet},
}

func main() {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(child(mode))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("esxiprobe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	names := fs.String("stages", "all", "comma-separated stages to run, or all")
	dir := fs.String("dir", "", "scratch folder (default: a new temporary folder)")
	timeout := fs.Duration("timeout", 60*time.Second, "limit for the whole run")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	selected, err := selectStages(*names)
	if err != nil {
		fmt.Fprintf(stderr, "esxiprobe: %v\n", err)
		return 2
	}
	scratch := *dir
	if scratch == "" {
		d, err := os.MkdirTemp("", "esxiprobe-")
		if err != nil {
			fmt.Fprintf(stderr, "esxiprobe: scratch folder: %v\n", err)
			return 1
		}
		defer os.RemoveAll(d)
		scratch = d
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	failed := 0
	for _, s := range selected {
		start := time.Now()
		if err := s.run(ctx, scratch); err != nil {
			failed++
			fmt.Fprintf(stdout, "FAIL %-10s %v\n", s.name, err)
			continue
		}
		fmt.Fprintf(stdout, "ok   %-10s %v\n", s.name, time.Since(start).Round(time.Millisecond))
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "esxiprobe: %d of %d stages failed\n", failed, len(selected))
		return 1
	}
	fmt.Fprintf(stdout, "esxiprobe: ok (%d stages, %s %s/%s)\n", len(selected), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return 0
}

func selectStages(list string) ([]stage, error) {
	if list == "all" {
		return allStages, nil
	}
	var out []stage
	for _, name := range strings.Split(list, ",") {
		found := false
		for _, s := range allStages {
			if s.name == name {
				out = append(out, s)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown stage %q", name)
		}
	}
	return out, nil
}

// child is the helper run by stageExec.
func child(mode string) int {
	switch mode {
	case "echo":
		fmt.Println("child ok")
		return 0
	case "hang":
		// Sleeps on a timer, so the child's own netpoller is exercised too.
		time.Sleep(time.Minute)
		return 0
	case "exit3":
		return 3
	}
	fmt.Fprintf(os.Stderr, "esxiprobe child: unknown mode %q\n", mode)
	return 2
}

// stageTimers uses every kind of timer; all of them wait in the netpoller.
func stageTimers(ctx context.Context, _ string) error {
	start := time.Now()
	time.Sleep(20 * time.Millisecond)
	t := time.NewTimer(30 * time.Millisecond)
	select {
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	tk := time.NewTicker(10 * time.Millisecond)
	defer tk.Stop()
	for i := 0; i < 3; i++ {
		<-tk.C
	}
	tctx, cancel := context.WithTimeout(ctx, 15*time.Millisecond)
	defer cancel()
	<-tctx.Done()
	if !errors.Is(tctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("context deadline: got %v", tctx.Err())
	}
	fired := make(chan struct{})
	time.AfterFunc(5*time.Millisecond, func() { close(fired) })
	<-fired
	if el := time.Since(start); el < 90*time.Millisecond {
		return fmt.Errorf("timers returned early after %v", el)
	}
	return nil
}

// stageGoroutines runs many goroutines that block and wake each other, so
// several Ms park and get woken through netpollBreak.
func stageGoroutines(ctx context.Context, _ string) error {
	const n = 2000
	var wg sync.WaitGroup
	in := make(chan int)
	out := make(chan int, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := <-in
			time.Sleep(time.Millisecond)
			out <- v * 2
		}()
	}
	for i := 0; i < n; i++ {
		in <- i
	}
	wg.Wait()
	close(out)
	sum := 0
	for v := range out {
		sum += v
	}
	if want := n * (n - 1); sum != want {
		return fmt.Errorf("goroutine sum %d, want %d", sum, want)
	}
	return ctx.Err()
}

// stageAlloc allocates and frees a large block and forces the runtime to
// return it to the OS (madvise, or the mmap fallback when madvise is
// missing).
func stageAlloc(_ context.Context, _ string) error {
	b := make([]byte, 64<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = byte(i)
	}
	sum := 0
	for i := 0; i < len(b); i += 4096 {
		sum += int(b[i])
	}
	b = nil
	runtime.GC()
	debug.FreeOSMemory()
	// Reuse the released memory: after the mmap fallback it must read zero.
	c := make([]byte, 64<<20)
	for i := 0; i < len(c); i += 4096 {
		if c[i] != 0 {
			return fmt.Errorf("reused memory not zeroed at %d", i)
		}
	}
	_ = sum
	return nil
}

// stageExec starts children the way heapguard runs vsish and vim-cmd:
// with captured output, with a timeout that kills a hanging child, and
// with a non-zero exit status.
func stageExec(ctx context.Context, _ string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), childEnv+"=echo")
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("run child: %w", err)
	}
	if got := string(bytes.TrimSpace(out)); got != "child ok" {
		return fmt.Errorf("child output %q, want %q", got, "child ok")
	}

	hctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	hang := exec.CommandContext(hctx, self)
	hang.Env = append(os.Environ(), childEnv+"=hang")
	hang.WaitDelay = time.Second
	start := time.Now()
	err = hang.Run()
	if hctx.Err() == nil || err == nil {
		return fmt.Errorf("hanging child not killed: err=%v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		return fmt.Errorf("hanging child killed only after %v", el)
	}

	ex := exec.CommandContext(ctx, self)
	ex.Env = append(os.Environ(), childEnv+"=exit3")
	err = ex.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		return fmt.Errorf("child exit status: got %v, want exit status 3", err)
	}
	return nil
}

// stageSignal delivers SIGUSR1 to the process through os/signal.
func stageSignal(ctx context.Context, _ string) error {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	defer signal.Stop(ch)
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		return fmt.Errorf("send SIGUSR1: %w", err)
	}
	select {
	case <-ch:
		return nil
	case <-time.After(5 * time.Second):
		return errors.New("SIGUSR1 not delivered within 5s")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stageTail reads a growing file by polling from a saved position, as
// the agent reads vmkernel.log at every poll (ESXi may have no inotify).
func stageTail(ctx context.Context, dir string) error {
	path := filepath.Join(dir, "vmkernel.log")
	if err := os.WriteFile(path, []byte("line 0\n"), 0o600); err != nil {
		return fmt.Errorf("create log: %w", err)
	}
	errc := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			errc <- err
			return
		}
		_, err = f.WriteString("line 1\nline 2\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		errc <- err
	}()

	want := []string{"line 0", "line 1", "line 2"}
	var got []string
	var pos follow.Position
	deadline := time.Now().Add(15 * time.Second)
	for len(got) < len(want) {
		r := follow.ReadFrom(path, pos, follow.Options{})
		for l := range r.Lines() {
			got = append(got, string(l.Text))
		}
		if err := r.Err(); err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		pos = r.Pos()
		if time.Now().After(deadline) {
			return fmt.Errorf("tail: only %d of %d lines within 15s", len(got), len(want))
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		return fmt.Errorf("tail read %q, want %q", got, want)
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("write log: %w", err)
	}
	return nil
}

// stageRand reads from crypto/rand (getrandom, or /dev/urandom without it).
func stageRand(_ context.Context, _ string) error {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("crypto/rand: %w", err)
	}
	if bytes.Equal(b, make([]byte, 32)) {
		return errors.New("crypto/rand returned only zeros")
	}
	return nil
}

// stageFiles does the file work of the state store and the journal:
// write, fsync, rename, list, stat, copy.
func stageFiles(_ context.Context, dir string) error {
	state := filepath.Join(dir, "state.json")
	tmp := state + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	if _, err := f.WriteString(`{"offset":42}`); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, state); err != nil {
		return fmt.Errorf("rename state: %w", err)
	}
	// io.Copy between files tries copy_file_range/splice/sendfile first.
	src, err := os.Open(state)
	if err != nil {
		return fmt.Errorf("open state: %w", err)
	}
	defer src.Close()
	dst, err := os.Create(filepath.Join(dir, "state.copy"))
	if err != nil {
		return fmt.Errorf("create copy: %w", err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return fmt.Errorf("copy state: %w", err)
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("close copy: %w", err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "state.copy"))
	if err != nil || string(got) != `{"offset":42}` {
		return fmt.Errorf("read copy: %q, %v", got, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		return fmt.Errorf("list %s: %d entries, %v", dir, len(entries), err)
	}
	if _, err := os.Stat(state); err != nil {
		return fmt.Errorf("stat state: %w", err)
	}
	if _, err := os.Hostname(); err != nil {
		return fmt.Errorf("hostname: %w", err)
	}
	return nil
}

// stageNet opens a loopback listener and echoes one message, the path
// `heapguard serve` would take with a socket instead of inetd's stdin.
func stageNet(ctx context.Context, _ string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if string(buf) != "ping\n" {
		return fmt.Errorf("echo %q, want %q", buf, "ping\n")
	}
	return nil
}
