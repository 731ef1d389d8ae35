package host

import (
	"context"
	"testing"
	"time"
)

// timeoutRecorder records the timeout each command is given.
type timeoutRecorder struct{ got []time.Duration }

func (r *timeoutRecorder) Run(_ context.Context, timeout time.Duration, argv ...string) (Result, error) {
	r.got = append(r.got, timeout)
	return Result{Argv: argv}, nil
}

// TestCapTimeout: a command gets the least of what its caller asks, the
// cap, and what is left of the context's deadline.
func TestCapTimeout(t *testing.T) {
	rec := &timeoutRecorder{}
	r := CapTimeout(rec, 1500*time.Millisecond)
	ctx := context.Background()
	r.Run(ctx, 5*time.Second, "vsish")
	r.Run(ctx, 100*time.Millisecond, "vsish")
	r.Run(ctx, 0, "vsish") // 0: the runner's default, 30 s
	dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	r.Run(dctx, 5*time.Second, "vsish")
	want := []time.Duration{1500 * time.Millisecond, 100 * time.Millisecond, 1500 * time.Millisecond}
	for i, w := range want {
		if rec.got[i] != w {
			t.Errorf("call %d: timeout %s, want %s", i, rec.got[i], w)
		}
	}
	if d := rec.got[3]; d <= 0 || d > 300*time.Millisecond {
		t.Errorf("under a 300ms deadline: timeout %s", d)
	}
}
