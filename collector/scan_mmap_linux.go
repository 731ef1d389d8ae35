package collector

import (
	"os"
	"syscall"
)

func mapWindow(f *os.File, off int64, n int) ([]byte, error) {
	if n == 0 {
		return nil, syscall.EINVAL
	}
	return syscall.Mmap(int(f.Fd()), off, n, syscall.PROT_READ, syscall.MAP_SHARED)
}

func unmapWindow(b []byte) { syscall.Munmap(b) }
