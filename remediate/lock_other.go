//go:build !unix

package remediate

import (
	"errors"
	"os"
)

var errWouldBlock = errors.New("lock held")

func flockExclusive(*os.File) error { return errors.ErrUnsupported }

func flockUnsupported(err error) bool { return errors.Is(err, errors.ErrUnsupported) }

// processAlive cannot tell here; a pid file is then never taken as stale.
func processAlive(int) bool { return true }

func signalTerm(int) error { return errors.ErrUnsupported }
