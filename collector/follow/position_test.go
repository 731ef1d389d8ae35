package follow

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSaveLoadPosition(t *testing.T) {
	path := filepath.Join(t.TempDir(), "position.json")
	if _, err := LoadPosition(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}
	want := Position{Path: "/var/log/vmkernel.log", Inode: 42, Offset: 1234, FirstLineHash: "abc",
		Time: time.Date(2026, 4, 10, 8, 27, 13, 0, time.UTC)}
	if err := SavePosition(path, want); err != nil {
		t.Fatal(err)
	}
	if err := SavePosition(path, want); err != nil { // over an existing one
		t.Fatal(err)
	}
	got, err := LoadPosition(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("folder holds %d files, want only the position (no temporary left)", len(ents))
	}
	for _, bad := range []string{"{", `{"offset":-1}`, "null x"} {
		if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadPosition(path); !errors.Is(err, ErrBadPosition) {
			t.Errorf("LoadPosition(%q): err = %v, want ErrBadPosition", bad, err)
		}
	}
	if err := SavePosition(filepath.Join(t.TempDir(), "no", "such", "dir"), want); err == nil {
		t.Error("SavePosition into a missing folder: no error")
	}
}

func TestHeadHash(t *testing.T) {
	long := strings.Repeat("x", HeadSize+10)
	tests := []struct {
		name    string
		in      string
		settled bool
		sameAs  string
	}{
		{"empty", "", false, ""},
		{"partial first line", "2026-04-10T08:27", false, ""},
		{"complete first line", "a1\nrest", true, "a1\nother"},
		{"first line longer than HeadSize", long, true, long[:HeadSize] + "different"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			if len(in) > HeadSize {
				in = in[:HeadSize]
			}
			got := headHash(in)
			if (got != "") != tt.settled {
				t.Fatalf("headHash(%.20q) = %q, settled want %v", tt.in, got, tt.settled)
			}
			if tt.sameAs != "" {
				other := []byte(tt.sameAs)
				if len(other) > HeadSize {
					other = other[:HeadSize]
				}
				if headHash(other) != got {
					t.Errorf("heads of %.20q and %.20q differ; only the first line counts", tt.in, tt.sameAs)
				}
			}
		})
	}
}

func TestPositionAtEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmkernel.log")
	appendFile(t, path, "a1\na2\npart")
	pos, err := PositionAtEnd(path)
	if err != nil {
		t.Fatal(err)
	}
	if pos.Offset != 6 || pos.FirstLineHash != headHash([]byte("a1\n")) || pos.Inode == 0 {
		t.Errorf("PositionAtEnd = %+v, want offset 6 (before the partial line), the head of a1", pos)
	}
	if _, err := PositionAtEnd(path + ".missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
}

// FuzzScanner checks the scanner against a plain split: same lines, long
// ones skipped, a partial last line left, never more than max kept.
func FuzzScanner(f *testing.F) {
	sample, err := os.ReadFile("testdata/vmkernel-5x.log")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sample, 80)
	f.Add([]byte("a\n\nbb\nccc"), 2)
	f.Add([]byte(strings.Repeat("x", 70000)+"\ny\n"), 100)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		if max <= 0 || max > 1<<20 {
			max = 1 + max&0xffff
		}
		var want []string
		skipped := 0
		rest := data
		var end int64
		for {
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				break
			}
			if i > max {
				skipped++
			} else {
				want = append(want, string(rest[:i]))
			}
			end += int64(i) + 1
			rest = rest[i+1:]
		}
		s := newScanner(bytes.NewReader(data), 0, max)
		var got []string
		gotSkipped := 0
		for {
			line, _, sk, err := s.next()
			gotSkipped += sk
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, string(line))
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("lines (-want +got):\n%s", diff)
		}
		if gotSkipped != skipped || s.lineStart != end {
			t.Errorf("skipped %d, lineStart %d; want %d, %d", gotSkipped, s.lineStart, skipped, end)
		}
		if len(s.buf) > max {
			t.Errorf("kept %d bytes, max %d", len(s.buf), max)
		}
	})
}

// FuzzResolve checks resolve never panics and keeps its promises: going on
// in place is one step from the saved offset; only the first step starts
// past 0; the live file comes last.
func FuzzResolve(f *testing.F) {
	f.Add(uint64(1), int64(10), "h1", uint64(1), int64(20), "h1", "h1,h2", true)
	f.Add(uint64(1), int64(10), "h1", uint64(2), int64(5), "h2", "h1", false)
	f.Add(uint64(1), int64(0), "", uint64(1), int64(5), "h3", "h2,,h1", true)
	f.Fuzz(func(t *testing.T, pInode uint64, pOff int64, pHead string, cInode uint64, cSize int64, cHead string,
		heads string, timed bool) {
		if pOff < 0 {
			pOff = -pOff
		}
		pos := Position{Inode: pInode, Offset: pOff, FirstLineHash: pHead}
		if timed {
			pos.Time = time.Unix(100, 0)
		}
		cur := fileView{ok: cInode != 0, inode: cInode, size: cSize, head: cHead}
		var fam []fileView
		for i, h := range strings.Split(heads, ",") {
			fam = append(fam, fileView{ok: true, head: h, mtime: time.Unix(int64(99+i%3), 0)})
		}
		steps, out := resolve(pos, cur, func() [][]fileView { return [][]fileView{fam} })
		if out.continued && len(steps) > 0 && (len(steps) != 1 || steps[0].kind != stepCur) {
			t.Errorf("continued with steps %+v", steps)
		}
		for i, s := range steps {
			if i > 0 && s.from != 0 {
				t.Errorf("step %d starts at %d: only the first may", i, s.from)
			}
			if s.kind == stepCur && i != len(steps)-1 {
				t.Errorf("live file is step %d of %d", i, len(steps))
			}
			if s.kind == stepChain && (s.idx < 0 || s.idx >= len(fam)) {
				t.Errorf("step %d reads copy %d of %d", i, s.idx, len(fam))
			}
		}
	})
}
