package main

import (
	"runtime"
	"runtime/debug"
	"testing"
)

// TestDaemonRuntime: `heapguard run` gets one P and a GC goal of 25 %,
// unless GOMAXPROCS or GOGC say otherwise. It changes this process's
// runtime, so it restores it and does not run in parallel.
func TestDaemonRuntime(t *testing.T) {
	procs, gc := runtime.GOMAXPROCS(0), debug.SetGCPercent(100)
	t.Cleanup(func() { runtime.GOMAXPROCS(procs); debug.SetGCPercent(gc) })
	if runtime.NumCPU() < 2 {
		t.Skip("one CPU: GOMAXPROCS is 1 already")
	}

	runtime.GOMAXPROCS(2)
	daemonRuntime(func(k string) string { return map[string]string{"GOGC": "100", "GOMAXPROCS": "2"}[k] })
	if got, gotGC := runtime.GOMAXPROCS(0), debug.SetGCPercent(100); got != 2 || gotGC != 100 {
		t.Errorf("with GOGC=100 GOMAXPROCS=2 set: GOMAXPROCS %d, GOGC %d; want the environment's 2 and 100", got, gotGC)
	}

	daemonRuntime(func(string) string { return "" })
	if got, gotGC := runtime.GOMAXPROCS(0), debug.SetGCPercent(100); got != 1 || gotGC != 25 {
		t.Errorf("GOMAXPROCS %d, GOGC %d; want 1 and 25", got, gotGC)
	}
}
