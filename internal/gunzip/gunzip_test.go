package gunzip

import (
	"bytes"
	stdgzip "compress/gzip"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"

	"github.com/klauspost/compress/gzip"
)

func gz(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := stdgzip.NewWriter(&b)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// logLike is compressible text, as logs are, of n bytes.
func logLike(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString("2017-09-30T17:27:30.509Z cpu1:65597)NetPort: 1879: disabled port 0x")
		b.WriteByte("0123456789abcdef"[r.IntN(16)])
		b.WriteByte('\n')
	}
	return b.Bytes()[:n]
}

func readAll(t *testing.T, r io.Reader, size int) ([]byte, error) {
	t.Helper()
	var out []byte
	p := make([]byte, size)
	for {
		n, err := r.Read(p)
		out = append(out, p[:n]...)
		if err != nil {
			return out, err
		}
	}
}

// Every byte arrives in order, whatever the stream's length against the
// chunks and whatever the reads' size; then io.EOF, and again io.EOF.
func TestReaderRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, chunkSize - 1, chunkSize, chunkSize + 1, chunks*chunkSize + chunkSize/2} {
		data := logLike(n, uint64(n))
		z := gz(t, data)
		for _, size := range []int{1 << 10, chunkSize + 7, 3 * chunkSize} {
			g, err := NewReader(bytes.NewReader(z))
			if err != nil {
				t.Fatal(err)
			}
			got, err := readAll(t, g, size)
			if err != io.EOF || !bytes.Equal(got, data) {
				t.Errorf("%d bytes read by %d: got %d bytes, %v; want them all, EOF", n, size, len(got), err)
			}
			if n, err := g.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Errorf("read after EOF: %d, %v", n, err)
			}
			if err := g.Close(); err != nil {
				t.Error(err)
			}
		}
	}
}

// Concatenated members read as one stream, as gzip -d reads them.
func TestReaderMultistream(t *testing.T) {
	a, b := logLike(chunkSize+100, 1), logLike(5000, 2)
	z := append(gz(t, a), gz(t, b)...)
	g, err := NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	got, err := readAll(t, g, 4096)
	if err != io.EOF || !bytes.Equal(got, append(a, b...)) {
		t.Errorf("got %d bytes, %v; want %d, EOF", len(got), err, len(a)+len(b))
	}
}

// A stream cut short or damaged ends in an error, never in a clean EOF,
// even when the cut falls within a chunk; the bytes before are delivered.
func TestReaderDamage(t *testing.T) {
	data := logLike(2*chunkSize+chunkSize/3, 3)
	z := gz(t, data)
	badCRC := bytes.Clone(z)
	badCRC[len(badCRC)-8] ^= 1
	for name, c := range map[string]struct {
		z    []byte
		want error
	}{
		"truncated mid-stream": {z[:len(z)/2], io.ErrUnexpectedEOF},
		"trailer cut":          {z[:len(z)-3], io.ErrUnexpectedEOF},
		"checksum":             {badCRC, stdgzip.ErrChecksum},
	} {
		g, err := NewReader(bytes.NewReader(c.z))
		if err != nil {
			t.Fatal(err)
		}
		got, err := readAll(t, g, 64<<10)
		g.Close()
		if err == io.EOF || err == nil || err.Error() != c.want.Error() {
			t.Errorf("%s: error %v, want %v", name, err, c.want)
		}
		if !bytes.HasPrefix(data, got) || (name == "checksum" && len(got) != len(data)) {
			t.Errorf("%s: %d bytes delivered, not the stream's first ones", name, len(got))
		}
	}
	if _, err := NewReader(bytes.NewReader([]byte("not gzip at all"))); err == nil {
		t.Error("a stream without a gzip header was accepted")
	}
}

// tracked is an underlying reader that fails the test when it is read
// after Close has returned.
type tracked struct {
	t      *testing.T
	r      io.Reader
	closed bool // set by the test after Close; read by Read (the race detector watches)
}

func (tr *tracked) Read(p []byte) (int, error) {
	if tr.closed {
		tr.t.Error("the underlying reader was read after Close returned")
	}
	return tr.r.Read(p)
}

// Close stops the inflating for good: the owner may use the underlying
// reader again at once, and a Read after Close says so.
func TestReaderCloseEarly(t *testing.T) {
	data := logLike(8*chunkSize, 4)
	tr := &tracked{t: t, r: iotest.HalfReader(bytes.NewReader(gz(t, data)))}
	g, err := NewReader(tr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(g, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	tr.closed = true
	if _, err := tr.r.Read(make([]byte, 10)); err != nil { // the owner goes on with it
		t.Fatal(err)
	}
	if _, err := g.Read(make([]byte, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("read after Close: %v, want ErrClosed", err)
	}
	if err := g.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// FuzzReader: on any input the Reader gives what klauspost's gzip reader
// gives read in the caller's goroutine: the same bytes and the same error.
func FuzzReader(f *testing.F) {
	f.Add(gz(f, logLike(3000, 5)))
	f.Add(append(gz(f, []byte("a\n")), gz(f, []byte("b\n"))...))
	f.Add(gz(f, nil)[:15])
	f.Fuzz(func(t *testing.T, z []byte) {
		var want []byte
		zr, wantErr := gzip.NewReader(bytes.NewReader(z))
		if wantErr == nil {
			want, wantErr = io.ReadAll(zr)
		}
		var got []byte
		g, err := NewReader(bytes.NewReader(z))
		if err == nil {
			got, err = io.ReadAll(g)
			g.Close()
		}
		if fmt.Sprint(err) != fmt.Sprint(wantErr) || !bytes.Equal(got, want) {
			t.Fatalf("got %d bytes, %v; read directly %d bytes, %v", len(got), err, len(want), wantErr)
		}
	})
}
