package agent

import (
	"flag"
	"os"
	"testing"

	"github.com/heapguard/heapguard/esxsim"
)

// update rewrites golden files and story outputs:
//
//	go test ./agent -run 'TestPolicyStories|TestPlanGolden' -update
var update = flag.Bool("update", false, "rewrite golden files")

// TestMain lets this test binary stand in for the simulated host's tools
// (vsish, vim-cmd, the init scripts, …): esxsim hard-links them to it, so
// the acceptance tests exec real processes with no prebuilt binary.
func TestMain(m *testing.M) {
	if esxsim.IsMultiCall() {
		os.Exit(esxsim.Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
