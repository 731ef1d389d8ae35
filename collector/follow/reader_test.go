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

// TestFollowRandomHistory plays the same histories against a live
// follower, restarted from its last position now and then.
func TestFollowRandomHistory(t *testing.T) {
	for seed := range 15 {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			dir := t.TempDir()
			h := &history{t: t, rng: rand.New(rand.NewPCG(uint64(seed), 9)), path: filepath.Join(dir, "vmkernel.log")}
			appendFile(t, h.path, "")
			f := follow(t, h.path, Position{}, true, Options{})
			var got []string
			var pos Position
			for range 80 {
				switch h.rng.IntN(8) {
				case 0, 1:
					f.step()
					h.rotations = 0
				case 2:
					f.step()
					h.rotations = 0
					f.stop()
					got = append(got, f.texts()...)
					if len(f.texts()) > 0 {
						pos = f.last().Pos
					}
					f = follow(t, h.path, pos, true, Options{})
				default:
					if h.rotations >= 8 {
						f.step()
						h.rotations = 0
					}
					h.change()
				}
			}
			h.finishLine()
			f.step()
			f.step()
			got = append(got, f.texts()...)
			if diff := cmp.Diff(h.written, got); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
			if st := f.f.Stats(); st.Gaps != 0 || st.LibraryErrors != 0 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

// TestReadFromChangedDuringRead: the live file changes after ReadFrom
// looked at it and before it read it. Only lines of the content looked at
// are yielded; a rewrite in place (same inode, new first line, our offset
// now inside other lines) makes the read start again.
// Fails if the reader stops checking the file after reading it.
func TestReadFromChangedDuringRead(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, path string)
		first  []string // the read the change falls into
		stats  Stats
		next   []string // the next read, before c1 is appended
	}{
		{"rewritten in place", func(t *testing.T, path string) {
			// O_TRUNC keeps the inode; "bb" lines do not align with the old offset.
			if err := os.WriteFile(path, []byte(lines("bb", 1, 12)), 0o644); err != nil {
				t.Fatal(err)
			}
		}, want(lines("bb", 1, 12)), Stats{Lines: 12, Restarts: 1, Truncations: 1, Gaps: 1}, nil},
		{"copytruncate", func(t *testing.T, path string) {
			copyFile(t, path, path+".1")
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
			appendFile(t, path, lines("b", 1, 3))
		}, want(lines("a", 6, 2), lines("b", 1, 3)), Stats{Lines: 5, Restarts: 1, Truncations: 1}, nil},
		{"truncated", func(t *testing.T, path string) {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}, []string{}, Stats{Restarts: 1, Truncations: 1, Gaps: 1}, nil},
		{"appended", func(t *testing.T, path string) {
			appendFile(t, path, lines("a", 8, 2))
		}, want(lines("a", 6, 2)), Stats{Lines: 2}, want(lines("a", 8, 2))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "vmkernel.log")
			pos := atEnd(t, path, lines("a", 1, 5))
			appendFile(t, path, lines("a", 6, 2))
			calls := 0
			testHookLiveRead = func() {
				if calls++; calls == 1 {
					tt.change(t, path)
				}
			}
			t.Cleanup(func() { testHookLiveRead = nil })
			r := ReadFrom(path, pos, Options{Clock: host.NewManualClock(time.Now())})
			got := []string{}
			for l := range r.Lines() {
				got = append(got, string(l.Text))
			}
			if err := r.Err(); err != nil {
				t.Fatal(err)
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
