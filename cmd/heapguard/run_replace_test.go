package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/heapguard/heapguard/remediate"
)

// A second daemon is refused while one runs (so the boot script may start
// it again without harm); `run --replace` stops the one running (SIGTERM:
// it exits cleanly) and takes its place, as an upgrade does.
func TestRunReplace(t *testing.T) {
	bin := heapguardBin(t)
	h := simHost(t, "seed-incident")
	state := t.TempDir()
	start := func(extra ...string) (*exec.Cmd, *bytes.Buffer) {
		var stderr bytes.Buffer
		cmd := exec.Command(bin, append([]string{"run", "--root", h.Root(), "--state-dir", state, "--interval", "1h"}, extra...)...)
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd, &stderr
	}
	hostDir := h.Path(remediate.HostDir)
	waitHolder := func(pid int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			lh, err := remediate.PeekLock(hostDir)
			if err == nil && lh.Held && lh.PID == pid {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("pid %d does not hold the host lock after 20s: %+v %v", pid, lh, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	first, _ := start()
	waitHolder(first.Process.Pid)

	second, stderr := start()
	err := second.Wait()
	if code := exitCode(err); code != exitUnknown || !strings.Contains(stderr.String(), "refusing to start") {
		t.Fatalf("second daemon: exit %d, stderr %q; want %d and a refusal", code, stderr, exitUnknown)
	}

	third, _ := start("--replace")
	if err := first.Wait(); err != nil {
		t.Fatalf("the replaced daemon did not stop cleanly: %v", err)
	}
	waitHolder(third.Process.Pid)

	// heapguard stop ends it cleanly, and then finds none.
	for i, want := range []string{fmt.Sprintf("pid %d stopped", third.Process.Pid), "none running"} {
		out, err := exec.Command(bin, "stop", "--root", h.Root()).CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Fatalf("stop #%d: %v, %q; want %q", i+1, err, out, want)
		}
		if i == 0 {
			if err := third.Wait(); err != nil {
				t.Fatalf("the stopped daemon did not exit cleanly: %v", err)
			}
		}
	}
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
