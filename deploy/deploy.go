package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Defaults for Fleet.
const (
	DefaultParallel    = 8
	DefaultHostTimeout = 10 * time.Minute
)

// ErrNotStarted: the run was stopped (its context cancelled) before this
// host's turn came.
var ErrNotStarted = errors.New("not started")

// errHostTimeout is the cause a host's context carries when its time is up.
var errHostTimeout = errors.New("host timeout")

// Fleet says how many hosts are done at once and how long each may take.
type Fleet struct {
	// Parallel is how many hosts at once; 1 is one after another, 0 or
	// less is DefaultParallel.
	Parallel int
	// HostTimeout bounds one host's whole work, connect to rename; 0 or
	// less is DefaultHostTimeout.
	HostTimeout time.Duration

	// do replaces deployOne in tests of the scheduling alone.
	do func(ctx context.Context, t Target) Result
}

func (f Fleet) parallel() int {
	if f.Parallel > 0 {
		return f.Parallel
	}
	return DefaultParallel
}

func (f Fleet) hostTimeout() time.Duration { return orDefault(f.HostTimeout, DefaultHostTimeout) }

// Deploy installs bin on the targets, up to fleet.Parallel at once, each
// within fleet.HostTimeout. It hands each result to report as the host
// finishes, always from the calling goroutine (so report needs no lock and
// lines written there never interleave), and returns all results in the
// targets' order. A host that fails or times out does not stop the others.
//
// Cancelling ctx stops starting hosts; those running are left to end or
// time out (cutting a copy short gains nothing: nothing is half-written
// under the final name either way, and the host is left as it was or
// done). The hosts never started are reported last, in order, with
// ErrNotStarted.
func Deploy(ctx context.Context, targets []Target, cfg *Config, bin Binary, opts InstallOptions, fleet Fleet, report func(Result)) []Result {
	do := fleet.do
	if do == nil {
		do = func(ctx context.Context, t Target) Result { return deployOne(ctx, t, cfg, bin, opts) }
	}
	timeout := fleet.hostTimeout()
	results := make([]Result, len(targets))
	done := make(chan int)
	next, running := 0, 0
	for {
		for running < fleet.parallel() && next < len(targets) && ctx.Err() == nil {
			go func(i int) {
				results[i] = withHostTimeout(ctx, timeout, targets[i], do)
				done <- i
			}(next)
			next++
			running++
		}
		if running == 0 {
			break
		}
		i := <-done
		running--
		report(results[i])
	}
	for i := next; i < len(targets); i++ {
		results[i] = Result{Target: cfg.withUser(targets[i]), Err: ErrNotStarted}
		report(results[i])
	}
	return results
}

// withHostTimeout runs do for t with its own deadline, detached from
// ctx's cancellation (see Deploy); an error after the deadline says so.
func withHostTimeout(ctx context.Context, timeout time.Duration, t Target, do func(context.Context, Target) Result) Result {
	hostCtx, cancel := context.WithTimeoutCause(context.WithoutCancel(ctx), timeout, errHostTimeout)
	defer cancel()
	r := do(hostCtx, t)
	if r.Err != nil && errors.Is(context.Cause(hostCtx), errHostTimeout) {
		r.Err = fmt.Errorf("timed out after %v: %w", timeout, r.Err)
	}
	return r
}

func deployOne(ctx context.Context, t Target, cfg *Config, bin Binary, opts InstallOptions) Result {
	return onHost(ctx, t, cfg, func(c *Client) (Result, error) {
		switch {
		case opts.Uninstall:
			return Uninstall(ctx, c, opts)
		case opts.Status:
			return InstalledStatus(ctx, c, opts)
		}
		return Install(ctx, c, bin, opts)
	})
}

// onHost connects to t and runs do with the connection, within ctx's
// deadline.
func onHost(ctx context.Context, t Target, cfg *Config, do func(*Client) (Result, error)) Result {
	t = cfg.withUser(t)
	c, err := Dial(ctx, t, cfg)
	if err != nil {
		return Result{Target: t, Err: err}
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		// Past the host's time (and the grace for removing its partial
		// copy) the connection goes: a write the network stopped taking
		// would otherwise hold the host, even its session's close.
		timer := time.AfterFunc(time.Until(dl)+removeGrace, func() { c.Close() })
		defer timer.Stop()
	}
	r, err := do(c)
	r.Target, r.Err = c.Target, err
	return r
}

// Line is the result as deploy prints it: host, action, the first 12 hex
// digits of the installed binary's SHA-256, and where it is (or the
// error).
func (r Result) Line() string {
	switch {
	case errors.Is(r.Err, ErrNotStarted):
		return fmt.Sprintf("%s  not started", r.Target)
	case r.Err != nil:
		return fmt.Sprintf("%s  failed  %v", r.Target, r.Err)
	case r.Action == Uninstalled:
		return fmt.Sprintf("%s  uninstalled  %s (its state folder is kept)", r.Target, r.Path)
	case r.Action == Reported && r.SHA256 == "":
		return fmt.Sprintf("%s  status  not installed at %s", r.Target, r.Path)
	}
	line := fmt.Sprintf("%s  %s  sha256:%.12s  %s", r.Target, r.Action, r.SHA256, r.Path)
	if r.Mode != "" && r.Mode != ModeNone {
		line += "  mode " + string(r.Mode)
	}
	return line
}
