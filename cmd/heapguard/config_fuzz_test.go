package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heapguard/heapguard/deploy"
)

// FuzzApplyConfig reads heapguard.conf with any content: a flag given on
// the command line keeps its value whatever the file says, and an error
// names the file (and the line, for a bad line).
func FuzzApplyConfig(f *testing.F) {
	f.Add("warn-below 15\npower-off-allow DSVA*\n")
	f.Add("--crit-below = \"5\"\n# x\n")
	f.Add("config x\n")
	f.Add("# Written by heapguard deploy from the flags after --; the next deploy rewrites it.\npower-off-allow DSVA*\npower-off-allow web 01 (prod)\nmax-power-offs 2\nsyslog udp://10.0.0.1:514\n")
	f.Add("warn-below 99\nwarn-below\n")
	f.Add(strings.Repeat("x", 70000) + "\n")
	p := filepath.Join(f.TempDir(), "heapguard.conf")
	f.Fuzz(func(t *testing.T, content string) {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		fs := flag.NewFlagSet("check", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		addAgentFlags(fs, true)
		if err := fs.Parse([]string{"--warn-below=33", "--power-off-allow=given*"}); err != nil {
			t.Fatal(err)
		}
		err := applyConfig(fs, p)
		if err != nil && !strings.HasPrefix(err.Error(), "config "+p+":") {
			t.Errorf("error without the file and line: %v", err)
		}
		if got := fs.Lookup("warn-below").Value.String(); got != "33" {
			t.Errorf("warn-below given as 33 on the command line is %q after the file", got)
		}
		if got := fs.Lookup("power-off-allow").Value.String(); got != "given*" {
			t.Errorf("power-off-allow given on the command line is %q after the file", got)
		}
	})
}

// FuzzDeployConfig: the flags given to `heapguard deploy ... -- FLAGS`
// become heapguard.conf lines (agentSetup), which the command on the host
// reads back (applyConfig). Whatever the flags, the agent settings read
// from the file are those the flags set on a command line.
func FuzzDeployConfig(f *testing.F) {
	f.Add("--power-off-allow", "DSVA*", "--max-power-offs=2", "--dry-run")
	f.Add("--warn-below", "15", "--power-off-allow", "web 01 (prod); $(x)")
	f.Add("--syslog", "udp://10.0.0.1:514", "--json", "--state-dir=/vmfs/volumes/ds/hg")
	f.Add("--power-off-allow", "a=b", "--crit-below", "5")
	f.Fuzz(func(t *testing.T, a, b, c, d string) {
		args := []string{a, b, c, d}
		config, _, err := agentSetup(deploy.ModeCron, args)
		if err != nil {
			return
		}
		direct := flag.NewFlagSet("check", flag.ContinueOnError)
		direct.SetOutput(io.Discard)
		commands["check"].flags(direct)
		if err := direct.Parse(args); err != nil {
			t.Fatalf("agentSetup accepted %q, the command line does not: %v", args, err)
		}
		p := filepath.Join(t.TempDir(), deploy.ConfigName)
		text := "# Written by heapguard deploy\n" + strings.Join(config, "\n") + "\n"
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		fromFile := flag.NewFlagSet("check", flag.ContinueOnError)
		fromFile.SetOutput(io.Discard)
		commands["check"].flags(fromFile)
		if err := applyConfig(fromFile, p); err != nil {
			t.Fatalf("flags %q gave a heapguard.conf the host refuses: %v\n%s", args, err, text)
		}
		common := flag.NewFlagSet("agent", flag.ContinueOnError)
		addAgentFlags(common, false)
		common.VisitAll(func(fl *flag.Flag) {
			if got, want := fromFile.Lookup(fl.Name).Value.String(), direct.Lookup(fl.Name).Value.String(); got != want {
				t.Errorf("flags %q: %s is %q from heapguard.conf, %q from the command line\n%s", args, fl.Name, got, want, text)
			}
		})
	})
}
