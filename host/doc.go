// Package host is heapguard's one seam to the machine: it runs commands as
// argument vectors with a timeout, maps host paths under a root prefix, tells
// which ESXi layout applies, and gives the host's clock.
//
// It must not contain policy: it answers "how", never "whether".
package host
