package esxsim

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/heapguard/heapguard/host"
)

func preset(t *testing.T, name string) Scenario {
	t.Helper()
	sc, err := Preset(name)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func mustCall(t *testing.T, h *Host, name string, args ...string) string {
	t.Helper()
	out, errOut, code := h.Call(name, args...)
	if code != 0 {
		t.Fatalf("%s %q: exit %d, stderr %q, stdout %q", name, args, code, errOut, out)
	}
	return out
}

func TestPowerOnMatchesSample(t *testing.T) {
	h := New(t, Incident())
	out := mustCall(t, h, "vim-cmd", "vmsvc/power.on", "11")
	if diff := cmp.Diff(sample(t, "vim-cmd-power-on.txt"), out); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	if !h.State().VM(11).PoweredOn {
		t.Error("vm 11 still off")
	}
	if got := mustCall(t, h, "vim-cmd", "vmsvc/power.getstate", "11"); got != "Retrieved runtime info\nPowered on\n" {
		t.Errorf("getstate %q", got)
	}
}

func TestGetStateMatchesSampleThroughTool(t *testing.T) {
	h := New(t, Incident())
	if diff := cmp.Diff(sample(t, "vim-cmd-power-getstate.txt"), mustCall(t, h, "vim-cmd", "vmsvc/power.getstate", "11")); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

func TestInitScriptsMatchSamples(t *testing.T) {
	t.Run("5.5 vpxa restart", func(t *testing.T) {
		h := New(t, Incident())
		h.Mutate(func(st *State) { st.Agent("vpxa").Watchdog = 177860 })
		if diff := cmp.Diff(sample(t, "init-vpxa.txt"), mustCall(t, h, "vpxa", "restart")); diff != "" {
			t.Errorf("(-want +got)\n%s", diff)
		}
	})
	t.Run("5.5 hostd restart", func(t *testing.T) {
		h := New(t, Incident())
		h.Mutate(func(st *State) { st.Agent("hostd").Watchdog = 5515 })
		got := mustCall(t, h, "hostd", "restart")
		// The new watchdog's PID in "[178454] Begin" is the host's own.
		want := strings.Replace(sample(t, "init-hostd.txt"), "178454", strconv.Itoa(h.State().Agent("hostd").Watchdog), 1)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-want +got)\n%s", diff)
		}
	})
	for _, c := range []struct{ scenario, version, tool, arg, file string }{
		{"old-esx41", "", "vmware-vpxa", "stop", "init-opt-vmware-vpxa-stop-esxi4.txt"},
		{"old-esx41", "", "vmware-vpxa", "start", "init-opt-vmware-vpxa-start-esxi4.txt"},
		{"esx80", "", "hostd", "restart", "init-hostd-restart-esxi8.txt"},
		{"seed-incident", "9.0", "hostd", "restart", "init-hostd-restart-esxi9.txt"},
		{"seed-incident", "9.0", "vpxa", "restart", "init-vpxa-restart-esxi9.txt"},
	} {
		t.Run(c.file, func(t *testing.T) {
			var opts []Option
			if c.version != "" {
				opts = append(opts, WithVersion(c.version))
			}
			h := New(t, preset(t, c.scenario), opts...)
			if diff := cmp.Diff(sample(t, c.file), mustCall(t, h, c.tool, c.arg)); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestInitScriptStatusFollowsAgent(t *testing.T) {
	h := New(t, Incident())
	if out, _, code := h.Call("vpxa", "status"); code != 0 || out != "vpxa is running\n" {
		t.Errorf("running: %q exit %d", out, code)
	}
	mustCall(t, h, "vpxa", "stop")
	if out, _, code := h.Call("vpxa", "status"); code != 3 || out != "vpxa is not running\n" {
		t.Errorf("stopped: %q exit %d", out, code)
	}
	mustCall(t, h, "vpxa", "start")
	if a := h.State().Agent("vpxa"); !a.Running || a.PID == 0 || a.Restarts != 1 {
		t.Errorf("after start: %+v", a)
	}
}

// The vsip sample is a shell loop over `vsish -e ls /system/heaps|grep
// vsip` and a grep of each heap's `vsish -e get …stats`; feeding the host
// the sample's heaps must give back the sample.
func TestVsishGetMatchesVsipSample(t *testing.T) {
	h := New(t, Incident(), WithVersion("6.5"))
	lowest := map[string]int{"vsip-attr": 100, "vsip-state": 100}
	h.Mutate(func(st *State) {
		st.Heaps = nil
		for _, x := range []struct {
			name, addr string
			alloc, max int64
		}{
			{"vsip-module", "0x430addd4d000", 1544464, 805311328},
			{"vsip-state", "0x430b0dd50000", 944, 1609569120},
			{"vsip-rules", "0x430b6dc53000", 100317024, 1609569120},
			{"vsip-ipdiscovery", "0x430bcdb56000", 1488, 536875872},
			{"vsip-flow", "0x430bedb59000", 1424, 805311328},
			{"vsip-attr", "0x430c1db5c000", 944, 536875872},
		} {
			hp := Heap{Name: x.name, Address: x.addr, Max: x.max, Current: x.max, Allocated: x.alloc}
			hp.LowestPct = hp.PctFreeOfMax()
			if l, ok := lowest[x.name]; ok {
				hp.LowestPct = l
			}
			st.Heaps = append(st.Heaps, hp)
		}
	})
	grep := regexp.MustCompile(`Name|current bytes allocated|maximum heap size|percent free of max|failed`)
	var got strings.Builder
	for _, n := range strings.Fields(mustCall(t, h, "vsish", "-e", "ls", "/system/heaps")) {
		if !strings.Contains(n, "vsip") {
			continue
		}
		got.WriteString(n + "\n")
		for _, l := range strings.SplitAfter(mustCall(t, h, "vsish", "-e", "get", "/system/heaps/"+n+"stats"), "\n") {
			if grep.MatchString(l) {
				got.WriteString(l)
			}
		}
	}
	if diff := cmp.Diff(sample(t, "vsish-heap-stats-vsip-nsx62-grepped.txt"), got.String()); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

func TestVsishInteractiveCat(t *testing.T) {
	h := New(t, preset(t, "old-esx41"))
	h.Mutate(func(st *State) { st.Heaps[0] = incidentHeap() })
	var out, errb bytes.Buffer
	code := Main([]string{h.Bin("vsish")}, strings.NewReader("cat /system/heaps/netGPHeap-0x410001000000/stats\nexit\n"), &out, &errb)
	want := "/> " + strings.Replace(sample(t, "vsish-heap-stats-netGPHeap-esxi4-after.txt"), "...\n...\n", "}\n", 1) + "/> "
	if code != 0 || out.String() != want {
		t.Errorf("exit %d, stderr %q\n(-want +got)\n%s", code, errb.String(), cmp.Diff(want, out.String()))
	}
}

func TestShutdownNeedsTools(t *testing.T) {
	h := New(t, Incident())
	out, _, code := h.Call("vim-cmd", "vmsvc/power.shutdown", "9") // db-02: Tools not running
	if code == 0 || !strings.HasPrefix(out, "(vim.fault.ToolsUnavailable) {\n") || !strings.Contains(out, "VMware Tools is not running") {
		t.Errorf("exit %d, out %q", code, out)
	}
	if !h.State().VM(9).PoweredOn {
		t.Error("db-02 went down")
	}
	// DSVA03 has Tools: shutdown prints nothing, and the guest takes its
	// shutdown_time (25s) to go down.
	if out := mustCall(t, h, "vim-cmd", "vmsvc/power.shutdown", "3"); out != "" {
		t.Errorf("shutdown printed %q", out)
	}
	h.Advance(24 * time.Second)
	if !h.State().VM(3).PoweredOn {
		t.Fatal("DSVA03 off before its shutdown time")
	}
	h.Advance(2 * time.Second)
	if h.State().VM(3).PoweredOn {
		t.Fatal("DSVA03 still on after its shutdown time")
	}
	out, _, code = h.Call("vim-cmd", "vmsvc/power.off", "3")
	if code == 0 || !strings.HasPrefix(out, "Powering off VM:\n(vim.fault.InvalidPowerState) {\n") {
		t.Errorf("power.off of an off VM: exit %d, %q", code, out)
	}
}

func TestActionsLogMutationsOnly(t *testing.T) {
	h := New(t, Incident())
	for _, c := range [][]string{
		{"vim-cmd", "vmsvc/getallvms"}, {"vim-cmd", "vmsvc/power.getstate", "1"}, {"vsish", "-e", "ls", "/system/heaps/"},
		{"net-stats", "-l"}, {"esxcli", "network", "vm", "list"}, {"vpxa", "status"}, {"vmware", "-v"},
	} {
		mustCall(t, h, c[0], c[1:]...)
	}
	if acts := h.Actions(); len(acts) != 0 {
		t.Fatalf("read-only commands logged: %+v", acts)
	}
	h.Advance(10 * time.Minute)
	mustCall(t, h, "vim-cmd", "vmsvc/power.off", "1")
	h.Call("vim-cmd", "vmsvc/power.shutdown", "9")
	mustCall(t, h, "vpxa", "restart")
	want := []Action{
		{Time: Incident().Start.Add(10 * time.Minute), Tool: "vim-cmd", Argv: []string{h.Bin("vim-cmd"), "vmsvc/power.off", "1"}, Target: "1", Exit: 0, Result: "ok"},
		{Time: Incident().Start.Add(10 * time.Minute), Tool: "vim-cmd", Argv: []string{h.Bin("vim-cmd"), "vmsvc/power.shutdown", "9"}, Target: "9", Exit: 1, Result: "ToolsUnavailable"},
		{Time: Incident().Start.Add(10 * time.Minute), Tool: "vpxa", Argv: []string{h.Bin("vpxa"), "restart"}, Target: "vpxa", Exit: 0, Result: "ok"},
	}
	if diff := cmp.Diff(want, h.Actions()); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

func TestWrongArgumentsGiveUsage(t *testing.T) {
	h := New(t, Incident())
	for _, c := range []struct {
		tool   string
		args   []string
		stderr string // substring
	}{
		{"vsish", []string{"-x"}, "Usage: vsish"},
		{"vsish", []string{"-e"}, "Usage: vsish"},
		{"vim-cmd", []string{"bogus/thing"}, "Commands available under /:"},
		{"vim-cmd", []string{"vmsvc/power.off"}, "Insufficient arguments."},
		{"vim-cmd", []string{"vmsvc/nope", "1"}, "Unknown command"},
		{"net-stats", nil, "Usage: net-stats"},
		{"net-stats", []string{"-q"}, "Usage: net-stats"},
		{"esxcli", []string{"network", "vm", "port", "list"}, "Missing required parameter -w|--world-id"},
		{"esxcli", []string{"network", "bogus"}, "Unknown command or namespace network bogus"},
		{"esxcli", []string{"network", "vm", "port", "list", "-w", "1"}, "Invalid World ID 1"},
		{"vmware", nil, "Usage: vmware"},
		{"vmware", []string{"-x"}, "Usage: vmware"},
		{"vpxa", nil, "Usage: /etc/init.d/vpxa {start|stop|restart|status}"},
		{"hostd", []string{"reload"}, "Usage: /etc/init.d/hostd {start|stop|restart|status}"},
	} {
		out, errOut, code := h.Call(c.tool, c.args...)
		if code == 0 || !strings.Contains(errOut, c.stderr) {
			t.Errorf("%s %q: exit %d, stderr %q (want %q), stdout %q", c.tool, c.args, code, errOut, c.stderr, out)
		}
	}
	out, _, code := h.Call("vim-cmd", "vmsvc/power.getstate", "99")
	if code == 0 || out != "Unable to find a VM corresponding to \"99\"\n" {
		t.Errorf("unknown vmid: exit %d %q", code, out)
	}
	if len(h.Actions()) != 0 {
		t.Errorf("usage errors logged as actions: %+v", h.Actions())
	}
	var o, e bytes.Buffer
	if code := Main([]string{"esxsim", "bogus"}, nil, &o, &e); code != 2 || !strings.Contains(e.String(), "Usage: esxsim") {
		t.Errorf("esxsim bogus: exit %d, %q", code, e.String())
	}
	if code := Main([]string{"esxsim", "status"}, nil, &o, &e); code != 2 {
		t.Errorf("esxsim status without --root: exit %d", code)
	}
}

// The installed tools are the test binary itself (TestMain dispatches on
// argv[0]); run them as separate processes, by PATH lookup and by path.
func TestDispatchOnArgv0(t *testing.T) {
	h := New(t, Incident())
	h.InstallBinary(os.Args[0])
	// argv[0] is the bare name, as a shell's PATH lookup leaves it: the
	// tool must find its root through its own PATH.
	cmd := &exec.Cmd{Path: h.Bin("vim-cmd"), Args: []string{"vim-cmd", "vmsvc/getallvms"},
		Env: append(os.Environ(), "PATH="+h.Path("/bin")+":"+os.Getenv("PATH"), "ESXSIM_ROOT=")}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("vim-cmd by PATH: %v", err)
	}
	if string(out) != mustCall(t, h, "vim-cmd", "vmsvc/getallvms") {
		t.Errorf("exec and in-process differ:\n%s", out)
	}
	for _, c := range []struct {
		path string
		args []string
		want string
	}{
		{h.Path("/etc/init.d/vpxa"), []string{"status"}, "vpxa is running\n"},
		{h.Path("/bin/vmware"), []string{"-v"}, "VMware ESXi 5.5.0 build-1623387\n"},
		{h.Path("/bin/esxcli"), []string{"system", "version", "get"}, RenderVersionGet(ver(t, "5.5"))},
	} {
		out, err := exec.Command(c.path, c.args...).Output()
		if err != nil || string(out) != c.want {
			t.Errorf("%s %q: %v, %q want %q", c.path, c.args, err, out, c.want)
		}
	}
	// 4.x init script path.
	h4 := New(t, preset(t, "old-esx41"))
	h4.InstallBinary(os.Args[0])
	out, err = exec.Command(h4.Path("/etc/opt/init.d/vmware-vpxa"), "stop").Output()
	if err != nil || string(out) != "Stopping vmware-vpxa:success\n" {
		t.Errorf("4.x vmware-vpxa stop: %v %q", err, out)
	}
	if h4.State().Agent("vpxa").Running {
		t.Error("vpxa still running after stop")
	}
}

func TestLayoutPerVersion(t *testing.T) {
	for _, c := range []struct {
		scenario, version string
		want              host.Layout
		files, absent     []string
	}{
		{"seed-incident", "", host.Layout{LogPath: "/var/log/vmkernel.log", VpxaInit: "/etc/init.d/vpxa", HostdInit: "/etc/init.d/hostd"},
			[]string{"/etc/rc.local.d/local.sh", "/var/spool/cron/crontabs/root", "/etc/inetd.conf", "/bin/vsish", "/bin/vim-cmd", "/bin/net-stats", "/bin/esxcli", "/bin/vmware", "/bin/esxsim",
				"/vmfs/volumes/datastore1/DSVA03/dsva03.vmx", "/vmfs/volumes/datastore1/DSVA01/DSVA01.vmx", "/vmfs/volumes/datastore1/DSVA04/DSVA04.vmx", host.SimClockPath},
			[]string{"/var/log/messages", "/var/log/vmkwarning.log"}},
		{"old-esx41", "", host.Layout{LogPath: "/var/log/messages", VpxaInit: "/etc/opt/init.d/vmware-vpxa", HostdInit: "/etc/init.d/hostd"},
			[]string{"/etc/rc.local", "/var/spool/cron/crontabs/root"}, []string{"/var/log/vmkernel.log", "/etc/init.d/vpxa"}},
		{"esx80", "", host.Layout{LogPath: "/var/log/vmkernel.log", VpxaInit: "/etc/init.d/vpxa", HostdInit: "/etc/init.d/hostd"},
			[]string{"/var/log/vmkwarning.log"}, nil},
	} {
		t.Run(c.scenario, func(t *testing.T) {
			h := New(t, preset(t, c.scenario))
			if diff := cmp.Diff(c.want, host.DetectLayout(h.Root())); diff != "" {
				t.Errorf("layout (-want +got)\n%s", diff)
			}
			for _, f := range c.files {
				if _, err := os.Stat(h.Path(f)); err != nil {
					t.Errorf("missing %s: %v", f, err)
				}
			}
			for _, f := range c.absent {
				if _, err := os.Stat(h.Path(f)); err == nil {
					t.Errorf("%s should not exist", f)
				}
			}
			if fi, err := os.Lstat(h.Path("/vmfs/volumes/datastore1")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Errorf("datastore1 is not a symlink: %v", err)
			}
			clk, err := host.ClockFromEnv(simClockEnv, h.Root(), nil)
			if err != nil || !clk.Now().Equal(h.State().Now) {
				t.Errorf("clock %v, err %v, want %v", clk.Now(), err, h.State().Now)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	h := New(t, preset(t, "faulty-tools"))
	h.InstallBinary(os.Args[0])
	// vsish fails twice, then answers.
	for i := range 3 {
		out, errOut, code := h.Call("vsish", "-e", "ls", "/system/heaps/")
		if i < 2 && (code != 1 || !strings.Contains(errOut, "VSI_Init failed")) {
			t.Errorf("call %d: want the fault, got exit %d %q", i, code, errOut)
		}
		if i == 2 && (code != 0 || !strings.Contains(out, "netGPHeap-0x410001000000/")) {
			t.Errorf("call %d: want the listing, got exit %d %q", i, code, out)
		}
	}
	// power.shutdown hangs: the caller has to end it. It is ended once the
	// hang has begun (its action is logged first), however slow the start.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, h.Bin("vim-cmd"), "vmsvc/power.shutdown", "3")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); len(h.Actions()) == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Errorf("shutdown ended by itself: %v", err)
	case <-time.After(200 * time.Millisecond):
		cancel()
		<-done
	}
	if !h.State().VM(3).PoweredOn || h.State().VM(3).ShutdownAt != nil {
		t.Error("the hung shutdown changed the VM")
	}
	// vpxa restart fails once, then works.
	out, _, code := h.Call("vpxa", "restart")
	if code != 1 || out != "vpxa stopped.\n" {
		t.Errorf("first restart: exit %d %q", code, out)
	}
	mustCall(t, h, "vpxa", "restart")
	var results []string
	for _, a := range h.Actions() {
		results = append(results, a.Tool+" "+a.Result)
	}
	want := []string{"vim-cmd fault: hang", "vpxa fault: exit 1", "vpxa ok"}
	if diff := cmp.Diff(want, results); diff != "" {
		t.Errorf("actions (-want +got)\n%s", diff)
	}
}

func TestTruncateFault(t *testing.T) {
	sc := Incident()
	sc.Faults = []Fault{{Command: "vsish", ArgsPrefix: []string{"-e", "get"}, Truncate: 40}}
	h := New(t, sc)
	out := mustCall(t, h, "vsish", "-e", "get", "/system/heaps/netGPHeap-0x410001000000/stats")
	if len(out) != 40 || !strings.HasPrefix(out, "Heap stats {\n") {
		t.Errorf("truncated output %q", out)
	}
}

func TestNoStateIsAClearError(t *testing.T) {
	dir := t.TempDir()
	var o, e bytes.Buffer
	code := Main([]string{filepath.Join(dir, "bin", "vim-cmd"), "vmsvc/getallvms"}, nil, &o, &e)
	if code == 0 || !strings.Contains(e.String(), "no simulated host") {
		t.Errorf("exit %d, %q", code, e.String())
	}
	if _, err := LoadState(dir); !errors.Is(err, ErrNoState) {
		t.Errorf("LoadState: %v", err)
	}
}

// The real binary, built once: `esxsim init` links itself as the tools.
func TestBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/esxsim")
	}
	bin := BuildBinary(t)
	root := filepath.Join(t.TempDir(), "esx")
	if out, err := exec.Command(bin, "init", "--root", root, "--scenario", "esx80").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	out, err := exec.Command(filepath.Join(root, "bin", "esxcli"), "system", "settings", "kernel", "list", "-o", "execinstalledonly").Output()
	if err != nil || !strings.Contains(string(out), "execInstalledOnly  Bool  FALSE       FALSE") {
		t.Errorf("esxcli: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "status", "--root", root).Output(); err != nil || !strings.Contains(string(out), "VMware ESXi 8.0.3") {
		t.Errorf("status: %v\n%s", err, out)
	}
}
