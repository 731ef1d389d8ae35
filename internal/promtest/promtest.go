// Package promtest checks Prometheus expositions with the real promtool,
// for tests only.
package promtest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Check runs `promtool check metrics` on out. A missing promtool skips
// the test locally (call Check last) and fails it under CI=true.
func Check(t testing.TB, out []byte) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not installed (Debian package prometheus)")
		}
		t.Skip("promtool not installed (Debian package prometheus)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\ninput:\n%s", err, msg, out)
	}
}
