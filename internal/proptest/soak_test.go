package proptest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heapguard/heapguard/agent"
	"github.com/heapguard/heapguard/esxsim"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

// The soak (issue 17, point 4): heapguard's daemon loop in this process on
// the seed incident for HEAPGUARD_SOAK of host time (default 30m, the
// short version `make test` runs; `make soak` asks for 24h), the host
// stepped only while the loop waits. Every period (an hour of host time
// in a soak of a day or more, 5 minutes in the short version) the
// incident starts again if heapguard has handled it (the appliances it
// powered off are powered on, the heap is given back up to 40 % free), a
// random fault is added for a while, and the process's goroutines, open
// files, RSS and CPU time are printed; goroutines and open files must
// stay flat.

// sample is one hourly reading of this process.
type sample struct {
	At         time.Duration // host time since the soak began
	Goroutines int
	FDs        int     // -1 where /proc/self/fd cannot be read
	RSSKB      int64   // VmRSS; -1 where /proc/self/status cannot be read
	CPU        float64 // user+system seconds since the soak began
	HeapFree   int     // the watched heap's percent free of max
	PowerOffs  int     // power operations so far
	Restarts   int     // agent restarts so far
}

func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

func rssKB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// soakFaults are the faults the soak draws from, each for a few calls.
// None hangs for long: the in-process runner gives up on a hang after
// the command timeout of wall time, and its goroutine lives until HangFor.
func soakFaults(r *rand.Rand) esxsim.Fault {
	n := 1 + r.IntN(12)
	switch r.IntN(10) {
	case 0:
		return esxsim.Fault{Command: "vsish", Stdout: "garbage \x00\xff\n", Times: n}
	case 1:
		return esxsim.Fault{Command: "vsish", Truncate: 40 + r.IntN(200), Times: n}
	case 2:
		return esxsim.Fault{Command: "vsish", ExitCode: 1, Stderr: "vsish: error", Times: n}
	case 3:
		return esxsim.Fault{Command: "vim-cmd", ArgsPrefix: []string{"vmsvc/getallvms"}, ExitCode: 1, Stderr: "Failed to login", Times: n}
	case 4:
		return esxsim.Fault{Command: "vim-cmd", ArgsPrefix: []string{"vmsvc/power.getstate"}, ExitCode: 1, Stderr: "vim.fault.NotFound", Times: n}
	case 5:
		return esxsim.Fault{Command: "net-stats", ExitCode: 1, Stderr: "net-stats: error", Times: n}
	case 6:
		return esxsim.Fault{Command: "vim-cmd", ArgsPrefix: []string{"vmsvc/power.shutdown"}, ExitCode: 1, Stderr: "vim.fault.ToolsUnavailable", Times: 1 + r.IntN(3)}
	case 7:
		return esxsim.Fault{Command: "vpxa", ExitCode: 1, Stderr: "vpxa: start failed", Times: 1 + r.IntN(2)}
	case 8:
		return esxsim.Fault{Command: "vsish", Hang: true, HangFor: esxsim.Duration(1500 * time.Millisecond), Times: 1}
	default:
		return esxsim.Fault{Command: "vim-cmd", ArgsPrefix: []string{"vmsvc/power.off"}, ExitCode: 1, Stderr: "vim.fault.InvalidState", Times: 1}
	}
}

func TestSoak(t *testing.T) {
	d := 30 * time.Minute
	if s := os.Getenv("HEAPGUARD_SOAK"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil || v < 10*time.Minute {
			t.Fatalf("HEAPGUARD_SOAK %q: want a duration of 10m or more", s)
		}
		d = v
	}
	period := max(d/24, 5*time.Minute)
	seed := time.Now().UnixNano() % 1e12
	if s := os.Getenv("HEAPGUARD_SOAK_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("HEAPGUARD_SOAK_SEED %q: %v", s, err)
		}
		seed = v
	}
	t.Logf("soak seed %d (HEAPGUARD_SOAK_SEED replays it), %s of host time", seed, d)
	r := rand.New(rand.NewPCG(uint64(seed), 7))

	dir := t.TempDir()
	sc := esxsim.Incident()
	sc.Seed = seed
	h := esxsim.New(t, sc)
	// 100 minutes in, the heap is about 13 % free: even the short version
	// sees power-offs and restarts.
	h.Advance(100 * time.Minute)
	clock := esxsim.NewStepClock(h.Root())
	cfg := policy.DefaultConfig()
	cfg.PowerOffAllow = []string{"DSVA*"}
	stateDir := filepath.Join(dir, "state")
	opt := agent.Options{
		Root: h.Root(), StateDir: stateDir, Interval: interval, Policy: cfg,
		ShutdownTimeout: time.Minute, CommandTimeout: 500 * time.Millisecond,
		Clock: clock, Runner: esxsim.Runner{Root: h.Root()},
	}
	w, err := agent.Open(opt)
	if err != nil {
		t.Fatal(err)
	}

	wallStart, cpuStart := time.Now(), cpuSeconds()
	start := clock.Now()
	next := start.Add(period)
	var samples []sample
	var polls, faults int
	take := func(at time.Duration) {
		st := h.State()
		s := sample{At: at, Goroutines: runtime.NumGoroutine(), FDs: openFDs(), RSSKB: rssKB(), CPU: cpuSeconds() - cpuStart}
		if hp := st.Heap(heapName); hp != nil {
			s.HeapFree = hp.PctFreeOfMax()
		}
		for _, a := range h.Actions() {
			switch {
			case isPowerOp(a) && a.Argv[1] != "vmsvc/power.on":
				s.PowerOffs++
			case isAgentOp(a):
				s.Restarts++
			}
		}
		samples = append(samples, s)
		fmt.Printf("soak: %8s: goroutines %3d, open fds %3d, rss %6.1f MB, cpu %7.2f s, netGPHeap %2d%% free, %3d power operations, %2d agent restarts\n",
			s.At, s.Goroutines, s.FDs, float64(s.RSSKB)/1024, s.CPU, s.HeapFree, s.PowerOffs, s.Restarts)
	}
	take(0)
	err = w.Run(context.Background(), d, func(res agent.Result) {
		polls++
		now := clock.Now()
		if now.Before(next) {
			return
		}
		at := now.Sub(start).Truncate(time.Second)
		next = next.Add(period)
		take(at)
		// Once heapguard has handled it, the incident again: the
		// appliances back on, the heap given back up to 40 % free.
		st := h.State()
		handled := false
		for _, vm := range st.VMs {
			if strings.HasPrefix(vm.Name, "DSVA") && !vm.PoweredOn && vm.ShutdownAt == nil {
				handled = true
				if _, stderr, code := h.Call("vim-cmd", "vmsvc/power.on", strconv.Itoa(vm.ID)); code != 0 {
					t.Errorf("at %s: power on %s: %s", at, vm.Name, stderr)
				}
			}
		}
		if hp := st.Heap(heapName); handled && hp != nil && hp.PctFreeOfMax() < 40 {
			h.Allocate(heapName, -(hp.Max*40/100 - (hp.Max - hp.Allocated)))
		}
		h.AddFault(soakFaults(r))
		faults++
	})
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	wall := time.Since(wallStart)
	if err != nil {
		t.Errorf("daemon: %v", err)
	}

	// The journal: valid, and every step started ended.
	f, jerr := os.Open(filepath.Join(stateDir, remediate.JournalFile))
	if jerr != nil {
		t.Fatal(jerr)
	}
	entries, bad, jerr := remediate.ReadJournal(f)
	f.Close()
	if jerr != nil || bad > 0 {
		t.Errorf("journal: %v, %d bad lines", jerr, bad)
	}
	acts := h.Actions()
	var real []esxsim.Action // the daemon's, not the test's power-ons
	for _, a := range acts {
		if !(isPowerOp(a) && a.Argv[1] == "vmsvc/power.on") {
			real = append(real, a)
		}
	}
	for _, v := range checkJournal(&run{actions: real, journal: entries}) {
		t.Errorf("%s: %s", v.Invariant, v.Detail)
	}
	// Only appliances, and the budget per hour.
	// The budget counts power-offs by when each began (the journal's
	// started entry, which the guards record): a batch's shutdown commands
	// run seconds after, so esxsim's times would shift the hour's edge.
	var ops []string
	for _, a := range real {
		if !isPowerOp(a) {
			continue
		}
		ops = append(ops, fmt.Sprintf("%s %s %s exit %d", a.Time.Format(time.RFC3339), a.Argv[1], a.Target, a.Exit))
		id, _ := strconv.Atoi(a.Target)
		if vm := vmByID(sc, id); vm == nil || !strings.HasPrefix(vm.Name, "DSVA") {
			t.Errorf("%s on vmid %s, not an appliance", a.Argv[1], a.Target)
		}
	}
	var times []time.Time
	for _, e := range entries {
		if e.Action == policy.ActPowerOff && e.Result == remediate.ResultStarted && !e.DryRun {
			at, err := time.Parse(time.RFC3339Nano, e.Time)
			if err != nil {
				t.Errorf("journal time %q: %v", e.Time, err)
			}
			times = append(times, at)
		}
	}
	for i := range times {
		n := 0
		for _, u := range times[i:] {
			if u.Sub(times[i]) < remediate.DefaultPowerOffWindow {
				n++
			}
		}
		if n > remediate.DefaultMaxPowerOffs {
			t.Errorf("%d power-offs within an hour from %s, max %d; power operations:\n%s", n, times[i], remediate.DefaultMaxPowerOffs, strings.Join(ops, "\n"))
			break
		}
	}

	// Flat: after the first period (caches and the journal file settle),
	// goroutines and open files move by a few at most, and end where they
	// were.
	if len(samples) < 2 {
		t.Fatalf("%d samples", len(samples))
	}
	steady := samples[1:]
	gmin, gmax, fmin, fmax := steady[0].Goroutines, steady[0].Goroutines, steady[0].FDs, steady[0].FDs
	var rmin, rmax int64 = steady[0].RSSKB, steady[0].RSSKB
	for _, s := range steady {
		gmin, gmax = min(gmin, s.Goroutines), max(gmax, s.Goroutines)
		fmin, fmax = min(fmin, s.FDs), max(fmax, s.FDs)
		rmin, rmax = min(rmin, s.RSSKB), max(rmax, s.RSSKB)
	}
	last := samples[len(samples)-1]
	fmt.Printf("soak: %s of host time in %s wall, %d polls, %d faults added, %d journal entries, %d power operations, %d agent restarts\n",
		d, wall.Round(time.Millisecond), polls, faults, len(entries), last.PowerOffs, last.Restarts)
	fmt.Printf("soak: goroutines %d..%d, open fds %d..%d, rss %.1f..%.1f MB (this test process, heapguard in it), cpu %.2f s (%.4f %% of a core per host second)\n",
		gmin, gmax, fmin, fmax, float64(rmin)/1024, float64(rmax)/1024, last.CPU, 100*last.CPU/d.Seconds())
	// A hung vsish's goroutine lives HangFor past its timeout: allow a few.
	if gmax-gmin > 8 || last.Goroutines > samples[1].Goroutines+4 {
		t.Errorf("goroutines not flat: %d..%d after the first period, %d at the end", gmin, gmax, last.Goroutines)
	}
	if fmin >= 0 && (fmax-fmin > 3 || last.FDs > samples[1].FDs+2) {
		t.Errorf("open files not flat: %d..%d after the first period, %d at the end", fmin, fmax, last.FDs)
	}
}
