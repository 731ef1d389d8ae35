package main

import (
	"fmt"
	"io"
	"regexp"

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

// urlUserinfo matches the user:password@ part of a URL.
var urlUserinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^/@\s:"']*):[^/@\s"']*@`)

// redactURLs hides the password of every URL in s. No flag takes a
// password (--syslog refuses user info), but the flag package quotes a
// refused value whole in its error, and that error may end up in cron's
// mail or a syslog.
func redactURLs(s string) string {
	return urlUserinfo.ReplaceAllString(s, "$1:xxxxx@")
}
