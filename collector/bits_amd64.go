//go:build amd64 && !purego

package collector

import "golang.org/x/sys/cpu"

// SSE2 is part of amd64 (GOAMD64=v1); the others are checked once. The
// AVX routines also use POPCNT, TZCNT and BLSR (BMI1), which every CPU with
// AVX2 has, but which are checked all the same.
func defaultMarkImpl() int {
	impls := markImpls()
	return impls[len(impls)-1]
}

// markImpls lists the implementations this machine can run, the fastest
// last (for tests).
func markImpls() []int {
	x := cpu.X86
	impls := []int{implScalar, implBitsGo, implSSE2}
	if !x.HasPOPCNT || !x.HasBMI1 {
		return impls
	}
	if x.HasAVX2 {
		impls = append(impls, implAVX2)
	}
	if x.HasAVX512BW {
		impls = append(impls, implAVX512)
	}
	return impls
}

// markLinesAVX2 and markLinesAVX512 fill words words of cand with
// candidates for markBits' fingerprint bits (a superset: see collectHits),
// write the offsets of the newlines in p[0 : 64*words] to ends (in order,
// with room for 4 more) and return how many; they read
// p[0 : 64*words+fpLen-1].
//
//go:noescape
func markLinesAVX2(p *byte, words int, ends *int32, cand *uint64) int

//go:noescape
func markLinesAVX512(p *byte, words int, ends *int32, cand *uint64) int

// markBitsSSE2 fills words words of nl and cand as markBits says, reading
// p[0 : 64*words+fpLen-1].
//
//go:noescape
func markBitsSSE2(p *byte, words int, nl, cand *uint64)

// markBitsFast fills the leading words of nl and cand that the assembly can
// and returns how many.
func markBitsFast(p []byte, nl, cand []uint64) int {
	n := fastWords(p, len(nl))
	if n == 0 || len(cand) < n || markImpl != implSSE2 {
		return 0
	}
	markBitsSSE2(&p[0], n, &nl[0], &cand[0])
	return n
}

// markLinesFast is markLines for the leading words of cand that the
// assembly can do; it returns how many, and how many offsets it wrote.
func markLinesFast(p []byte, ends []int32, cand []uint64) (words, lines int) {
	n := fastWords(p, len(cand))
	if n == 0 || len(ends) < 64*n+4 {
		return 0, 0
	}
	switch markImpl {
	case implAVX512:
		return n, markLinesAVX512(&p[0], n, &ends[0], &cand[0])
	case implAVX2:
		return n, markLinesAVX2(&p[0], n, &ends[0], &cand[0])
	}
	return 0, 0
}
