//go:build amd64 && !purego

#include "textflag.h"

// The fingerprint bytes (see fingerprints in bits.go), one splat register
// each; 'p' serves "d po" at +2 and "Heap"/"Dump" at +3:
//
//	0 '\n'  1 'd'  2 ' '  3 'p'  4 'o'  5 'H'  6 'e'  7 'a'  8 'D'  9 'u'  10 'm'
//
// A position starts a fingerprint when its byte and the three after it
// equal the fingerprint's: four compares (the later ones on loads at +1,
// +2, +3) ANDed, the three fingerprints ("d po", "Heap", "Dump" in that
// order) ORed. The newline compare comes first.

// AVX2: Y11 holds the 32 bytes at base; AX gets the newline bits, BX the
// fingerprint bits. Clobbers Y12-Y14. Y11 is also the splat scratch (X15
// is left alone: Go's ABIInternal keeps zero there).
#define HALF32(base) \
	VMOVDQU   (base), Y11       \
	VPCMPEQB  Y0, Y11, Y12      \
	VPMOVMSKB Y12, AX           \
	VPCMPEQB  Y1, Y11, Y12      \
	VPCMPEQB  1(base), Y2, Y13  \
	VPAND     Y13, Y12, Y12     \
	VPCMPEQB  2(base), Y3, Y13  \
	VPAND     Y13, Y12, Y12     \
	VPCMPEQB  3(base), Y4, Y13  \
	VPAND     Y13, Y12, Y12     \
	VPCMPEQB  Y5, Y11, Y14      \
	VPCMPEQB  1(base), Y6, Y13  \
	VPAND     Y13, Y14, Y14     \
	VPCMPEQB  2(base), Y7, Y13  \
	VPAND     Y13, Y14, Y14     \
	VPCMPEQB  3(base), Y3, Y13  \
	VPAND     Y13, Y14, Y14     \
	VPOR      Y14, Y12, Y12     \
	VPCMPEQB  Y8, Y11, Y14      \
	VPCMPEQB  1(base), Y9, Y13  \
	VPAND     Y13, Y14, Y14     \
	VPCMPEQB  2(base), Y10, Y13 \
	VPAND     Y13, Y14, Y14     \
	VPCMPEQB  3(base), Y3, Y13  \
	VPAND     Y13, Y14, Y14     \
	VPOR      Y14, Y12, Y12     \
	VPMOVMSKB Y12, BX

#define SPLAT32(c, y) \
	MOVQ         $c, AX \
	MOVQ         AX, X11 \
	VPBROADCASTB X11, y

// func markBitsAVX2(p *byte, words int, nl, cand *uint64)
TEXT ·markBitsAVX2(SB), NOSPLIT, $0-32
	MOVQ p+0(FP), SI
	MOVQ words+8(FP), CX
	MOVQ nl+16(FP), DI
	MOVQ cand+24(FP), R8
	SPLAT32(0x0a, Y0)
	SPLAT32(0x64, Y1)
	SPLAT32(0x20, Y2)
	SPLAT32(0x70, Y3)
	SPLAT32(0x6f, Y4)
	SPLAT32(0x48, Y5)
	SPLAT32(0x65, Y6)
	SPLAT32(0x61, Y7)
	SPLAT32(0x44, Y8)
	SPLAT32(0x75, Y9)
	SPLAT32(0x6d, Y10)
	TESTQ CX, CX
	JEQ   avx2done

avx2loop:
	// Bits 0-31 of the word.
	HALF32(SI)
	MOVQ AX, R10
	MOVQ BX, R11

	// Bits 32-63.
	LEAQ 32(SI), R9
	HALF32(R9)
	SHLQ $32, AX
	ORQ  R10, AX
	SHLQ $32, BX
	ORQ  R11, BX
	MOVQ AX, (DI)
	MOVQ BX, (R8)
	ADDQ $64, SI
	ADDQ $8, DI
	ADDQ $8, R8
	DECQ CX
	JNE  avx2loop

avx2done:
	VZEROUPPER
	RET

// SSE2 (two-operand, and memory operands must be aligned, so every load is
// a MOVOU): as HALF32 for 16 bytes at base. Clobbers X11-X14.
#define QUARTER16(base) \
	MOVOU    (base), X11  \
	MOVO     X0, X12      \
	PCMPEQB  X11, X12     \
	PMOVMSKB X12, AX      \
	MOVO     X1, X12      \
	PCMPEQB  X11, X12     \
	MOVOU    1(base), X13 \
	PCMPEQB  X2, X13      \
	PAND     X13, X12     \
	MOVOU    2(base), X13 \
	PCMPEQB  X3, X13      \
	PAND     X13, X12     \
	MOVOU    3(base), X13 \
	PCMPEQB  X4, X13      \
	PAND     X13, X12     \
	MOVO     X5, X14      \
	PCMPEQB  X11, X14     \
	MOVOU    1(base), X13 \
	PCMPEQB  X6, X13      \
	PAND     X13, X14     \
	MOVOU    2(base), X13 \
	PCMPEQB  X7, X13      \
	PAND     X13, X14     \
	MOVOU    3(base), X13 \
	PCMPEQB  X3, X13      \
	PAND     X13, X14     \
	POR      X14, X12     \
	MOVO     X8, X14      \
	PCMPEQB  X11, X14     \
	MOVOU    1(base), X13 \
	PCMPEQB  X9, X13      \
	PAND     X13, X14     \
	MOVOU    2(base), X13 \
	PCMPEQB  X10, X13     \
	PAND     X13, X14     \
	MOVOU    3(base), X13 \
	PCMPEQB  X3, X13      \
	PAND     X13, X14     \
	POR      X14, X12     \
	PMOVMSKB X12, BX

#define SPLAT16(c8, x) \
	MOVQ       $c8, AX \
	MOVQ       AX, x   \
	PUNPCKLQDQ x, x

// func markBitsSSE2(p *byte, words int, nl, cand *uint64)
TEXT ·markBitsSSE2(SB), NOSPLIT, $0-32
	MOVQ p+0(FP), SI
	MOVQ words+8(FP), CX
	MOVQ nl+16(FP), DI
	MOVQ cand+24(FP), R8
	SPLAT16(0x0a0a0a0a0a0a0a0a, X0)
	SPLAT16(0x6464646464646464, X1)
	SPLAT16(0x2020202020202020, X2)
	SPLAT16(0x7070707070707070, X3)
	SPLAT16(0x6f6f6f6f6f6f6f6f, X4)
	SPLAT16(0x4848484848484848, X5)
	SPLAT16(0x6565656565656565, X6)
	SPLAT16(0x6161616161616161, X7)
	SPLAT16(0x4444444444444444, X8)
	SPLAT16(0x7575757575757575, X9)
	SPLAT16(0x6d6d6d6d6d6d6d6d, X10)
	TESTQ CX, CX
	JEQ   sse2done

sse2loop:
	// Four quarters of 16 bits each, collected in R10 (newlines) and R11.
	QUARTER16(SI)
	MOVQ AX, R10
	MOVQ BX, R11
	LEAQ 16(SI), R9
	QUARTER16(R9)
	SHLQ $16, AX
	ORQ  AX, R10
	SHLQ $16, BX
	ORQ  BX, R11
	LEAQ 32(SI), R9
	QUARTER16(R9)
	SHLQ $32, AX
	ORQ  AX, R10
	SHLQ $32, BX
	ORQ  BX, R11
	LEAQ 48(SI), R9
	QUARTER16(R9)
	SHLQ $48, AX
	ORQ  AX, R10
	SHLQ $48, BX
	ORQ  BX, R11
	MOVQ R10, (DI)
	MOVQ R11, (R8)
	ADDQ $64, SI
	ADDQ $8, DI
	ADDQ $8, R8
	DECQ CX
	JNE  sse2loop

sse2done:
	RET
