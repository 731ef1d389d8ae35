package proptest

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/heapguard/heapguard/esxsim"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

// The oracle: what heapguard may do, computed from the incident as it was
// generated (the scenario, the .vmx edits, the MAC move), never from
// heapguard's own inventory or join, so that a wrong join shows.

// vmxMACs is what each VM's .vmx declares, by vmid and ethernet index, for
// present NICs only (an absent NIC is no live claim).
func vmxMACs(in incident, moved bool) map[int]map[int]string {
	out := map[int]map[int]string{}
	for _, vm := range in.Sc.VMs {
		out[vm.ID] = map[int]string{}
		for _, n := range vm.NICs {
			if !n.Absent {
				out[vm.ID][n.Index] = n.MAC
			}
		}
	}
	for _, c := range in.Claims {
		if _, ok := out[c.VMID][c.NIC]; ok {
			out[c.VMID][c.NIC] = c.MAC
		}
	}
	if m := in.Move; m != nil && moved {
		// The new owner's .vmx is rewritten whole from its NICs.
		vm := vmByID(in.Sc, m.To)
		out[m.To] = map[int]string{}
		for _, n := range vm.NICs {
			if !n.Absent {
				out[m.To][n.Index] = n.MAC
			}
		}
		out[m.To][m.ToNIC] = m.MAC
	}
	return out
}

// realMAC is the MAC a VM NIC has on its port (what the log shows).
func realMAC(in incident, vmid, nic int, moved bool) string {
	if m := in.Move; m != nil && moved && vmid == m.To && nic == m.ToNIC {
		return m.MAC
	}
	for _, n := range vmByID(in.Sc, vmid).NICs {
		if n.Index == nic {
			return n.MAC
		}
	}
	return ""
}

// allowed is the allow-list's documented rule: case-insensitive
// path.Match globs; a bad glob matches nothing.
func allowed(allow []string, name string) bool {
	for _, g := range allow {
		if ok, err := path.Match(strings.ToLower(g), strings.ToLower(name)); err == nil && ok {
			return true
		}
	}
	return false
}

// ambiguous says whether the flapping port of vmid's ethernet nic cannot be
// given to one VM at poll p: two or more registered, powered-on VMs whose
// .vmx declare its MAC on a present NIC, unless net-stats names the port's
// client and only one of them has that name and ethernet index. Without
// net-stats a registered claimant counts even powered off (README: its
// port may be the one that flapped).
func ambiguous(in incident, p poll, vmid, nic int) (bool, []int) {
	mac := realMAC(in, vmid, nic, p.Moved)
	var claimants []int
	for id, nics := range vmxMACs(in, p.Moved) {
		if !p.Registered[id] || !p.On[id] && !in.NoNetStats {
			continue
		}
		for _, m := range nics {
			if m == mac {
				claimants = append(claimants, id)
				break
			}
		}
	}
	slices.Sort(claimants)
	if len(claimants) < 2 {
		return false, claimants
	}
	if in.NoNetStats {
		return true, claimants
	}
	name := vmByID(in.Sc, vmid).Name
	same := 0
	for _, id := range claimants {
		if vmByID(in.Sc, id).Name == name && vmxMACs(in, p.Moved)[id][nic] == mac {
			same++
		}
	}
	return same > 1, claimants
}

// vmknicMACs are the host's VMkernel NICs by MAC: the scenario's type-3
// ports, which esxsim lists in esxcfg-vmknic -l and net-stats -l alike.
func vmknicMACs(in incident) map[string]string {
	out := map[string]string{}
	for _, p := range in.Sc.Ports {
		if p.Type == 3 {
			out[p.MAC] = p.Client
		}
	}
	return out
}

// fastNICs are the ethernet indexes of vmid's present NICs that flap fast
// enough to be flapping.
func fastNICs(in incident, vmid int) []int {
	var out []int
	for _, f := range in.Sc.Flaps {
		if f.VMID == vmid && f.Period.D() <= fastMax {
			out = append(out, f.NIC)
		}
	}
	return out
}

// mayPowerOff says whether heapguard may power vmid off at poll p, and if
// not, why.
func mayPowerOff(in incident, p poll, vmid int) (bool, string) {
	vm := vmByID(in.Sc, vmid)
	switch {
	case vm == nil:
		return false, "no such VM in the scenario"
	case !p.Registered[vmid]:
		return false, "not registered when the poll began"
	case !p.On[vmid]:
		return false, "powered off when the poll began"
	case !allowed(in.Allow, vm.Name):
		return false, fmt.Sprintf("%q is not in the allow-list %q", vm.Name, in.Allow)
	}
	nics := fastNICs(in, vmid)
	if len(nics) == 0 {
		return false, fmt.Sprintf("%q is not flapping", vm.Name)
	}
	var why []string
	for _, n := range nics {
		mac := realMAC(in, vmid, n, p.Moved)
		// Without a port list a port is known by its MAC alone, and a
		// VMkernel NIC's MAC is the host's, never a VM's.
		if vmk, ok := vmknicMACs(in)[mac]; ok && in.NoNetStats {
			why = append(why, fmt.Sprintf("ethernet%d's MAC %s is the host's %s and this host has no net-stats", n, mac, vmk))
			continue
		}
		amb, cl := ambiguous(in, p, vmid, n)
		if !amb {
			return true, ""
		}
		why = append(why, fmt.Sprintf("ethernet%d's MAC %s is ambiguous (vmids %v)", n, mac, cl))
	}
	return false, strings.Join(why, "; ")
}

// pollOf is the poll during which something at t happened.
func (r *run) pollOf(t time.Time) poll {
	i := sort.Search(len(r.polls), func(i int) bool { return r.polls[i].At.After(t) })
	if i == 0 {
		return poll{Registered: map[int]bool{}, On: map[int]bool{}}
	}
	return r.polls[i-1]
}

func isPowerOp(a esxsim.Action) bool {
	return a.Tool == "vim-cmd" && len(a.Argv) > 1 && strings.HasPrefix(a.Argv[1], "vmsvc/power.")
}

func isAgentOp(a esxsim.Action) bool {
	return a.Tool == "vpxa" || a.Tool == "vmware-vpxa" || a.Tool == "hostd"
}

// violation is one broken invariant.
type violation struct {
	Invariant string
	Detail    string
	// Known names the product finding this violation is an instance of
	// (knownFinding); "" for a new one.
	Known string
}

// What the seeds TestFindings replays check, all on a host without
// net-stats -l, where heapguard joins a flapping port to a VM by MAC
// alone. Every violation fails (invWrongVM, invHostPort, invVmknicNamed);
// a finding the product cannot fix at once gets a classifier setting
// violation.Known, and its seeds go to TestFindings.
const (
	findingStaleClaim    = "a VM whose port never flapped is not powered off for flaps of a MAC its .vmx declares: while the flapping VM is still registered, another registered claimant makes the MAC ambiguous (800091); when the flapping VM is unregistered and its MAC moves to another VM while the old port's flaps are in the window, the old port's last line is a disable, so no VM is given the port (800938)"
	oracleOffClaimant    = "the oracle, as heapguard's rule, takes a registered claimant powered off as making the MAC ambiguous, and expects no power-off"
	findingAmbOffUnknown = "a flapping MAC declared by two registered VMs, one of unknown power state and the other off, is ambiguous, naming both"
	findingVmknicMAC     = "a VMkernel NIC's flapping port is the host's (esxcfg-vmknic -l), never a VM's whose .vmx uses the same MAC (800642: that VM's own NIC flaps too slowly to count, among twins of one name)"
)

// Invariant names.
const (
	invWrongVM  = "never powers off a VM that is not flapping, not allowed, or whose MAC is ambiguous"
	invBudget   = "never beyond budget"
	invTwice    = "never acts on one VM twice"
	invDryRun   = "dry-run never changes anything"
	invJournal  = "every action journaled before and after"
	invHeap     = "with the leaking VMs allowed and the leak slower than the reaction window, the heap never reaches its maximum"
	invPowerOn  = "never powers a VM on"
	invAmbNamed = "an ambiguous flapping MAC is journaled as ambiguous, naming every claimant"
	invHostPort = "never powers off a VM for a port that is the host's own VMkernel NIC"
	invVmkNamed = "a VMkernel NIC's flapping port, on a host without net-stats, is journaled naming the vmknic"
)

// check runs every invariant over a run.
func check(r *run) []violation {
	var vs []violation
	add := func(inv, format string, a ...any) {
		vs = append(vs, violation{Invariant: inv, Detail: fmt.Sprintf(format, a...)})
	}
	in := r.in

	// Power operations: right VM, once, within budget.
	first := map[int]time.Time{}
	pollsOf := map[int]map[time.Time]bool{}
	for _, a := range r.actions {
		if !isPowerOp(a) {
			continue
		}
		if a.Argv[1] == "vmsvc/power.on" {
			add(invPowerOn, "%s %v", a.Time.Format(time.RFC3339), a.Argv)
			continue
		}
		id, err := strconv.Atoi(a.Target)
		if err != nil {
			add(invWrongVM, "power operation on vmid %q: %v", a.Target, a.Argv)
			continue
		}
		p := r.pollOf(a.Time)
		if ok, why := mayPowerOff(in, p, id); !ok {
			add(invWrongVM, "%s at %s on vmid %d: %s", a.Argv[1], a.Time.Format(time.RFC3339), id, why)
		}
		if _, ok := first[id]; !ok {
			first[id] = a.Time
			pollsOf[id] = map[time.Time]bool{}
		}
		pollsOf[id][p.At] = true
	}
	for id, ps := range pollsOf {
		if len(ps) > 1 {
			add(invTwice, "vmid %d got power operations in %d polls", id, len(ps))
		}
	}
	var starts []time.Time
	for _, t := range first {
		starts = append(starts, t)
	}
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	for i := range starts {
		n := 0
		for _, t := range starts[i:] {
			if t.Sub(starts[i]) < in.Window {
				n++
			}
		}
		if n > in.MaxOffs {
			add(invBudget, "%d VMs powered off within %s from %s, max %d", n, in.Window, starts[i].Format(time.RFC3339), in.MaxOffs)
		}
	}
	var restarts []time.Time
	for _, a := range r.actions {
		if isAgentOp(a) && (len(restarts) == 0 || r.pollOf(a.Time).At != r.pollOf(restarts[len(restarts)-1]).At) {
			restarts = append(restarts, a.Time)
		}
	}
	for i := 1; i < len(restarts); i++ {
		if d := restarts[i].Sub(restarts[i-1]); d < remediate.DefaultAgentCooldown {
			add(invBudget, "agent restarted %s after the previous one, cooldown %s", d, remediate.DefaultAgentCooldown)
		}
	}

	vs = append(vs, checkJournal(r)...)
	vs = append(vs, checkAmbiguousNamed(r)...)
	vs = append(vs, checkHostPorts(r)...)

	if in.DryRun {
		if len(r.actions) > 0 {
			add(invDryRun, "the action log has %d entries, the first %+v", len(r.actions), r.actions[0])
		}
		if len(r.dryDiff) > 0 {
			add(invDryRun, "the root differs from a host left alone: %s", strings.Join(r.dryDiff[:min(5, len(r.dryDiff))], ", "))
		}
		for _, e := range r.journal {
			if !e.DryRun {
				add(invDryRun, "journal entry without dry_run: %s %s %s", e.Action, e.Target, e.Result)
				break
			}
		}
	}

	if liveOK, _ := livenessApplies(in); liveOK {
		for _, h := range r.final.Heaps {
			if h.Name == heapName && h.Failures > 0 {
				add(invHeap, "%s failed %d allocations (lowest %d%% free); leakers %v, heap lasts %s, budget %d",
					heapName, h.Failures, h.LowestPct, in.Leakers, in.TTE.Round(time.Second), in.MaxOffs)
			}
		}
	}
	return vs
}

// checkJournal: every mutating command esxsim saw lies between a started
// entry and that step's final entry, and every started step ends.
func checkJournal(r *run) []violation {
	var vs []violation
	add := func(format string, a ...any) {
		vs = append(vs, violation{Invariant: invJournal, Detail: fmt.Sprintf(format, a...)})
	}
	at := func(e remediate.Entry) time.Time {
		t, err := time.Parse(time.RFC3339Nano, e.Time)
		if err != nil {
			add("entry time %q: %v", e.Time, err)
		}
		return t
	}
	type step struct {
		start, end int // journal indexes; end -1 while open
	}
	steps := map[string][]*step{} // kind/target/vmid -> steps
	// Power-offs are keyed by vmid (esxsim's target), restarts by agent.
	key := func(kind policy.ActionKind, target, vmid string) string {
		if kind == policy.ActPowerOff {
			return string(kind) + "\x00" + vmid
		}
		return string(kind) + "\x00" + target
	}
	open := map[string]*step{} // plan/kind/target/vmid -> open step
	for i, e := range r.journal {
		if e.Action != policy.ActPowerOff && e.Action != policy.ActRestartAgent {
			continue
		}
		k := key(e.Action, e.Target, e.VMID)
		ok := e.PlanID + "\x00" + k
		switch e.Result {
		case remediate.ResultStarted:
			s := &step{start: i, end: -1}
			open[ok] = s
			steps[k] = append(steps[k], s)
		case remediate.ResultOK, remediate.ResultFailed, remediate.ResultDryRun:
			if s := open[ok]; s != nil {
				s.end = i
				delete(open, ok)
			}
		}
	}
	for k, s := range open {
		add("step %q started at %s never ended", strings.ReplaceAll(k, "\x00", " "), r.journal[s.start].Time)
	}
	for _, a := range r.actions {
		var k string
		switch {
		case isPowerOp(a):
			k = key(policy.ActPowerOff, "", a.Target)
		case isAgentOp(a):
			k = key(policy.ActRestartAgent, policy.Agent, "")
		default:
			continue
		}
		found := false
		for _, s := range steps[k] {
			if s.end < 0 {
				continue
			}
			if !at(r.journal[s.start]).After(a.Time) && !at(r.journal[s.end]).Before(a.Time) {
				found = true
				break
			}
		}
		if !found {
			add("%s %v at %s (exit %d) lies in no journaled step (started before, ended after)", a.Tool, a.Argv[1:], a.Time.Format(time.RFC3339Nano), a.Exit)
		}
	}
	return vs
}

// reactionWindow is how long heapguard may take, from its start, to power
// the leakers off: a trend predicts only after two spans of a minute
// (heap.TrendConfig's RateSpan and MinPoints), then the hold polls and one
// more, the graceful shutdown wait, and a poll of slack.
func reactionWindow(in incident) time.Duration {
	return 2*time.Minute + time.Duration(in.Hold+1)*interval + shutdownTimeout + interval
}

// livenessApplies says whether the heap invariant applies: a live run,
// every leak from fast-flapping VMs that run at the start, all allowed,
// none ambiguous or touched by the test's changes, within budget together
// with every other VM heapguard may power off, and a leak slower than the
// reaction window; no faults.
func livenessApplies(in incident) (bool, string) {
	p := poll{Registered: map[int]bool{}, On: map[int]bool{}}
	for _, vm := range in.Sc.VMs {
		p.Registered[vm.ID], p.On[vm.ID] = true, !vm.PoweredOff
	}
	switch {
	case in.DryRun:
		return false, "dry run"
	case !in.Clean:
		return false, "a leak from a host port, a slow flapper or drift"
	case in.TTE-in.Before < reactionWindow(in):
		return false, "leak faster than the reaction window"
	case len(in.Faults) > 0:
		return false, "faults"
	case in.Move != nil && (slices.Contains(in.Leakers, in.Move.From) || slices.Contains(in.Leakers, in.Move.To)):
		return false, "a leaker's MAC moved"
	}
	for _, c := range in.Claims {
		if slices.Contains(in.Leakers, c.VMID) {
			return false, "a leaker's .vmx edited"
		}
	}
	may := 0
	for _, vm := range in.Sc.VMs {
		ok, _ := mayPowerOff(in, p, vm.ID)
		if ok {
			may++
		}
		if slices.Contains(in.Leakers, vm.ID) && !ok && !vm.PoweredOff {
			return false, "a leaker heapguard may not power off"
		}
	}
	if may > in.MaxOffs {
		return false, "budget below the VMs it may power off"
	}
	return true, ""
}

// checkAmbiguousNamed: when an alert speaks of a flapping MAC that is
// ambiguous, some alert says "ambiguous" and names every claimant.
func checkAmbiguousNamed(r *run) []violation {
	var vs []violation
	in := r.in
	if in.DryRun || len(r.polls) == 0 {
		return nil
	}
	// Where VMs cannot be listed or the port list read, heapguard says so
	// first, naming the claimants; after a MAC move the claimants change
	// between polls: the wording is judged on steady incidents only.
	if in.Move != nil {
		return nil
	}
	for _, f := range in.Faults {
		if slices.Contains(f.ArgsPrefix, "vmsvc/getallvms") || f.Command == "net-stats" {
			return nil
		}
	}
	p := r.polls[len(r.polls)/2]
	for _, f := range in.Sc.Flaps {
		if f.VMID == 0 || f.Period.D() > fastMax || !p.On[f.VMID] || !p.Registered[f.VMID] {
			continue
		}
		amb, cl := ambiguous(in, p, f.VMID, f.NIC)
		if !amb {
			continue
		}
		mac := realMAC(in, f.VMID, f.NIC, p.Moved)
		said, named := false, false
		for _, e := range r.journal {
			said = said || e.Action == policy.ActAlert && strings.Contains(e.Reason, mac)
			if e.Action != policy.ActAlert || !strings.Contains(e.Reason, mac) || !strings.Contains(e.Reason, "ambiguous") {
				continue
			}
			all := true
			for _, id := range cl {
				all = all && strings.Contains(e.Reason, strconv.Quote(vmByID(in.Sc, id).Name))
			}
			named = named || all
		}
		if said && !named {
			vs = append(vs, violation{Invariant: invAmbNamed, Detail: fmt.Sprintf("MAC %s of vmid %d ethernet%d, claimants %v: no alert says ambiguous and names them all", mac, f.VMID, f.NIC, cl)})
		}
	}
	return vs
}

// checkHostPorts: no power-off, done or dry-run, is for a VMkernel NIC's
// port; on a host without net-stats, when an alert speaks of a flapping
// vmknic's port, some alert names the vmknic.
func checkHostPorts(r *run) []violation {
	var vs []violation
	in := r.in
	for _, hp := range in.Sc.Ports {
		if hp.Type != 3 {
			continue
		}
		port := fmt.Sprintf("port %s (", hp.Port)
		for _, e := range r.journal {
			if e.Action == policy.ActPowerOff && e.Result != remediate.ResultSkipped && (e.Port == hp.Port.String() || strings.Contains(e.Reason, port)) {
				vs = append(vs, violation{Invariant: invHostPort, Detail: fmt.Sprintf("%s %q vmid %s %s for %s of %s: %s", e.Action, e.Target, e.VMID, e.Result, hp.Port, hp.Client, e.Reason)})
			}
		}
		flaps := slices.ContainsFunc(in.Sc.Flaps, func(f esxsim.FlapSpec) bool { return f.Port == hp.Port })
		// While esxcfg-vmknic fails the alerts say the vmknics are unknown.
		vmkFault := slices.ContainsFunc(in.Faults, func(f esxsim.Fault) bool { return f.Command == "esxcfg-vmknic" })
		if !flaps || !in.NoNetStats || in.DryRun || vmkFault {
			continue
		}
		said, named := false, false
		for _, e := range r.journal {
			if e.Action != policy.ActAlert || !strings.Contains(e.Reason, port) {
				continue
			}
			said = true
			named = named || strings.Contains(e.Reason, "VMkernel NIC "+hp.Client+" ")
		}
		if said && !named {
			vs = append(vs, violation{Invariant: invVmkNamed, Detail: fmt.Sprintf("alerts speak of %s (%s, MAC %s) and none names %s", hp.Port, hp.Client, hp.MAC, hp.Client)})
		}
	}
	return vs
}
