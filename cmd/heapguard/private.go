package main

import (
	"fmt"
	"io"

	"github.com/heapguard/heapguard/remediate"
)

// warnUnsafeState is what a read-only command (status, journal, report,
// serve) does with a state folder that others can write: it still shows
// what is there, since the admin needs to see it, and says on w why run
// and check refuse to act on it.
func warnUnsafeState(w io.Writer, cmd, dir string) {
	if err := remediate.CheckStateDir(dir); err != nil {
		fmt.Fprintf(w, "heapguard %s: warning: %v (run and check refuse to start until it is fixed)\n", cmd, err)
	}
}
