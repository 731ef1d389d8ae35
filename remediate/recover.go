package remediate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
)

// journalTail is how much of the journal's end is read back at start:
// thousands of entries, far more than the budget window and settle times
// hold, without reading months of journal on every cron run.
const journalTail = 8 << 20

// ReadJournalTail reads the last entries of <stateDir>/journal.jsonl (up
// to journalTail bytes, from a line start). A missing journal has none.
func ReadJournalTail(stateDir string) ([]Entry, error) {
	p := filepath.Join(stateDir, JournalFile)
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read journal %s: %w", p, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read journal %s: %w", p, err)
	}
	var r io.Reader = f
	if off := st.Size() - journalTail; off > 0 {
		b := make([]byte, journalTail)
		n, err := f.ReadAt(b, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read journal %s: %w", p, err)
		}
		b = b[:n]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:] // the first line is cut
		}
		r = bytes.NewReader(b)
	}
	entries, _, err := ReadJournal(r)
	if err != nil {
		return entries, fmt.Errorf("read journal %s: %w", p, err)
	}
	return entries, nil
}

// stepKey names one step of one plan in the journal.
type stepKey struct {
	plan   string
	action policy.ActionKind
	target string
	vmid   string
}

func keyOf(e Entry) stepKey { return stepKey{e.PlanID, e.Action, e.Target, e.VMID} }

// Unfinished returns the live steps the journal says were started and
// never ended (heapguard was killed mid-action), oldest first.
func Unfinished(entries []Entry) []Entry {
	open := map[stepKey]int{}
	var out []Entry
	for _, e := range entries {
		if e.DryRun || e.Action == ActDecide {
			continue
		}
		k := keyOf(e)
		if e.Result == ResultStarted {
			open[k] = len(out)
			out = append(out, e)
			continue
		}
		if i, ok := open[k]; ok {
			out[i].Result = "" // ended
			delete(open, k)
		}
	}
	var still []Entry
	for _, e := range out {
		if e.Result == ResultStarted {
			still = append(still, e)
		}
	}
	return still
}

// Spent is what the journal says was spent at or after since: the start
// times of power-offs and the latest start of each agent's restart, less
// the steps that ended failed without running a mutating command (they
// were refunded).
func Spent(entries []Entry, since time.Time) (powerOffs []time.Time, restarts map[string]time.Time) {
	refunded := map[stepKey]bool{}
	for _, e := range entries {
		if !e.DryRun && e.Result == ResultFailed && !e.Mutated {
			refunded[keyOf(e)] = true
		}
	}
	restarts = map[string]time.Time{}
	for _, e := range entries {
		if e.DryRun || e.Result != ResultStarted || refunded[keyOf(e)] {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, e.Time)
		if err != nil || t.Before(since) {
			continue
		}
		switch e.Action {
		case policy.ActPowerOff:
			powerOffs = append(powerOffs, t)
		case policy.ActRestartAgent:
			if t.After(restarts[e.Target]) {
				restarts[e.Target] = t
			}
		}
	}
	return powerOffs, restarts
}

// Recover takes into the guards what the journal says was spent since
// the window began (a guards file deleted, or written before a crash
// could record a start, never hands a spent budget back).
func (g *Guards) Recover(entries []Entry, now time.Time) error {
	offs, restarts := Spent(entries, now.Add(-max(g.limits.PowerOffWindow, g.limits.AgentCooldown)))
	g.mu.Lock()
	defer g.mu.Unlock()
	before := fmt.Sprint(g.st.PowerOffs, g.st.AgentRestarts)
	g.st.merge(guardState{PowerOffs: offs, AgentRestarts: restarts})
	if fmt.Sprint(g.st.PowerOffs, g.st.AgentRestarts) == before {
		return nil
	}
	return g.persist()
}

// ResolveUnfinished ends, in the journal, the steps a killed heapguard
// left started: it asks the host what became of each (is the VM off?
// does the agent run?) and journals the answer, before anything else is
// done. It returns the entries it wrote.
func ResolveUnfinished(ctx context.Context, j *Journal, steps []Entry, runner host.Runner, layout host.Layout, timeout time.Duration) ([]Entry, error) {
	var out []Entry
	for _, s := range steps {
		e := s
		e.Time, e.Output, e.ElapsedMS, e.Mutated = "", "", 0, false
		e.Reason = "resolved at start: heapguard stopped during this step (" + s.Time + "); " + s.Reason
		switch s.Action {
		case policy.ActPowerOff:
			st, err := RunnerPower(runner, timeout)(ctx, s.VMID)
			switch {
			case err != nil:
				// What it did is unknown: count it as having changed the
				// host, so that its budget stays spent.
				e.Result, e.Error, e.Mutated = ResultFailed, "interrupted; the VM's power state cannot be read: "+err.Error(), true
			case st == PoweredOff:
				e.Result, e.Mutated = ResultOK, true
				e.Output = fmt.Sprintf("vmid %s is %s", s.VMID, st)
			default:
				e.Result, e.Error, e.Mutated = ResultFailed, fmt.Sprintf("interrupted; vmid %s is still %s", s.VMID, st), true
			}
		case policy.ActRestartAgent:
			script, err := initScript(layout, s.Target)
			if err == nil {
				_, err = runner.Run(ctx, timeout, statusArgv(script)...)
			}
			e.Mutated = true
			if err != nil {
				e.Result, e.Error = ResultFailed, fmt.Sprintf("interrupted; %s does not report running: %v", s.Target, err)
			} else {
				e.Result, e.Output = ResultOK, s.Target+" runs"
			}
		default:
			e.Result, e.Error = ResultSkipped, "interrupted: heapguard stopped during this step"
		}
		if err := j.Append(e); err != nil {
			return out, err
		}
		out = append(out, e)
	}
	return out, nil
}
