package vib

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heapguard/heapguard/internal/testtool"
)

// TestInitScript runs the init script under busybox sh (ESXi's shell) with
// a stand-in binary that records its arguments and sleeps.
func TestInitScript(t *testing.T) {
	bb := testtool.Need(t, "busybox-static", "busybox")
	dir := t.TempDir()
	script := filepath.Join(dir, "heapguard.init")
	if err := os.WriteFile(script, []byte(InitScript), 0o755); err != nil {
		t.Fatal(err)
	}
	argsFile := filepath.Join(dir, "args")
	fake := filepath.Join(dir, "heapguard")
	if err := os.WriteFile(fake, []byte("#!"+bb+" sh\necho \"$@\" > "+argsFile+"\nexec "+bb+" sleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	pidfile := filepath.Join(dir, "heapguard.pid")
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidfile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	sh := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(bb, append([]string{"sh", script}, args...)...)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HEAPGUARD_BIN=" + fake, "HEAPGUARD_PIDFILE=" + pidfile}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		return string(out), 0
	}

	// Nothing starts without a configuration file.
	if out, code := sh("start"); code != 0 || !strings.Contains(out, "nothing started") {
		t.Errorf("start without CONFIG: %d %q", code, out)
	}
	if out, code := sh("start", filepath.Join(dir, "missing.conf")); code != 1 || !strings.Contains(out, "no configuration file") {
		t.Errorf("start with a missing CONFIG: %d %q", code, out)
	}
	if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
		t.Fatalf("pid file after refusals: %v", err)
	}
	if out, code := sh("status"); code != 3 || !strings.Contains(out, "not running") {
		t.Errorf("status before start: %d %q", code, out)
	}

	conf := filepath.Join(dir, "heapguard.conf")
	os.WriteFile(conf, []byte("dry-run true\n"), 0o644)
	if out, code := sh("start", conf); code != 0 || !strings.Contains(out, "started (pid ") {
		t.Fatalf("start: %d %q", code, out)
	}
	if out, code := sh("status"); code != 0 || !strings.Contains(out, "running (pid ") {
		t.Errorf("status after start: %d %q", code, out)
	}
	if out, code := sh("start", conf); code != 0 || !strings.Contains(out, "already running") {
		t.Errorf("second start: %d %q", code, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(argsFile)
		if got := strings.TrimSpace(string(b)); got == "run --config "+conf {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the binary got %q, want run --config %s", got, conf)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, _ := os.ReadFile(pidfile)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %q: %v", b, err)
	}
	if out, code := sh("stop"); code != 0 || !strings.Contains(out, "stopping") {
		t.Errorf("stop: %d %q", code, out)
	}
	// The process ends (gone, or a zombie nobody reaped yet).
	for {
		st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil || strings.Contains(string(st), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still runs after stop: %s", pid, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if out, code := sh("status"); code != 3 {
		t.Errorf("status after stop: %d %q", code, out)
	}
	if out, code := sh("bogus"); code != 1 || !strings.Contains(out, "usage") {
		t.Errorf("unknown verb: %d %q", code, out)
	}
}
