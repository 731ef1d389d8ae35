// Package scripts_test checks the shell scripts' own behaviour with stand-in
// binaries (the scripts themselves run the real ones from make).
package scripts_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// stub writes an executable shell script.
func stub(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/usr/bin/env bash\nset -eu\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDemoCleansUp: make demo removes its folders when it ends, keeps them
// with KEEP=1, and keeps them (saying where) when it fails. heapguard and
// esxsim are stand-ins that lay out just what the script reads.
func TestDemoCleansUp(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	bin := t.TempDir()
	esxsim := stub(t, bin, "esxsim", `
case $1 in
init) mkdir -p "$3/var/log" && echo "action" >"$3/var/log/esxsim-actions.log" ;;
*) echo "esxsim $1" ;;
esac
`)
	heapguard := stub(t, bin, "heapguard", `
if [ "$1" = run ]; then
	state=$5
	mkdir -p "$state"
	echo '{"action":"power_off"}' >>"$state/journal.jsonl"
	case " $* " in *" --dry-run "*) ;; *) exit "${FAIL_LIVE:-0}" ;; esac
fi
echo "heapguard $1"
`)
	for _, tc := range []struct {
		name     string
		env      []string
		wantExit int
		kept     bool
		say      string // on stdout or stderr
	}{
		{"default", nil, 0, false, "is removed now; make demo KEEP=1 keeps it"},
		{"KEEP=1", []string{"KEEP=1"}, 0, true, "Poke at it yourself (KEEP=1: kept"},
		{"failed", []string{"FAIL_LIVE=2"}, 2, true, "demo failed (exit 2): its folders are kept for a look: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			cmd := exec.Command("bash", "demo.sh")
			cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "HEAPGUARD="+heapguard, "ESXSIM="+esxsim, "KEEP=")
			cmd.Env = append(cmd.Env, tc.env...)
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			left, _ := filepath.Glob(filepath.Join(tmp, "heapguard-demo.*"))
			if code != tc.wantExit || (len(left) == 1) != tc.kept || len(left) > 1 || !strings.Contains(string(out), tc.say) {
				t.Errorf("exit %d (want %d), folders left %q (want kept %v), output:\n%s\nwant it to say %q", code, tc.wantExit, left, tc.kept, out, tc.say)
			}
			// While it runs it shows where the journal is.
			if !strings.Contains(string(out), filepath.Join(tmp, "heapguard-demo.")) || !strings.Contains(string(out), "/state/journal.jsonl") {
				t.Errorf("the output does not say where the host and journal are:\n%s", out)
			}
		})
	}
}
