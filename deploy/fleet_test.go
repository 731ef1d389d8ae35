package deploy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heapguard/heapguard/internal/deploytest"
	"golang.org/x/crypto/ssh"
)

func fakeTargets(n int) []Target {
	var ts []Target
	for i := range n {
		ts = append(ts, Target{User: "root", Host: fmt.Sprintf("esx%02d", i), Port: 22})
	}
	return ts
}

// TestFleetParallelLimit: never more than Parallel hosts at once, and
// that many when there is work; results come back in the targets' order.
func TestFleetParallelLimit(t *testing.T) {
	for _, parallel := range []int{1, 3} {
		var inFlight, most atomic.Int32
		release := make(chan struct{})
		entered := make(chan struct{}, 9)
		fleet := Fleet{Parallel: parallel, do: func(ctx context.Context, tg Target) Result {
			n := inFlight.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			entered <- struct{}{}
			<-release
			inFlight.Add(-1)
			return Result{Target: tg, Action: Installed}
		}}
		go func() {
			// The first hosts fill the slots; each time one is let go,
			// the next enters before another is.
			for range parallel {
				<-entered
			}
			for i := range 9 {
				release <- struct{}{}
				if i+parallel < 9 {
					<-entered
				}
			}
		}()
		var reported []string
		results := Deploy(context.Background(), fakeTargets(9), &Config{}, Binary{}, InstallOptions{}, fleet, func(r Result) {
			reported = append(reported, r.Target.Host)
		})
		if m := most.Load(); int(m) != parallel {
			t.Errorf("parallel %d: at most %d hosts at once", parallel, m)
		}
		if len(reported) != 9 {
			t.Errorf("parallel %d: %d reports, want 9", parallel, len(reported))
		}
		for i, r := range results {
			if r.Target.Host != fmt.Sprintf("esx%02d", i) || r.Action != Installed {
				t.Errorf("parallel %d: result %d = %+v", parallel, i, r)
			}
		}
	}
}

// TestFleetReportsFromOneGoroutine: while one report is under way, no
// other starts, even when every host has finished.
func TestFleetReportsFromOneGoroutine(t *testing.T) {
	const n = 6
	var finished sync.WaitGroup
	finished.Add(n)
	fleet := Fleet{Parallel: n, do: func(ctx context.Context, tg Target) Result {
		defer finished.Done()
		return Result{Target: tg, Action: Unchanged}
	}}
	var mu sync.Mutex
	var overlapped atomic.Bool
	first := true
	Deploy(context.Background(), fakeTargets(n), &Config{}, Binary{}, InstallOptions{}, fleet, func(r Result) {
		if !mu.TryLock() {
			overlapped.Store(true)
			return
		}
		defer mu.Unlock()
		if first {
			first = false
			// Every host is done: reports from the workers would
			// arrive now, while this one holds the lock.
			finished.Wait()
			time.Sleep(100 * time.Millisecond)
		}
	})
	if overlapped.Load() {
		t.Error("report called while another report was running: lines would interleave")
	}
}

// TestFleetFailureStopsNothing: the first host fails at once; the others,
// still running, are not cancelled and finish.
func TestFleetFailureStopsNothing(t *testing.T) {
	failedReported := make(chan struct{})
	fleet := Fleet{Parallel: 4, do: func(ctx context.Context, tg Target) Result {
		if tg.Host == "esx00" {
			return Result{Target: tg, Err: errors.New("unknown host key")}
		}
		select {
		case <-failedReported:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			return Result{Target: tg, Err: ctx.Err()}
		}
		return Result{Target: tg, Action: Installed}
	}}
	var once sync.Once
	results := Deploy(context.Background(), fakeTargets(4), &Config{}, Binary{}, InstallOptions{}, fleet, func(r Result) {
		if r.Err != nil {
			once.Do(func() { close(failedReported) })
		}
	})
	if failed, notStarted := Count(results); failed != 1 || notStarted != 0 {
		t.Errorf("failed %d, not started %d; want 1 and 0: %+v", failed, notStarted, results)
	}
}

// TestFleetCancelStopsStarting: cancelled while the second host runs, the
// run lets it finish and starts none of the rest.
func TestFleetCancelStopsStarting(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fleet := Fleet{Parallel: 2, do: func(hctx context.Context, tg Target) Result {
		switch tg.Host {
		case "esx00":
			<-ctx.Done() // no slot frees before the cancel
		case "esx01":
			cancel()
		}
		if hctx.Err() != nil {
			return Result{Target: tg, Err: hctx.Err()}
		}
		return Result{Target: tg, Action: Installed}
	}}
	var lines []string
	results := Deploy(ctx, fakeTargets(5), &Config{}, Binary{}, InstallOptions{}, fleet, func(r Result) { lines = append(lines, r.Line()) })
	for i, r := range results {
		want := "not started"
		if i < 2 {
			want = "installed"
		}
		if r.Status() != want {
			t.Errorf("host %d: %s (%v), want %s", i, r.Status(), r.Err, want)
		}
	}
	if len(lines) != 5 || lines[4] != "root@esx04:22  not started" {
		t.Errorf("lines: %q", lines)
	}
}

// fleetRig: n real sshds, all standing for hosts that share one
// datastore (they share this machine's file system).
type fleetRig struct {
	*rig
	servers []*deploytest.Server
	targets []Target
}

func newFleetRig(t *testing.T, n int) *fleetRig {
	r := newRig(t, []string{"ecdsa"}, []string{"ecdsa"})
	fr := &fleetRig{rig: r, servers: []*deploytest.Server{r.srv}, targets: []Target{r.target}}
	signer, _ := ssh.NewSignerFromKey(r.userKey)
	known, _ := os.ReadFile(r.known)
	for range n - 1 {
		s := deploytest.Start(t, deploytest.Options{HostKeys: []string{"ecdsa"}, Authorized: []ssh.PublicKey{signer.PublicKey()}})
		tg, _ := ParseTarget(s.Addr)
		fr.servers = append(fr.servers, s)
		fr.targets = append(fr.targets, tg)
		known = append(known, s.KnownHostsLine("ecdsa")+"\n"...)
	}
	os.WriteFile(r.known, known, 0o600)
	return fr
}

// hangingHost accepts TCP connections and never speaks SSH; closed reports
// each connection the client closed.
func hangingHost(t *testing.T) (Target, <-chan time.Time) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	closed := make(chan time.Time, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 512)
				for {
					if _, err := c.Read(buf); err != nil {
						closed <- time.Now()
						return
					}
				}
			}()
		}
	}()
	tg, _ := ParseTarget(l.Addr().String())
	return tg, closed
}

// TestFleetHostTimeout: a host that never answers fails with the host
// timeout (shorter than the connect timeout) and its connection is
// closed; the real hosts next to it finish before.
func TestFleetHostTimeout(t *testing.T) {
	fr := newFleetRig(t, 2)
	hang, closed := hangingHost(t)
	targets := []Target{hang, fr.targets[0], fr.targets[1]}
	fr.cfg.ConnectTimeout = 20 * time.Second
	start := time.Now()
	var order []string
	results := Deploy(context.Background(), targets, fr.cfg, fr.bin, InstallOptions{Dest: fr.dest}, Fleet{HostTimeout: 2 * time.Second}, func(r Result) {
		order = append(order, r.Status())
	})
	took := time.Since(start)
	if err := results[0].Err; err == nil || !strings.Contains(err.Error(), "timed out after 2s") {
		t.Errorf("hanging host: %v; want timed out after 2s", err)
	}
	if took < 2*time.Second || took > 8*time.Second {
		t.Errorf("the fleet took %v; want the 2s host timeout, not the 20s connect timeout", took)
	}
	for i, r := range results[1:] {
		if r.Err != nil {
			t.Errorf("host %d: %v", i+1, r.Err)
		}
	}
	if len(order) != 3 || order[2] != "failed" {
		t.Errorf("finishing order %q: want the hanging host last", order)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Error("the hanging host's connection was not closed")
	}
	if got := fr.installed(); got != fr.bin.Sum() {
		t.Errorf("installed %q, want %s", got, fr.bin.Sum())
	}
}

// TestFleetCancelMidCopy: cancelled (Ctrl-C) while the first host's copy
// is half sent: that host finishes, a whole file under the final name,
// the others are not started.
func TestFleetCancelMidCopy(t *testing.T) {
	r := newRig(t, nil, []string{"ed25519"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	r.cfg.dial = func(dctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(dctx, network, addr)
		return newHookConn(c, int(r.bin.Size/2), func(<-chan struct{}) { once.Do(cancel) }), err
	}
	targets := []Target{r.target, r.target, r.target}
	results := Deploy(ctx, targets, r.cfg, r.bin, InstallOptions{Dest: r.dest}, Fleet{Parallel: 1}, func(Result) {})
	if results[0].Err != nil || results[0].Action != Installed {
		t.Errorf("the host running at the cancel: %+v", results[0])
	}
	for _, res := range results[1:] {
		if !errors.Is(res.Err, ErrNotStarted) {
			t.Errorf("a host after the cancel: %+v; want not started", res)
		}
	}
	if got := r.installed(); got != r.bin.Sum() {
		t.Errorf("final file sha256 %q, want %s", got, r.bin.Sum())
	}
	if p := r.partials(); len(p) > 0 {
		t.Errorf("partial copies left: %q", p)
	}
}

// hookConn calls hook (which may block) once more than at bytes were
// written through it; hook's argument is closed when the connection is.
type hookConn struct {
	net.Conn
	mu        sync.Mutex
	written   int
	at        int
	hook      func(closed <-chan struct{})
	closeOnce sync.Once
	closed    chan struct{}
}

func newHookConn(c net.Conn, at int, hook func(closed <-chan struct{})) *hookConn {
	return &hookConn{Conn: c, at: at, hook: hook, closed: make(chan struct{})}
}

func (c *hookConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.written += len(p)
	fire := c.written > c.at && c.hook != nil
	hook := c.hook
	if fire {
		c.hook = nil
	}
	c.mu.Unlock()
	if fire {
		hook(c.closed)
	}
	return c.Conn.Write(p)
}

// Close also ends a write blocked in hook, as closing a socket ends a
// write blocked in it.
func (c *hookConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// TestSharedDestConcurrentInstalls: two hosts share the destination. While
// A's copy is half sent, B is installed from start to end (its stale
// clean-up runs then): A's partial copy survives, A's install succeeds
// too, and the final file is whole. The two may be one host under two
// names: the same path, the same binary, two installs at once.
func TestSharedDestConcurrentInstalls(t *testing.T) {
	fr := newFleetRig(t, 2)
	cfgA := *fr.cfg
	bDone := make(chan error, 1)
	cfgA.dial = func(dctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(dctx, network, addr)
		return newHookConn(c, int(fr.bin.Size/2), func(<-chan struct{}) {
			// A's partial copy exists once the host's shell opened it.
			deadline := time.Now().Add(5 * time.Second)
			for len(fr.partials()) == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			res := deployOne(context.Background(), fr.targets[1], fr.cfg, fr.bin, InstallOptions{Dest: fr.dest})
			bDone <- res.Err
		}), err
	}
	resA := deployOne(context.Background(), fr.targets[0], &cfgA, fr.bin, InstallOptions{Dest: fr.dest})
	select {
	case err := <-bDone:
		if err != nil {
			t.Errorf("B, installed during A's copy: %v", err)
		}
	default:
		t.Fatal("B did not run during A's copy")
	}
	if resA.Err != nil || resA.Action != Installed {
		t.Errorf("A, whose copy B's clean-up saw: %+v", resA)
	}
	if got := fr.installed(); got != fr.bin.Sum() {
		t.Errorf("final file sha256 %q, want %s", got, fr.bin.Sum())
	}
	if p := fr.partials(); len(p) > 0 {
		t.Errorf("partial copies left: %q", p)
	}
}

// TestStalePartsRule: in a shared destination, a run removes the partial
// copies whose deadline passed (any host's) and the older form, and
// leaves fresh ones (any host's, its own name's too) and other files.
func TestStalePartsRule(t *testing.T) {
	r := newRig(t, nil, []string{"ed25519"})
	os.MkdirAll(r.dest, 0o755)
	now := time.Now()
	files := map[string]bool{ // name: removed
		partName(now.Add(-time.Hour), r.target.Host, "0123456789abcdef"):    true,
		partName(now.Add(-time.Hour), "esx02.lab", "1123456789abcdef"):      true,
		".heapguard.2123456789abcdef.part":                                  true,
		partName(now.Add(5*time.Minute), "esx02.lab", "3123456789abcdef"):   false,
		partName(now.Add(5*time.Minute), r.target.Host, "4123456789abcdef"): false,
		partName(now.Add(-staleGrace/2), "fd00::12", "5123456789abcdef"):    false,
		".heapguard.notes.part": false,
		".heapguard.1.x.part":   false,
		"heapguard.old":         false,
	}
	for name := range files {
		if err := os.WriteFile(filepath.Join(r.dest, name), []byte("part"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.deploy(); err != nil {
		t.Fatal(err)
	}
	for name, removed := range files {
		_, err := os.Stat(filepath.Join(r.dest, name))
		if gone := errors.Is(err, os.ErrNotExist); gone != removed {
			t.Errorf("%s: removed %v, want %v", name, gone, removed)
		}
	}
	if got := r.installed(); got != r.bin.Sum() {
		t.Errorf("installed %q", got)
	}
}

// TestFleetHostTimeoutStalledCopy: the network stops taking the copy's
// bytes (a write blocks, as when a host dies mid-copy): the host still
// fails at its timeout, its connection closed, and the final name holds
// nothing.
func TestFleetHostTimeoutStalledCopy(t *testing.T) {
	r := newRig(t, nil, []string{"ed25519"})
	stalled := make(chan struct{})
	var stallOnce sync.Once
	release := func() { stallOnce.Do(func() { close(stalled) }) }
	defer release()
	r.cfg.dial = func(dctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(dctx, network, addr)
		return newHookConn(c, int(r.bin.Size/2), func(closed <-chan struct{}) {
			select {
			case <-stalled:
			case <-closed:
			}
		}), err
	}
	done := make(chan Result, 1)
	start := time.Now()
	go func() {
		done <- Deploy(context.Background(), []Target{r.target}, r.cfg, r.bin, InstallOptions{Dest: r.dest}, Fleet{HostTimeout: time.Second}, func(Result) {})[0]
	}()
	select {
	case res := <-done:
		if res.Err == nil || !strings.Contains(res.Err.Error(), "timed out after 1s") {
			t.Errorf("stalled copy: %v; want timed out after 1s", res.Err)
		}
		if took := time.Since(start); took > time.Second+removeGrace+3*time.Second {
			t.Errorf("stalled copy ended after %v", took)
		}
	case <-time.After(15 * time.Second):
		t.Error("a host whose copy stalled was still running 15s after its 1s timeout")
		release()
		<-done
	}
	if got := r.installed(); got != "" {
		t.Errorf("final name holds sha256 %s after a stalled copy", got)
	}
}
