package host

import (
	"path/filepath"
	"strings"
)

// IsRealRoot reports whether root means the machine's own "/".
func IsRealRoot(root string) bool { return root == "" || root == "/" }

// Path maps an absolute host path ("/var/log/vmkernel.log") under root, the
// way node_exporter's --path.rootfs does, so a simulated host works.
func Path(root, p string) string {
	if IsRealRoot(root) {
		return p
	}
	// Cleaning as an absolute path first keeps "/../x" inside the root.
	return filepath.Join(root, strings.TrimPrefix(filepath.Clean("/"+p), "/"))
}
