package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestBadDurations: an --interval of zero or less, and negative waits or
// timeouts, are refused before anything starts, naming the flag and what
// it wants.
func TestBadDurations(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--interval", "-5s"}, `--interval -5s: want a positive duration like 10s`},
		{[]string{"run", "--interval", "0"}, `--interval 0s: want a positive duration like 10s`},
		{[]string{"run", "--for", "-1m"}, `--for -1m0s: want 0 or a positive duration`},
		{[]string{"check", "--shutdown-timeout", "-3s"}, `--shutdown-timeout -3s: want 0 or a positive duration`},
		{[]string{"check", "--command-timeout", "-1s"}, `--command-timeout -1s: want 0 or a positive duration`},
		{[]string{"check", "--flap-window", "-5m"}, `--flap-window -5m0s: want 0 or a positive duration`},
		{[]string{"check", "--predict", "-1h"}, `--predict -1h0m0s: want 0 (off) or more`},
	} {
		state := filepath.Join(t.TempDir(), "state")
		args := append(tc.args, "--root", t.TempDir(), "--state-dir", state)
		// Accepted, run would go on polling: the deadline ends it.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var errb strings.Builder
		code := run(ctx, args, strings.NewReader(""), io.Discard, &errb)
		cancel()
		stderr := errb.String()
		if code != exitUnknown || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want 3 and %q", tc.args, code, stderr, tc.want)
		}
		if _, err := os.Stat(state); err == nil {
			t.Errorf("%v: the state folder was created", tc.args)
		}
	}
}

// TestStrayArgument: a command that takes no arguments names the stray one
// before its usage, and exits 3 without running. Every command says
// whether it takes arguments.
func TestStrayArgument(t *testing.T) {
	takesArgs := map[string]bool{"report": true, "deploy": true}
	for name, c := range commands {
		if !c.noArgs {
			if !takesArgs[name] {
				t.Errorf("command %s takes arguments? set noArgs, or add it to takesArgs here", name)
			}
			continue
		}
		cases := [][]string{{name, "foo"}, {name, "--", "--help"}}
		if fs, _ := c.flagSet(io.Discard); fs.Lookup("state-dir") != nil {
			cases = append(cases, []string{name, "--state-dir", t.TempDir(), "foo", "bar"})
		}
		for _, args := range cases {
			code, out, stderr := runCLI(t, args...)
			stray := args[len(args)-1]
			if args[len(args)-1] == "bar" {
				stray = "foo"
			}
			want := "heapguard " + name + ": unexpected argument \"" + stray + "\"\nUsage: heapguard " + name + " "
			if code != exitUnknown || out != "" || !strings.HasPrefix(stderr, want) {
				t.Errorf("%q: exit %d, stdout %q, stderr %.120q; want 3, nothing on stdout, stderr starting %q", args, code, out, stderr, want)
			}
		}
	}
}

// TestFlagValueForms: a flag value that does not parse is named with the
// form it should have (not the flag package's "parse error"); usage still
// names each flag's type.
func TestFlagValueForms(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--interval", "5"}, `heapguard run: invalid value "5" for flag -interval: want a duration like 10s, 5m or 1h30m`},
		{[]string{"check", "--warn-below", "low"}, `heapguard check: invalid value "low" for flag -warn-below: want a number like 12.5`},
		{[]string{"check", "--max-power-offs", "99999999999999999999"}, `heapguard check: invalid value "99999999999999999999" for flag -max-power-offs: out of range: want a whole number like 3`},
		{[]string{"check", "--dry-run=perhaps"}, `heapguard check: invalid boolean value "perhaps" for -dry-run: want true or false`},
		{[]string{"report", "--year", "twelve"}, `heapguard report: invalid value "twelve" for flag -year: want a whole number like 3`},
		{[]string{"run", "--log-level", "verbose"}, `heapguard run: invalid value "verbose" for flag -log-level: want debug, info, warn or error`},
		{[]string{"check", "--bogus"}, `heapguard check: flag provided but not defined: -bogus`},
	} {
		code, out, stderr := runCLI(t, tc.args...)
		if code != exitUnknown || out != "" || !strings.HasPrefix(stderr, tc.want+"\nUsage: heapguard ") {
			t.Errorf("%q: exit %d, stdout %q, stderr %.200q; want 3 and stderr starting %q", tc.args, code, out, stderr, tc.want)
		}
		if strings.Contains(stderr, "parse error") || !strings.Contains(stderr, "  -year int\n") && !strings.Contains(stderr, "  -year N\n") {
			t.Errorf("%q: usage lost the flags' types or says parse error:\n%s", tc.args, stderr)
		}
	}
	// Boolean flags still need no value.
	if code, _, stderr := runCLI(t, "report", "--json", incidentLog, "--year", "2012"); code != exitCritical {
		t.Errorf("report --json: exit %d, stderr %q", code, stderr)
	}
}

// TestVersionJSON: version --json prints the documented object (no more,
// no less); version alone keeps its line; mistakes exit 3.
func TestVersionJSON(t *testing.T) {
	code, out, stderr := runCLI(t, "version", "--json")
	var v struct {
		Version   string `json:"version"`
		Commit    string `json:"commit"`
		GoVersion string `json:"go_version"`
		OS        string `json:"os"`
		Arch      string `json:"arch"`
		Runtime   string `json:"runtime"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil || code != exitOK || stderr != "" {
		t.Fatalf("version --json: exit %d, %v, stdout %q, stderr %q", code, err, out, stderr)
	}
	// The test binary is built without tools/rtpatch.
	if v.Version != version || v.GoVersion != runtime.Version() || v.OS != runtime.GOOS || v.Arch != runtime.GOARCH || v.Runtime != "stock" {
		t.Errorf("version --json = %+v", v)
	}
	if code, out, _ := runCLI(t, "version"); code != exitOK || !strings.HasPrefix(out, "heapguard "+version+" (commit ") {
		t.Errorf("version: exit %d, %q", code, out)
	}
	for _, args := range [][]string{{"version", "--yaml"}, {"version", "foo"}} {
		if code, out, stderr := runCLI(t, args...); code != exitUnknown || out != "" || !strings.Contains(stderr, "Usage: heapguard version [--json]") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, stderr)
		}
	}
}
