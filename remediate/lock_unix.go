//go:build unix

package remediate

import (
	"errors"
	"os"
	"syscall"
)

var errWouldBlock = syscall.EWOULDBLOCK

func flockExclusive(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// flockUnsupported tells the answers of a filesystem without flock. Not
// ENOLCK: it also means the kernel is short of lock records for a while,
// and a pid file taken then would not see the flock holder.
func flockUnsupported(err error) bool {
	return errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EINVAL) ||
		errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOTSUP)
}

// processAlive reports whether pid exists; EPERM means it does (another user's).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func signalTerm(pid int) error { return syscall.Kill(pid, syscall.SIGTERM) }
