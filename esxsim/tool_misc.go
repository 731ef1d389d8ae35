package esxsim

import (
	"fmt"
	"strconv"
	"strings"
)

// netStatsUsage: unverified (net-stats' own help was not captured).
const netStatsUsage = "Usage: net-stats [-l] [-i interval] [-t type] [-A]\n" +
	"  -l  list the ports of every portset\n"

func runNetStats(c *call) int {
	args := c.args()
	if len(args) != 1 || args[0] != "-l" {
		fmt.Fprint(c.stderr, netStatsUsage)
		return 1
	}
	st, ok := c.state()
	if !ok {
		return 1
	}
	fmt.Fprint(c.stdout, RenderNetStatsL(portsOf(st)))
	return 0
}

// vmwareUsage: unverified.
const vmwareUsage = "Usage: vmware [-v|-l|-vl]\n" +
	"  -v  print the version and build\n" +
	"  -l  print the release level\n"

func runVmware(c *call) int {
	args := c.args()
	showV, showL := false, false
	for _, a := range args {
		if !strings.HasPrefix(a, "-") || len(a) < 2 {
			showV, showL = false, false
			break
		}
		ok := true
		for _, r := range a[1:] {
			switch r {
			case 'v':
				showV = true
			case 'l':
				showL = true
			default:
				ok = false
			}
		}
		if !ok {
			showV, showL = false, false
			break
		}
	}
	if !showV && !showL {
		fmt.Fprint(c.stderr, vmwareUsage)
		return 1
	}
	st, ok := c.state()
	if !ok {
		return 1
	}
	fmt.Fprint(c.stdout, RenderVmware(st.Ver(), showV, showL))
	return 0
}

// esxcli errors. unverified: esxcli's wording for these cases.
func esxcliUnknown(c *call, words []string) int {
	fmt.Fprintf(c.stderr, "Error: Unknown command or namespace %s\n", strings.Join(words, " "))
	return 1
}

func runEsxcli(c *call) int {
	var words, opts []string
	for i, a := range c.args() {
		if strings.HasPrefix(a, "-") {
			opts = c.args()[i:]
			break
		}
		words = append(words, a)
	}
	opt := func(short, long string) (string, bool, bool) {
		for i := 0; i < len(opts); i++ {
			o := opts[i]
			if v, ok := strings.CutPrefix(o, long+"="); ok {
				return v, true, true
			}
			if o == short || o == long {
				if i+1 < len(opts) {
					return opts[i+1], true, true
				}
				return "", true, false
			}
		}
		return "", false, true
	}
	st, ok := c.state()
	if !ok {
		return 1
	}
	v := st.Ver()
	switch strings.Join(words, " ") {
	case "system version get":
		if len(opts) > 0 {
			return esxcliBadOpt(c, opts[0])
		}
		fmt.Fprint(c.stdout, RenderVersionGet(v))
		return 0
	case "network vm list":
		if len(opts) > 0 {
			return esxcliBadOpt(c, opts[0])
		}
		fmt.Fprint(c.stdout, RenderEsxcliVMList(v, st.VMs))
		return 0
	case "network vm port list":
		w, given, hasVal := opt("-w", "--world-id")
		if !given || !hasVal {
			fmt.Fprint(c.stderr, "Error: Missing required parameter -w|--world-id\n\n"+
				"Usage: esxcli network vm port list [cmd options]\n\n"+
				"Description: \n  list                  List of active ports for a given VM.\n\n"+
				"Cmd options:\n  -w|--world-id=<long>  The World ID of the VM to list ports for. (required)\n")
			return 1
		}
		id, err := strconv.Atoi(w)
		for _, vm := range st.VMs {
			if err == nil && vm.PoweredOn && vm.WorldID == id {
				fmt.Fprint(c.stdout, RenderEsxcliPortList(v, vm, st.Scenario.Ports))
				return 0
			}
		}
		fmt.Fprintf(c.stderr, "Error: Invalid World ID %s\n", w)
		return 1
	case "system settings kernel list":
		name, given, hasVal := opt("-o", "--option")
		if given && !hasVal {
			return esxcliBadOpt(c, opts[len(opts)-1])
		}
		if given && !strings.EqualFold(name, "execInstalledOnly") {
			// A setting esxsim does not model: esxcli prints an empty table.
			fmt.Fprint(c.stdout, esxcliTable([]string{"Name", "Type", "Configured", "Runtime", "Default", "Description"}, make([]bool, 6), nil, v.EsxcliPadded))
			return 0
		}
		fmt.Fprint(c.stdout, RenderKernelSetting(v, st.Scenario.ExecInstalledOnly))
		return 0
	}
	if len(words) > 0 && words[0] == "software" {
		return runSoftware(c, st, words[1:], opt, opts)
	}
	return esxcliUnknown(c, words)
}

func esxcliBadOpt(c *call, o string) int {
	fmt.Fprintf(c.stderr, "Error: Invalid option %s\n", o)
	return 1
}
