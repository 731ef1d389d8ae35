package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProductionNeverImportsSimulator keeps the simulated host out of the
// shipped binary (tailscale's deptest idea): heapguard must never act on
// simulated truth by accident.
func TestProductionNeverImportsSimulator(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	bad := []string{
		"github.com/heapguard/heapguard/esxsim",
		"github.com/heapguard/heapguard/internal/loggen",
		"testing",
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps gave too little to judge: %q", deps)
	}
	for _, d := range deps {
		for _, b := range bad {
			if d == b || strings.HasPrefix(d, b+"/") {
				t.Errorf("cmd/heapguard depends on %s", d)
			}
		}
	}
}
