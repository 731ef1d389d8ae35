package esxsim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/heapguard/heapguard/host"
)

// call is one invocation of a simulated tool.
type call struct {
	root   string
	name   string   // called-as name: "vim-cmd", "vpxa", "vmware-vpxa", …
	argv   []string // full argv, argv[0] as called
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// loaded is the state read when the call began, for its first
	// read-only look (one parse per call).
	loaded *State
}

func (c *call) args() []string { return c.argv[1:] }

type toolFunc func(c *call) int

// tools maps the called-as name to its implementation. "vpxa" and
// "hostd" are /etc/init.d/*, "vmware-vpxa" is 4.x's /etc/opt/init.d script.
var tools = map[string]toolFunc{
	"vsish":         runVsish,
	"vim-cmd":       runVimCmd,
	"net-stats":     runNetStats,
	"esxcfg-vmknic": runVmknic,
	"esxcli":        runEsxcli,
	"vmware":        runVmware,
	"vpxa":          runInitScript,
	"hostd":         runInitScript,
	"vmware-vpxa":   runInitScript,
	// /bin/busybox and /usr/lib/vmware/busybox/bin/busybox (services.go).
	"busybox":        runBusybox,
	"auto-backup.sh": runAutoBackup,
}

// IsMultiCall reports whether this process was started as one of the
// simulated tools (its argv[0] names vsish, vim-cmd, …), so a TestMain can
// hand over to Main.
func IsMultiCall() bool { return IsToolName(os.Args[0]) }

// IsToolName reports whether argv0's base name is a simulated tool.
func IsToolName(argv0 string) bool {
	_, ok := tools[filepath.Base(argv0)]
	return ok
}

// faultCommand is the name a Fault's Command matches: the init scripts
// match by agent ("vpxa" also for 4.x's vmware-vpxa).
func faultCommand(name string) string {
	if name == "vmware-vpxa" {
		return "vpxa"
	}
	return name
}

// findRoot locates the simulated root from the tool's own path:
// <root>/bin/x, <root>/etc/init.d/x or <root>/etc/opt/init.d/x.
// $ESXSIM_ROOT overrides it.
func findRoot(argv0 string) (string, error) {
	if r := os.Getenv("ESXSIM_ROOT"); r != "" {
		return r, nil
	}
	var cands []string
	if strings.Contains(argv0, "/") {
		cands = append(cands, argv0)
	} else if p, err := exec.LookPath(argv0); err == nil {
		cands = append(cands, p)
	}
	if exe, err := os.Executable(); err == nil {
		cands = append(cands, exe)
	}
	for _, c := range cands {
		abs, err := filepath.Abs(c)
		if err != nil {
			continue
		}
		dir := filepath.ToSlash(filepath.Dir(abs)) + "/"
		for _, suffix := range []string{"/bin/", "/etc/init.d/", "/etc/opt/init.d/", "/sbin/", path.Dir(VmwareBusyboxPath) + "/"} {
			if !strings.HasSuffix(dir, suffix) {
				continue
			}
			root := strings.TrimSuffix(dir, suffix)
			if root == "" {
				root = "/"
			}
			if _, err := os.Stat(host.Path(root, StatePath)); err == nil {
				return root, nil
			}
		}
	}
	return "", fmt.Errorf("%w: cannot tell the root from %q (set ESXSIM_ROOT)", ErrNoState, argv0)
}

// runTool runs a simulated tool, applying the scenario's faults first.
func runTool(argv []string, stdin io.Reader, stdout, stderr io.Writer) int {
	name := filepath.Base(argv[0])
	fn := tools[name]
	root, err := findRoot(argv[0])
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 127
	}
	c := &call{root: root, name: name, argv: argv, stdin: stdin, stdout: stdout, stderr: stderr}
	if c.loaded, err = LoadState(root); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	f, err := takeFault(root, c.loaded, faultCommand(name), argv[1:])
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	if f == nil {
		return fn(c)
	}
	if f.Truncate > 0 {
		var buf bytes.Buffer
		c.stdout = &buf
		code := fn(c)
		out := buf.Bytes()
		stdout.Write(out[:min(len(out), f.Truncate)])
		return code
	}
	if mut, target := isMutation(name, argv[1:]); mut {
		res := fmt.Sprintf("fault: exit %d", f.ExitCode)
		if f.Hang {
			res = "fault: hang"
		}
		logAction(c, target, f.ExitCode, res)
	}
	io.WriteString(stdout, f.Stdout)
	io.WriteString(stderr, f.Stderr)
	if f.Hang {
		d := f.HangFor.D()
		if d <= 0 {
			d = time.Hour
		}
		time.Sleep(d) // killed by the caller's timeout long before, normally
	}
	return f.ExitCode
}

// takeFault finds the first fault matching the call and counts the hit.
func takeFault(root string, st *State, cmd string, args []string) (*Fault, error) {
	if !slices.ContainsFunc(st.Scenario.Faults, func(f Fault) bool { return faultMatches(f, cmd, args) }) {
		return nil, nil
	}
	var hit *Fault
	err := update(root, func(st *State) error {
		for len(st.FaultHits) < len(st.Scenario.Faults) {
			st.FaultHits = append(st.FaultHits, 0)
		}
		for i, f := range st.Scenario.Faults {
			if !faultMatches(f, cmd, args) || (f.Times > 0 && st.FaultHits[i] >= f.Times) {
				continue
			}
			st.FaultHits[i]++
			hit = &f
			return nil
		}
		return nil
	})
	return hit, err
}

func faultMatches(f Fault, cmd string, args []string) bool {
	return f.Command == cmd && len(args) >= len(f.ArgsPrefix) && slices.Equal(args[:len(f.ArgsPrefix)], f.ArgsPrefix)
}

// isMutation tells which calls change the host (and are logged as Actions).
func isMutation(name string, args []string) (bool, string) {
	switch name {
	case "vim-cmd":
		if len(args) >= 1 && slices.Contains([]string{"vmsvc/power.on", "vmsvc/power.off", "vmsvc/power.shutdown", "vmsvc/unregister"}, args[0]) {
			t := ""
			if len(args) >= 2 {
				t = args[1]
			}
			return true, t
		}
	case "esxcli":
		if len(args) >= 3 && args[0] == "software" && args[1] == "vib" && (args[2] == "install" || args[2] == "remove") {
			return true, "vib"
		}
	case "vpxa", "hostd", "vmware-vpxa":
		if len(args) == 1 && slices.Contains([]string{"start", "stop", "restart"}, args[0]) {
			return true, agentOf(name)
		}
	}
	return false, ""
}

func agentOf(name string) string {
	if name == "hostd" {
		return "hostd"
	}
	return "vpxa"
}

// logAction appends an Action with the state's current simulated time.
func logAction(c *call, target string, exit int, result string) {
	var now time.Time
	if err := view(c.root, func(st *State) error { now = st.Now; return nil }); err != nil {
		fmt.Fprintf(c.stderr, "%s: log action: %v\n", c.name, err)
		return
	}
	if err := appendAction(c.root, Action{Time: now, Tool: c.name, Argv: c.argv, Target: target, Exit: exit, Result: result}); err != nil {
		fmt.Fprintf(c.stderr, "%s: %v\n", c.name, err)
	}
}

// mutate runs fn on the state under the exclusive lock, with a sim for
// the log lines it causes, and appends the Action in the same critical
// section, so `run` and other commands see the change and its record
// together.
func mutate(c *call, target string, fn func(st *State, s *sim) (exit int, result string)) int {
	exit := 0
	err := update(c.root, func(st *State) error {
		s, err := newSim(c.root, st)
		if err != nil {
			return err
		}
		var result string
		exit, result = fn(st, s)
		if err := s.flush(); err != nil {
			return err
		}
		return appendAction(c.root, Action{Time: st.Now, Tool: c.name, Argv: c.argv, Target: target, Exit: exit, Result: result})
	})
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: %v\n", c.name, err)
		return 1
	}
	return exit
}

// state is the state for a read-only tool (the one read when the call
// began, the first time); it prints the error itself.
func (c *call) state() (*State, bool) {
	if st := c.loaded; st != nil {
		c.loaded = nil
		return st, true
	}
	st, err := LoadState(c.root)
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: %v\n", c.name, err)
		return nil, false
	}
	return st, true
}

var errUsage = errors.New("usage")
