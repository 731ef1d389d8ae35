package main

import (
	"slices"
	"strings"
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
	for _, tc := range []struct {
		mode deploy.Mode
		args []string
		want string
	}{
		{deploy.ModeCron, []string{"--power-off-allow", " DSVA*"}, "cannot keep"}, // heapguard.conf trims blanks
		{deploy.ModeCron, []string{"--power-off-allow", `a"b`}, "cannot keep"},    // and quotes
		{deploy.ModeCron, []string{"--power-off-allow", "=b"}, "cannot keep"},     // and reads "name = value"
		{deploy.ModeDaemon, []string{"--replace"}, "deploy's to set"},
		{deploy.ModeInetd, []string{"--inetd"}, "deploy's to set"},
		{deploy.ModeCron, []string{"--config", "x"}, "deploy's to set"},
		{deploy.ModeCron, []string{"--interval", "1m"}, "flag provided but not defined"}, // check has no --interval
		{deploy.ModeCron, []string{"--dry-run", "stray"}, "takes flags only"},
		{deploy.ModeDaemon, []string{"--interval", "30s", "--"}, "takes flags only"},
		{deploy.ModeDaemon, []string{"--"}, "takes flags only"},
		{deploy.ModeNone, []string{"--dry-run"}, "runs nothing"},
	} {
		c, a, err := agentSetup(tc.mode, tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q: config %q, args %q, error %v; want one saying %q", tc.mode, tc.args, c, a, err, tc.want)
		}
	}
}
