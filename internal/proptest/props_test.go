package proptest

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Property tests over randomized incidents (issue 17, point 3). Each
// incident is drawn from one seed; a failure prints the seed, and
//
//	HEAPGUARD_PROP_SEED=<seed> go test -run TestProps ./internal/proptest/
//
// replays that incident alone. HEAPGUARD_PROP_N sets how many incidents
// run (default 200), HEAPGUARD_PROP_BASE the first seed (default: drawn
// from the clock and printed, so every run explores new incidents).

const defaultN = 200

type propConfig struct {
	base int64
	n    int
	one  bool // replaying one seed
	// strict fails on known findings too (HEAPGUARD_PROP_STRICT=1): by
	// default an incident whose every violation is a known finding is
	// logged and counted, not failed.
	strict bool
}

func propSettings(t *testing.T, defN int) propConfig {
	t.Helper()
	if s := os.Getenv("HEAPGUARD_PROP_SEED"); s != "" {
		seed, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("HEAPGUARD_PROP_SEED %q: %v", s, err)
		}
		return propConfig{base: seed, n: 1, one: true, strict: true}
	}
	c := propConfig{base: time.Now().UnixNano() % 1e12, n: defN, strict: os.Getenv("HEAPGUARD_PROP_STRICT") == "1"}
	if s := os.Getenv("HEAPGUARD_PROP_BASE"); s != "" {
		b, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("HEAPGUARD_PROP_BASE %q: %v", s, err)
		}
		c.base = b
	}
	if s := os.Getenv("HEAPGUARD_PROP_N"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("HEAPGUARD_PROP_N %q: want a positive count", s)
		}
		c.n = n
	}
	return c
}

// propStats are the figures a property run prints.
type propStats struct {
	Incidents, DryRuns, Ambiguous, Moves, Claims, Faults, NoNetStats, Liveness int
	PowerOffs, Restarts, Polls                                                 int
	Violations, Known                                                          int
	FirstViolationAt                                                           int // 1-based incident number, 0: none
	Wall                                                                       time.Duration
}

// result is one incident's verdict.
type result struct {
	idx  int
	seed int64
	r    *run
	err  error
	vs   []violation
}

// runProps runs n incidents from base on GOMAXPROCS workers, checking
// each with checks; it reports every violation with its seed and returns
// the figures.
func runProps(t *testing.T, c propConfig, checks func(*run) []violation) propStats {
	t.Helper()
	start := time.Now()
	var next atomic.Int64
	results := make(chan result)
	var wg sync.WaitGroup
	// Incidents wait on syncs as much as they compute: more workers than CPUs.
	for range 3 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= c.n {
					return
				}
				seed := c.base + int64(i)
				in := randomIncident(seed)
				r, err := runIncident(in)
				res := result{idx: i, seed: seed, r: r, err: err}
				if err == nil {
					res.vs = checks(r)
				}
				results <- res
			}
		})
	}
	go func() { wg.Wait(); close(results) }()

	var st propStats
	var firstBad []int
	for res := range results {
		st.Incidents++
		if res.err != nil {
			t.Errorf("incident seed %d: %v\n  replay: HEAPGUARD_PROP_SEED=%d go test -run %s ./internal/proptest/", res.seed, res.err, res.seed, t.Name())
			continue
		}
		in, r := res.r.in, res.r
		st.Polls += len(r.polls)
		if in.DryRun {
			st.DryRuns++
		}
		if in.Move != nil {
			st.Moves++
		}
		if len(in.Claims) > 0 {
			st.Claims++
		}
		if len(in.Faults) > 0 {
			st.Faults++
		}
		if in.NoNetStats {
			st.NoNetStats++
		}
		if ok, _ := livenessApplies(in); ok {
			st.Liveness++
		}
		if p := r.polls; len(p) > 0 {
			for _, f := range in.Sc.Flaps {
				if f.VMID != 0 && f.Period.D() <= fastMax {
					if amb, _ := ambiguous(in, p[0], f.VMID, f.NIC); amb {
						st.Ambiguous++
						break
					}
				}
			}
		}
		for _, a := range r.actions {
			switch {
			case isPowerOp(a):
				st.PowerOffs++
			case isAgentOp(a):
				st.Restarts++
			}
		}
		if known := knownOnly(res.vs); known != "" && !c.strict {
			st.Known++
			t.Logf("incident seed %d (#%d): known finding (%s):%s", res.seed, res.idx+1, known, listViolations(res.vs))
		} else if len(res.vs) > 0 {
			st.Violations++
			firstBad = append(firstBad, res.idx+1)
			t.Errorf("incident seed %d (#%d) broke %d invariant(s):%s\n  incident: %s\n  replay: HEAPGUARD_PROP_SEED=%d go test -run %s ./internal/proptest/",
				res.seed, res.idx+1, len(res.vs), listViolations(res.vs), describe(in), res.seed, t.Name())
		}
		if c.one {
			t.Logf("incident seed %d: %s\n  %d polls, %d actions, %d journal entries, check errors %q, wall %s",
				res.seed, describe(in), len(r.polls), len(r.actions), len(r.journal), r.checkErrs, r.wall.Round(time.Millisecond))
			for _, a := range r.actions {
				t.Logf("  esxsim %s %s %q exit %d %s", a.Time.Format(time.RFC3339), a.Tool, a.Argv[1:], a.Exit, a.Result)
			}
			for _, e := range r.journal {
				t.Logf("  journal %s %s %s vmid %s %s: %s %s", e.Time, e.Action, e.Target, e.VMID, e.Result, e.Reason, e.Error)
			}
		}
	}
	if len(firstBad) > 0 {
		st.FirstViolationAt = slices.Min(firstBad)
	}
	st.Wall = time.Since(start)
	return st
}

// knownOnly returns the known finding of vs when every violation is one.
func knownOnly(vs []violation) string {
	known := ""
	for _, v := range vs {
		if v.Known == "" {
			return ""
		}
		known = v.Known
	}
	return known
}

func listViolations(vs []violation) string {
	s := ""
	for _, v := range vs {
		s += fmt.Sprintf("\n  - %s: %s", v.Invariant, v.Detail)
	}
	return s
}

// describe summarizes an incident for a failure message.
func describe(in incident) string {
	s := fmt.Sprintf("ESXi %s, %d VMs [", in.Sc.Version, len(in.Sc.VMs))
	for i, vm := range in.Sc.VMs {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%d %q", vm.ID, vm.Name)
		if vm.PoweredOff {
			s += " off"
		}
	}
	s += "], flaps ["
	for i, f := range in.Sc.Flaps {
		if i > 0 {
			s += ", "
		}
		if f.Port != 0 {
			s += fmt.Sprintf("port %s/%s", f.Port, f.Period.D())
		} else {
			s += fmt.Sprintf("vmid %d eth%d/%s", f.VMID, f.NIC, f.Period.D())
		}
		if f.LeakBytes > 0 {
			s += fmt.Sprintf(" leaks %d", f.LeakBytes)
		}
	}
	s += fmt.Sprintf("], allow %q, hold %d, budget %d per %s, dry-run %v, no net-stats %v, heap lasts %s, heapguard from %s for %s",
		in.Allow, in.Hold, in.MaxOffs, in.Window, in.DryRun, in.NoNetStats, in.TTE.Round(time.Second), in.Before.Round(time.Second), in.Duration.Round(time.Second))
	if len(in.Claims) > 0 {
		s += fmt.Sprintf(", .vmx claims %+v", in.Claims)
	}
	if in.Move != nil {
		s += fmt.Sprintf(", MAC move %+v", *in.Move)
	}
	if len(in.Faults) > 0 {
		s += fmt.Sprintf(", %d faults", len(in.Faults))
	}
	return s
}

func (st propStats) String() string {
	return fmt.Sprintf("%d incidents in %s (%.0f ms each, %d polls): %d dry runs, %d with an ambiguous flapping MAC, %d .vmx claims, %d MAC moves, %d with faults, %d without net-stats, %d where the heap invariant applies; %d power operations, %d agent restarts; %d incidents broke an invariant (first at #%d), %d more only by known findings",
		st.Incidents, st.Wall.Round(time.Millisecond), float64(st.Wall.Milliseconds())/float64(max(st.Incidents, 1)), st.Polls,
		st.DryRuns, st.Ambiguous, st.Claims, st.Moves, st.Faults, st.NoNetStats, st.Liveness, st.PowerOffs, st.Restarts,
		st.Violations, st.FirstViolationAt, st.Known)
}

// TestProps runs randomized incidents and checks every invariant of
// issue 17 point 3 on each.
func TestProps(t *testing.T) {
	c := propSettings(t, defaultN)
	t.Logf("seeds %d to %d (HEAPGUARD_PROP_BASE=%d HEAPGUARD_PROP_N=%d)", c.base, c.base+int64(c.n)-1, c.base, c.n)
	st := runProps(t, c, check)
	t.Logf("%s", st)
	fmt.Printf("props: %s\n", st)
}

// TestFindings replays incidents that once broke an invariant, with every
// invariant, as regression cases. Seeds are tied
// to the generator: a change to randomIncident draws other incidents from
// them (search again with HEAPGUARD_PROP_N and pick new seeds).
func TestFindings(t *testing.T) {
	for _, tc := range []struct {
		seed int64
		why  string
	}{
		{800091, findingStaleClaim},
		{800938, findingStaleClaim},
		{500242, findingVmknicMAC},
		{700109, findingVmknicMAC},
		{800642, findingVmknicMAC},
		{800213, oracleOffClaimant},
		{2000721, findingAmbOffUnknown},
	} {
		t.Run(strconv.FormatInt(tc.seed, 10), func(t *testing.T) {
			t.Log(tc.why)
			runProps(t, propConfig{base: tc.seed, n: 1, one: true, strict: true}, check)
		})
	}
}

// TestFindingsUnfaulted: the seeds TestFindings replays draw no
// esxcfg-vmknic fault, which would spare the VMs they catch wrongly
// powered off for reasons of its own.
func TestFindingsUnfaulted(t *testing.T) {
	for _, seed := range []int64{500242, 700109, 800642, 800938} {
		for _, f := range randomIncident(seed).Faults {
			if f.Command == "esxcfg-vmknic" {
				t.Errorf("seed %d draws an esxcfg-vmknic fault: pick the incident again", seed)
			}
		}
	}
}
