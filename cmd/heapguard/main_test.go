package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/heapguard/heapguard/esxsim"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestMain lets the test binary be heapguard itself (argv[0] "heapguard")
// and the simulated host's tools, so tests run real processes with
// nothing prebuilt.
func TestMain(m *testing.M) {
	switch {
	case filepath.Base(os.Args[0]) == "heapguard":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	case esxsim.IsMultiCall():
		os.Exit(esxsim.Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
