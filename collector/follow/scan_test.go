package follow

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestScannerBufferFitsStream: a stream that says its length gets a read
// buffer no bigger than it needs (the live log's new bytes, mostly none),
// one that does not gets the full buffer; lines longer than the buffer
// still come whole.
func TestScannerBufferFitsStream(t *testing.T) {
	long := strings.Repeat("x", 3000) + "\n"
	tests := []struct {
		name string
		r    io.Reader
		want int
	}{
		{"nothing new", io.NewSectionReader(strings.NewReader(""), 0, 0), minBufSize},
		{"a few lines", io.NewSectionReader(strings.NewReader(long), 0, int64(len(long))), len(long)},
		{"more than the buffer", io.NewSectionReader(strings.NewReader(""), 0, 1<<20), bufSize},
		{"length unknown", io.MultiReader(strings.NewReader(long)), bufSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := newScanner(tt.r, 0, 1<<20).br.Size(); got != tt.want {
				t.Errorf("buffer %d bytes, want %d", got, tt.want)
			}
		})
	}
	// A buffer smaller than a line (here by a stream that understates its
	// length) still gives the line whole.
	s := newScanner(sizedReader{strings.NewReader(long + "short\n"), 1}, 0, 1<<20)
	if s.br.Size() != minBufSize {
		t.Fatalf("buffer %d bytes, want %d", s.br.Size(), minBufSize)
	}
	for _, want := range []string{long[:len(long)-1], "short"} {
		line, _, _, err := s.next()
		if err != nil || string(line) != want {
			t.Fatalf("line %.20q… (%d bytes), %v; want %d bytes", line, len(line), err, len(want))
		}
	}
	// Through the smallest buffer and the full one, the same lines, ends
	// and skipped too-long lines (max 2000 bytes), and the same partial
	// last line left.
	var text strings.Builder
	for i, n := range []int{100, 600, 1500, 3000, 10, 2000, 2001, 700} {
		text.WriteString(strings.Repeat(string(rune('a'+i)), n) + "\n")
	}
	text.WriteString("partial")
	type step struct {
		Line      string
		End       int64
		Skipped   int
		Err       string
		LineStart int64
	}
	scan := func(r io.Reader) (steps []step) {
		s := newScanner(r, 7, 2000)
		for {
			line, end, skipped, err := s.next()
			st := step{Line: string(line), End: end, Skipped: skipped, LineStart: s.lineStart}
			if err != nil {
				st.Err = err.Error()
			}
			steps = append(steps, st)
			if err != nil {
				return steps
			}
		}
	}
	small := scan(sizedReader{strings.NewReader(text.String()), 0})
	full := scan(io.MultiReader(strings.NewReader(text.String())))
	if diff := cmp.Diff(full, small); diff != "" {
		t.Errorf("a 512 B buffer reads otherwise than a 64 KB one (-64 KB +512 B):\n%s", diff)
	}
	if len(full) != 7 || full[6].LineStart != 7+int64(len(text.String())-len("partial")) {
		t.Errorf("%d steps, partial line at %d; want 7 steps (6 lines and the end)", len(full), full[len(full)-1].LineStart)
	}
}

type sizedReader struct {
	io.Reader
	size int64
}

func (r sizedReader) Size() int64 { return r.size }

// BenchmarkReadQuiet is the daemon's most common read: the live log has no
// new line since the saved position.
func BenchmarkReadQuiet(b *testing.B) {
	path := filepath.Join(b.TempDir(), "vmkernel.log")
	if err := os.WriteFile(path, []byte(lines("a", 1, 20)), 0o644); err != nil {
		b.Fatal(err)
	}
	pos, err := PositionAtEnd(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r := ReadFrom(path, pos, Options{})
		for range r.Lines() {
			b.Fatal("a line in a quiet log")
		}
		if err := r.Err(); err != nil {
			b.Fatal(err)
		}
	}
}
