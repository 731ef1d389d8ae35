//go:build amd64 && !purego

#include "textflag.h"

// The AVX routines mark candidates, not fingerprints: a position whose
// byte and the byte 3 after it are a fingerprint's first and last ('d' and
// 'o', 'H' or 'D' and 'p'), which lets vmkernel noise through rarely and
// takes 6 compares instead of 13; collectHits checks the middle bytes. The
// SSE2 routine marks exact fingerprints, as markBits does.

// AVX2: for the 32 bytes at base, AX gets the newline bits, BX the
// candidate bits. Splats: Y0 '\n', Y1 'd', Y2 'o', Y3 'H', Y4 'D', Y5 'p'.
// Clobbers Y11-Y14; Y11 is also the splat scratch. X15 and R14, R15 are
// left alone (Go's ABIInternal keeps zero, g and the GOT base there).
#define HALF32(base) \
	VMOVDQU   (base), Y11  \
	VMOVDQU   3(base), Y12 \
	VPCMPEQB  Y0, Y11, Y13 \
	VPMOVMSKB Y13, AX      \
	VPCMPEQB  Y1, Y11, Y13 \
	VPCMPEQB  Y2, Y12, Y14 \
	VPAND     Y14, Y13, Y13 \
	VPCMPEQB  Y3, Y11, Y14 \
	VPCMPEQB  Y4, Y11, Y11 \
	VPOR      Y11, Y14, Y14 \
	VPCMPEQB  Y5, Y12, Y12 \
	VPAND     Y12, Y14, Y14 \
	VPOR      Y14, Y13, Y13 \
	VPMOVMSKB Y13, BX

#define SPLAT32(c, y) \
	MOVQ         $c, AX \
	MOVQ         AX, X11 \
	VPBROADCASTB X11, y

// EMIT4 writes R12+i for the first four bits i of AX (the newlines of the
// word at offset R12) as int32s to DI onwards, whatever the count: that
// keeps the usual word (0 to 2 newlines) free of branches, and slots past
// the count are overwritten later or ignored. It leaves the count in R13
// and the bits after the fourth in AX, ZF set when there are none. Clobbers
// R10.
#define EMIT4 \
	POPCNTQ AX, R13     \
	TZCNTQ  AX, R10     \
	ADDL    R12, R10    \
	MOVL    R10, (DI)   \
	BLSRQ   AX, AX      \
	TZCNTQ  AX, R10     \
	ADDL    R12, R10    \
	MOVL    R10, 4(DI)  \
	BLSRQ   AX, AX      \
	TZCNTQ  AX, R10     \
	ADDL    R12, R10    \
	MOVL    R10, 8(DI)  \
	BLSRQ   AX, AX      \
	TZCNTQ  AX, R10     \
	ADDL    R12, R10    \
	MOVL    R10, 12(DI) \
	BLSRQ   AX, AX

// func markLinesAVX2(p *byte, words int, ends *int32, cand *uint64) int
TEXT ·markLinesAVX2(SB), NOSPLIT, $0-40
	MOVQ p+0(FP), SI
	MOVQ words+8(FP), CX
	MOVQ ends+16(FP), DI
	MOVQ cand+24(FP), R8
	MOVQ DI, DX
	XORL R12, R12
	SPLAT32(0x0a, Y0)
	SPLAT32(0x64, Y1)
	SPLAT32(0x6f, Y2)
	SPLAT32(0x48, Y3)
	SPLAT32(0x44, Y4)
	SPLAT32(0x70, Y5)
	TESTQ CX, CX
	JEQ   avx2done

avx2loop:
	// Hardware prefetchers stop at page boundaries; the file is read once.
	PREFETCHT0 1024(SI)

	// Bits 0-31 of the word.
	HALF32(SI)
	MOVQ AX, R11
	MOVQ BX, R13

	// Bits 32-63.
	LEAQ 32(SI), R9
	HALF32(R9)
	SHLQ $32, AX
	ORQ  R11, AX
	SHLQ $32, BX
	ORQ  R13, BX
	MOVQ BX, (R8)
	EMIT4
	JNE avx2more

avx2next:
	LEAQ (DI)(R13*4), DI
	ADDQ $64, SI
	ADDQ $8, R8
	ADDL $64, R12
	DECQ CX
	JNE  avx2loop

avx2done:
	SUBQ DX, DI
	SHRQ $2, DI
	MOVQ DI, ret+32(FP)
	VZEROUPPER
	RET

avx2more:
	// More than 4 newlines in the word (lines shorter than 16 bytes).
	LEAQ 16(DI), R9

avx2moreloop:
	TZCNTQ AX, R10
	ADDL   R12, R10
	MOVL   R10, (R9)
	ADDQ   $4, R9
	BLSRQ  AX, AX
	JNE    avx2moreloop
	JMP    avx2next

// AVX-512 (BW): as the AVX2 routine, 64 bytes at a time, into mask
// registers; a masked compare ANDs for free. Splats as HALF32's.
//
// func markLinesAVX512(p *byte, words int, ends *int32, cand *uint64) int
TEXT ·markLinesAVX512(SB), NOSPLIT, $0-40
	MOVQ p+0(FP), SI
	MOVQ words+8(FP), CX
	MOVQ ends+16(FP), DI
	MOVQ cand+24(FP), R8
	MOVQ DI, DX
	XORL R12, R12
	MOVL $0x0a, AX
	VPBROADCASTB AX, Z0
	MOVL $0x64, AX
	VPBROADCASTB AX, Z1
	MOVL $0x6f, AX
	VPBROADCASTB AX, Z2
	MOVL $0x48, AX
	VPBROADCASTB AX, Z3
	MOVL $0x44, AX
	VPBROADCASTB AX, Z4
	MOVL $0x70, AX
	VPBROADCASTB AX, Z5
	TESTQ CX, CX
	JEQ   avx512done

avx512loop:
	PREFETCHT0 1024(SI)
	VMOVDQU8 (SI), Z11
	VMOVDQU8 3(SI), Z12
	VPCMPEQB Z0, Z11, K1
	VPCMPEQB Z1, Z11, K2     // 'd'
	VPCMPEQB Z2, Z12, K2, K2 // and 'o' 3 on
	VPCMPEQB Z3, Z11, K3     // 'H'
	VPCMPEQB Z4, Z11, K4     // 'D'
	KORQ     K3, K4, K3
	VPCMPEQB Z5, Z12, K3, K3 // and 'p' 3 on
	KORQ     K2, K3, K2
	KMOVQ    K1, AX
	KMOVQ    K2, BX
	MOVQ     BX, (R8)
	EMIT4
	JNE avx512more

avx512next:
	LEAQ (DI)(R13*4), DI
	ADDQ $64, SI
	ADDQ $8, R8
	ADDL $64, R12
	DECQ CX
	JNE  avx512loop

avx512done:
	SUBQ DX, DI
	SHRQ $2, DI
	MOVQ DI, ret+32(FP)
	VZEROUPPER
	RET

avx512more:
	// More than 4 newlines in the word (lines shorter than 16 bytes).
	LEAQ 16(DI), R9

avx512moreloop:
	TZCNTQ AX, R10
	ADDL   R12, R10
	MOVL   R10, (R9)
	ADDQ   $4, R9
	BLSRQ  AX, AX
	JNE    avx512moreloop
	JMP    avx512next

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

