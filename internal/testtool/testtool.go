// Package testtool finds the programs that tests run beside the code under
// test (strace, busybox, chromium, promtool, sshd, go). A missing one skips
// the test on a developer's machine and fails it under CI=true, where
// .ci/run installs every one: a CI run never passes by skipping.
package testtool

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// TB is the part of testing.TB that Need uses.
type TB interface {
	Helper()
	Fatal(args ...any)
	Skip(args ...any)
}

// Find returns the first of names that is there: an absolute name when it
// exists and is executable, another one as PATH finds it.
func Find(names ...string) (string, bool) {
	for _, n := range names {
		if strings.HasPrefix(n, "/") {
			if fi, err := os.Stat(n); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
				return n, true
			}
			continue
		}
		if p, err := exec.LookPath(n); err == nil {
			return p, true
		}
	}
	return "", false
}

// Need returns the first of names that is there (Find). When none is, it
// fails t under CI=true and skips it otherwise; pkg is the Debian package
// that provides the tool.
func Need(t TB, pkg string, names ...string) string {
	t.Helper()
	if p, ok := Find(names...); ok {
		return p
	}
	Missing(t, names[0], pkg)
	return ""
}

// Missing fails t under CI=true, skips it otherwise, saying that tool is
// not installed and which Debian package has it.
func Missing(t TB, tool, pkg string) {
	t.Helper()
	msg := fmt.Sprintf("%s is not installed (Debian package %s)", tool, pkg)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + ": CI=true, and .ci/run installs it")
		return
	}
	t.Skip(msg)
}
