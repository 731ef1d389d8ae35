package collector

import (
	"encoding/binary"
	"math/bits"
)

// The bitmap scan. One pass over a segment of a block (in SIMD where the
// platform has it) marks, per 64-byte stretch, the newlines and the starts
// of the fingerprints below, and turns both into lists of offsets (the AVX
// routines write the newline offsets themselves). The lines are then walked
// from the offsets, and only a line holding a fingerprint is parsed in
// full. Every marker (see markers) holds one fingerprint, so a line without
// one holds no marker: the result equals blockScalar's, which stays the
// path where no SIMD routine exists.
//
// Fingerprints are 4 bytes, rare in vmkernel noise:
//
//	"d po" in "abled port 0x" (both "disabled port" and "enabled port")
//	"Heap" the whole marker
//	"Dump" the whole marker
//
// The assembly hard-codes these bytes; bits_test.go checks that every
// marker holds one.
var fingerprints = [...]string{"d po", "Heap", "Dump"}

const fpLen = 4

// Implementations of block, chosen once (see defaultMarkImpl) and switched
// only by tests.
const (
	implScalar = iota // one IndexByte per line and per marker anchor
	implBitsGo        // bitmaps computed in plain Go (tests; any platform)
	implSSE2          // bitmaps in amd64 assembly, 16 bytes at a time
	implAVX2          // line offsets in amd64 assembly, 32 bytes at a time
	implAVX512        // line offsets in amd64 assembly, 64 bytes at a time
)

var markImpl = defaultMarkImpl()

// segWords bounds the bitmaps of one pass: 64 KiB of log, 16 KiB of bits,
// and the offsets, which stay in the L2 cache while the lines are walked.
const segWords = 1024

// block handles whole lines (the last may lack its newline at EOF).
func (st *scanState) block(data []byte, maxLine int) {
	if markImpl == implScalar {
		st.blockScalar(data, maxLine)
		return
	}
	st.blockBits(data, maxLine)
}

// markBits sets, for each word k of nl and cand, bit i when p[64k+i] is a
// newline (nl) or starts a fingerprint that lies wholly within p (cand).
// Bytes past len(p) mark nothing; a fingerprint may run past 64*len(nl).
func markBits(p []byte, nl, cand []uint64) {
	k := markBitsFast(p, nl, cand)
	for ; k < len(nl); k++ {
		var n, c uint64
		end := min(len(p), 64*k+64)
		for i := 64 * k; i < end; i++ {
			switch p[i] {
			case '\n':
				n |= 1 << (i & 63)
			case fingerprints[0][0], fingerprints[1][0], fingerprints[2][0]:
				if i+fpLen <= len(p) && isFingerprint(p[i:i+fpLen]) {
					c |= 1 << (i & 63)
				}
			}
		}
		nl[k], cand[k] = n, c
	}
}

// isFingerprint reports whether b (fpLen bytes) is a fingerprint.
func isFingerprint(b []byte) bool {
	v := binary.LittleEndian.Uint32(b)
	return v == fpWords[0] || v == fpWords[1] || v == fpWords[2]
}

// fpWords are the fingerprints as little-endian words.
var fpWords = func() (w [len(fingerprints)]uint32) {
	for i, fp := range fingerprints {
		w[i] = binary.LittleEndian.Uint32([]byte(fp))
	}
	return w
}()

// fastWords is how many of words words the SIMD routines may fill: each
// word loads fpLen-1 bytes past its 64, which must lie within p.
func fastWords(p []byte, words int) int {
	if len(p) < fpLen-1 {
		return 0
	}
	return min(words, (len(p)-(fpLen-1))/64)
}

// markLines fills cand with candidates for markBits' fingerprint bits, a
// superset of them (see collectHits), writes the offsets in p of the
// newlines within its 64*len(cand) bytes to ends, in order, and returns how
// many. ends needs room for 64*len(cand)+4; nl (as long as cand) is
// scratch.
func markLines(p []byte, ends []int32, nl, cand []uint64) int {
	w, k := markLinesFast(p, ends, cand)
	if w < len(cand) {
		markBits(p[64*w:], nl[w:], cand[w:])
		k += flattenBits(nl[w:], 64*w, ends[k:])
	}
	return k
}

// collectHits writes to out the offsets of the candidate bits of cand (as
// markLines leaves them for p) where a fingerprint really starts, and
// returns how many. The AVX routines mark a position by a fingerprint's
// first and last bytes only; the rest is checked here, for the few
// positions that pass.
func collectHits(p []byte, cand []uint64, out []int32) int {
	k := 0
	for w, x := range cand {
		for x != 0 {
			off := 64*w + bits.TrailingZeros64(x)
			x &= x - 1
			if off+fpLen <= len(p) && isFingerprint(p[off:off+fpLen]) {
				out[k] = int32(off)
				k++
			}
		}
	}
	return k
}

// flattenBits writes base+i for each bit i set in words[w] (i counting
// from 64*w) to out, in order, and returns how many. out needs room for 4
// more than it gets: each word writes 4 slots whether or not it has as many
// bits, which keeps the loop free of branches for words with up to 4 (lines
// are rarely shorter than 16 bytes).
func flattenBits(words []uint64, base int, out []int32) int {
	k := 0
	for w, x := range words {
		b := int32(base + 64*w)
		n := bits.OnesCount64(x)
		o := out[k : k+4 : k+4]
		o[0] = b + int32(bits.TrailingZeros64(x))
		x &= x - 1
		o[1] = b + int32(bits.TrailingZeros64(x))
		x &= x - 1
		o[2] = b + int32(bits.TrailingZeros64(x))
		x &= x - 1
		o[3] = b + int32(bits.TrailingZeros64(x))
		x &= x - 1
		for i := k + 4; x != 0; i++ {
			out[i] = b + int32(bits.TrailingZeros64(x))
			x &= x - 1
		}
		k += n
	}
	return k
}

// blockBits is block walking newline bits. It must count exactly what
// blockScalar counts. Each segment's newline and fingerprint bits are
// turned into offsets first, so that the per-line loop is one predictable
// branch for a line of noise.
func (st *scanState) blockBits(data []byte, maxLine int) {
	if st.nl == nil {
		st.nl = make([]uint64, segWords)
		st.cand = make([]uint64, segWords)
		st.ends = make([]int32, 64*segWords+4)
		st.hits = make([]int32, 64*segWords+4)
	}
	var lines, other int64
	stamped := false // an ISO line was counted in locals since the last slow one
	// The first 16 bytes of the last line that passed isoMinuteOK, seeded
	// with a valid minute.
	min0 := binary.LittleEndian.Uint64([]byte("2000-01-"))
	min1 := binary.LittleEndian.Uint64([]byte("01T00:00"))
	pos := 0
	// next is where the first fingerprint at or after pos starts (len(data)
	// when none is known); a line ending after it holds one.
	next := len(data)
	for seg := 0; seg < len(data); seg += 64 * segWords {
		words := min(segWords, (len(data)-seg+63)/64)
		nl, cand := st.nl[:words], st.cand[:words]
		ends := st.ends[:markLines(data[seg:], st.ends, nl, cand)]
		hits := st.hits[:collectHits(data[seg:], cand, st.hits)]
		h := 0
		if next == len(data) && len(hits) > 0 {
			next, h = seg+int(hits[0]), 1
		}
		for _, e := range ends {
			end := seg + int(e)
			if end < next && end-pos > 24 && end-pos <= maxLine {
				// The fast case of blockScalar: a line with a valid ISO
				// stamp and no fingerprint is Other. Lines of one minute
				// share their first 16 bytes, checked once (see
				// isoMinuteOK); the seconds are checked as 8 bytes at once
				// for the usual shape ":05.123Z ".
				l := data[pos:end]
				m0, m1 := binary.LittleEndian.Uint64(l), binary.LittleEndian.Uint64(l[8:])
				ok := m0 == min0 && m1 == min1
				if !ok && isoMinuteOK(l) {
					min0, min1, ok = m0, m1, true
				}
				if ok && (isoSecondsMillis(binary.LittleEndian.Uint64(l[16:]), l[24]) || isoSecondLen(l) > 0) {
					lines++
					other++
					stamped = true
					pos = end + 1
					continue
				}
			}
			if stamped {
				st.p.prevOK = true
				st.leadOpen = false
				stamped = false
			}
			hit := next < end
			if hit {
				for h < len(hits) && seg+int(hits[h]) < end {
					h++
				}
				next = len(data)
				if h < len(hits) {
					next = seg + int(hits[h])
					h++
				}
			}
			st.slowLine(data[pos:end], hit, maxLine)
			pos = end + 1
		}
	}
	if stamped {
		st.p.prevOK = true
		st.leadOpen = false
	}
	if pos < len(data) { // the last line, without its newline
		st.slowLine(data[pos:], next < len(data), maxLine)
	}
	st.sum.Lines += lines
	st.sum.Other += other
}

// isoSecondsMillis reports whether s, the 8 bytes after an ISO minute, read
// ":SS.mmmZ" with SS at most 60, and the byte after them, sp, is a space:
// what isoSecondLen accepts, in its usual shape, without a loop.
func isoSecondsMillis(s uint64, sp byte) bool {
	const (
		fixedMask = 0xff000000ff0000ff
		fixed     = 'Z'<<56 | '.'<<24 | ':'
		digits    = 0x00ffffff00ffff00 // bytes 1, 2, 4, 5, 6
		high      = 0x0080808000808000
		over9     = 0x0046464600464600 // sets a digit byte's high bit above '9'
		under0    = 0x0050505000505000 // sets it at or above '0'
	)
	d := s & digits
	if s&fixedMask != fixed || sp != ' ' || (d|(d+over9))&high != 0 || (d+under0)&high != high {
		return false
	}
	return (s>>8&0xff-'0')*10+(s>>16&0xff-'0') <= 60
}

func (st *scanState) slowLine(b []byte, hit bool, maxLine int) {
	if len(b) > maxLine {
		st.oversized()
		return
	}
	st.line(b, hit)
}
