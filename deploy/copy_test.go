package deploy

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// breakingConn closes the connection once more than limit bytes were
// written through it: the network dropping in the middle of a copy.
type breakingConn struct {
	net.Conn
	mu      sync.Mutex
	written int
	limit   int
}

func (c *breakingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.written += len(p)
	over := c.written > c.limit
	c.mu.Unlock()
	if over {
		c.Conn.Close()
		return 0, errors.New("test: connection dropped")
	}
	return c.Conn.Write(p)
}

func TestConnectionDroppedMidCopy(t *testing.T) {
	t.Run("fresh", func(t *testing.T) { testDroppedMidCopy(t, false) })
	t.Run("upgrade", func(t *testing.T) { testDroppedMidCopy(t, true) })
}

// testDroppedMidCopy drops the connection while a binary is sent; with
// keepOld another binary is in place, and the next run sends that one.
func testDroppedMidCopy(t *testing.T, keepOld bool) {
	r := newRig(t, nil, []string{"ed25519"})
	old, wantAction, wantBefore := r.bin, Installed, ""
	if keepOld {
		if _, err := r.deploy(); err != nil {
			t.Fatal(err)
		}
		r.bin, wantAction, wantBefore = r.binary("v2"), Unchanged, old.Sum()
	}
	r.cfg.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		return &breakingConn{Conn: c, limit: int(r.bin.Size / 2)}, err
	}
	if _, err := r.deploy(); err == nil || !strings.Contains(err.Error(), "send ") {
		t.Fatalf("deploy over a dropped connection: %v; want a failed send", err)
	}
	if got := r.installed(); got != wantBefore {
		t.Fatalf("after a dropped copy the final name holds sha256 %q, want %q", got, wantBefore)
	}
	// The host's side of the copy ends on its own; wait for its partial
	// file, which the next run must remove.
	deadline := time.Now().Add(5 * time.Second)
	for len(r.partials()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if len(r.partials()) == 0 {
		t.Fatal("no partial copy left by the dropped connection: the stale clean-up goes untested")
	}
	r.cfg.dial = nil
	if keepOld {
		// The same binary as the one in place: unchanged, and the
		// partial copy goes all the same.
		r.bin = old
	}
	left := r.partials()
	res, err := r.deploy()
	if err != nil || res.Action != wantAction {
		t.Fatalf("deploy after the drop = %+v, %v; want %s", res, err, wantAction)
	}
	if got := r.installed(); got != r.bin.Sum() {
		t.Errorf("installed sha256 %s, want %s", got, r.bin.Sum())
	}
	// Its deadline has not passed: the run that left it could, for all
	// this run knows, still be writing it.
	if p := r.partials(); len(p) != len(left) {
		t.Errorf("partial copies before the run %q, after %q: want a fresh one kept", left, p)
	}
	// Later, past its deadline and the grace, it goes.
	r.cfg.now = func() time.Time {
		return time.Now().Add(2*r.cfg.copyTimeout() + 2*r.cfg.commandTimeout() + removeGrace + staleGrace + time.Minute)
	}
	if res, err := r.deploy(); err != nil || res.Action != Unchanged {
		t.Fatalf("deploy past the partial copy's deadline = %+v, %v; want unchanged", res, err)
	}
	if p := r.partials(); len(p) > 0 {
		t.Errorf("stale partial copies not removed: %q", p)
	}
}

// TestChangedLocalFileNotInstalled: the file changes between the check and
// the copy, so what the host holds is not what was checked. The read-back
// comparison refuses it and nothing gets the final name; an older binary
// there stays.
func TestChangedLocalFileNotInstalled(t *testing.T) {
	r := newRig(t, nil, []string{"ed25519"})
	if _, err := r.deploy(); err != nil {
		t.Fatal(err)
	}
	old := r.installed()
	r.bin = r.binary("v2")
	b, _ := os.ReadFile(r.bin.Path)
	b[len(b)-1] ^= 1
	os.WriteFile(r.bin.Path, b, 0o755)
	res, err := r.deploy()
	if err == nil || !strings.Contains(err.Error(), "read back") || !strings.Contains(err.Error(), r.bin.Sum()) {
		t.Fatalf("deploy of a file that changed = %+v, %v; want a read-back mismatch", res, err)
	}
	if got := r.installed(); got != old {
		t.Errorf("final file sha256 %s, want the old %s kept", got, old)
	}
	if p := r.partials(); len(p) > 0 {
		t.Errorf("refused copy left behind: %q", p)
	}
}

func TestDestIsNotAFile(t *testing.T) {
	r := newRig(t, nil, []string{"ed25519"})
	os.MkdirAll(filepath.Join(r.dest, BinaryName), 0o755)
	if _, err := r.deploy(); err == nil || !strings.Contains(err.Error(), "not a file") {
		t.Fatalf("deploy onto a folder named heapguard: %v", err)
	}
}

func TestRemoteCommandTimeout(t *testing.T) {
	r := newRig(t, nil, []string{"ed25519"})
	c, err := Dial(context.Background(), r.target, r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// cat waits on input that never comes; closing the channel at the
	// timeout ends it (a sleep would outlive the test: OpenSSH refuses
	// to signal a root session).
	never, w := io.Pipe()
	defer w.Close()
	start := time.Now()
	err = c.run(context.Background(), 300*time.Millisecond, "cat", never, nil)
	if err == nil || !strings.Contains(err.Error(), "stopped after 300ms") || time.Since(start) > 5*time.Second {
		t.Fatalf("cat with no input and a 300ms timeout: %v after %v", err, time.Since(start))
	}
	// The connection still serves.
	if err := c.run(context.Background(), 5*time.Second, "true", nil, nil); err != nil {
		t.Errorf("after a timeout: %v", err)
	}
	var re *RemoteError
	if err := c.run(context.Background(), 5*time.Second, "echo oops >&2; exit 7", nil, nil); !errors.As(err, &re) || re.Status != 7 || re.Stderr != "oops" {
		t.Errorf("exit 7: %v", err)
	}
}

// TestHandshakeTimeout: a server that accepts and never speaks.
func TestHandshakeTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	tg, _ := ParseTarget(l.Addr().String())
	cfg := &Config{KnownHosts: &KnownHosts{File: filepath.Join(t.TempDir(), "kh")}, Auth: &Auth{}, ConnectTimeout: 300 * time.Millisecond}
	start := time.Now()
	_, err = Dial(context.Background(), tg, cfg)
	if err == nil || !strings.Contains(err.Error(), "handshake took more than 300ms") || time.Since(start) > 5*time.Second {
		t.Fatalf("dial a silent server: %v after %v", err, time.Since(start))
	}
}
