// Package deploy puts heapguard on ESXi hosts over SSH: it copies the binary
// with the scp protocol, verifies it, installs the chosen mode so that it
// survives a reboot, and runs heapguard doctor there.
//
// It must not run on the ESXi host itself.
package deploy
