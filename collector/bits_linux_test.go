package collector

import (
	"syscall"
	"testing"
)

// The SIMD routines read a few bytes past each 64 but never past the
// slice: buffers that end right before an unreadable page do not fault.
func TestMarkBitsGuardPage(t *testing.T) {
	page := syscall.Getpagesize()
	mem, err := syscall.Mmap(-1, 0, 2*page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Skipf("mmap: %v", err)
	}
	defer syscall.Munmap(mem)
	if err := syscall.Mprotect(mem[page:], syscall.PROT_NONE); err != nil {
		t.Skipf("mprotect: %v", err)
	}
	for i := range page {
		mem[i] = "Heap\nDump d po"[i%14]
	}
	for _, impl := range markImpls() {
		if impl == implScalar {
			continue
		}
		withImpl(t, impl)
		for n := 0; n <= 300; n++ {
			checkMarkBits(t, mem[page-n:page])
		}
	}
}
