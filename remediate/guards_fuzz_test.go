package remediate

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzGuardsFile opens guards.json with any content. A file that cannot
// be trusted is refused with ErrGuardState (never read as an empty
// budget); one that opens gives guards whose answers agree with their
// status, is not changed by merging a copy of itself (the host-wide
// record beside the state folder's), and spends one power-off that a
// reopen still sees.
func FuzzGuardsFile(f *testing.F) {
	for _, s := range []string{
		`{"version":1,"power_offs":["2014-06-10T06:50:00Z","2014-06-10T06:55:00Z"],"agent_restarts":{"vpxa":"2014-06-10T06:58:00Z"},"failure_streak":2}`,
		`{"version":1,"power_offs":null,"agent_restarts":null,"failure_streak":3,"breaker_open":true,"breaker_since":"2014-06-10T06:00:00Z","last_failure":"power_off x"}`,
		`{"version":1,"power_offs":["2099-01-01T00:00:00Z"],"agent_restarts":{"vpxa":"2099-01-01T00:00:00Z"},"reset_at":"2014-06-10T07:00:00Z","failure_at":"2014-06-10T06:00:00Z","failure_streak":9,"breaker_open":true}`,
		`{}`, `{"version":2}`, `{"power_offs": [`, `null`, "",
	} {
		f.Add([]byte(s))
	}
	root := f.TempDir()
	state, hostDir := filepath.Join(root, "state"), filepath.Join(root, "host")
	for _, d := range []string{state, hostDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			f.Fatal(err)
		}
	}
	now := t0
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, d := range []string{state, hostDir} {
			if err := os.WriteFile(filepath.Join(d, GuardsFile), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		g, err := OpenHostGuards(state, "", GuardLimits{})
		if err != nil {
			if !errors.Is(err, ErrGuardState) {
				t.Fatalf("error %v does not wrap ErrGuardState", err)
			}
			return
		}
		var probe map[string]json.RawMessage
		if json.Unmarshal(b, &probe) != nil || string(probe["version"]) != "1" {
			t.Fatalf("opened a file that is not a version 1 guards file: %q", b)
		}
		st := g.Status(now)
		if st.PowerOffsLeft() < 0 || st.PowerOffsLeft() > st.MaxPowerOffs {
			t.Fatalf("%d power-offs left of %d", st.PowerOffsLeft(), st.MaxPowerOffs)
		}
		both, err := OpenHostGuards(state, hostDir, GuardLimits{})
		if err != nil {
			t.Fatalf("the same file beside the host lock: %v", err)
		}
		if diff := cmp.Diff(st, both.Status(now)); diff != "" {
			t.Fatalf("merging a copy changed the status (-one +both):\n%s", diff)
		}
		err = g.Check(powerOff, now)
		switch {
		case st.BreakerOpen:
			if !errors.Is(err, ErrBreakerOpen) {
				t.Fatalf("breaker open, but Check says %v", err)
			}
			return
		case st.PowerOffsLeft() == 0:
			if !errors.Is(err, ErrBudgetSpent) {
				t.Fatalf("no power-off left, but Check says %v", err)
			}
			return
		case err != nil:
			t.Fatalf("%d power-offs left, but Check says %v", st.PowerOffsLeft(), err)
		}
		if err := g.Record(powerOff, Outcome{Result: ResultStarted}, now); err != nil {
			t.Fatal(err)
		}
		again, err := OpenHostGuards(state, "", GuardLimits{})
		if err != nil {
			t.Fatalf("reopen after a power-off: %v", err)
		}
		if got := again.Status(now).PowerOffsInWindow; got != st.PowerOffsInWindow+1 {
			t.Fatalf("after one power-off, %d in the window, want %d", got, st.PowerOffsInWindow+1)
		}
	})
}
