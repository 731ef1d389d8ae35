//go:build amd64 && !purego

package collector

import "golang.org/x/sys/cpu"

// SSE2 is part of amd64 (GOAMD64=v1); AVX2 is checked once.
func defaultMarkImpl() int {
	if cpu.X86.HasAVX2 {
		return implAVX2
	}
	return implSSE2
}

// markImpls lists the implementations this machine can run (for tests).
func markImpls() []int {
	if cpu.X86.HasAVX2 {
		return []int{implScalar, implBitsGo, implSSE2, implAVX2}
	}
	return []int{implScalar, implBitsGo, implSSE2}
}

// markBitsAVX2 and markBitsSSE2 fill words words of nl and cand as
// markBits says, reading p[0 : 64*words+fpLen-1].
//
//go:noescape
func markBitsAVX2(p *byte, words int, nl, cand *uint64)

//go:noescape
func markBitsSSE2(p *byte, words int, nl, cand *uint64)

// markBitsFast fills the leading words of nl and cand that the assembly can
// and returns how many.
func markBitsFast(p []byte, nl, cand []uint64) int {
	n := fastWords(p, nl)
	if n == 0 || len(cand) < n {
		return 0
	}
	switch markImpl {
	case implAVX2:
		markBitsAVX2(&p[0], n, &nl[0], &cand[0])
	case implSSE2:
		markBitsSSE2(&p[0], n, &nl[0], &cand[0])
	default:
		return 0
	}
	return n
}
