package esxsim

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/heapguard/heapguard/host"
)

// logLines reads a root's vmkernel log, rotated .gz files first (oldest
// first), so the result is the whole history in order.
func logLines(t *testing.T, root, hostPath string) []string {
	t.Helper()
	p := host.Path(root, hostPath)
	base := strings.TrimSuffix(p, ".log")
	rotated, _ := filepath.Glob(base + ".*.gz")
	sort.Slice(rotated, func(i, j int) bool { return rotIndex(rotated[i]) > rotIndex(rotated[j]) })
	var lines []string
	read := func(r io.Reader) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
	}
	for _, f := range rotated {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(fh)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		read(zr)
		fh.Close()
	}
	fh, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	read(fh)
	return lines
}

func rotIndex(p string) int {
	s := strings.TrimSuffix(p, ".gz")
	n, _ := strconv.Atoi(s[strings.LastIndex(s, ".")+1:])
	return n
}

func grepCount(lines []string, sub string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

// The seed incident, left alone, fills netGPHeap and crashes vpxa in
// about two simulated hours, leaving the incident's figures behind.
func TestIncidentReachesMaximumAndCrashesVpxa(t *testing.T) {
	h := New(t, Incident())
	start := h.State().Now
	var crashedAt time.Duration
	for step := time.Duration(0); step < 3*time.Hour; step += 5 * time.Minute {
		h.Advance(5 * time.Minute)
		if !h.State().Agent("vpxa").Running {
			crashedAt = h.State().Now.Sub(start)
			break
		}
	}
	if crashedAt < 100*time.Minute || crashedAt > 125*time.Minute {
		t.Fatalf("vpxa crashed after %s, want about two hours", crashedAt)
	}
	st := h.State()
	hp := st.Heap("netGPHeap")
	if hp.Allocated != 63765168 || hp.Current != hp.Max || hp.Ranges != 20 || hp.Failures < 2 || hp.LowestPct != 4 {
		t.Errorf("heap at crash: %+v", hp)
	}
	if _, err := os.Stat(h.Path("/var/core/vpxa-zdump.000")); err != nil {
		t.Errorf("no core file: %v", err)
	}
	lines := logLines(t, h.Root(), "/var/log/vmkernel.log")
	for _, want := range []string{
		"WARNING: Heap: 2525: Heap netGPHeap already at its maximum size. Cannot expand.",
		"WARNING: Heap: 2900: Heap_Align(netGPHeap, 4364/4364 bytes, 8 align) failed. caller: 0x41801c90bb4e",
		"User: 2888: wantCoreDump : vpxa -enabled : 1",
		"to file /var/core/vpxa-zdump.000 ...",
	} {
		if grepCount(lines, want) == 0 {
			t.Errorf("log lacks %q", want)
		}
	}
	// Every flap is a disabled/enabled pair for one of the three ports.
	for _, mac := range []string{"00:50:56:84:5a:b1", "00:50:56:84:5a:b4", "00:50:56:84:5a:ba"} {
		if n := grepCount(lines, "with mac "+mac); n < 2000 {
			t.Errorf("mac %s enabled %d times", mac, n)
		}
	}
	// And it stays broken: vpxa is not restarted by itself.
	h.Advance(10 * time.Minute)
	if h.State().Agent("vpxa").Running {
		t.Error("vpxa came back by itself")
	}
}

// Powering the three DSVAs off (what the admin did) stops the flaps and
// the leak and gives memory back; restarting vpxa then sticks.
func TestPoweringOffDSVAsStopsTheLeak(t *testing.T) {
	h := New(t, Incident())
	h.Advance(time.Hour)
	before := h.State().Heap("netGPHeap").Allocated
	for _, id := range []string{"1", "3", "4"} {
		mustCall(t, h, "vim-cmd", "vmsvc/power.off", id)
	}
	after := h.State().Heap("netGPHeap").Allocated
	if after != before-3*1048576 {
		t.Errorf("allocated %d -> %d, want 3 MiB back", before, after)
	}
	flaps := func() int64 {
		var n int64
		for _, f := range h.State().Flappers {
			n += f.Flaps
		}
		return n
	}
	n := flaps()
	h.Advance(3 * time.Hour)
	st := h.State()
	if got := st.Heap("netGPHeap").Allocated; got != after {
		t.Errorf("heap still moving: %d -> %d", after, got)
	}
	if flaps() != n {
		t.Errorf("ports still flapping: %d -> %d", n, flaps())
	}
	if !st.Agent("vpxa").Running {
		t.Error("vpxa crashed although the leak stopped")
	}
	// Powering one back on makes it flap and leak again.
	mustCall(t, h, "vim-cmd", "vmsvc/power.on", "3")
	h.Advance(time.Minute)
	if h.State().Heap("netGPHeap").Allocated <= after || flaps() == n {
		t.Error("DSVA03 powered on but neither flaps nor leaks")
	}
}

// Restarting vpxa while the heap is still full does not help: it crashes
// again at the next failed allocations.
func TestRestartWhileHeapFullCrashesAgain(t *testing.T) {
	h := New(t, Incident())
	h.Advance(2*time.Hour + 10*time.Minute)
	if h.State().Agent("vpxa").Running {
		t.Fatal("vpxa did not crash")
	}
	mustCall(t, h, "vpxa", "restart")
	h.Advance(time.Minute)
	a := h.State().Agent("vpxa")
	if a.Running || a.Crashes != 2 {
		t.Errorf("vpxa after restart on a full heap: %+v", a)
	}
	if _, err := os.Stat(h.Path("/var/core/vpxa-zdump.001")); err != nil {
		t.Errorf("second core: %v", err)
	}
}

// The same scenario and seed give the same host however the clock is
// advanced.
func TestDeterministicWhateverTheSteps(t *testing.T) {
	a, b := New(t, Incident()), New(t, Incident())
	a.Advance(30 * time.Minute)
	for range 180 {
		b.Advance(10 * time.Second)
	}
	sa, sb := a.State(), b.State()
	if diff := cmp.Diff(sa, sb); diff != "" {
		t.Errorf("state (-one step +many)\n%s", diff)
	}
	la, lb := logLines(t, a.Root(), "/var/log/vmkernel.log"), logLines(t, b.Root(), "/var/log/vmkernel.log")
	if diff := cmp.Diff(la, lb); diff != "" {
		t.Errorf("log (-one step +many)\n%s", diff)
	}
	c := New(t, Incident(), WithSeed(7))
	c.Advance(30 * time.Minute)
	if cmp.Equal(la, logLines(t, c.Root(), "/var/log/vmkernel.log")) {
		t.Error("another seed gave the same log")
	}
}

func TestRotation(t *testing.T) {
	sc := Incident()
	sc.Log = LogSpec{RotateBytes: 20000, Keep: 100}
	h := New(t, sc)
	h.Advance(20 * time.Minute)
	rotated, _ := filepath.Glob(h.Path("/var/log/vmkernel.*.gz"))
	if len(rotated) < 5 {
		t.Fatalf("%d rotated files", len(rotated))
	}
	if fi, err := os.Stat(h.Path("/var/log/vmkernel.log")); err != nil || fi.Size() >= 20000+4096 {
		t.Errorf("live log: %v size %d", err, fi.Size())
	}
	// Nothing lost: every flap's two lines are somewhere, in time order.
	lines := logLines(t, h.Root(), "/var/log/vmkernel.log")
	var flaps int64
	for _, f := range h.State().Flappers {
		flaps += f.Flaps
	}
	if got := grepCount(lines, "disabled port"); int64(got) != flaps {
		t.Errorf("%d disabled lines, %d flaps", got, flaps)
	}
	// Keep bounds the count: 0.gz .. (keep-1).gz.
	sc.Log.Keep = 3
	h2 := New(t, sc)
	h2.Advance(20 * time.Minute)
	rotated, _ = filepath.Glob(h2.Path("/var/log/vmkernel.*.gz"))
	names := []string{}
	for _, r := range rotated {
		names = append(names, filepath.Base(r))
	}
	sort.Strings(names)
	if diff := cmp.Diff([]string{"vmkernel.0.gz", "vmkernel.1.gz", "vmkernel.2.gz"}, names); diff != "" {
		t.Errorf("rotated files (-want +got)\n%s", diff)
	}
	// 4.x rotates messages.
	sc4 := preset(t, "old-esx41")
	sc4.Log = LogSpec{RotateBytes: 20000, Keep: 2}
	h4 := New(t, sc4)
	h4.Advance(10 * time.Minute)
	if _, err := os.Stat(h4.Path("/var/log/messages.0.gz")); err != nil {
		t.Errorf("4.x rotation: %v", err)
	}
}

// Commands run while `run` drives the clock always see a whole state:
// allocated + available = max in every stats read, from other processes
// too.
func TestRunWithConcurrentCommands(t *testing.T) {
	h := New(t, Incident())
	h.InstallBinary(os.Args[0])
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, h.Root(), RunOptions{Speed: 3000, Tick: 5 * time.Millisecond}) }()
	re := regexp.MustCompile(`(?m)^   (current bytes allocated|maximum bytes available|maximum heap size):(\d+)$`)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var reads int
	check := func(out string) {
		m := re.FindAllStringSubmatch(out, -1)
		if len(m) != 3 {
			t.Errorf("torn stats:\n%s", out)
			return
		}
		v := map[string]int64{}
		for _, x := range m {
			v[x[1]], _ = strconv.ParseInt(x[2], 10, 64)
		}
		if v["current bytes allocated"]+v["maximum bytes available"] != v["maximum heap size"] {
			t.Errorf("inconsistent stats: %v", v)
		}
		mu.Lock()
		reads++
		mu.Unlock()
	}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				if w == 0 && i%4 == 0 { // another process
					out, err := exec.Command(h.Bin("vsish"), "-e", "get", "/system/heaps/netGPHeap-0x410001000000/stats").Output()
					if err != nil {
						t.Errorf("exec vsish: %v", err)
						return
					}
					check(string(out))
					continue
				}
				out, errOut, code := h.Call("vsish", "-e", "get", "/system/heaps/netGPHeap-0x410001000000/stats")
				if code != 0 {
					t.Errorf("vsish: %d %s", code, errOut)
					return
				}
				check(out)
				if _, _, code := h.Call("vim-cmd", "vmsvc/getallvms"); code != 0 {
					t.Error("getallvms failed")
				}
			}
		}()
	}
	// A command made meanwhile takes effect in the running simulation.
	mustCall(t, h, "vim-cmd", "vmsvc/power.off", "3")
	wg.Wait()
	st := h.State()
	if st.Run == nil || st.Run.Speed != 3000 {
		t.Errorf("run info while running: %+v", st.Run)
	}
	anchor := readAnchor(t, h.Root())
	if anchor.Speed != 3000 {
		t.Errorf("published speed %v while running", anchor.Speed)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	st = h.State()
	if st.Run != nil || st.VM(3).PoweredOn || !st.Now.After(Incident().Start) {
		t.Errorf("after run: run %+v, DSVA03 on %v, now %v", st.Run, st.VM(3).PoweredOn, st.Now)
	}
	if a := readAnchor(t, h.Root()); a.Speed != 0 || !a.Sim.Equal(st.Now) {
		t.Errorf("anchor after run %+v, state at %v", a, st.Now)
	}
	if reads != 160 {
		t.Errorf("%d reads", reads)
	}
}

func readAnchor(t *testing.T, root string) host.SimClockAnchor {
	t.Helper()
	b, err := os.ReadFile(host.Path(root, host.SimClockPath))
	if err != nil {
		t.Fatal(err)
	}
	var a host.SimClockAnchor
	if err := jsonUnmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// With no `run`, time stands still: commands see the state file's time.
func TestNoDriftWithoutRun(t *testing.T) {
	h := New(t, Incident())
	before := h.State()
	for range 20 {
		mustCall(t, h, "vsish", "-e", "get", "/system/heaps/netGPHeap-0x410001000000/stats")
	}
	mustCall(t, h, "vim-cmd", "vmsvc/power.off", "6")
	after := h.State()
	if !after.Now.Equal(before.Now) {
		t.Errorf("clock moved from %v to %v", before.Now, after.Now)
	}
	if h.Actions()[0].Time != before.Now {
		t.Errorf("action at %v, want %v", h.Actions()[0].Time, before.Now)
	}
	clk, err := host.ClockFromEnv(simClockEnv, h.Root(), nil)
	if err != nil || !clk.Now().Equal(before.Now) {
		t.Errorf("published clock %v", clk.Now())
	}
}

func TestRunForStopsAtDuration(t *testing.T) {
	h := New(t, preset(t, "healthy"))
	var o, e strings.Builder
	code := Main([]string{"esxsim", "run", "--root", h.Root(), "--speed", "36000", "--for", "1h"}, nil, &o, &e)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, e.String())
	}
	if got := h.State().Now.Sub(preset(t, "healthy").Start); got != time.Hour {
		t.Errorf("ran for %s", got)
	}
}

func TestEveryPresetLoadsAndRuns(t *testing.T) {
	for _, name := range PresetNames() {
		t.Run(name, func(t *testing.T) {
			sc := preset(t, name)
			if sc.Name != name || sc.Description == "" {
				t.Errorf("name %q description %q", sc.Name, sc.Description)
			}
			h := New(t, sc)
			h.Advance(15 * time.Minute)
			for _, c := range [][]string{{"vim-cmd", "vmsvc/getallvms"}, {"vsish", "-e", "ls", "/system/heaps/"}, {"net-stats", "-l"}, {"esxcli", "system", "version", "get"}} {
				if _, errOut, code := h.Call(c[0], c[1:]...); code != 0 && name != "faulty-tools" {
					t.Errorf("%q: exit %d %s", c, code, errOut)
				}
			}
		})
	}
	for _, v := range VersionNames() {
		t.Run("seed-incident@"+v, func(t *testing.T) {
			h := New(t, Incident(), WithVersion(v))
			h.Advance(5 * time.Minute)
			lines := logLines(t, h.Root(), h.State().Ver().LogPath())
			if grepCount(lines, "enabled port 0x3000007 with mac 00:50:56:84:5a:b4") == 0 {
				t.Errorf("no flap lines in %s", h.State().Ver().LogPath())
			}
			if out := mustCall(t, h, "vmware", "-v"); !strings.Contains(out, h.State().Ver().Full) {
				t.Errorf("vmware -v %q", out)
			}
		})
	}
}

func TestSlowLeakAndFlapNoLeak(t *testing.T) {
	h := New(t, preset(t, "slow-leak"))
	a0 := h.State().Heap("netGPHeap").Allocated
	h.Advance(30 * time.Minute)
	if got := h.State().Heap("netGPHeap").Allocated - a0; got != 30*350000 {
		t.Errorf("slow leak took %d bytes in 30 min", got)
	}
	if n := grepCount(logLines(t, h.Root(), "/var/log/vmkernel.log"), "disabled port"); n != 0 {
		t.Errorf("%d port lines in slow-leak", n)
	}
	h.Advance(3 * time.Hour)
	if h.State().Agent("vpxa").Running {
		t.Error("slow leak did not crash vpxa")
	}

	f := New(t, preset(t, "flap-no-leak"))
	a0 = f.State().Heap("netGPHeap").Allocated
	f.Advance(30 * time.Minute)
	if got := f.State().Heap("netGPHeap").Allocated; got != a0 {
		t.Errorf("flap-no-leak leaked %d", got-a0)
	}
	if n := grepCount(logLines(t, f.Root(), "/var/log/vmkernel.log"), "disabled port 0x3000007"); n < 550 {
		t.Errorf("%d flaps of 0x3000007 in 30 min", n)
	}
}

// The 4.1 preset writes the incident's lines: same messages, same line
// shape as vmkernel-4x-messages.log.
func TestOldESX41LinesLookLikeTheIncident(t *testing.T) {
	h := New(t, preset(t, "old-esx41"))
	h.Advance(2*time.Hour + 5*time.Minute)
	lines := logLines(t, h.Root(), "/var/log/messages")
	shape := regexp.MustCompile(`^[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d vmkernel: \d+:\d\d:\d\d:\d\d\.\d{3} cpu\d+:\d+\)(.*)$`)
	// The sample's messages with the numbers that vary made wildcards.
	var msgs []*regexp.Regexp
	for _, l := range strings.Split(strings.TrimSpace(sample(t, "vmkernel-4x-messages.log")), "\n") {
		m := shape.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("sample line does not fit the shape: %q", l)
		}
		q := regexp.QuoteMeta(m[1])
		q = regexp.MustCompile(`0x300000\d|00:50:56:84:5a:b\w|cartel \d+|world \d+`).ReplaceAllStringFunc(q, func(s string) string {
			return regexp.MustCompile(`[0-9a-f]+$`).ReplaceAllString(s, `[0-9a-f]+`)
		})
		msgs = append(msgs, regexp.MustCompile("^"+q+"$"))
	}
	matched := make([]bool, len(msgs))
	for _, l := range lines {
		m := shape.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("line does not fit the 4.x shape: %q", l)
			continue
		}
		for i, re := range msgs {
			if re.MatchString(m[1]) {
				matched[i] = true
			}
		}
	}
	for i, ok := range matched {
		if !ok {
			t.Errorf("no generated line like sample line %d (%s)", i+1, msgs[i])
		}
	}
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "Jul 26 0") {
		t.Errorf("last line %q: the 4.1 preset should crash around Jul 26 01:27", last)
	}
}

func Test8xWarningsGoToVmkwarning(t *testing.T) {
	h := New(t, preset(t, "esx80"))
	h.Advance(2*time.Hour + 10*time.Minute)
	warn := logLines(t, h.Root(), "/var/log/vmkwarning.log")
	if len(warn) == 0 {
		t.Fatal("empty vmkwarning.log")
	}
	for _, l := range warn {
		if !strings.Contains(l, " Wa(180) vmkwarning: cpu") {
			t.Errorf("not a warning line: %q", l)
		}
	}
	main := logLines(t, h.Root(), "/var/log/vmkernel.log")
	if grepCount(main, "Wa(180) vmkwarning: ") != len(warn) || grepCount(main, "In(182) vmkernel: cpu") == 0 {
		t.Errorf("vmkernel.log: %d warning lines, vmkwarning.log %d", grepCount(main, "Wa(180)"), len(warn))
	}
	if grepCount(warn, "already at its maximum size. Cannot expand.") == 0 {
		t.Error("no heap-full warning on 8.0")
	}
}

// formatLogLine reproduces the real samples' lines from their parts.
func TestFormatLogLineReproducesSamples(t *testing.T) {
	iso := regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?:(In\(182\) vmkernel|Wa\(180\) vmkwarning): )?cpu(\d+):(\d+)(?: opID=([0-9a-f]+))?\)(.*)$`)
	for file, v := range map[string]string{"vmkernel-5x.log": "6.5", "vmkernel-8x.log": "8.0", "vmkernel-9x.log": "9.0"} {
		n := 0
		for _, l := range strings.Split(strings.TrimSpace(sample(t, file)), "\n") {
			m := iso.FindStringSubmatch(l)
			if m == nil {
				continue // continuation lines, Al(177) alerts, the 8.x line without cpu
			}
			at, _ := time.Parse("2006-01-02T15:04:05.000Z", m[1])
			cpu, _ := strconv.Atoi(m[3])
			w, _ := strconv.Atoi(m[4])
			got := formatLogLine(ver(t, v), time.Time{}, logLine{At: at, CPU: cpu, World: w, OpID: m[5], Warn: strings.HasPrefix(m[2], "Wa"), Msg: m[6]})
			if got != l {
				t.Errorf("%s:\n got %q\nwant %q", file, got, l)
			}
			n++
		}
		if n < 10 {
			t.Errorf("%s: only %d lines checked", file, n)
		}
	}
	syslog := regexp.MustCompile(`^(\w{3} [ \d]\d \d\d:\d\d:\d\d) vmkernel: (\d+):(\d\d):(\d\d):(\d\d)\.(\d{3}) cpu(\d+):(\d+)\)(.*)$`)
	for _, l := range strings.Split(strings.TrimSpace(sample(t, "vmkernel-4x-messages.log")), "\n") {
		m := syslog.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("4.x sample line %q", l)
		}
		stamp, _ := time.Parse("Jan _2 15:04:05 2006", m[1]+" 2012")
		num := func(i int) int { n, _ := strconv.Atoi(m[i]); return n }
		up := time.Duration(num(2))*24*time.Hour + time.Duration(num(3))*time.Hour + time.Duration(num(4))*time.Minute +
			time.Duration(num(5))*time.Second + time.Duration(num(6))*time.Millisecond
		at := stamp.Add(time.Duration(num(6)) * time.Millisecond)
		got := formatLogLine(ver(t, "4.1"), at.Add(-up), logLine{At: at, CPU: num(7), World: num(8), Msg: m[9]})
		if got != l {
			t.Errorf("4.x:\n got %q\nwant %q", got, l)
		}
	}
}

func TestStatusShowsTheHost(t *testing.T) {
	h := New(t, Incident())
	h.Advance(2*time.Hour + 10*time.Minute)
	var o, e strings.Builder
	if code := Main([]string{"esxsim", "status", "--root", h.Root()}, nil, &o, &e); code != 0 {
		t.Fatalf("exit %d %s", code, e.String())
	}
	for _, want := range []string{"scenario seed-incident", `"web 01 (prod); $(x)"`, "FLAPPING(", "netGPHeap-0x410001000000", "agent vpxa: NOT RUNNING (crashes 1", "agent hostd: running"} {
		if !strings.Contains(o.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, o.String())
		}
	}
}

func TestInitCommand(t *testing.T) {
	root := filepath.Join(t.TempDir(), "esx")
	var o, e strings.Builder
	args := []string{"esxsim", "init", "--root", root, "--scenario", "old-esx41", "--seed", "5", "--binary", os.Args[0]}
	if code := Main(args, nil, &o, &e); code != 0 {
		t.Fatalf("exit %d: %s", code, e.String())
	}
	st, err := LoadState(root)
	if err != nil || st.Version != "4.1" || st.Seed != 5 {
		t.Fatalf("state %v %+v", err, st)
	}
	if code := Main(args, nil, &o, &e); code != 1 || !strings.Contains(e.String(), "already holds a simulated host") {
		t.Errorf("second init: exit %d %s", code, e.String())
	}
	// A scenario file with a base and one change.
	f := filepath.Join(t.TempDir(), "s.json")
	os.WriteFile(f, []byte(`{"base": "healthy", "name": "mine", "hostname": "h1.example"}`), 0o644)
	root2 := filepath.Join(t.TempDir(), "esx")
	if code := Main([]string{"esxsim", "init", "--root", root2, "--scenario", f, "--version", "8.0", "--binary", os.Args[0]}, nil, &o, &e); code != 0 {
		t.Fatalf("init from file: exit %d: %s", code, e.String())
	}
	st, _ = LoadState(root2)
	if st.Scenario.Name != "mine" || st.Scenario.Hostname != "h1.example" || st.Version != "8.0" || len(st.Flappers) != 0 || len(st.VMs) != 9 {
		t.Errorf("scenario from file: %+v", st.Scenario)
	}
	if code := Main([]string{"esxsim", "advance", "--root", root2, "--by", "90s"}, nil, &o, &e); code != 0 || !strings.Contains(o.String(), "clock at 2014-06-10T06:01:30Z") {
		t.Errorf("advance: %d %q %q", code, o.String(), e.String())
	}
}

func TestScenarioErrors(t *testing.T) {
	for _, c := range []struct{ name, json, want string }{
		{"garbage", `{`, "bad scenario"},
		{"unknown field", `{"base": "healthy", "bogus": 1}`, "unknown field"},
		{"unknown base", `{"base": "nope"}`, "no preset"},
		{"bad version", `{"base": "healthy", "version": "3.5"}`, "unknown version"},
		{"dup vm", `{"base": "healthy", "vms": [{"id": 1, "name": "a", "vmx": "a/a.vmx", "nics": []}, {"id": 1, "name": "b", "vmx": "b/b.vmx", "nics": []}]}`, "not unique"},
		{"vmx escapes", `{"base": "healthy", "vms": [{"id": 1, "name": "a", "vmx": "../a.vmx", "nics": []}]}`, "relative path"},
		{"flap of nobody", `{"base": "seed-incident", "flaps": [{"vm": "ghost", "nic": 0, "period": "3s"}]}`, "no vm"},
		{"tiny period", `{"base": "seed-incident", "flaps": [{"vm": "DSVA01", "nic": 2, "period": "1ms"}]}`, "period"},
		{"bad duration", `{"base": "seed-incident", "uptime": "soon"}`, "duration"},
		{"bad mac", `{"base": "healthy", "vms": [{"id": 1, "name": "a", "vmx": "a/a.vmx", "nics": [{"index": 0, "network": "n", "virtual_dev": "e1000", "address_type": "vpx", "mac": "zz", "port": "0x3000005", "switch": "s"}]}]}`, "mac"},
		{"fault of no tool", `{"base": "healthy", "faults": [{"command": "vmware-vpxa"}]}`, "fault command"},
		{"heap over max", `{"base": "healthy", "heaps": [{"name": "h", "address": "0x1", "max": 10, "allocated": 11}]}`, "allocated"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseScenario([]byte(c.json))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err %v, want %q", err, c.want)
			}
		})
	}
}

func FuzzParseScenario(f *testing.F) {
	for _, n := range PresetNames() {
		b, _ := presetFS.ReadFile("scenarios/" + n + ".json")
		f.Add(b)
	}
	f.Add([]byte(`{"base": "healthy", "noise": {"per_minute": 1e309}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		sc, err := ParseScenario(b)
		if err == nil && sc.Validate() != nil {
			t.Errorf("parsed scenario does not validate")
		}
	})
}

func FuzzParseActions(f *testing.F) {
	f.Add([]byte(`{"time":"2014-06-10T06:00:00Z","tool":"vim-cmd","argv":["vim-cmd","vmsvc/power.off","1"],"target":"1","exit":0,"result":"ok"}` + "\n"))
	f.Add([]byte("garbage\n{}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		acts, bad := ParseActions(b)
		if bad < 0 || len(acts) > len(b) {
			t.Errorf("%d actions, %d bad from %d bytes", len(acts), bad, len(b))
		}
	})
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// simClockEnv asks host.ClockFromEnv for the published simulator clock.
func simClockEnv(string) string { return "sim" }

// TestRunCatchesUpInPieces: a run far behind its clock (the machine was
// too busy for hours of wall time) catches up a simulated minute per
// update, so the state is seen between the old and the new time, and
// commands get the lock in between. Fails if Run advances to its target in
// one update.
func TestRunCatchesUpInPieces(t *testing.T) {
	h := New(t, Incident())
	start := h.State().Now
	var mu sync.Mutex
	now := time.Now()
	wall := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	runDone := make(chan error, 1)
	go func() {
		runDone <- Run(context.Background(), h.Root(), RunOptions{Speed: 1, Tick: time.Millisecond, For: 2 * time.Hour, wall: wall})
	}()
	for deadline := time.Now().Add(30 * time.Second); h.State().Run == nil; {
		if time.Now().After(deadline) {
			t.Fatal("the run never started")
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	now = now.Add(3 * time.Hour) // the run is hours behind at its next tick
	mu.Unlock()
	seen := map[time.Time]bool{}
	for {
		select {
		case err := <-runDone:
			if err != nil {
				t.Fatal(err)
			}
			var between int
			for at := range seen {
				if at.After(start) && at.Before(start.Add(time.Hour)) {
					between++
				}
			}
			if between == 0 {
				t.Errorf("no command saw the state between %s and an hour later: the backlog was taken in one update (saw %v)", start, seen)
			}
			return
		default:
			seen[h.State().Now] = true
		}
	}
}

// TestStepClockConcurrentSleepers: goroutines sleeping on a StepClock at
// once (heapguard's power-offs side by side) each return, and each Sleep
// moves the host on by its own d: none is lost.
func TestStepClockConcurrentSleepers(t *testing.T) {
	h := New(t, Incident())
	c := NewStepClock(h.Root())
	start := c.Now()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for range 4 {
				if err := c.Sleep(context.Background(), 5*time.Second); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if got := h.State().Now.Sub(start); got != time.Minute {
		t.Errorf("12 sleeps of 5s moved the host by %s, want 1m", got)
	}
}
