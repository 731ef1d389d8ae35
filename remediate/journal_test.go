package remediate

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
)

var t0 = time.Date(2026, 7, 26, 1, 26, 46, 0, time.UTC)

// syncCounter is a writer that counts Sync calls and can fail.
type syncCounter struct {
	bytes.Buffer
	syncs     int
	writeErr  error
	syncErr   error
	failAfter int // writes that succeed before writeErr applies; -1: never fail
	writes    int
	refused   []string // the writes writeErr refused
}

func (s *syncCounter) Write(p []byte) (int, error) {
	s.writes++
	if s.writeErr != nil && s.writes > s.failAfter {
		s.refused = append(s.refused, string(p))
		return 0, s.writeErr
	}
	return s.Buffer.Write(p)
}

func (s *syncCounter) Sync() error {
	s.syncs++
	return s.syncErr
}

func TestJournalEntryFields(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenJournal(dir, host.NewManualClock(t0))
	if err != nil {
		t.Fatal(err)
	}
	heap := &policy.HeapFigures{Name: "netGPHeap", PercentFreeOfMax: 3.2, MaxBytes: 33554432}
	a := policy.Action{Kind: policy.ActPowerOff, Target: "dsva $(rm -rf /); x", VMID: "12", Port: "0x3000007", MAC: "00:50:56:aa:bb:cc", Reason: "flapping 40 times in 2m", Heap: heap}
	e := entryFor("p1", a, false, ResultFailed)
	e.Error, e.Output, e.ElapsedMS = "boom", "$ vim-cmd vmsvc/power.getstate 12\n", 1500
	if err := j.Append(e); err != nil {
		t.Fatal(err)
	}
	j.Close()
	b, err := os.ReadFile(filepath.Join(dir, JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("journal line is not JSON: %v: %s", err, b)
	}
	want := map[string]any{
		"time": "2026-07-26T01:26:46Z", "plan_id": "p1", "action": "power_off",
		"target": "dsva $(rm -rf /); x", "vmid": "12", "port": "0x3000007", "mac": "00:50:56:aa:bb:cc",
		"reason": "flapping 40 times in 2m", "dry_run": false, "result": "failed", "error": "boom",
		"heap":   map[string]any{"name": "netGPHeap", "percent_free_of_max": 3.2, "max_bytes": 33554432.0},
		"output": "$ vim-cmd vmsvc/power.getstate 12\n", "elapsed_ms": 1500.0,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("entry (-want +got):\n%s", d)
	}
	if !bytes.HasSuffix(b, []byte("}\n")) || bytes.Count(b, []byte("\n")) != 1 {
		t.Errorf("want exactly one line, got %q", b)
	}
}

func TestJournalSyncsEachEntry(t *testing.T) {
	w := &syncCounter{}
	j := NewJournal(w, host.NewManualClock(t0))
	for i := 0; i < 3; i++ {
		if err := j.Append(Entry{Action: policy.ActAlert, Result: ResultOK}); err != nil {
			t.Fatal(err)
		}
	}
	if w.syncs != 3 {
		t.Errorf("Sync called %d times for 3 entries", w.syncs)
	}
	if n := bytes.Count(w.Bytes(), []byte("\n")); n != 3 {
		t.Errorf("%d lines, want 3", n)
	}
}

func TestJournalWriteFailures(t *testing.T) {
	for name, w := range map[string]*syncCounter{
		"write ENOSPC": {writeErr: syscall.ENOSPC},
		"sync EIO":     {syncErr: syscall.EIO},
	} {
		t.Run(name, func(t *testing.T) {
			j := NewJournal(w, host.NewManualClock(t0))
			err := j.Append(Entry{Action: policy.ActAlert})
			if !errors.Is(err, ErrJournal) {
				t.Fatalf("got %v, want ErrJournal", err)
			}
			// Once broken, always broken: a line may be half written.
			w.writeErr, w.syncErr = nil, nil
			if err := j.Append(Entry{Action: policy.ActAlert}); !errors.Is(err, ErrJournal) {
				t.Fatalf("after a failure: got %v, want ErrJournal", err)
			}
		})
	}
}

func TestJournalDevFull(t *testing.T) {
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer f.Close()
	j := NewJournal(f, host.NewManualClock(t0))
	err = j.Append(Entry{Action: policy.ActAlert})
	if !errors.Is(err, ErrJournal) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("got %v, want ErrJournal wrapping ENOSPC", err)
	}
}

func TestOpenJournalFailures(t *testing.T) {
	t.Run("read-only dir", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
		if f, err := os.Create(filepath.Join(dir, "probe")); err == nil {
			f.Close()
			t.Skip("running with privileges that write into read-only directories (root)")
		}
		if _, err := OpenJournal(dir, nil); !errors.Is(err, ErrJournal) {
			t.Fatalf("got %v, want ErrJournal", err)
		}
	})
	t.Run("state dir is a file", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "file")
		os.WriteFile(p, nil, 0o644)
		if _, err := OpenJournal(p, nil); !errors.Is(err, ErrJournal) {
			t.Fatalf("got %v, want ErrJournal", err)
		}
	})
	t.Run("journal is a directory", func(t *testing.T) {
		dir := t.TempDir()
		os.Mkdir(filepath.Join(dir, JournalFile), 0o755)
		if _, err := OpenJournal(dir, nil); !errors.Is(err, ErrJournal) {
			t.Fatalf("got %v, want ErrJournal", err)
		}
	})
}

// A crash mid-line leaves a journal without its final newline.
// RepairJournal moves the torn line to journal.torn (kept, not dropped)
// and cuts it from the journal, so the journal reads whole and the next
// entry starts on its own line; a whole entry that only lacks its newline
// stays.
func TestJournalTornLineRepaired(t *testing.T) {
	whole := `{"time":"2026-07-26T01:00:00Z","action":"alert","result":"ok"}` + "\n"
	torn := `{"time":"2026-07-26T01:00:01Z","act`
	for _, tc := range []struct {
		name, file          string
		wantEntries         int // after one more Append
		wantTorn            string
		wantTornRepairBytes int
	}{
		{"torn", whole + torn, 2, torn + "\n", len(torn)},
		{"torn twice", whole + torn, 2, torn + "\n" + torn + "\n", len(torn)}, // journal.torn already holds one
		{"whole entry without its newline", whole + strings.TrimSuffix(whole, "\n"), 3, "", 0},
		{"only a torn line", torn, 1, torn + "\n", len(torn)},
		{"clean", whole, 2, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, JournalFile)
			os.WriteFile(p, []byte(tc.file), 0o600)
			if tc.name == "torn twice" {
				os.WriteFile(filepath.Join(dir, TornFile), []byte(torn+"\n"), 0o600)
			}
			torn, err := RepairJournal(dir)
			if err != nil {
				t.Fatal(err)
			}
			if torn.Bytes != int64(tc.wantTornRepairBytes) {
				t.Errorf("RepairJournal = %+v, want %d bytes", torn, tc.wantTornRepairBytes)
			}
			j, err := OpenJournal(dir, host.NewManualClock(t0))
			if err != nil {
				t.Fatal(err)
			}
			if err := j.Append(Entry{Action: policy.ActAlert, Target: "netGPHeap", Result: ResultOK}); err != nil {
				t.Fatal(err)
			}
			j.Close()
			f, _ := os.Open(p)
			defer f.Close()
			entries, bad, err := ReadJournal(f)
			if err != nil {
				t.Fatal(err)
			}
			if bad != 0 || len(entries) != tc.wantEntries || entries[len(entries)-1].Target != "netGPHeap" {
				t.Errorf("got %d entries (%+v), %d bad; want %d entries, none bad", len(entries), entries, bad, tc.wantEntries)
			}
			kept, _ := os.ReadFile(filepath.Join(dir, TornFile))
			if string(kept) != tc.wantTorn {
				t.Errorf("journal.torn holds %q, want %q", kept, tc.wantTorn)
			}
			if fi, err := os.Stat(filepath.Join(dir, TornFile)); err == nil && fi.Mode().Perm() != 0o600 {
				t.Errorf("journal.torn mode %v, want 0600", fi.Mode().Perm())
			}
		})
	}
}

// Without the repair (a dry run, which holds no lock and must not cut a
// line another process may be writing), the next entry still starts on a
// line of its own, and the torn line is left where it is.
func TestJournalAfterTornLineUnrepaired(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, JournalFile)
	os.WriteFile(p, []byte(`{"time":"2026-07-26T01:00:00Z","action":"alert","result":"ok"}`+"\n"+`{"time":"2026-07-26T01:00:01Z","act`), 0o600)
	j, err := OpenJournal(dir, host.NewManualClock(t0))
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Append(Entry{Action: policy.ActAlert, Target: "netGPHeap", Result: ResultOK}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	f, _ := os.Open(p)
	defer f.Close()
	entries, bad, err := ReadJournal(f)
	if err != nil {
		t.Fatal(err)
	}
	if bad != 1 || len(entries) != 2 || entries[1].Target != "netGPHeap" {
		t.Errorf("got %d entries (%+v), %d bad; want 2 entries, the torn line counted bad", len(entries), entries, bad)
	}
	if _, err := os.Stat(filepath.Join(dir, TornFile)); !os.IsNotExist(err) {
		t.Errorf("journal.torn made without a repair: %v", err)
	}
}

func TestReadJournalGarbage(t *testing.T) {
	in := "not json\n\n{\"action\":\"alert\",\"result\":\"ok\"}\n{\"action\":\n\x00\xff\n"
	entries, bad, err := ReadJournal(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || bad != 3 {
		t.Errorf("got %d entries, %d bad; want 1, 3", len(entries), bad)
	}
}

func FuzzReadJournal(f *testing.F) {
	f.Add([]byte(`{"time":"2026-07-26T01:26:46Z","action":"power_off","target":"x","result":"started"}` + "\n"))
	f.Add([]byte("garbage\n{"))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, bad, err := ReadJournal(bytes.NewReader(b))
		if err == nil && len(entries)+bad > bytes.Count(b, []byte("\n"))+1 {
			t.Errorf("%d entries + %d bad from %d lines", len(entries), bad, bytes.Count(b, []byte("\n"))+1)
		}
	})
}

// TestJournalObserverSeesOnlySyncedEntries: the observer is a copy of the
// journal, never ahead of it. It sees an entry once written and synced,
// with its time filled in, in order, and nothing of a write that failed.
func TestJournalObserverSeesOnlySyncedEntries(t *testing.T) {
	w := &syncCounter{failAfter: 2, writeErr: errors.New("disk gone")}
	j := NewJournal(w, host.NewManualClock(t0))
	var seen []Entry
	j.SetObserver(func(e Entry) {
		if w.syncs != len(seen)+1 {
			t.Errorf("observer called for entry %d after %d sync(s)", len(seen)+1, w.syncs)
		}
		seen = append(seen, e)
	})
	for _, target := range []string{"a", "b", "c"} {
		j.Append(Entry{Action: policy.ActAlert, Target: target, Result: ResultOK})
	}
	if len(seen) != 2 || seen[0].Target != "a" || seen[1].Target != "b" {
		t.Fatalf("observer saw %+v, want the two written entries a, b", seen)
	}
	if want := t0.UTC().Format(time.RFC3339Nano); seen[0].Time != want {
		t.Errorf("observed time %q, want %q", seen[0].Time, want)
	}
}
