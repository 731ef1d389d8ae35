package host

import (
	"context"
	"os"
	"path/filepath"
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

func TestClockForRealRootIsSystem(t *testing.T) {
	c, err := ClockFor("/")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(SystemClock); !ok {
		t.Fatalf("ClockFor(/) = %T", c)
	}
	c, err = ClockFor(t.TempDir()) // a root without a simulator clock
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(SystemClock); !ok {
		t.Fatalf("ClockFor(empty root) = %T", c)
	}
}

func TestSimClockFollowsAnchor(t *testing.T) {
	root := t.TempDir()
	sim := time.Date(2012, 7, 26, 1, 0, 0, 0, time.UTC)
	wall := time.Now().Add(-2 * time.Second)
	if err := WriteSimClock(root, SimClockAnchor{Sim: sim, Wall: wall, Speed: 120}); err != nil {
		t.Fatal(err)
	}
	c, err := ClockFor(root)
	if err != nil {
		t.Fatal(err)
	}
	got := c.Now()
	// 2 s of wall time at 120x is 4 min of host time (plus the test's own run time).
	if d := got.Sub(sim); d < 4*time.Minute || d > 5*time.Minute {
		t.Errorf("host time advanced %s, want about 4m", d)
	}
	// A 60 s host-time sleep at 120x takes 0.5 s of wall time.
	start := time.Now()
	if err := c.Sleep(context.Background(), 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 400*time.Millisecond || el > 3*time.Second {
		t.Errorf("60s of host time at 120x took %s of wall time", el)
	}

	// Paused: time stands still.
	if err := WriteSimClock(root, SimClockAnchor{Sim: sim, Wall: wall, Speed: 0}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // let the cached anchor expire
	if got := c.Now(); !got.Equal(sim) {
		t.Errorf("paused clock = %s, want %s", got, sim)
	}
}

func TestSimClockBadAnchor(t *testing.T) {
	root := t.TempDir()
	p := Path(root, SimClockPath)
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, []byte("not json"), 0o644)
	if _, err := ClockFor(root); err == nil {
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
