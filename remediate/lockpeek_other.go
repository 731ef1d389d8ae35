//go:build !linux

package remediate

import (
	"errors"
	"os"
)

type flockTable map[string]int

// kernelFlocks: only Linux lists flocks (in /proc/locks).
func kernelFlocks() (flockTable, error) {
	return nil, errors.New("no list of flocks on this system")
}

func (flockTable) holder(os.FileInfo) (int, bool) { return 0, false }
