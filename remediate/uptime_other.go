//go:build !linux

package remediate

// uptimeSeconds is not known here: a pid file is then never taken as left
// from before a reboot.
func uptimeSeconds() int64 { return 0 }
