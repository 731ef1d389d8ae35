package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBadDurations: an --interval of zero or less, and negative waits or
// timeouts, are refused before anything starts, naming the flag and what
// it wants.
func TestBadDurations(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--interval", "-5s"}, `--interval -5s: want a positive duration like 10s`},
		{[]string{"run", "--interval", "0"}, `--interval 0s: want a positive duration like 10s`},
		{[]string{"run", "--for", "-1m"}, `--for -1m0s: want 0 or a positive duration`},
		{[]string{"check", "--shutdown-timeout", "-3s"}, `--shutdown-timeout -3s: want 0 or a positive duration`},
		{[]string{"check", "--command-timeout", "-1s"}, `--command-timeout -1s: want 0 or a positive duration`},
		{[]string{"check", "--flap-window", "-5m"}, `--flap-window -5m0s: want 0 or a positive duration`},
		{[]string{"check", "--predict", "-1h"}, `--predict -1h0m0s: want 0 (off) or more`},
	} {
		state := filepath.Join(t.TempDir(), "state")
		args := append(tc.args, "--root", t.TempDir(), "--state-dir", state)
		// Accepted, run would go on polling: the deadline ends it.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var errb strings.Builder
		code := run(ctx, args, strings.NewReader(""), io.Discard, &errb)
		cancel()
		stderr := errb.String()
		if code != exitUnknown || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want 3 and %q", tc.args, code, stderr, tc.want)
		}
		if _, err := os.Stat(state); err == nil {
			t.Errorf("%v: the state folder was created", tc.args)
		}
	}
}
