package esxsim

import (
	"os"
	"testing"
)

// TestMain lets the test binary stand in for the multi-call binary: a
// host's bin/vim-cmd, init.d/vpxa, … are hard links to it.
func TestMain(m *testing.M) {
	if IsMultiCall() {
		os.Exit(Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
