package host

import "os"

// Layout is where things live on one ESXi host, as detected from its files.
// ESXi versions are data here, not if-chains at the call sites.
type Layout struct {
	// LogPath is the vmkernel log: /var/log/vmkernel.log (5.1 and later) or
	// /var/log/messages (4.x and 5.0).
	LogPath string
	// VpxaInit and HostdInit are the agents' init scripts (host paths).
	// HostdInit is empty where the host has none.
	VpxaInit  string
	HostdInit string
}

// layouts are tried in order; the first whose log file exists wins.
var layouts = []Layout{
	{LogPath: "/var/log/vmkernel.log", VpxaInit: "/etc/init.d/vpxa", HostdInit: "/etc/init.d/hostd"},
	// ESXi 4.x keeps vpxa under /etc/opt/init.d but hostd under /etc/init.d.
	{LogPath: "/var/log/messages", VpxaInit: "/etc/opt/init.d/vmware-vpxa", HostdInit: "/etc/init.d/hostd"},
}

// DetectLayout looks at root's files to tell which layout applies. When no
// log is found it returns the 5.1-and-later layout, the common case today.
func DetectLayout(root string) Layout {
	for _, l := range layouts {
		if exists(Path(root, l.LogPath)) {
			if !exists(Path(root, l.VpxaInit)) {
				// A host that was upgraded may keep its old log path but use the new scripts.
				for _, o := range layouts {
					if exists(Path(root, o.VpxaInit)) {
						l.VpxaInit, l.HostdInit = o.VpxaInit, o.HostdInit
					}
				}
			}
			if !exists(Path(root, l.HostdInit)) {
				l.HostdInit = ""
			}
			return l
		}
	}
	return layouts[0]
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
