package host

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
)

// chunkReader hands out its data in chunks of random sizes and has no
// WriteTo, as an os/exec output pipe seen by io.Copy.
type chunkReader struct {
	data []byte
	rnd  *rand.Rand
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(r.data), 1+r.rnd.IntN(9000))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// TestCapBufferCopy: io.Copy into a capBuffer (through its ReadFrom, as
// os/exec copies a command's output) keeps exactly the first max bytes,
// says whether it dropped any, and reads the source to its end so the
// child never blocks on a full pipe.
func TestCapBufferCopy(t *testing.T) {
	seed := rand.Uint64()
	rnd := rand.New(rand.NewPCG(seed, 1))
	for i := range 300 {
		size, max := rnd.IntN(40000), 1+rnd.IntN(20000)
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(rnd.IntN(256))
		}
		src := &chunkReader{data: data, rnd: rnd}
		c := &capBuffer{max: max}
		n, err := io.Copy(c, src)
		if err != nil || n != int64(size) || len(src.data) != 0 {
			t.Fatalf("seed %d case %d: copied %d of %d bytes (%d left), err %v: want all read", seed, i, n, size, len(src.data), err)
		}
		want := data[:min(size, max)]
		if !bytes.Equal(c.Bytes(), want) || c.truncated != (size > max) {
			t.Fatalf("seed %d case %d: %d bytes of %d with cap %d: kept %d, truncated %t; want the first %d, truncated %t",
				seed, i, size, size, max, len(c.Bytes()), c.truncated, len(want), size > max)
		}
	}
}

// TestCapBufferWriteAfterCopy: writes after a copy go on filling up to
// the cap.
func TestCapBufferWriteAfterCopy(t *testing.T) {
	c := &capBuffer{max: 5}
	if _, err := c.ReadFrom(bytes.NewReader([]byte("abc"))); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("defg"))
	if got := string(c.Bytes()); got != "abcde" || !c.truncated {
		t.Fatalf("kept %q, truncated %t; want \"abcde\", true", got, c.truncated)
	}
}
