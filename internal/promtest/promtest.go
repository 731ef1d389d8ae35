// Package promtest checks Prometheus expositions with the real promtool,
// for tests only.
package promtest

import (
	"bytes"
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/heapguard/heapguard/internal/testtool"
)

// Check runs `promtool check metrics` on out. A missing promtool skips
// the test locally (call Check last) and fails it under CI=true.
func Check(t testing.TB, out []byte) {
	t.Helper()
	path := testtool.Need(t, "prometheus", "promtool")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\ninput:\n%s", err, msg, out)
	}
}
