package collector

import (
	"encoding/binary"
	"math/bits"
)

// The bitmap scan. One pass over a block (in SIMD where the platform has
// it) marks, per 64-byte stretch, the newlines and the starts of the
// fingerprints below; the lines are then walked from the newline bits, and
// only a line holding a fingerprint is parsed in full. Every marker (see
// markers) holds one fingerprint, so a line without one holds no marker:
// the result equals blockScalar's, which stays the path where no SIMD
// routine exists.
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
	implAVX2          // bitmaps in amd64 assembly, 32 bytes at a time
)

var markImpl = defaultMarkImpl()

// segWords bounds the bitmaps of one pass: 64 KiB of log, 16 KiB of bits.
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

func isFingerprint(b []byte) bool {
	s := string(b)
	return s == fingerprints[0] || s == fingerprints[1] || s == fingerprints[2]
}

// fastWords is how many words of nl the SIMD routines may fill: each word
// loads fpLen-1 bytes past its 64, which must lie within p.
func fastWords(p []byte, nl []uint64) int {
	if len(p) < fpLen-1 {
		return 0
	}
	return min(len(nl), (len(p)-(fpLen-1))/64)
}

// blockBits is block walking newline bits. It must count exactly what
// blockScalar counts.
func (st *scanState) blockBits(data []byte, maxLine int) {
	if st.nl == nil {
		st.nl = make([]uint64, segWords)
		st.cand = make([]uint64, segWords)
	}
	var lines, other int64
	stamped := false // an ISO line was counted in locals since the last slow one
	hitOpen := false // a fingerprint starts in the line at pos, before the current word
	// The first 16 bytes of the last line that passed isoMinuteOK, seeded
	// with a valid minute.
	min0 := binary.LittleEndian.Uint64([]byte("2000-01-"))
	min1 := binary.LittleEndian.Uint64([]byte("01T00:00"))
	pos := 0
	for seg := 0; seg < len(data); seg += 64 * segWords {
		words := min(segWords, (len(data)-seg+63)/64)
		nl, cand := st.nl[:words], st.cand[:words]
		markBits(data[seg:], nl, cand)
		for w, nw := range nl {
			cw := cand[w]
			base := seg + 64*w
			for nw != 0 {
				b := bits.TrailingZeros64(nw)
				nw &= nw - 1
				end := base + b
				hit := hitOpen || cw&(1<<b-1) != 0
				cw &^= 2<<b - 1 // b == 63: all ones
				hitOpen = false
				// The fast case of blockScalar: a line with a valid ISO
				// stamp and no fingerprint is Other. Lines of one minute
				// share their first 16 bytes, checked once (see isoMinuteOK).
				if !hit && end-pos <= maxLine && end-pos >= 20 {
					l := data[pos:end]
					m0, m1 := binary.LittleEndian.Uint64(l), binary.LittleEndian.Uint64(l[8:])
					ok := m0 == min0 && m1 == min1
					if !ok && isoMinuteOK(l) {
						min0, min1, ok = m0, m1, true
					}
					if ok && isoSecondLen(l) > 0 {
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
				st.slowLine(data[pos:end], hit, maxLine)
				pos = end + 1
			}
			hitOpen = hitOpen || cw != 0
		}
	}
	if stamped {
		st.p.prevOK = true
		st.leadOpen = false
	}
	if pos < len(data) { // the last line, without its newline
		st.slowLine(data[pos:], hitOpen, maxLine)
	}
	st.sum.Lines += lines
	st.sum.Other += other
}

func (st *scanState) slowLine(b []byte, hit bool, maxLine int) {
	if len(b) > maxLine {
		st.oversized()
		return
	}
	st.line(b, hit)
}
