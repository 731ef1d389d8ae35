package follow

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/heapguard/heapguard/host"
)

// readAll reads everything new since pos.
func readAll(t *testing.T, path string, pos Position) ([]string, *Reader) {
	t.Helper()
	r := ReadFrom(path, pos, Options{})
	got := []string{}
	for l := range r.Lines() {
		got = append(got, string(l.Text))
	}
	if err := r.Err(); err != nil {
		t.Errorf("ReadFrom: %v", err)
	}
	return got, r
}

func TestReadFrom(t *testing.T) {
	// Each setup writes a history into dir and returns the log's path, the
	// saved position, and the lines a read from it must give.
	tests := []struct {
		name      string
		setup     func(t *testing.T, dir string) (path string, pos Position, want []string)
		wantStats Stats
	}{
		{"fresh", func(t *testing.T, dir string) (string, Position, []string) {
			path := filepath.Join(dir, "vmkernel.log")
			appendFile(t, path, lines("a", 1, 3))
			return path, Position{}, want(lines("a", 1, 3))
		}, Stats{Lines: 3}},
		{"continue", func(t *testing.T, dir string) (string, Position, []string) {
			path := filepath.Join(dir, "vmkernel.log")
			pos := atEnd(t, path, lines("a", 1, 3))
			appendFile(t, path, lines("a", 4, 1))
			return path, pos, want(lines("a", 4, 1))
		}, Stats{Lines: 1}},
		{"nothing new", func(t *testing.T, dir string) (string, Position, []string) {
			path := filepath.Join(dir, "vmkernel.log")
			return path, atEnd(t, path, lines("a", 1, 3)), []string{}
		}, Stats{}},
		{"rotated to vmkernel.0.gz", func(t *testing.T, dir string) (string, Position, []string) {
			path := filepath.Join(dir, "vmkernel.log")
			pos := atEnd(t, path, lines("a", 1, 3))
			appendFile(t, path, lines("a", 4, 2))
			rotateESXi(t, path, lines("b", 1, 2))
			return path, pos, want(lines("a", 4, 2), lines("b", 1, 2))
		}, Stats{Lines: 4, Rotations: 1}},
		{"rotated three times", func(t *testing.T, dir string) (string, Position, []string) {
			path := filepath.Join(dir, "vmkernel.log")
			pos := atEnd(t, path, lines("a", 1, 3))
			appendFile(t, path, lines("a", 4, 1))
			rotateESXi(t, path, lines("b", 1, 2))
			rotateESXi(t, path, lines("c", 1, 2))
			rotateESXi(t, path, lines("d", 1, 1))
			return path, pos, want(lines("a", 4, 1), lines("b", 1, 2), lines("c", 1, 2), lines("d", 1, 1))
		}, Stats{Lines: 6, Rotations: 1}},
		{"rotated, vmkernel.0 not compressed yet", func(t *testing.T, dir string) (string, Position, []string) {
			path := filepath.Join(dir, "vmkernel.log")
			pos := atEnd(t, path, lines("a", 1, 3))
			appendFile(t, path, lines("a", 4, 1))
			if err := os.Rename(path, filepath.Join(dir, "vmkernel.0")); err != nil {
				t.Fatal(err)
			}
			// A half-written .gz next to it must be ignored.
			if err := os.WriteFile(filepath.Join(dir, "vmkernel.0.gz"), []byte{0x1f, 0x8b}, 0o644); err != nil {
				t.Fatal(err)
			}
			appendFile(t, path, lines("b", 1, 1))
			return path, pos, want(lines("a", 4, 1), lines("b", 1, 1))
		}, Stats{Lines: 2, Rotations: 1}},
		{"rotated, new log not created yet", func(t *testing.T, dir string) (string, Position, []string) {
			path := filepath.Join(dir, "vmkernel.log")
			pos := atEnd(t, path, lines("a", 1, 3))
			appendFile(t, path, lines("a", 4, 1))
			rotateESXi(t, path, "")
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			return path, pos, want(lines("a", 4, 1))
		}, Stats{Lines: 1, Rotations: 1}},
		{"4.x messages.0.gz", func(t *testing.T, dir string) (string, Position, []string) {
			path := filepath.Join(dir, "messages")
			sample, err := os.ReadFile("testdata/vmkernel-4x-messages.log")
			if err != nil {
				t.Fatal(err)
			}
			all := want(string(sample))
			first := strings.Join(all[:5], "\n") + "\n"
			pos := atEnd(t, path, first)
			appendFile(t, path, strings.TrimPrefix(string(sample), first))
			if err := os.Rename(path, path+".0"); err != nil {
				t.Fatal(err)
			}
			appendFile(t, path, lines("b", 1, 1))
			gzipTo(t, path+".0", path+".0.gz")
			return path, pos, append(all[5:], want(lines("b", 1, 1))...)
		}, Stats{Lines: 16, Rotations: 1}},
		{"logrotate vmkernel.log.1", func(t *testing.T, dir string) (string, Position, []string) {
			path := filepath.Join(dir, "vmkernel.log")
			pos := atEnd(t, path, lines("a", 1, 3))
			appendFile(t, path, lines("a", 4, 1))
			if err := os.Rename(path, path+".1"); err != nil {
				t.Fatal(err)
			}
			appendFile(t, path, lines("b", 1, 1))
			return path, pos, want(lines("a", 4, 1), lines("b", 1, 1))
		}, Stats{Lines: 2, Rotations: 1}},
		{"copytruncate", func(t *testing.T, dir string) (string, Position, []string) {
			path := filepath.Join(dir, "vmkernel.log")
			pos := atEnd(t, path, lines("a", 1, 3))
			appendFile(t, path, lines("a", 4, 1))
			copyFile(t, path, filepath.Join(dir, "vmkernel.0"))
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
			gzipTo(t, filepath.Join(dir, "vmkernel.0"), filepath.Join(dir, "vmkernel.0.gz"))
			appendFile(t, path, lines("b", 1, 8))
			return path, pos, want(lines("a", 4, 1), lines("b", 1, 8))
		}, Stats{Lines: 9, Truncations: 1}},
		{"truncated, no copy", func(t *testing.T, dir string) (string, Position, []string) {
			path := filepath.Join(dir, "vmkernel.log")
			pos := atEnd(t, path, lines("a", 1, 3))
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
			appendFile(t, path, lines("b", 1, 2))
			return path, pos, want(lines("b", 1, 2))
		}, Stats{Lines: 2, Truncations: 1, Gaps: 1}},
		{"partial last line", func(t *testing.T, dir string) (string, Position, []string) {
			path := filepath.Join(dir, "vmkernel.log")
			appendFile(t, path, "a1\nhal")
			return path, Position{}, []string{"a1"}
		}, Stats{Lines: 1}},
		{"5 MB line", func(t *testing.T, dir string) (string, Position, []string) {
			path := filepath.Join(dir, "vmkernel.log")
			appendFile(t, path, "a1\n"+strings.Repeat("x", 5<<20)+"\na2\n"+strings.Repeat("y", 2<<20)+"\n")
			return path, Position{}, []string{"a1", "a2"}
		}, Stats{Lines: 2, Oversized: 2}},
		{"no log at all", func(t *testing.T, dir string) (string, Position, []string) {
			return filepath.Join(dir, "vmkernel.log"), Position{}, []string{}
		}, Stats{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, pos, wantLines := tt.setup(t, t.TempDir())
			got, r := readAll(t, path, pos)
			if diff := cmp.Diff(wantLines, got); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantStats, r.Stats()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
			// Reading again from the new position gives nothing.
			again, _ := readAll(t, path, r.Pos())
			if len(again) != 0 {
				t.Errorf("second read from %+v gave %q, want nothing", r.Pos(), again)
			}
		})
	}
}

// atEnd writes content to path and returns the position at its end.
func atEnd(t *testing.T, path, content string) Position {
	t.Helper()
	appendFile(t, path, content)
	pos, err := PositionAtEnd(path)
	if err != nil {
		t.Fatal(err)
	}
	return pos
}

// history plays a random life of a log: appends (with lines split across
// writes), ESXi rotations, copytruncate rotations, and a reader that comes
// by now and then. Every line must be read exactly once, in order.
type history struct {
	t       *testing.T
	rng     *rand.Rand
	path    string
	n       int
	written []string
	partial string // the rest of a line written in part
	// rotations since the last read: ESXi keeps 10 copies (.0 to .9), a
	// reader that comes later than that loses lines by design.
	rotations int
}

func (h *history) appendLines() {
	var b strings.Builder
	if h.partial != "" {
		b.WriteString(h.partial)
		h.partial = ""
	}
	for range h.rng.IntN(6) {
		h.n++
		s := fmt.Sprintf("2026-04-10T08:27:13.470Z cpu2:2097999)line %d", h.n)
		h.written = append(h.written, s)
		b.WriteString(s + "\n")
	}
	if h.rng.IntN(3) == 0 {
		h.n++
		s := fmt.Sprintf("2026-04-10T08:27:13.470Z cpu2:2097999)split line %d", h.n)
		h.written = append(h.written, s)
		cut := h.rng.IntN(len(s))
		b.WriteString(s[:cut])
		h.partial = s[cut:] + "\n"
	}
	appendFile(h.t, h.path, b.String())
}

// finishLine completes a split line: rotators rotate between whole lines.
func (h *history) finishLine() {
	if h.partial != "" {
		appendFile(h.t, h.path, h.partial)
		h.partial = ""
	}
}

func (h *history) change() {
	switch h.rng.IntN(10) {
	case 0, 1:
		h.finishLine()
		h.rotations++
		rotateESXi(h.t, h.path, "")
	case 2:
		h.finishLine()
		h.rotations++
		dir := filepath.Dir(h.path)
		zero := filepath.Join(dir, "vmkernel.0")
		for n := 8; n >= 0; n-- {
			old := filepath.Join(dir, fmt.Sprintf("vmkernel.%d.gz", n))
			if _, err := os.Stat(old); err == nil {
				os.Rename(old, filepath.Join(dir, fmt.Sprintf("vmkernel.%d.gz", n+1)))
			}
		}
		copyFile(h.t, h.path, zero)
		if err := os.Truncate(h.path, 0); err != nil {
			h.t.Fatal(err)
		}
		gzipTo(h.t, zero, zero+".gz")
	default:
		h.appendLines()
	}
}

func TestReadFromRandomHistory(t *testing.T) {
	for seed := range 30 {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			dir := t.TempDir()
			h := &history{t: t, rng: rand.New(rand.NewPCG(uint64(seed), 7)), path: filepath.Join(dir, "vmkernel.log")}
			// The first position names the (empty) log, as the agent's
			// first run saves it.
			pos := atEnd(t, h.path, "")
			var got []string
			for range 80 {
				if h.rng.IntN(4) == 0 || h.rotations >= 8 {
					r := ReadFrom(h.path, pos, Options{})
					stopAfter := h.rng.IntN(8) // sometimes the reader stops early
					k, stopped := 0, false
					for l := range r.Lines() {
						got = append(got, string(l.Text))
						k++
						if h.rng.IntN(4) == 0 && k > stopAfter {
							stopped = true
							break
						}
					}
					if err := r.Err(); err != nil {
						t.Fatal(err)
					}
					pos = r.Pos()
					if st := r.Stats(); st.Gaps != 0 {
						t.Errorf("gap after %d lines: %+v", len(got), st)
					}
					if !stopped {
						h.rotations = 0 // else pos may still be deep in the copies
					}
					continue
				}
				h.change()
			}
			h.finishLine()
			rest, _ := readAll(t, h.path, pos)
			got = append(got, rest...)
			if diff := cmp.Diff(h.written, got); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReadFromChangedDuringRead: the live file changes after ReadFrom
// looked at it and before it read it. Only lines of the content looked at
// are yielded; a rewrite in place (same inode, new first line, our offset
// now inside other lines) makes the read start again, a bounded number of
// times. Fails if the reader stops checking the file after reading it.
func TestReadFromChangedDuringRead(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, path string, call int) // call counts the reads of the live file
		first  []string                                  // the read the change falls into
		err    string                                    // part of its error; "" for none
		stats  Stats
		next   []string // the next read, before c1 is appended
	}{
		{"rewritten in place", func(t *testing.T, path string, call int) {
			if call > 1 {
				return
			}
			// O_TRUNC keeps the inode; "bb" lines do not align with the old offset.
			if err := os.WriteFile(path, []byte(lines("bb", 1, 12)), 0o644); err != nil {
				t.Fatal(err)
			}
		}, want(lines("bb", 1, 12)), "", Stats{Lines: 12, Restarts: 1, Truncations: 1, Gaps: 1}, nil},
		{"rewritten under every read", func(t *testing.T, path string, call int) {
			if err := os.WriteFile(path, []byte(lines(fmt.Sprintf("r%d-", call), 1, 12)), 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{}, "kept changing", Stats{Restarts: rotationTries - 1, Truncations: 1, Gaps: 1, ReadErrors: 1},
			want(lines(fmt.Sprintf("r%d-", rotationTries), 1, 12))},
		{"copytruncate", func(t *testing.T, path string, call int) {
			if call > 1 {
				return
			}
			copyFile(t, path, path+".1")
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
			appendFile(t, path, lines("b", 1, 3))
		}, want(lines("a", 6, 2), lines("b", 1, 3)), "", Stats{Lines: 5, Restarts: 1, Truncations: 1}, nil},
		{"truncated", func(t *testing.T, path string, call int) {
			if call > 1 {
				return
			}
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}, []string{}, "", Stats{Restarts: 1, Truncations: 1, Gaps: 1}, nil},
		{"appended", func(t *testing.T, path string, call int) {
			if call == 1 {
				appendFile(t, path, lines("a", 8, 2))
			}
		}, want(lines("a", 6, 2)), "", Stats{Lines: 2}, want(lines("a", 8, 2))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "vmkernel.log")
			pos := atEnd(t, path, lines("a", 1, 5))
			appendFile(t, path, lines("a", 6, 2))
			calls := 0
			testHookLiveRead = func() {
				calls++
				tt.change(t, path, calls)
			}
			t.Cleanup(func() { testHookLiveRead = nil })
			r := ReadFrom(path, pos, Options{Clock: host.NewManualClock(time.Now())})
			got := []string{}
			for l := range r.Lines() {
				got = append(got, string(l.Text))
			}
			if err := r.Err(); (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("err = %v, want %q", err, tt.err)
			}
			if fi, err := os.Stat(path); err != nil || inodeOf(fi) != pos.Inode {
				t.Fatalf("the change replaced the file (%v); the test needs the inode kept", err)
			}
			if diff := cmp.Diff(tt.first, got); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.stats, r.Stats()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
			// The next read goes on after the last line yielded.
			testHookLiveRead = nil
			appendFile(t, path, lines("c", 1, 1))
			rest, r2 := readAll(t, path, r.Pos())
			if diff := cmp.Diff(append(tt.next, want(lines("c", 1, 1))...), rest); diff != "" {
				t.Errorf("next read (-want +got):\n%s", diff)
			}
			if st := r2.Stats(); st.Gaps != 0 || st.Restarts != 0 {
				t.Errorf("next read stats %+v: want no gap, no restart", st)
			}
		})
	}
}

// round is one poll of the daemon: the writer changes the files, then one
// ReadFrom from the position the previous one left.
type round struct {
	write func(t *testing.T, path string)
	want  []string // the lines this read yields
	err   string   // part of the read's error; "" for none
}

// TestReadFromSuccessive plays the log's life as the daemon reads it: each
// read starts from the position the previous one returned, saved and
// loaded as the daemon keeps it. Every complete line comes once, in order,
// in the first read after it was written; a line that is gone before any
// read could see it is reported as a gap. After each read the position is
// where PositionAtEnd puts the file's end.
func TestReadFromSuccessive(t *testing.T) {
	rotate := func(first string) func(t *testing.T, path string) {
		return func(t *testing.T, path string) { rotateESXi(t, path, first) }
	}
	add := func(s string) func(t *testing.T, path string) {
		return func(t *testing.T, path string) { appendFile(t, path, s) }
	}
	do := func(ops ...func(t *testing.T, path string)) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			for _, op := range ops {
				op(t, path)
			}
		}
	}
	rename := func(to string) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			if err := os.Rename(path, filepath.Join(filepath.Dir(path), to)); err != nil {
				t.Fatal(err)
			}
		}
	}
	truncate := func(t *testing.T, path string) {
		if err := os.Truncate(path, 0); err != nil {
			t.Fatal(err)
		}
	}
	sample, err := os.ReadFile("testdata/vmkernel-5x.log")
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 1<<20)
	tests := []struct {
		name   string
		rounds []round
		stats  Stats // summed over the reads
	}{
		{"append", []round{
			{write: add(string(sample)), want: want(string(sample))},
			{write: add(lines("a", 1, 3)), want: want(lines("a", 1, 3))},
			{write: add(""), want: []string{}},
		}, Stats{Lines: uint64(len(want(string(sample))) + 3)}},
		{"ESXi rotation to vmkernel.0.gz", []round{
			{write: add(lines("a", 1, 3)), want: want(lines("a", 1, 3))},
			{write: do(add(lines("a", 4, 2)), rotate(lines("b", 1, 2))), want: want(lines("a", 4, 2), lines("b", 1, 2))},
			{write: add(lines("b", 3, 1)), want: want(lines("b", 3, 1))},
		}, Stats{Lines: 8, Rotations: 1}},
		{"renamed to vmkernel.log.1, new file", []round{
			{write: add(lines("a", 1, 3)), want: want(lines("a", 1, 3))},
			{write: do(add(lines("a", 4, 1)), rename("vmkernel.log.1"), add(lines("b", 1, 1))), want: want(lines("a", 4, 1), lines("b", 1, 1))},
			{write: add(lines("b", 2, 1)), want: want(lines("b", 2, 1))},
		}, Stats{Lines: 6, Rotations: 1}},
		{"quick rotations between two reads", []round{
			{write: add(lines("a", 1, 3)), want: want(lines("a", 1, 3))},
			{write: do(
				add(lines("a", 4, 2)), rotate(lines("b", 1, 2)),
				add(lines("b", 3, 2)), rotate(lines("c", 1, 2)),
				add(lines("c", 3, 2)), rotate(lines("d", 1, 2)),
			), want: want(lines("a", 4, 2), lines("b", 1, 4), lines("c", 1, 4), lines("d", 1, 2))},
			{write: add(lines("d", 3, 1)), want: want(lines("d", 3, 1))},
		}, Stats{Lines: 16, Rotations: 1}},
		{"copytruncate to vmkernel.log.1", []round{
			{write: add(lines("a", 1, 5)), want: want(lines("a", 1, 5))},
			// Lines land just before the copy: they are only in the copy.
			{write: do(add(lines("a", 6, 2)), func(t *testing.T, path string) { copyFile(t, path, path+".1") },
				truncate, add(lines("b", 1, 3))), want: want(lines("a", 6, 2), lines("b", 1, 3))},
			{write: add(lines("b", 4, 1)), want: want(lines("b", 4, 1))},
		}, Stats{Lines: 11, Truncations: 1}},
		{"truncated and regrown past the old offset", []round{
			{write: add(lines("a", 1, 5)), want: want(lines("a", 1, 5))},
			// Whether lines were written after the read and before the
			// truncation cannot be known without a copy: reported as a gap.
			{write: do(truncate, add(lines("b", 1, 12))), want: want(lines("b", 1, 12))},
			{write: add(lines("b", 13, 1)), want: want(lines("b", 13, 1))},
		}, Stats{Lines: 18, Truncations: 1, Gaps: 1}},
		{"deleted, then created again", []round{
			{write: add(lines("a", 1, 2)), want: want(lines("a", 1, 2))},
			// a3 is gone with the file before any read: a gap, once.
			{write: do(add(lines("a", 3, 1)), func(t *testing.T, path string) {
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
			}), want: []string{}},
			{write: func(*testing.T, string) {}, want: []string{}},
			{write: add(lines("b", 1, 2)), want: want(lines("b", 1, 2))},
		}, Stats{Lines: 4, Rotations: 1, Gaps: 1}},
		{"log missing at first", []round{
			{write: func(*testing.T, string) {}, want: []string{}},
			{write: add(lines("a", 1, 3)), want: want(lines("a", 1, 3))},
		}, Stats{Lines: 3}},
		{"partial last line", []round{
			{write: add("a1\nhalf"), want: []string{"a1"}},
			{write: add("-done\na2\n"), want: []string{"half-done", "a2"}},
		}, Stats{Lines: 3}},
		{"lines over MaxLine, one written over several reads", []round{
			{write: add("a1\n"), want: []string{"a1"}},
			{write: add(big), want: []string{}},
			{write: add(big), want: []string{}},
			{write: add(big), want: []string{}},
			{write: add(big), want: []string{}},
			{write: add(big), want: []string{}},
			{write: add("\na2\n"), want: []string{"a2"}},
			{write: add(strings.Repeat("y", 5<<20) + "\na3\n"), want: []string{"a3"}},
		}, Stats{Lines: 3, Oversized: 2}},
		{"folder replaced by a file", []round{
			{write: add(lines("a", 1, 2)), want: want(lines("a", 1, 2))},
			// ENOTDIR (as EIO or ESTALE on a sick datastore): reported,
			// and the next read goes on from the same position.
			{write: func(t *testing.T, path string) {
				dir := filepath.Dir(path)
				if err := os.Rename(dir, dir+".away"); err != nil {
					t.Fatal(err)
				}
				appendFile(t, dir, "not a folder\n")
			}, want: []string{}, err: "not a directory"},
			{write: func(t *testing.T, path string) {
				dir := filepath.Dir(path)
				if err := os.Remove(dir); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(dir+".away", dir); err != nil {
					t.Fatal(err)
				}
				appendFile(t, path, lines("a", 3, 1))
			}, want: want(lines("a", 3, 1))},
		}, Stats{Lines: 3, ReadErrors: 1}},
		{"unreadable rotated copy", []round{
			// An empty .gz is skipped; it does not look like a rotation
			// in progress (no restart).
			{write: func(t *testing.T, path string) {
				if err := os.WriteFile(filepath.Join(filepath.Dir(path), "vmkernel.7.gz"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
				appendFile(t, path, lines("a", 1, 2))
			}, want: want(lines("a", 1, 2))},
			{write: do(add(lines("a", 3, 1)), rotate(lines("b", 1, 2))), want: want(lines("a", 3, 1), lines("b", 1, 2))},
			{write: add(lines("b", 3, 1)), want: want(lines("b", 3, 1))},
			{write: do(add(lines("b", 4, 1)), rotate(lines("c", 1, 1))), want: want(lines("b", 4, 1), lines("c", 1, 1))},
		}, Stats{Lines: 8, Rotations: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "log", "vmkernel.log")
			if err := os.Mkdir(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			state := filepath.Join(dir, "position.json")
			var pos Position
			var sum Stats
			for i, rd := range tt.rounds {
				rd.write(t, path)
				r := ReadFrom(path, pos, Options{Clock: host.NewManualClock(time.Now())})
				got := []string{}
				for l := range r.Lines() {
					got = append(got, string(l.Text))
				}
				if diff := cmp.Diff(rd.want, got); diff != "" {
					t.Errorf("read %d: lines (-want +got):\n%s", i+1, diff)
				}
				err := r.Err()
				if (err == nil) != (rd.err == "") || (err != nil && !strings.Contains(err.Error(), rd.err)) {
					t.Errorf("read %d: err = %v, want %q", i+1, err, rd.err)
				}
				sum.add(r.Stats())
				if err := SavePosition(state, r.Pos()); err != nil {
					t.Fatal(err)
				}
				if pos, err = LoadPosition(state); err != nil {
					t.Fatal(err)
				}
				if end, err := PositionAtEnd(path); err == nil {
					got := pos
					got.Time, end.Time = time.Time{}, time.Time{}
					if diff := cmp.Diff(end, got); diff != "" {
						t.Errorf("read %d: position is not the end of the file (-end +got):\n%s", i+1, diff)
					}
				}
			}
			if diff := cmp.Diff(tt.stats, sum); diff != "" {
				t.Errorf("stats over the reads (-want +got):\n%s", diff)
			}
		})
	}
}

func (s *Stats) add(o Stats) {
	s.Lines += o.Lines
	s.Restarts += o.Restarts
	s.Truncations += o.Truncations
	s.Rotations += o.Rotations
	s.Oversized += o.Oversized
	s.ReadErrors += o.ReadErrors
	s.Gaps += o.Gaps
}
