package collector

import (
	"bytes"
	"encoding/binary"
	"slices"

	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var implNames = map[int]string{implScalar: "scalar", implBitsGo: "bits-go", implSSE2: "sse2", implAVX2: "avx2", implAVX512: "avx512"}

// forEachImpl runs f with block using each implementation this machine has.
func forEachImpl(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	for _, impl := range markImpls() {
		t.Run(implNames[impl], func(t *testing.T) {
			withImpl(t, impl)
			f(t)
		})
	}
}

func withImpl(t testing.TB, impl int) {
	old := markImpl
	markImpl = impl
	t.Cleanup(func() { markImpl = old })
}

// refMarkBits is the definition of markBits, position by position.
func refMarkBits(p []byte, words int) (nl, cand []uint64) {
	nl, cand = make([]uint64, words), make([]uint64, words)
	for i := 0; i < len(p) && i < 64*words; i++ {
		if p[i] == '\n' {
			nl[i/64] |= 1 << (i % 64)
		}
		for _, fp := range fingerprints {
			if bytes.HasPrefix(p[i:], []byte(fp)) {
				cand[i/64] |= 1 << (i % 64)
			}
		}
	}
	return nl, cand
}

// checkMarkBits compares markBits (as markImpl does it) with the
// definition, for bitmaps covering all of p and for ones that stop short
// (the routine then reads on into p).
func checkMarkBits(t *testing.T, p []byte) {
	t.Helper()
	full := (len(p) + 63) / 64
	for _, words := range []int{full, full + 1, len(p) / 64, max(0, len(p)/64-1)} {
		wantNL, wantCand := refMarkBits(p, words)
		nl, cand := make([]uint64, words), make([]uint64, words)
		for i := range nl { // stale bits must be overwritten
			nl[i], cand[i] = ^uint64(0), ^uint64(0)
		}
		markBits(p, nl, cand)
		if !slicesEqual(wantNL, nl) || !slicesEqual(wantCand, cand) {
			t.Fatalf("%s, %d bytes %q, %d words:\nnl   %x\nwant %x\ncand %x\nwant %x",
				implNames[markImpl], len(p), p, words, nl, wantNL, cand, wantCand)
		}

		// markLines: the newlines as offsets, candidates between the
		// fingerprints and refLooseCand, and collectHits exact.
		var wantEnds, wantHits []int32
		for i := 0; i < len(p) && i < 64*words; i++ {
			if p[i] == '\n' {
				wantEnds = append(wantEnds, int32(i))
			}
			if wantCand[i/64]&(1<<(i%64)) != 0 {
				wantHits = append(wantHits, int32(i))
			}
		}
		loose := refLooseCand(p, words)
		ends := make([]int32, 64*words+4)
		for i := range nl {
			nl[i], cand[i] = ^uint64(0), ^uint64(0)
		}
		for i := range ends {
			ends[i] = -1
		}
		ends = ends[:markLines(p, ends, nl, cand)]
		hits := make([]int32, 64*words+4)
		hits = hits[:collectHits(p, cand, hits)]
		if !slices.Equal(wantEnds, ends) || !slices.Equal(wantHits, hits) {
			t.Fatalf("%s markLines, %d bytes %q, %d words:\nends %v\nwant %v\nhits %v\nwant %v",
				implNames[markImpl], len(p), p, words, ends, wantEnds, hits, wantHits)
		}
		for k := range cand {
			if cand[k]&wantCand[k] != wantCand[k] || cand[k]&^loose[k] != 0 {
				t.Fatalf("%s markLines, %d bytes %q, word %d: cand %x, want at least %x, at most %x",
					implNames[markImpl], len(p), p, k, cand[k], wantCand[k], loose[k])
			}
		}
	}
}

// refLooseCand marks what the AVX routines may mark: a fingerprint's first
// byte with its last byte 3 on, within p.
func refLooseCand(p []byte, words int) []uint64 {
	cand := make([]uint64, words)
	for i := 0; i+fpLen <= len(p) && i < 64*words; i++ {
		for _, fp := range fingerprints {
			if p[i] == fp[0] && p[i+fpLen-1] == fp[fpLen-1] {
				cand[i/64] |= 1 << (i % 64)
			}
		}
	}
	return cand
}

// Words of 0 to 64 bits, as offsets.
func TestFlattenBits(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		words := make([]uint64, r.IntN(20))
		var want []int32
		for w := range words {
			for range r.IntN(66) {
				words[w] |= 1 << r.IntN(64)
			}
			if r.IntN(8) == 0 {
				words[w] = ^uint64(0)
			}
			for i := range 64 {
				if words[w]&(1<<i) != 0 {
					want = append(want, int32(100+64*w+i))
				}
			}
		}
		out := make([]int32, 64*len(words)+4)
		if got := out[:flattenBits(words, 100, out)]; !slices.Equal(want, got) {
			t.Fatalf("flattenBits(%x) = %v, want %v", words, got, want)
		}
	}
}

// isoSecondsMillis is isoSecondLen's answer for its one shape: a stamp of
// 24 bytes followed by a space.
func checkSecondsMillis(t *testing.T, b []byte) {
	t.Helper()
	if len(b) < 25 {
		return
	}
	want := isoSecondLen(b) == 24
	if got := isoSecondsMillis(binary.LittleEndian.Uint64(b[16:]), b[24]); got != want {
		t.Fatalf("isoSecondsMillis(%q) = %v, isoSecondLen = %d", b, got, isoSecondLen(b))
	}
}

func TestIsoSecondsMillis(t *testing.T) {
	good := []byte("2017-09-30T00:00:00.036Z cpu1:1)x")
	checkSecondsMillis(t, good)
	if !isoSecondsMillis(binary.LittleEndian.Uint64(good[16:]), good[24]) {
		t.Fatalf("%q rejected", good)
	}
	// Every byte of the shape, in turn, set to every value.
	for i := 16; i < 25; i++ {
		for c := range 256 {
			b := slices.Clone(good)
			b[i] = byte(c)
			checkSecondsMillis(t, b)
		}
	}
	for sec := range 100 {
		b := slices.Clone(good)
		b[17], b[18] = byte('0'+sec/10), byte('0'+sec%10)
		checkSecondsMillis(t, b)
	}
}

func FuzzIsoSecondsMillis(f *testing.F) {
	f.Add([]byte("2017-09-30T00:00:60.036Z x"))
	f.Add([]byte("2017-09-30T00:00:00.03Z x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkSecondsMillis(t, b)
	})
}

func slicesEqual(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFingerprintsCoverMarkers(t *testing.T) {
	for _, m := range markers {
		found := false
		for _, fp := range fingerprints {
			if len(fp) != fpLen {
				t.Errorf("fingerprint %q is not %d bytes", fp, fpLen)
			}
			found = found || strings.Contains(m.text, fp)
		}
		if !found {
			t.Errorf("marker %q holds no fingerprint: its lines would not be parsed", m.text)
		}
	}
}

// Every length 0..300 at every alignment, with random text, text made of
// fingerprint bytes only, and fingerprints put across the 16-, 32- and
// 64-byte boundaries and at the very end.
func TestMarkBits(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "\nd poHeaDumxo"
	back := make([]byte, 300+64+8)
	for _, impl := range markImpls() {
		if impl == implScalar {
			continue
		}
		withImpl(t, impl)
		for n := 0; n <= 300; n++ {
			for align := range 64 {
				p := back[align : align+n]
				switch align % 4 {
				case 0:
					for i := range p {
						p[i] = byte(r.Uint32())
					}
				case 1, 2:
					for i := range p {
						p[i] = alphabet[r.IntN(len(alphabet))]
					}
				case 3:
					for i := range p {
						p[i] = 'x'
					}
				}
				if n > 0 {
					// Fingerprints straddling a boundary (or cut by the end).
					fp := fingerprints[r.IntN(len(fingerprints))]
					at := (16*r.IntN(n/16+1) - r.IntN(fpLen)) % n
					copy(p[max(at, 0):], fp)
					copy(p[max(n-r.IntN(fpLen+1), 0):], fingerprints[r.IntN(len(fingerprints))])
					if r.IntN(3) == 0 {
						p[r.IntN(n)] = '\n'
					}
				}
				checkMarkBits(t, p)
			}
		}
	}
}

func FuzzMarkBits(f *testing.F) {
	f.Add([]byte("2017-09-30T17:27:30.509Z cpu1:65597)NetPort: 1879: disabled port 0x2000009\n"), uint8(0))
	f.Add([]byte(strings.Repeat("xxHeap Dump d po\n", 9)), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, skip uint8) {
		data = data[min(int(skip), len(data)):]
		for _, impl := range markImpls() {
			if impl != implScalar {
				withImpl(t, impl)
				checkMarkBits(t, data)
			}
		}
	})
}

// All implementations give the reference summary on the samples and on a
// generated log, read whole, in small buffers and in chunks.
func TestScanImplsAgree(t *testing.T) {
	var inputs [][]byte
	for _, name := range []string{"vmkernel-5x.log", "vmkernel-8x.log", "vmkernel-9x.log", "vmkernel-heap-maxed-kb.txt", "hostd-9x-continuation.log", "vmkernel-4x-messages.log", "incident-messages.log"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, data)
	}
	inputs = append(inputs, mixedLog(t, 2000, 5))
	opt := ScanOptions{Year: 2012}
	const maxLine = 300
	forEachImpl(t, func(t *testing.T) {
		for k, data := range inputs {
			want := refScan(data, opt, time.Time{}, maxLine)
			for _, bufSize := range []int{maxLine + 1, maxLine + 65, 1 << 20} {
				st := newScanState(opt, time.Time{}, false)
				if err := st.read(bytes.NewReader(data), make([]byte, bufSize), maxLine); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, st.sum, ignoreState); diff != "" {
					t.Errorf("input %d, buffer %d (-want +got):\n%s", k, bufSize, diff)
				}
			}
			cut := int64(len(data) / 3)
			b, _ := lineStart(bytes.NewReader(data), int64(len(data)), cut)
			got, err := scanChunks(bytes.NewReader(data), []int64{0, b, int64(len(data))}, opt, time.Time{}, maxLine+7, maxLine)
			if err != nil {
				t.Fatal(err)
			}
			if got != nil {
				if diff := cmp.Diff(want, got, ignoreState); diff != "" {
					t.Errorf("input %d, chunks at %d (-want +got):\n%s", k, b, diff)
				}
			}
		}
	})
}

// Lines longer than a bitmap segment, and events on both sides of a
// segment boundary, in one block.
func TestBlockBitsSegments(t *testing.T) {
	var buf bytes.Buffer
	ev := "2017-09-30T17:27:30.509Z cpu1:65597)NetPort: 1879: disabled port 0x2000009\n"
	for buf.Len() < 64*segWords-len(ev)/2 {
		buf.WriteString("2017-09-30T17:27:29.000Z cpu1:1)noise\n")
	}
	buf.WriteString(ev) // across the first boundary
	buf.WriteString(strings.Repeat("y", 64*segWords+10) + " Heap x already at its maximum\n")
	buf.WriteString("2017-09-30T17:27:30.509Z cpu1:65597)Heap netGPHeap already at its maximum size.\n")
	// An event whose fingerprint is before the next boundary and whose
	// line ends after it (an event only while lines that long are parsed).
	long := "2017-09-30T17:27:30.600Z cpu1:65597)NetPort: 1879: disabled port 0x2000010 " + strings.Repeat("z", 300) + "\n"
	for next := (buf.Len()/(64*segWords) + 1) * 64 * segWords; buf.Len() < next-100; {
		buf.WriteString("2017-09-30T17:27:30.550Z cpu1:1)noise\n")
	}
	buf.WriteString(long)
	buf.WriteString("  continuation\n2017-09-30T17:27:31.509Z cpu1:65597)Uplink: 9893: enabled port 0x2000009 with mac 00:50:56:84:5a:b4")
	data := buf.Bytes()
	for maxLine, events := range map[int]int64{200: 3, 4 * 64 * segWords: 4} {
		want := refScan(data, ScanOptions{}, time.Time{}, maxLine)
		if want.Events != events {
			t.Fatalf("reference: %+v, want %d events", want, events)
		}
		forEachImpl(t, func(t *testing.T) {
			st := newScanState(ScanOptions{}, time.Time{}, false)
			st.block(data, maxLine)
			if diff := cmp.Diff(want, st.sum, ignoreState); diff != "" {
				t.Errorf("max line %d (-want +got):\n%s", maxLine, diff)
			}
		})
	}
}

// BenchmarkMarkLines is the SIMD pass with the newline offsets, as
// blockBits runs it, on data in the cache.
func BenchmarkMarkLines(b *testing.B) {
	data := mixedLog(b, 20000, 1)
	words := len(data) / 64
	nl, cand, ends := make([]uint64, words), make([]uint64, words), make([]int32, 64*words+4)
	for _, impl := range markImpls() {
		if impl == implScalar {
			continue
		}
		b.Run(implNames[impl], func(b *testing.B) {
			withImpl(b, impl)
			b.SetBytes(int64(64 * words))
			for b.Loop() {
				markLines(data, ends, nl, cand)
			}
		})
	}
}

// BenchmarkScanFileLog scans the log named by $HEAPGUARD_BENCH_LOG (such as
// `go run ./tools/loggen bench -lines 8000000`) with each implementation, for
// profiling and for the figures of machines without AVX-512.
func BenchmarkScanFileLog(b *testing.B) {
	path := os.Getenv("HEAPGUARD_BENCH_LOG")
	if path == "" {
		b.Skip("HEAPGUARD_BENCH_LOG not set")
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	for _, impl := range markImpls() {
		b.Run(implNames[impl], func(b *testing.B) {
			withImpl(b, impl)
			b.SetBytes(fi.Size())
			for b.Loop() {
				if _, err := ScanFile(path, ScanOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
