package host

import (
	"context"
	"time"
)

// CapTimeout returns a Runner that gives each command at most limit, and
// never more than what is left before ctx's deadline, whatever timeout
// its caller asks for: a read-only command that must answer quickly
// (`heapguard status`) bounds the heap package's own 5 s per vsish call.
// The timeout is cut before the command starts, so a command killed for
// it says "timed out after <the cut timeout>", not the caller's longer one.
func CapTimeout(r Runner, limit time.Duration) Runner { return capped{r: r, limit: limit} }

type capped struct {
	r     Runner
	limit time.Duration
}

func (c capped) Run(ctx context.Context, timeout time.Duration, argv ...string) (Result, error) {
	if timeout <= 0 || timeout > c.limit {
		timeout = c.limit
	}
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl).Round(time.Millisecond); left < timeout {
			timeout = max(left, time.Millisecond)
		}
	}
	return c.r.Run(ctx, timeout, argv...)
}
