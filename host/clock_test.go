package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPath(t *testing.T) {
	for _, tt := range []struct{ root, p, want string }{
		{"", "/var/log/vmkernel.log", "/var/log/vmkernel.log"},
		{"/", "/var/log/vmkernel.log", "/var/log/vmkernel.log"},
		{"/tmp/h", "/var/log/vmkernel.log", "/tmp/h/var/log/vmkernel.log"},
		{"/tmp/h", "/../../etc/passwd", "/tmp/h/etc/passwd"},
	} {
		if got := Path(tt.root, tt.p); got != tt.want {
			t.Errorf("Path(%q, %q) = %q, want %q", tt.root, tt.p, got, tt.want)
		}
	}
}

// env is a getenv for ClockFromEnv.
func env(mode string) func(string) string {
	return func(k string) string {
		if k == TestClockEnv {
			return mode
		}
		return ""
	}
}

// recordingRunner records the commands it is asked to run.
type recordingRunner struct{ argvs [][]string }

func (r *recordingRunner) Run(_ context.Context, _ time.Duration, argv ...string) (Result, error) {
	r.argvs = append(r.argvs, argv)
	return Result{Argv: argv}, nil
}

func TestClockFromEnv(t *testing.T) {
	root := t.TempDir()
	sim := time.Date(2012, 7, 26, 1, 0, 0, 0, time.UTC)
	if err := WriteSimClock(root, SimClockAnchor{Sim: sim, Wall: time.Now(), Speed: 0}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		mode, root, want, wantErr string
	}{
		// A simulator's clock under the root is never picked up by itself.
		{mode: "", root: root, want: "host.SystemClock"},
		{mode: "", root: "/", want: "host.SystemClock"},
		{mode: "sim", root: root, want: "*host.SimClock"},
		{mode: "step", root: root, want: "*host.SimStepClock"},
		{mode: "sim", root: "/", wantErr: "needs --root of a simulated host"},
		{mode: "sim", root: t.TempDir(), wantErr: "read host clock"},
		{mode: "fast", root: root, wantErr: `want sim or step`},
	} {
		c, err := ClockFromEnv(env(tt.mode), tt.root, &recordingRunner{})
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("mode %q root %q: error %v, want %q", tt.mode, tt.root, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("mode %q root %q: %v", tt.mode, tt.root, err)
			continue
		}
		if got := fmt.Sprintf("%T", c); got != tt.want {
			t.Errorf("mode %q root %q: %s, want %s", tt.mode, tt.root, got, tt.want)
		}
	}
}

func TestSimClockFollowsAnchor(t *testing.T) {
	root := t.TempDir()
	sim := time.Date(2012, 7, 26, 1, 0, 0, 0, time.UTC)
	wall := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	if err := WriteSimClock(root, SimClockAnchor{Sim: sim, Wall: wall, Speed: 120}); err != nil {
		t.Fatal(err)
	}
	now := wall.Add(2 * time.Second)
	c := &SimClock{path: Path(root, SimClockPath), wall: func() time.Time { return now }}
	// 2 s of wall time at 120x is 4 min of host time.
	if got := c.Now(); !got.Equal(sim.Add(4 * time.Minute)) {
		t.Errorf("Now = %s, want %s", got, sim.Add(4*time.Minute))
	}
	// A 60 s host-time sleep at 120x takes 0.5 s of wall time.
	if got := c.wallFor(60 * time.Second); got != 500*time.Millisecond {
		t.Errorf("60s of host time at 120x takes %s of wall time, want 500ms", got)
	}

	// Paused: time stands still, and a sleep waits its own length.
	if err := WriteSimClock(root, SimClockAnchor{Sim: sim, Wall: wall, Speed: 0}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(10 * time.Millisecond) // past the cached anchor
	if got := c.Now(); !got.Equal(sim) {
		t.Errorf("paused clock = %s, want %s", got, sim)
	}
	if got := c.wallFor(time.Second); got != time.Second {
		t.Errorf("a paused clock's 1s sleep takes %s of wall time, want 1s", got)
	}
}

// TestSimStepClock: each wait runs the simulator's advance, and Now reads
// the clock it then publishes, with no caching in between.
func TestSimStepClock(t *testing.T) {
	root := t.TempDir()
	sim := time.Date(2012, 7, 26, 1, 0, 0, 0, time.UTC)
	if err := WriteSimClock(root, SimClockAnchor{Sim: sim, Wall: time.Now(), Speed: 0}); err != nil {
		t.Fatal(err)
	}
	r := &recordingRunner{}
	c, err := ClockFromEnv(env("step"), root, r)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Now(); !got.Equal(sim) {
		t.Fatalf("Now = %s, want %s", got, sim)
	}
	if err := c.Sleep(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	want := []string{"esxsim", "advance", "--root", root, "--by", "10s"}
	if len(r.argvs) != 1 || !slices.Equal(r.argvs[0], want) {
		t.Fatalf("Sleep ran %q, want %q", r.argvs, want)
	}
	// The simulator publishes its new time; the very next Now sees it.
	if err := WriteSimClock(root, SimClockAnchor{Sim: sim.Add(10 * time.Second), Wall: time.Now(), Speed: 0}); err != nil {
		t.Fatal(err)
	}
	if got := c.Now(); !got.Equal(sim.Add(10 * time.Second)) {
		t.Errorf("Now after the step = %s, want %s", got, sim.Add(10*time.Second))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Sleep(ctx, time.Second); err == nil || len(r.argvs) != 1 {
		t.Errorf("Sleep on a cancelled context: %v, %d advances; want an error and no advance", err, len(r.argvs))
	}
}

func TestSimClockBadAnchor(t *testing.T) {
	root := t.TempDir()
	p := Path(root, SimClockPath)
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, []byte("not json"), 0o644)
	if _, err := ClockFromEnv(env("sim"), root, nil); err == nil {
		t.Fatal("want an error for a bad clock file")
	}
}

func TestManualClock(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewManualClock(start)
	c.Sleep(context.Background(), time.Minute)
	if got := c.Now(); !got.Equal(start.Add(time.Minute)) {
		t.Errorf("Now = %s", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Sleep(ctx, time.Minute); err == nil {
		t.Error("Sleep on a canceled context must fail")
	}
}

func TestDetectLayout(t *testing.T) {
	mk := func(t *testing.T, files ...string) string {
		root := t.TempDir()
		for _, f := range files {
			p := Path(root, f)
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, nil, 0o755)
		}
		return root
	}
	tests := []struct {
		name  string
		files []string
		want  Layout
	}{
		{"5.x and later", []string{"/var/log/vmkernel.log", "/etc/init.d/vpxa", "/etc/init.d/hostd"},
			Layout{LogPath: "/var/log/vmkernel.log", VpxaInit: "/etc/init.d/vpxa", HostdInit: "/etc/init.d/hostd"}},
		{"4.x", []string{"/var/log/messages", "/etc/opt/init.d/vmware-vpxa"},
			Layout{LogPath: "/var/log/messages", VpxaInit: "/etc/opt/init.d/vmware-vpxa"}}, // no hostd script in this root
		{"5.0: messages with new init scripts", []string{"/var/log/messages", "/etc/init.d/vpxa", "/etc/init.d/hostd"},
			Layout{LogPath: "/var/log/messages", VpxaInit: "/etc/init.d/vpxa", HostdInit: "/etc/init.d/hostd"}},
		{"nothing found", nil,
			Layout{LogPath: "/var/log/vmkernel.log", VpxaInit: "/etc/init.d/vpxa", HostdInit: "/etc/init.d/hostd"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DetectLayout(mk(t, tt.files...)); got != tt.want {
				t.Errorf("DetectLayout = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestSimClockPausedWait: a wait on a paused simulator whose clock does not
// move meanwhile fails with ErrSimPaused (else `run --for` never ends); a
// simulator advanced during the wait, or running, lets it end normally.
func TestSimClockPausedWait(t *testing.T) {
	root := t.TempDir()
	sim := time.Date(2012, 7, 26, 1, 0, 0, 0, time.UTC)
	wall := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	publish := func(a SimClockAnchor) {
		if err := WriteSimClock(root, a); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		anchor  SimClockAnchor
		during  func() // what the simulator does while heapguard waits
		wantErr bool
	}{
		{"paused, nothing moves it", SimClockAnchor{Sim: sim, Wall: wall}, func() {}, true},
		{"paused, esxsim advance meanwhile", SimClockAnchor{Sim: sim, Wall: wall},
			func() { publish(SimClockAnchor{Sim: sim.Add(10 * time.Second), Wall: wall}) }, false},
		{"running", SimClockAnchor{Sim: sim, Wall: wall, Speed: 120}, func() {}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			publish(tc.anchor)
			var waited time.Duration
			c := &SimClock{path: Path(root, SimClockPath), wall: func() time.Time { return wall },
				sleep: func(_ context.Context, d time.Duration) error { waited = d; tc.during(); return nil }}
			err := c.Sleep(context.Background(), 10*time.Second)
			if tc.wantErr {
				if !errors.Is(err, ErrSimPaused) || !strings.Contains(err.Error(), "stayed at 2012-07-26T01:00:00Z through a wait of 10s") {
					t.Errorf("err = %v, want ErrSimPaused naming the time and the wait", err)
				}
				if waited != 10*time.Second {
					t.Errorf("waited %s of wall time before giving up, want the whole 10s", waited)
				}
			} else if err != nil {
				t.Errorf("err = %v, want nil", err)
			}
		})
	}
}
