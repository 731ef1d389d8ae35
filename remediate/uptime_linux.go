package remediate

import "golang.org/x/sys/unix"

// uptimeSeconds is the time since boot from sysinfo(2), which busybox's
// uptime reads on ESXi too; 0 when unknown. It starts again at a reboot.
func uptimeSeconds() int64 {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return 0
	}
	return int64(si.Uptime)
}
