package esxsim

import (
	"fmt"
	"slices"
	"strings"
)

// runInitScript answers /etc/init.d/vpxa, /etc/init.d/hostd and 4.x's
// /etc/opt/init.d/vmware-vpxa with start|stop|restart|status.
//
// Wording per version (InitStyle):
//   - 4.x: "Stopping vmware-vpxa:success", "Starting vmware-vpxa:success"
//     (init-opt-vmware-vpxa-{stop,start}-esxi4.txt);
//   - 5.x-7.x: restart prints init-vpxa.txt / init-hostd.txt byte for byte
//     (watchdog line, "stopped.", then "vpxa is running" or hostd's Begin
//     line and "hostd started.");
//   - 8.x/9.x: "vpxa stopped." / "vpxa started." (init-*-restart-esxi8/9.txt).
//
// unverified: status ("<agent> is running" exit 0, "<agent> is not
// running" exit 3, following the last line of init-vpxa.txt), start and
// stop on their own, stop of an agent that is down, and the usage line.
func runInitScript(c *call) int {
	agent := agentOf(c.name)
	args := c.args()
	st, ok := c.state()
	if !ok {
		return 1
	}
	v := st.Ver()
	script := v.VpxaInit()
	if agent == "hostd" {
		script = v.HostdInit()
	}
	style := v.Init
	if style == InitOpt4x && agent == "hostd" {
		style = InitWatchdog // ESXi 4.x's /etc/init.d/hostd
	}
	if len(args) != 1 || !slices.Contains([]string{"start", "stop", "restart", "status"}, args[0]) {
		fmt.Fprintf(c.stderr, "Usage: %s {start|stop|restart|status}\n", script)
		return 1
	}
	label := agent
	if style == InitOpt4x {
		label = "vmware-vpxa"
	}
	if args[0] == "status" {
		a := st.Agent(agent)
		if a != nil && a.Running {
			fmt.Fprintf(c.stdout, "%s is running\n", label)
			return 0
		}
		fmt.Fprintf(c.stdout, "%s is not running\n", label)
		return 3
	}
	return mutate(c, agent, func(st *State, s *sim) (int, string) {
		a := st.Agent(agent)
		if a == nil {
			fmt.Fprintf(c.stderr, "%s: no such agent\n", script)
			return 1, "no such agent"
		}
		var b strings.Builder
		stop := func() {
			switch style {
			case InitOpt4x:
				b.WriteString("Stopping vmware-vpxa:success\n")
			case InitWatchdog:
				if a.Watchdog != 0 {
					fmt.Fprintf(&b, "watchdog-%s: Terminating watchdog process with PID %d\n", agent, a.Watchdog)
				}
				fmt.Fprintf(&b, "%s stopped.\n", agent)
			default:
				fmt.Fprintf(&b, "%s stopped.\n", agent)
			}
			a.Running, a.PID, a.Watchdog, a.Failures = false, 0, 0, 0
		}
		start := func() {
			wasRunning := a.Running
			if !wasRunning {
				a.Watchdog = s.world()
				a.PID = a.Watchdog + 1 + s.r.IntN(40)
				a.Running, a.Failures = true, 0
				a.Restarts++
			}
			switch style {
			case InitOpt4x:
				b.WriteString("Starting vmware-vpxa:success\n")
			case InitWatchdog:
				if agent == "hostd" && !wasRunning {
					fmt.Fprintf(&b, "[%d] Begin 'hostd ++min=0,swap,group=hostd /etc/vmware/hostd/config.xml', min-uptime = 60, max-quick-failures = 1, max-total-failures = 1000000, bg_pid_file = ''\nhostd started.\n", a.Watchdog)
				} else {
					fmt.Fprintf(&b, "%s is running\n", agent)
				}
			default:
				fmt.Fprintf(&b, "%s started.\n", agent)
			}
		}
		switch args[0] {
		case "stop":
			stop()
		case "start":
			start()
		case "restart":
			stop()
			start()
		}
		fmt.Fprint(c.stdout, b.String())
		return 0, "ok"
	})
}
