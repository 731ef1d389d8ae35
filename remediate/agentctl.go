package remediate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
)

// Agent names an ActRestartAgent target may hold.
const (
	AgentVpxa  = "vpxa"
	AgentHostd = "hostd"
)

// DefaultAgentCommandTimeout bounds one init script call: a restart waits
// for the agent's watchdog to stop it, which can take longer than a
// vim-cmd call.
const DefaultAgentCommandTimeout = 90 * time.Second

// initScript returns the agent's init script from the layout.
func initScript(l host.Layout, agent string) (string, error) {
	var p string
	switch agent {
	case AgentVpxa:
		p = l.VpxaInit
	case AgentHostd:
		p = l.HostdInit
	default:
		return "", fmt.Errorf("unknown agent %q: want %q or %q", agent, AgentVpxa, AgentHostd)
	}
	if p == "" {
		return "", fmt.Errorf("no init script for %s on this host", agent)
	}
	return p, nil
}

// stopStartDirs are init script folders whose scripts are driven with
// "stop" then "start" instead of "restart": ESX(i) 4.x's /etc/opt/init.d,
// where the incident restarted vpxa that way (samples
// init-opt-vmware-vpxa-stop-esxi4.txt and -start-esxi4.txt); whether
// those scripts know "restart" is not verified.
var stopStartDirs = []string{"/etc/opt/init.d/"}

// restartArgvs returns the commands that restart the agent of script.
func restartArgvs(script string) [][]string {
	for _, d := range stopStartDirs {
		if strings.HasPrefix(script, d) {
			return [][]string{{script, "stop"}, {script, "start"}}
		}
	}
	return [][]string{{script, "restart"}}
}

func statusArgv(script string) []string { return []string{script, "status"} }

// verifyAgent is the agent an ActVerify checks: its Target when that names
// an agent, else vpxa, the agent whose loss heapguard exists to prevent.
func verifyAgent(a policy.Action) string {
	if a.Target == AgentHostd {
		return AgentHostd
	}
	return AgentVpxa
}

// restartAgent restarts the agent through its init script, then waits
// until "<script> status" exits 0, for up to AgentWait of host time.
func (s *session) restartAgent(ctx context.Context, a policy.Action) error {
	script, err := initScript(s.live.Layout, a.Target)
	if err != nil {
		return fmt.Errorf("restart agent: %w", err)
	}
	var runErr error
	for _, argv := range restartArgvs(script) {
		// A "stop" of an agent that already crashed may fail; "start" must still run.
		if _, err := s.run(ctx, orDefault(s.live.AgentTimeout, DefaultAgentCommandTimeout), argv...); err != nil {
			runErr = err
		}
	}
	if err := s.waitRunning(ctx, a.Target, script); err != nil {
		if runErr != nil {
			return fmt.Errorf("restart %s: %w; %w", a.Target, runErr, err)
		}
		return fmt.Errorf("restart %s: %w", a.Target, err)
	}
	if runErr != nil {
		s.note("%s runs although a restart command failed", a.Target)
	}
	return nil
}

// waitRunning polls "<script> status" until it exits 0 or AgentWait of
// host time has passed.
func (s *session) waitRunning(ctx context.Context, agent, script string) error {
	wait := orDefault(s.live.AgentWait, DefaultAgentWait)
	poll := orDefault(s.live.PollInterval, DefaultPollInterval)
	deadline := s.clock.Now().Add(wait)
	for i := 0; ; i++ {
		_, err := s.run(ctx, 0, statusArgv(script)...)
		if err == nil {
			return nil
		}
		var ce *host.CommandError
		if !errors.As(err, &ce) {
			return fmt.Errorf("check %s status: %w", agent, err)
		}
		if !s.clock.Now().Before(deadline) || i >= maxPolls(wait, poll) {
			return fmt.Errorf("%s not running %s after its restart: %w", agent, wait, err)
		}
		if serr := s.clock.Sleep(ctx, poll); serr != nil {
			return fmt.Errorf("wait for %s: %w (last status: %w)", agent, serr, err)
		}
	}
}

// maxPolls bounds a wait by the number of polls it should take as well as
// by the clock: a host clock that stands still or steps back (NTP, a
// paused simulation) must not turn a 2-minute wait into an endless one.
func maxPolls(wait, poll time.Duration) int {
	if poll <= 0 {
		return 1
	}
	return int(wait/poll) + 1
}
