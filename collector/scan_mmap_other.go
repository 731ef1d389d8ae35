//go:build !linux

package collector

import (
	"errors"
	"os"
)

func mapWindow(*os.File, int64, int) ([]byte, error) {
	return nil, errors.New("mmap: not used on this platform")
}

func unmapWindow([]byte) {}
