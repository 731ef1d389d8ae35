package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/heapguard/heapguard/collector"
	"github.com/heapguard/heapguard/esxsim"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/remediate"
)

// TestConsumeVpxaThreadDump : a dump named by a vpxa thread
// (vpxa-worker) is vpxa's crash; a hostd thread's is not, nor one whose
// time cannot be read (a known body behind an unknown header).
func TestConsumeVpxaThreadDump(t *testing.T) {
	now := time.Date(2016, 8, 10, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		line string
		want bool
	}{
		{"2016-08-10T10:11:12.345Z cpu1:34895)UserDump: 1485: Dumping cartel 34890 (from world 34895) to file /var/core/vpxa-worker-zdump.000 ...", true},
		{"2016-08-10T10:11:12.345Z cpu1:34895)User: 2432: wantCoreDump : vpxa -enabled : 1", true},
		{"2016-08-10T10:11:12.345Z cpu1:34895)UserDump: 1485: Dumping cartel 34890 (from world 34895) to file /var/core/hostd-worker-zdump.000 ...", false},
		{"[masked] cpu1:34895)UserDump: 1485: Dumping cartel 34890 (from world 34895) to file /var/core/vpxa-worker-zdump.000 ...", false},
	} {
		w := &Watcher{opt: Options{Clock: host.NewManualClock(now)}, log: zap.NewNop(),
			parser: collector.NewParser(2016, now), tracker: collector.NewFlapTracker(0, 0)}
		w.consume([]byte(tc.line))
		if w.vpxaCrash != tc.want {
			t.Errorf("%q: vpxa crash %v, want %v", tc.line, w.vpxaCrash, tc.want)
		}
	}
}

// A journal whose last line a crash cut short: a live start moves the torn
// line to journal.torn and goes on from the last whole entry; a dry run,
// which holds no lock, leaves the file as it is.
func TestTornJournalRepairedOnLiveStart(t *testing.T) {
	h := newSim(t, "seed-incident")
	torn := `{"time":"2026-07-26T01:00:01Z","act`
	for _, dry := range []bool{true, false} {
		state := filepath.Join(t.TempDir(), "state")
		if err := os.MkdirAll(state, 0o700); err != nil {
			t.Fatal(err)
		}
		journal := filepath.Join(state, remediate.JournalFile)
		whole := `{"time":"2026-07-26T01:00:00Z","action":"alert","target":"netGPHeap","result":"ok"}` + "\n"
		if err := os.WriteFile(journal, []byte(whole+torn), 0o600); err != nil {
			t.Fatal(err)
		}
		opt := agentOptions(h, state, esxsim.NewStepClock(h.Root()))
		opt.DryRun = dry
		w, err := Open(opt)
		if err != nil {
			t.Fatalf("dry run %v: %v", dry, err)
		}
		w.Close()
		got, _ := os.ReadFile(journal)
		kept, _ := os.ReadFile(filepath.Join(state, remediate.TornFile))
		switch {
		case dry && (string(got) != whole+torn || len(kept) != 0):
			t.Errorf("dry run changed the journal: %q, journal.torn %q", got, kept)
		case !dry && (!strings.HasPrefix(string(got), whole) || strings.Contains(string(got), torn) || string(kept) != torn+"\n"):
			t.Errorf("live start: journal %q, journal.torn %q; want the torn line moved", got, kept)
		}
	}
}
