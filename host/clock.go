package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// TestClockEnv names the environment variable through which tests, the
// demo and the benchmarks hand heapguard a simulated host's clock. Nothing
// else selects a simulated clock: without it heapguard keeps the system
// clock, whatever the root holds.
const TestClockEnv = "HEAPGUARD_TEST_CLOCK"

// ClockFromEnv returns the clock that getenv(TestClockEnv) asks for:
//
//	""     the system clock;
//	"sim"  the clock a running simulator publishes under root (SimClock);
//	"step" the simulator's clock, moved on by each wait (SimStepClock),
//	       so the host and heapguard move in lock step.
func ClockFromEnv(getenv func(string) string, root string, runner Runner) (Clock, error) {
	switch mode := getenv(TestClockEnv); mode {
	case "":
		return SystemClock{}, nil
	case "sim", "step":
		if IsRealRoot(root) {
			return nil, fmt.Errorf("%s=%s needs --root of a simulated host", TestClockEnv, mode)
		}
		c := &SimClock{path: Path(root, SimClockPath), wall: time.Now, fresh: mode == "step"}
		if _, err := c.load(); err != nil {
			return nil, err
		}
		if mode == "sim" {
			return c, nil
		}
		return &SimStepClock{root: root, runner: runner, sim: c}, nil
	default:
		return nil, fmt.Errorf("%s=%q: want sim or step", TestClockEnv, mode)
	}
}

// SimClock follows the clock a simulated host publishes under its root. It
// re-reads the anchor file at most every few milliseconds of wall time, so
// a simulator that restarts or changes speed is followed.
type SimClock struct {
	path string
	// wall is the machine's clock (time.Now); tests replace it.
	wall func() time.Time

	// sleep waits wall time (sleepWall); tests replace it.
	sleep func(ctx context.Context, d time.Duration) error

	mu     sync.Mutex
	anchor SimClockAnchor
	readAt time.Time
	// fresh: read the anchor on every call (a stepped simulator).
	fresh bool
}

// ErrSimPaused says a wait on a simulated host's clock cannot end: the
// simulator is paused, so its time does not move.
var ErrSimPaused = errors.New("the simulated host is paused")

var _ Clock = (*SimClock)(nil)

func (c *SimClock) load() (SimClockAnchor, error) {
	return c.read(c.fresh)
}

// read returns the anchor, from the file when fresh or when the last read
// is a few milliseconds old.
func (c *SimClock) read(fresh bool) (SimClockAnchor, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !fresh && !c.readAt.IsZero() && c.wall().Sub(c.readAt) < 5*time.Millisecond {
		return c.anchor, nil
	}
	a, err := readSimClock(c.path)
	if err != nil {
		return c.anchor, err
	}
	c.anchor, c.readAt = a, c.wall()
	return a, nil
}

// ReadSimClock reads the clock a simulated host under root publishes.
func ReadSimClock(root string) (SimClockAnchor, error) {
	return readSimClock(Path(root, SimClockPath))
}

func readSimClock(p string) (SimClockAnchor, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return SimClockAnchor{}, fmt.Errorf("read host clock %s: %w", p, err)
	}
	var a SimClockAnchor
	if err := json.Unmarshal(b, &a); err != nil || a.Sim.IsZero() {
		return SimClockAnchor{}, fmt.Errorf("read host clock %s: bad anchor %q", p, b)
	}
	return a, nil
}

// Now returns simulated time; if the anchor cannot be read it goes on from
// the last good one rather than jumping.
func (c *SimClock) Now() time.Time {
	a, _ := c.load()
	return a.At(c.wall())
}

// Sleep waits d of simulated time. While the simulation is paused it waits
// d of wall time, and if the simulated clock has not moved by then (no
// `esxsim run`, no `esxsim advance` meanwhile) it returns ErrSimPaused:
// the host time a caller waits for would never come, so a `run --for`
// would never end and a timeout would never expire.
func (c *SimClock) Sleep(ctx context.Context, d time.Duration) error {
	before := c.Now()
	sleep := c.sleep
	if sleep == nil {
		sleep = sleepWall
	}
	if err := sleep(ctx, c.wallFor(d)); err != nil || d <= 0 {
		return err
	}
	a, err := c.read(true)
	if err == nil && a.Speed <= 0 && !a.Sim.After(before) {
		return fmt.Errorf("%w: its clock stayed at %s through a wait of %s (start `esxsim run`, or set %s=step to move it with each wait)",
			ErrSimPaused, before.Format(time.RFC3339), d, TestClockEnv)
	}
	return nil
}

// wallFor is the wall time that d of simulated time takes now.
func (c *SimClock) wallFor(d time.Duration) time.Duration {
	if a, _ := c.load(); a.Speed > 0 {
		return time.Duration(float64(d) / a.Speed)
	}
	return d
}

// SimStepClock is a simulated host's clock that moves only when heapguard
// waits: Sleep(d) runs the simulator's `esxsim advance --by d` (found on
// the host's PATH under the root) and returns once the host is d later.
// The out-of-process twin of esxsim.StepClock, for tests of the binary;
// concurrent Sleeps advance the simulator one after another (its lock).
type SimStepClock struct {
	root   string
	runner Runner
	sim    *SimClock
}

var _ Clock = (*SimStepClock)(nil)

// stepTimeout bounds one advance of the simulator.
const stepTimeout = 2 * time.Minute

func (c *SimStepClock) Now() time.Time { return c.sim.Now() }

func (c *SimStepClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	if _, err := c.runner.Run(ctx, stepTimeout, "esxsim", "advance", "--root", c.root, "--by", d.String()); err != nil {
		return fmt.Errorf("advance the simulated host: %w", err)
	}
	return nil
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
// Goroutines may sleep on it at once: each Sleep advances it by its own d.
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
