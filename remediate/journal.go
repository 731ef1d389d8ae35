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
	"strings"
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
	// needNL is set when the file did not end with a newline (a crash
	// cut its last line short and no RepairJournal ran), so the next
	// entry starts on its own line.
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
	} else if start, size, err := lastLine(p); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: read %s: %w", ErrJournal, p, err)
	} else {
		j.needNL = start != size
	}
	return j, nil
}

// RepairJournal ends the journal in stateDir on a whole line (see
// repairTornLine). It truncates the file, so only the holder of the state
// folder's lock may call it, before opening the journal: a reader or a
// dry run must not cut an entry another process is writing.
func RepairJournal(stateDir string) (TornLine, error) {
	p := filepath.Join(stateDir, JournalFile)
	t, err := repairTornLine(stateDir, p)
	if errors.Is(err, os.ErrNotExist) {
		return TornLine{}, nil
	}
	if err != nil {
		return TornLine{}, fmt.Errorf("%w: %w", ErrJournal, err)
	}
	return t, nil
}

// lastLine gives the offset just after the journal's last newline and
// its size.
func lastLine(p string) (start, size int64, err error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	start, err = lastLineStart(f, st.Size())
	return start, st.Size(), err
}

// TornFile, beside the journal, keeps the last lines crashes cut short.
const TornFile = "journal.torn"

// TornLine is a journal's last line that a crash cut short.
type TornLine struct {
	Bytes int64  // its length; 0: none
	Path  string // where it was kept (TornFile)
}

// repairTornLine ends the journal at p on a whole line. A last line
// without its newline is either a whole entry whose newline did not land
// (given its newline) or a write a crash cut short: that one is appended
// to TornFile, synced, and only then cut from the journal, so a later
// entry never lands on its line and the bytes are kept for whoever
// investigates the crash.
func repairTornLine(stateDir, p string) (TornLine, error) {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return TornLine{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return TornLine{}, fmt.Errorf("stat %s: %w", p, err)
	}
	start, err := lastLineStart(f, st.Size())
	if err != nil {
		return TornLine{}, fmt.Errorf("read %s: %w", p, err)
	}
	n := st.Size() - start
	if n == 0 {
		return TornLine{}, nil
	}
	if n <= maxEntryLine {
		last := make([]byte, n)
		if _, err := f.ReadAt(last, start); err != nil {
			return TornLine{}, fmt.Errorf("read %s: %w", p, err)
		}
		if json.Valid(last) {
			if _, err := f.WriteAt([]byte{'\n'}, st.Size()); err != nil {
				return TornLine{}, fmt.Errorf("end the last line of %s: %w", p, err)
			}
			return TornLine{}, f.Sync()
		}
	}
	tp := filepath.Join(stateDir, TornFile)
	if err := appendSynced(tp, io.MultiReader(io.NewSectionReader(f, start, n), strings.NewReader("\n"))); err != nil {
		return TornLine{}, fmt.Errorf("keep the torn last line of %s in %s: %w", p, tp, err)
	}
	if err := f.Truncate(start); err != nil {
		return TornLine{}, fmt.Errorf("cut the torn last line of %s (kept in %s): %w", p, tp, err)
	}
	if err := f.Sync(); err != nil {
		return TornLine{}, fmt.Errorf("sync %s: %w", p, err)
	}
	return TornLine{Bytes: n, Path: tp}, nil
}

// maxEntryLine bounds a last line read whole to tell a complete entry: a
// real entry is a few KiB; a longer tail is not one.
const maxEntryLine = 1 << 20

// lastLineStart is the offset just after the file's last newline (size
// when it ends with one, 0 when it has none).
func lastLineStart(f *os.File, size int64) (int64, error) {
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	for end := size; end > 0; {
		n := min(int64(chunk), end)
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return end - n + int64(i) + 1, nil
		}
		end -= n
	}
	return 0, nil
}

// appendSynced appends r's bytes to the file at p (0600, created if
// needed) and syncs it, and its folder when it is new.
func appendSynced(p string, r io.Reader) error {
	_, statErr := os.Stat(p)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if errors.Is(statErr, os.ErrNotExist) {
		return host.SyncDir(filepath.Dir(p))
	}
	return nil
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
