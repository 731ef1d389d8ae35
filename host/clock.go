package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Clock is the host's clock. Windows, trends and predictions are judged in
// host time: the system clock on a real host, the simulated clock under
// esxsim (which may run many times faster than the wall clock).
type Clock interface {
	Now() time.Time
	// Sleep waits d of host time, or until ctx is done.
	Sleep(ctx context.Context, d time.Duration) error
}

// SystemClock is the machine's own clock.
type SystemClock struct{}

var _ Clock = SystemClock{}

func (SystemClock) Now() time.Time { return time.Now().UTC() }

func (SystemClock) Sleep(ctx context.Context, d time.Duration) error {
	return sleepWall(ctx, d)
}

func sleepWall(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// SimClockPath is where a simulated host (esxsim) publishes its clock,
// relative to the host root. It never exists on a real ESXi host.
const SimClockPath = "/var/lib/esxsim/clock"

// SimClockAnchor is the content of SimClockPath: at wall time Wall the
// simulated time was Sim, and it advances Speed times faster than the wall
// clock (0: the simulation is paused).
type SimClockAnchor struct {
	Sim   time.Time `json:"sim"`
	Wall  time.Time `json:"wall"`
	Speed float64   `json:"speed"`
}

// At returns the simulated time at the given wall time.
func (a SimClockAnchor) At(wall time.Time) time.Time {
	if a.Speed <= 0 {
		return a.Sim.UTC()
	}
	return a.Sim.Add(time.Duration(float64(wall.Sub(a.Wall)) * a.Speed)).UTC()
}

// SimClock follows the clock a simulated host publishes under its root. It
// re-reads the anchor file at most every few milliseconds of wall time, so
// a simulator that restarts or changes speed is followed.
type SimClock struct {
	path string

	mu     sync.Mutex
	anchor SimClockAnchor
	readAt time.Time
}

var _ Clock = (*SimClock)(nil)

// ClockFor returns the simulated clock when root holds one, else the system clock.
func ClockFor(root string) (Clock, error) {
	if IsRealRoot(root) {
		return SystemClock{}, nil
	}
	p := Path(root, SimClockPath)
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return SystemClock{}, nil
		}
		return nil, fmt.Errorf("open host clock %s: %w", p, err)
	}
	c := &SimClock{path: p}
	if _, err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *SimClock) load() (SimClockAnchor, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.readAt.IsZero() && time.Since(c.readAt) < 5*time.Millisecond {
		return c.anchor, nil
	}
	b, err := os.ReadFile(c.path)
	if err != nil {
		return c.anchor, fmt.Errorf("read host clock %s: %w", c.path, err)
	}
	var a SimClockAnchor
	if err := json.Unmarshal(b, &a); err != nil || a.Sim.IsZero() {
		return c.anchor, fmt.Errorf("read host clock %s: bad anchor %q", c.path, b)
	}
	c.anchor, c.readAt = a, time.Now()
	return a, nil
}

// Now returns simulated time; if the anchor cannot be read it goes on from
// the last good one rather than jumping.
func (c *SimClock) Now() time.Time {
	a, _ := c.load()
	return a.At(time.Now())
}

// Sleep waits d of simulated time. While the simulation is paused it waits
// d of wall time, so a loop never hangs on a stopped simulator.
func (c *SimClock) Sleep(ctx context.Context, d time.Duration) error {
	a, _ := c.load()
	if a.Speed > 0 {
		d = time.Duration(float64(d) / a.Speed)
	}
	return sleepWall(ctx, d)
}

// WriteSimClock publishes an anchor atomically (temp file plus rename), so
// readers never see a half-written clock. Unlike WriteFileAtomic it does
// not fsync: esxsim republishes it many times a second, and a clock lost
// in a crash is simply published again.
func WriteSimClock(root string, a SimClockAnchor) error {
	p := Path(root, SimClockPath)
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("write host clock: %w", err)
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write host clock: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("write host clock: %w", err)
	}
	return nil
}

// ManualClock is a clock that tests advance by hand; Sleep advances it.
type ManualClock struct {
	mu  sync.Mutex
	now time.Time
}

var _ Clock = (*ManualClock)(nil)

func NewManualClock(t time.Time) *ManualClock { return &ManualClock{now: t.UTC()} }

func (m *ManualClock) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

func (m *ManualClock) Advance(d time.Duration) {
	m.mu.Lock()
	m.now = m.now.Add(d)
	m.mu.Unlock()
}

func (m *ManualClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.Advance(d)
	return nil
}
