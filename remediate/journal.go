package remediate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
)

// JournalFile is the journal's name inside the state directory.
const JournalFile = "journal.jsonl"

// ActDecide is the journal's action name for a decision: the plan as a
// whole, written before any of its steps.
const ActDecide policy.ActionKind = "decide"

// ActStop is the journal's action name for the daemon stopping, with why.
const ActStop policy.ActionKind = "stop"

// ErrJournal is wrapped by every error that comes from not being able to
// write the journal. heapguard must not act when it cannot explain itself.
var ErrJournal = errors.New("journal cannot be written, taking no action")

// Entry is one line of the journal. Time is host time, RFC 3339 in UTC.
type Entry struct {
	Time      string              `json:"time"`
	PlanID    string              `json:"plan_id,omitempty"`
	Action    policy.ActionKind   `json:"action"`
	Target    string              `json:"target"`
	VMID      string              `json:"vmid,omitempty"`
	Port      string              `json:"port,omitempty"`
	MAC       string              `json:"mac,omitempty"`
	Reason    string              `json:"reason"`
	DryRun    bool                `json:"dry_run"`
	Result    string              `json:"result"`
	Error     string              `json:"error"`
	Heap      *policy.HeapFigures `json:"heap"`
	Output    string              `json:"output,omitempty"`
	ElapsedMS int64               `json:"elapsed_ms"`
	// Mutated: the step ran a command that changes the host (final
	// entries of power-offs and restarts).
	Mutated bool `json:"mutated,omitempty"`
	// Summary and Plan are set on decision entries only.
	Summary string          `json:"summary,omitempty"`
	Plan    []policy.Action `json:"plan,omitempty"`
}

// entryFor fills an entry from an action.
func entryFor(planID string, a policy.Action, dryRun bool, result string) Entry {
	return Entry{
		PlanID: planID, Action: a.Kind, Target: a.Target, VMID: a.VMID,
		Port: a.Port, MAC: a.MAC, Reason: a.Reason, DryRun: dryRun,
		Result: result, Heap: a.Heap,
	}
}

// Journal appends entries, one JSON object per line, and syncs each one to
// disk before returning. After one failed write it refuses every later
// one: a line may be half written, and acting on would leave steps unexplained.
type Journal struct {
	mu     sync.Mutex
	w      io.Writer
	f      *os.File // nil when writing to a plain io.Writer
	clock  host.Clock
	broken error
	// needNL is set when the file did not end with a newline (a previous
	// run crashed mid-line), so the next entry starts on its own line.
	needNL bool
	// observe, when set, sees each entry once it is on disk.
	observe func(Entry)
}

// SetObserver has fn called with every entry Append has written and
// synced, in journal order, before Append returns; never for an entry that
// failed. fn runs under the journal's lock, so it must not block or call
// the journal: a copy elsewhere (syslog) queues the entry and returns.
// nil removes the observer.
func (j *Journal) SetObserver(fn func(Entry)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.observe = fn
}

// OpenJournal opens (creating it if needed) <stateDir>/journal.jsonl for
// appending. Errors wrap ErrJournal.
func OpenJournal(stateDir string, clock host.Clock) (*Journal, error) {
	if clock == nil {
		clock = host.SystemClock{}
	}
	p := filepath.Join(stateDir, JournalFile)
	_, statErr := os.Stat(p)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %w", ErrJournal, p, err)
	}
	if statErr == nil {
		if err := keepPrivate(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("%w: %s: %w", ErrJournal, p, err)
		}
	}
	j := &Journal{w: f, f: f, clock: clock}
	if errors.Is(statErr, os.ErrNotExist) {
		// A new file's directory entry must survive a crash too.
		if err := host.SyncDir(stateDir); err != nil {
			f.Close()
			return nil, fmt.Errorf("%w: sync %s: %w", ErrJournal, stateDir, err)
		}
	} else if nl, err := endsWithNewline(p); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: read %s: %w", ErrJournal, p, err)
	} else {
		j.needNL = !nl
	}
	return j, nil
}

// NewJournal writes to w; when w has a Sync method (an *os.File) it is
// called after every entry.
func NewJournal(w io.Writer, clock host.Clock) *Journal {
	if clock == nil {
		clock = host.SystemClock{}
	}
	j := &Journal{w: w, clock: clock}
	if f, ok := w.(*os.File); ok {
		j.f = f
	}
	return j
}

// keepPrivate sets an existing journal that others may read to 0600 (an
// older heapguard made it 0644); a new one is created 0600. One that others can
// write is left for CheckStateDir to refuse, so it is not quietly hidden.
func keepPrivate(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && perm&0o022 == 0 {
		return f.Chmod(0o600)
	}
	return nil
}

func endsWithNewline(p string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	if st.Size() == 0 {
		return true, nil
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, st.Size()-1); err != nil {
		return false, err
	}
	return b[0] == '\n', nil
}

// Append writes one entry, setting its time from the host clock when
// empty, and syncs it. Errors wrap ErrJournal.
func (j *Journal) Append(e Entry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.broken != nil {
		return fmt.Errorf("%w: an earlier write failed: %w", ErrJournal, j.broken)
	}
	if e.Time == "" {
		e.Time = j.clock.Now().UTC().Format(time.RFC3339Nano)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("%w: encode entry: %w", ErrJournal, err)
	}
	if j.needNL {
		b = append([]byte{'\n'}, b...)
	}
	b = append(b, '\n')
	// One Write call per entry: with O_APPEND the line lands whole or the
	// write reports an error.
	if _, err := j.w.Write(b); err != nil {
		j.broken = err
		return fmt.Errorf("%w: write: %w", ErrJournal, err)
	}
	if s, ok := j.w.(interface{ Sync() error }); ok {
		if err := s.Sync(); err != nil {
			j.broken = err
			return fmt.Errorf("%w: sync: %w", ErrJournal, err)
		}
	}
	j.needNL = false
	if j.observe != nil {
		j.observe(e)
	}
	return nil
}

// Decide writes the decision entry that opens a plan: its summary and
// every step it holds, before any of them runs.
func (j *Journal) Decide(planID, summary string, actions []policy.Action, dryRun bool) error {
	e := Entry{
		PlanID: planID, Action: ActDecide, Target: "plan", DryRun: dryRun,
		Result: ResultOK, Summary: summary, Plan: actions,
		Reason: fmt.Sprintf("%d step(s) planned", len(actions)),
	}
	if summary != "" {
		e.Reason = summary
	}
	for _, a := range actions {
		if a.Heap != nil {
			e.Heap = a.Heap
			break
		}
	}
	return j.Append(e)
}

// Close closes the underlying file, if the journal opened one.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	return j.f.Close()
}

// ReadJournal parses a journal. Lines that are not valid JSON (a crash
// mid-write) are skipped and counted.
func ReadJournal(r io.Reader) (entries []Entry, bad int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var e Entry
		if json.Unmarshal(line, &e) != nil {
			bad++
			continue
		}
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		return entries, bad, fmt.Errorf("read journal: %w", err)
	}
	return entries, bad, nil
}
