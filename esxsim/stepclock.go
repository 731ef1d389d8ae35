package esxsim

import (
	"context"
	"sync"
	"time"

	"github.com/heapguard/heapguard/host"
)

// StepClock is a host.Clock for tests that must not depend on the speed
// of the machine: Now is the simulated time, and Sleep advances the
// simulation by exactly d, synchronously. The program under test and the
// simulated host then move in lock step: a guest shutdown the program
// waits for completes in the simulated seconds it waits, however slow a
// race-enabled build on a loaded machine is. Several goroutines may sleep
// at once (heapguard waits for shutdowns side by side): each Sleep moves
// the host on by its own d, one after another, so each waiter waits at
// least d of host time, and waits side by side add up rather than overlap.
type StepClock struct {
	root string
	mu   sync.Mutex
}

var _ host.Clock = (*StepClock)(nil)

// NewStepClock returns the stepping clock of a laid-out simulated host.
func NewStepClock(root string) *StepClock { return &StepClock{root: root} }

// Now reads the clock the simulated host publishes (every change of its
// time publishes it); on error it returns the zero time, which no window
// or trend accepts.
func (c *StepClock) Now() time.Time {
	a, err := host.ReadSimClock(c.root)
	if err != nil {
		return time.Time{}
	}
	return a.At(time.Now())
}

// Sleep advances the simulation by d.
func (c *StepClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return Advance(c.root, d)
}
