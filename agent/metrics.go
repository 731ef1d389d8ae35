package agent

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/heapguard/heapguard/collector"
	"github.com/heapguard/heapguard/heap"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/metrics"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

// portTotal is one port's running count of cycles for the metrics'
// counter, kept in the saved state so it survives restarts.
type portTotal struct {
	MAC    string `json:"mac,omitempty"`
	VM     string `json:"vm,omitempty"`
	Cycles uint64 `json:"cycles"`
	// Last is the log time of its newest cycle: a port quiet for
	// portTotalTTL is dropped, so a host's VMs coming and going over
	// months do not grow the state without bound.
	Last time.Time `json:"last"`
}

// portTotalTTL is how long a port that stopped cycling keeps its series.
const portTotalTTL = 24 * time.Hour

// countCycle adds one enabled line to the port's running total. A port id
// given to another NIC starts a new series (its labels differ) from 0.
func (w *Watcher) countCycle(ev collector.Event) {
	if ev.Kind != collector.KindPortEnabled || ev.Time.IsZero() {
		return
	}
	if w.st.FlapTotals == nil {
		w.st.FlapTotals = map[string]*portTotal{}
	}
	key := ev.Port.String()
	t := w.st.FlapTotals[key]
	if t == nil {
		t = &portTotal{}
		w.st.FlapTotals[key] = t
	}
	if ev.MACKnown {
		if mac := ev.MAC.String(); t.MAC != mac {
			if t.MAC != "" {
				*t = portTotal{}
			}
			t.MAC = mac
		}
	}
	t.Cycles++
	if ev.Time.After(t.Last) {
		t.Last = ev.Time
	}
}

// countOutcomes adds the steps a poll applied to the running counts.
func (w *Watcher) countOutcomes(outs []remediate.Outcome) {
	for _, o := range outs {
		if w.st.Actions == nil {
			w.st.Actions = map[string]uint64{}
		}
		w.st.Actions[string(o.Action.Kind)+" "+o.Result]++
	}
}

// snapshot gathers the metrics of the poll at now.
func (w *Watcher) snapshot(now time.Time, obs policy.Observations) metrics.Snapshot {
	s := metrics.Snapshot{
		Version: metrics.Version, Time: now, DryRun: w.opt.DryRun, Heaps: w.heapMetrics,
		TextfileErrors: w.st.TextfileErrors, Build: w.opt.Build,
	}
	if s.Heaps == nil {
		s.Heaps = []metrics.Heap{}
	}
	if obs.Guards != nil {
		s.PowerOffsLeft, s.BreakerOpen = obs.Guards.PowerOffsLeft, obs.Guards.BreakerOpen
	}
	if obs.HeapErr != "" {
		s.Errors = append(s.Errors, metrics.SourceError{Source: metrics.SourceHeaps, Error: obs.HeapErr})
	}
	if w.logErr != "" {
		s.Errors = append(s.Errors, metrics.SourceError{Source: metrics.SourceLog, Error: w.logErr})
	}

	flapping := map[string]bool{}
	for _, f := range obs.Flapping {
		flapping[f.Port] = true
		t := w.st.FlapTotals[f.Port]
		if t == nil {
			// Tracked before the totals were kept: start from what the
			// tracker counts.
			t = &portTotal{MAC: f.MAC, Cycles: uint64(f.Cycles), Last: now}
			if w.st.FlapTotals == nil {
				w.st.FlapTotals = map[string]*portTotal{}
			}
			w.st.FlapTotals[f.Port] = t
		}
		if f.VM != nil && f.VM.Name != "" {
			// Kept once known, so the series keeps its labels when the
			// owner is not looked up again (the port stopped flapping).
			t.VM = f.VM.Name
		}
	}
	for port, t := range w.st.FlapTotals {
		if !flapping[port] && now.Sub(t.Last) > portTotalTTL {
			delete(w.st.FlapTotals, port)
			continue
		}
		s.Ports = append(s.Ports, metrics.Port{Port: port, MAC: t.MAC, VM: t.VM, Cycles: t.Cycles, Flapping: flapping[port]})
	}
	slices.SortFunc(s.Ports, func(a, b metrics.Port) int { return cmp.Compare(a.Port, b.Port) })
	if s.Ports == nil {
		s.Ports = []metrics.Port{}
	}

	s.Actions = []metrics.ActionCount{}
	for key, n := range w.st.Actions {
		kind, result, _ := strings.Cut(key, " ")
		s.Actions = append(s.Actions, metrics.ActionCount{Action: kind, Result: result, Count: n})
	}
	slices.SortFunc(s.Actions, func(a, b metrics.ActionCount) int {
		return cmp.Or(cmp.Compare(a.Action, b.Action), cmp.Compare(a.Result, b.Result))
	})
	return s
}

// heapMetric is one sampled heap's figures for the metrics.
func heapMetric(obs policy.HeapObs, s heap.Sample) metrics.Heap {
	h := metrics.Heap{
		Name: obs.Name, FreeRatio: metrics.Ratio(obs.PercentFreeOfMax),
		AllocatedBytes: obs.AllocatedBytes, MaxBytes: obs.MaxBytes, BytesPerSecond: obs.BytesPerSecond,
	}
	if p, ok := s.LowestPercentFreeEver(); ok {
		r := metrics.Ratio(float64(p))
		h.LowestFreeRatio = &r
	}
	if obs.HasPrediction {
		secs := max(obs.TimeToExhaustion.Seconds(), 0)
		h.SecondsToExhaustion = &secs
	}
	return h
}

// metricsPath is the snapshot's file in the state folder: a dry run keeps
// its own, as it keeps its own state.
func (w *Watcher) metricsPath() string {
	if w.opt.DryRun {
		return filepath.Join(w.opt.StateDir, metrics.DryRunFileName)
	}
	return filepath.Join(w.opt.StateDir, metrics.FileName)
}

// writeMetrics saves the poll's snapshot, and the exposition into the
// --textfile folder. The metrics are for people and Prometheus: a failure
// is logged (and a textfile failure counted) and the agent goes on.
func (w *Watcher) writeMetrics(now time.Time, obs policy.Observations) {
	if w.lockLost {
		return // the state folder is another instance's now
	}
	s := w.snapshot(now, obs)
	if w.opt.Textfile != "" {
		if err := w.textfile.write(w.opt.Textfile, s, time.After(textfileTimeout)); err != nil {
			w.st.TextfileErrors++
			s.TextfileErrors = w.st.TextfileErrors
			w.log.Warn("metrics textfile not written", zap.Error(err))
		}
	}
	b, err := metrics.Marshal(s)
	if err == nil {
		// Rewritten every poll and never read back by the agent (its
		// counters live in the state): a snapshot lost to a power cut
		// costs nothing, so it does without the two fsyncs per poll.
		err = host.WriteFileReplace(w.metricsPath(), b, 0o600)
	}
	if err != nil {
		w.log.Warn("metrics snapshot not saved", zap.String("path", w.metricsPath()), zap.Error(err))
	}
}

// textfileTimeout bounds how long a poll waits for the textfile: a folder
// on a datastore that stopped answering (NFS down, all paths down) must
// not hold the agent up. Writing takes milliseconds.
const textfileTimeout = 5 * time.Second

var errTextfileBusy = errors.New("write textfile: the last write is still under way (the folder does not answer)")

// textfileWriter writes the textfile in a goroutine of its own and waits
// a bounded time for it. A write that outlives the wait is left to end by
// itself (a hung file system write cannot be interrupted); until it does,
// later polls write nothing, so at most one is ever stuck.
type textfileWriter struct {
	busy atomic.Bool
	// writeFn is writeTextfile, or a stand-in in tests.
	writeFn func(dir string, s metrics.Snapshot) error
}

// write writes s into dir, waiting until expire fires at most.
func (t *textfileWriter) write(dir string, s metrics.Snapshot, expire <-chan time.Time) error {
	if !t.busy.CompareAndSwap(false, true) {
		return errTextfileBusy
	}
	fn := t.writeFn
	if fn == nil {
		fn = writeTextfile
	}
	done := make(chan error, 1)
	go func() {
		err := fn(dir, s)
		t.busy.Store(false)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-expire:
		return errors.New("write textfile: not done in time (the folder does not answer); the agent goes on")
	}
}

// writeTextfile writes the exposition atomically into dir, for
// node_exporter's textfile collector (which reads *.prom files: the
// temporary file's name does not end so).
func writeTextfile(dir string, s metrics.Snapshot) error {
	var b bytes.Buffer
	if err := metrics.Encode(&b, s); err != nil {
		return fmt.Errorf("write textfile: %w", err)
	}
	path := filepath.Join(dir, metrics.TextfileName)
	if err := host.WriteFileAtomic(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write textfile: %w", err)
	}
	return nil
}
