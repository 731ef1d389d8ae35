package main

import (
	"slices"
	"testing"

	"github.com/heapguard/heapguard/deploy"
)

// The flags after -- are sorted: what every agent command reads goes to
// heapguard.conf, the mode command's own stay on its command line.
func TestAgentSetup(t *testing.T) {
	for _, tc := range []struct {
		mode          deploy.Mode
		args          []string
		config, args2 []string
	}{
		{deploy.ModeCron, []string{"--power-off-allow", "DSVA*", "--power-off-allow=Trend Micro*", "--dry-run", "-crit-below", "5"},
			[]string{"power-off-allow DSVA*", "power-off-allow Trend Micro*", "dry-run true", "crit-below 5"}, nil},
		{deploy.ModeDaemon, []string{"--interval", "30s", "--power-off-allow", "DSVA*"},
			[]string{"power-off-allow DSVA*"}, []string{"--interval=30s"}},
		{deploy.ModeInetd, []string{"--allow-remote", "--stale-after=20m"},
			nil, []string{"--allow-remote=true", "--stale-after=20m"}},
	} {
		config, args, err := agentSetup(tc.mode, tc.args)
		if err != nil || !slices.Equal(config, tc.config) || !slices.Equal(args, tc.args2) {
			t.Errorf("%s %q: config %q, args %q, %v; want %q and %q", tc.mode, tc.args, config, args, err, tc.config, tc.args2)
		}
	}
	// A trailing "--" ends the flags (FuzzDeployConfig found a panic).
	if c, _, err := agentSetup(deploy.ModeCron, []string{"--dry-run", "--"}); err != nil || len(c) != 1 {
		t.Errorf("--dry-run --: config %q, %v", c, err)
	}
	for _, bad := range [][]string{
		{"--power-off-allow", " DSVA*"}, // heapguard.conf trims blanks
		{"--power-off-allow", "a\"b"},   // and quotes
		{"--power-off-allow", "=b"},     // and reads "name = value" (FuzzDeployConfig)
		{"--replace"},                   // deploy's own
		{"--interval", "1m"},            // check has no --interval
		{"--dry-run", "stray"},          // no arguments
	} {
		if c, a, err := agentSetup(deploy.ModeCron, bad); err == nil {
			t.Errorf("%q: config %q, args %q, want an error", bad, c, a)
		}
	}
}
