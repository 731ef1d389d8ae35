package proptest

import (
	"fmt"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/heapguard/heapguard/esxsim"
)

// incident is one randomized incident: the host (a scenario), what the
// test changes on it while heapguard runs, and heapguard's configuration.
// Everything is drawn from one seed, so the seed alone replays it.
type incident struct {
	Seed int64
	Sc   esxsim.Scenario

	Allow      []string
	DryRun     bool
	NoNetStats bool // net-stats removed: heapguard joins by MAC only
	Hold       int
	MaxOffs    int
	Window     time.Duration
	// Before is host time that passes before heapguard starts (its first
	// check reads the log from the start: the flaps are already there);
	// Duration is how long heapguard then watches.
	Before   time.Duration
	Duration time.Duration

	// Claims are .vmx edits made before heapguard starts: the NIC's
	// address line is rewritten to another MAC (a flapping one: a MAC on
	// two VMs), while the NIC keeps its real MAC on the vSwitch.
	Claims []vmxClaim
	// Move, when set, unregisters a flapping VM while its flaps are in the
	// window and gives its MAC to another VM (a MAC moving between VMs).
	Move *macMove
	// Faults are added before heapguard starts.
	Faults []esxsim.Fault

	// TTE is how long the watched heap lasts from Start with every leak
	// running; Leakers are the vmids of the VMs whose flaps leak, and
	// Clean says that every leak comes from such a VM's flapping NIC and
	// nothing else (no host port, no drift, no slow flapper).
	TTE     time.Duration
	Leakers []int
	Clean   bool
}

type vmxClaim struct {
	VMID, NIC int
	MAC       string
}

type macMove struct {
	At       time.Duration
	From, To int // vmids
	ToNIC    int // ethernet index of To that takes the MAC
	MAC      string
}

const (
	heapName = "netGPHeap"
	heapMax  = 67109968
	// interval is heapguard's poll interval in these runs (host time).
	interval        = 10 * time.Second
	shutdownTimeout = 20 * time.Second
	// flapCycles within flapWindow make a port flapping (heapguard's
	// defaults); fast flappers flap at most every fastMax, slow ones at
	// least every slowMin: 300s/45s < 7 cycles in a window.
	flapCycles = 10
	flapWindow = 5 * time.Minute
	fastMax    = 6 * time.Second
	slowMin    = 45 * time.Second
)

// tricky are display names that have broken tools before: blanks, quotes,
// shell and glob characters, non-ASCII, case twins.
var tricky = []string{
	"DSVA01", "dsva02", "DSVA03", "web 01 (prod); $(x)", "db-02", `say "hi"`, "it's mine", "Ærø.vm",
	"日本語 VM", "glob*", "what?", "[abc]", `back\slash`, "two  spaces", "mon-01", "a", "vm|pipe", "dollar$HOME",
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func dur(r *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.Int64N(int64(hi-lo)+1))
}

// randomIncident draws an incident from its seed alone (PCG), so the seed
// printed on a failure replays it.
func randomIncident(seed int64) incident {
	r := rand.New(rand.NewPCG(uint64(seed), uint64(seed)*0x9e3779b97f4a7c15+1))
	in := incident{Seed: seed}
	sc := esxsim.Scenario{
		Name:          fmt.Sprintf("prop-%d", seed),
		Version:       pick(r, []string{"4.1", "5.0", "5.5", "6.0", "6.5", "6.7", "7.0", "8.0"}),
		Seed:          seed,
		Hostname:      "esx01.lab.local",
		Start:         time.Date(2014, 6, 10, 6, 0, 0, 0, time.UTC),
		Uptime:        esxsim.Duration(100 * time.Hour),
		CPUs:          8,
		DatastoreUUID: "71641d44-1e032a47-3b1c-00215a9b0c7e",
		Datastore:     "datastore1",
		Noise:         esxsim.Noise{PerMinute: float64(r.IntN(4))},
	}
	// Host ports: two uplinks, vmk0 sharing vmnic0's MAC (as on a real
	// host), vmk1.
	sc.Ports = []esxsim.PortSpec{
		{Port: 0x3000002, Type: 4, Switch: "vSwitch0", MAC: "00:25:b5:00:0a:1e", Client: "vmnic0"},
		{Port: 0x3000004, Type: 4, Switch: "vSwitch0", MAC: "00:25:b5:00:0b:1e", Client: "vmnic1"},
		{Port: 0x3000006, Type: 3, Switch: "vSwitch0", MAC: "00:25:b5:00:0a:1e", Client: "vmk0"},
		{Port: 0x4000002, Type: 3, Switch: "vmservice-vswitch", MAC: "00:50:56:6a:3c:91", Client: "vmk1"},
	}

	nVM := 1 + r.IntN(6)
	port := esxsim.PortID(0x3000010)
	macN := 0x100
	folders := map[string]bool{}
	for i := 0; i < nVM; i++ {
		id := 1 + i*(1+r.IntN(3))
		for slices.ContainsFunc(sc.VMs, func(v esxsim.VMSpec) bool { return v.ID == id }) {
			id++
		}
		name := pick(r, tricky)
		switch {
		case i > 0 && r.IntN(6) == 0: // a duplicate display name
			name = sc.VMs[r.IntN(i)].Name
		case r.IntN(4) == 0:
			name = fmt.Sprintf("vm-%03d", r.IntN(1000))
		}
		folder := name
		if folders[strings.ToLower(folder)] {
			folder = fmt.Sprintf("%s_%d", name, id)
		}
		folders[strings.ToLower(folder)] = true
		vm := esxsim.VMSpec{
			ID: id, Name: name, Vmx: folder + "/" + folder + ".vmx", GuestOS: "otherLinux64Guest",
			PoweredOff:   r.IntN(8) == 0,
			Tools:        pick(r, []string{esxsim.ToolsRunning, esxsim.ToolsRunning, esxsim.ToolsNotRunning, esxsim.ToolsNotInstalled}),
			ShutdownTime: esxsim.Duration(dur(r, 3*time.Second, 25*time.Second)),
		}
		nNIC := 1 + r.IntN(3)
		for n := 0; n < nNIC; n++ {
			nic := esxsim.NIC{Index: n, Network: "VM Network", VirtualDev: "vmxnet3", Port: port, Switch: "vSwitch0", Uplink: "vmnic0"}
			port++
			macN++
			switch r.IntN(3) {
			case 0:
				nic.AddressType, nic.MAC = "vpx", fmt.Sprintf("00:50:56:84:%02x:%02x", macN>>8, macN&0xff)
			case 1:
				nic.AddressType, nic.MAC = "generated", fmt.Sprintf("00:0c:29:6b:%02x:%02x", macN>>8, macN&0xff)
			default:
				nic.AddressType, nic.MAC = "static", fmt.Sprintf("00:50:56:3f:%02x:%02x", macN>>8, macN&0xff)
			}
			if n > 0 && r.IntN(8) == 0 {
				nic.Absent = true
			}
			vm.NICs = append(vm.NICs, nic)
		}
		// Rarely one VM uses vmk1's MAC on a NIC of its own.
		if r.IntN(10) == 0 && !slices.ContainsFunc(sc.VMs, func(v esxsim.VMSpec) bool { return v.NICs[0].MAC == sc.Ports[3].MAC }) {
			vm.NICs[0].MAC, vm.NICs[0].AddressType = sc.Ports[3].MAC, "static"
		}
		sc.VMs = append(sc.VMs, vm)
	}

	// The watched heap: 9-35 % free of max, 5 % reserved (fragmentation).
	reserve := int64(heapMax / 20)
	freePct := 9 + r.IntN(27)
	alloc := int64(heapMax) - int64(heapMax)*int64(freePct)/100
	sc.Heaps = []esxsim.HeapSpec{
		{Name: heapName, Address: "0x410001000000", Max: heapMax, Current: heapMax, Allocated: alloc, Reserve: reserve},
		{Name: "netPktHeap", Address: "0x410003800000", Max: 201326592, Current: 41943040, Allocated: 31457280},
	}
	sc.Crashes = []esxsim.Crash{{Agent: "vpxa", Heap: heapName, AfterFailures: 2}}

	// Flaps: some present NICs fast, some slow, sometimes a host port.
	type src struct {
		flap int // index in sc.Flaps
		vmid int
		fast bool
	}
	var srcs []src
	for _, vm := range sc.VMs {
		for _, n := range vm.NICs {
			if n.Absent || r.IntN(3) != 0 {
				continue
			}
			fast := r.IntN(5) != 0
			period := dur(r, 2*time.Second, fastMax)
			if !fast {
				period = dur(r, slowMin, 90*time.Second)
			}
			sc.Flaps = append(sc.Flaps, esxsim.FlapSpec{VMID: vm.ID, NIC: n.Index, Period: esxsim.Duration(period),
				Jitter: esxsim.Duration(period / 20), Heap: heapName})
			srcs = append(srcs, src{len(sc.Flaps) - 1, vm.ID, fast})
		}
	}
	if r.IntN(3) == 0 {
		p := pick(r, sc.Ports)
		if slices.ContainsFunc(sc.VMs, func(v esxsim.VMSpec) bool { return v.NICs[0].MAC == sc.Ports[3].MAC }) {
			p = sc.Ports[3] // vmk1, whose MAC a VM uses too
		}
		sc.Flaps = append(sc.Flaps, esxsim.FlapSpec{Port: p.Port, Period: esxsim.Duration(dur(r, 2*time.Second, fastMax)), Heap: heapName})
		srcs = append(srcs, src{len(sc.Flaps) - 1, 0, true})
	}

	// Leaks: the heap runs out after TTE with every leak running.
	in.Before = dur(r, 60*time.Second, 100*time.Second)
	in.Hold = 1 + r.IntN(3)
	// Mostly a heap that runs out within the run unless heapguard acts.
	in.TTE = in.Before + reactionWindow(in) + dur(r, 0, 90*time.Second)
	if r.IntN(3) == 0 {
		in.TTE = in.Before + dur(r, time.Minute, 4*time.Minute)
	}
	avail := float64(int64(heapMax) - alloc - reserve)
	in.Clean = true
	var leaking []src
	for _, s := range srcs {
		if r.IntN(5) != 0 {
			leaking = append(leaking, s)
		}
	}
	if r.IntN(10) == 0 {
		sc.Heaps[0].LeakPerMinute = int64(avail / in.TTE.Minutes() / 10)
		in.Clean = false
	}
	drift := float64(sc.Heaps[0].LeakPerMinute) / 60 // bytes per second
	if len(leaking) > 0 {
		rate := avail/in.TTE.Seconds() - drift // bytes per second, the flaps together
		weights := make([]float64, len(leaking))
		var sum float64
		for i := range weights {
			weights[i] = 0.2 + r.Float64()
			sum += weights[i]
		}
		for i, s := range leaking {
			f := &sc.Flaps[s.flap]
			f.LeakBytes = max(1, int64(rate*weights[i]/sum*f.Period.D().Seconds()))
			if s.vmid != 0 {
				f.ReleaseOnStop = f.LeakBytes * int64(r.IntN(200))
			}
			if s.vmid != 0 && s.fast && !slices.Contains(in.Leakers, s.vmid) {
				in.Leakers = append(in.Leakers, s.vmid)
			}
			if s.vmid == 0 || !s.fast {
				in.Clean = false
			}
		}
	} else if drift > 0 {
		in.TTE = time.Duration(avail / drift * float64(time.Second))
	} else {
		in.TTE = time.Duration(1<<62 - 1)
	}

	// heapguard's configuration.
	in.MaxOffs = 1 + r.IntN(4)
	in.Window = dur(r, 10*time.Minute, time.Hour)
	in.Duration = dur(r, 90*time.Second, 150*time.Second)
	in.DryRun = r.IntN(5) == 0
	in.NoNetStats = r.IntN(5) == 0
	in.Allow = randomAllow(r, sc.VMs, in.Leakers)

	// A MAC on two VMs: another VM's .vmx claims a flapping MAC, on the
	// flapper's ethernet index when it has one (twins of one name then
	// cannot be told apart even by net-stats).
	flapMACs := flappingMACs(sc)
	if len(flapMACs) > 0 && len(sc.VMs) > 1 && r.IntN(2) == 0 {
		fm := pick(r, flapMACs)
		var cands []esxsim.VMSpec
		for _, vm := range sc.VMs {
			if vm.ID != fm.vmid {
				cands = append(cands, vm)
			}
		}
		b := pick(r, cands)
		nic := b.NICs[0].Index
		for _, n := range b.NICs {
			if n.Index == fm.nic && !n.Absent {
				nic = n.Index
			}
		}
		if r.IntN(3) == 0 {
			// twins: same name too
			sc.VMs[slices.IndexFunc(sc.VMs, func(v esxsim.VMSpec) bool { return v.ID == b.ID })].Name = vmByID(sc, fm.vmid).Name
		}
		in.Claims = append(in.Claims, vmxClaim{VMID: b.ID, NIC: nic, MAC: fm.mac})
		if r.IntN(2) == 0 {
			// Both claimants allowed: only the join can spare them.
			in.Allow = append(in.Allow, vmByID(sc, fm.vmid).Name, vmByID(sc, b.ID).Name)
			in.Allow = slices.DeleteFunc(in.Allow, func(p string) bool { _, err := path.Match(strings.ToLower(p), ""); return err != nil })
		}
	}
	// A MAC moving between VMs.
	if len(flapMACs) > 0 && len(sc.VMs) > 1 && r.IntN(6) == 0 {
		fm := pick(r, flapMACs)
		var cands []esxsim.VMSpec
		for _, vm := range sc.VMs {
			if vm.ID != fm.vmid && !vm.PoweredOff && !vm.NICs[0].Absent {
				cands = append(cands, vm)
			}
		}
		if len(cands) > 0 {
			b := pick(r, cands)
			in.Move = &macMove{At: dur(r, 30*time.Second, 3*time.Minute), From: fm.vmid, To: b.ID, ToNIC: b.NICs[0].Index, MAC: fm.mac}
		}
	}
	// Faults: a power state that cannot be read, a port list or VM list
	// that fails for a while.
	if r.IntN(6) == 0 {
		vm := pick(r, sc.VMs)
		in.Faults = append(in.Faults, esxsim.Fault{Command: "vim-cmd", ArgsPrefix: []string{"vmsvc/power.getstate", fmt.Sprint(vm.ID)},
			ExitCode: 1, Stderr: "vim.fault.NotFound", Times: 1 + r.IntN(20)})
	}
	if r.IntN(8) == 0 {
		in.Faults = append(in.Faults, esxsim.Fault{Command: "net-stats", ExitCode: 1, Stderr: "net-stats: error", Times: 1 + r.IntN(10)})
	}
	if r.IntN(8) == 0 {
		in.Faults = append(in.Faults, esxsim.Fault{Command: "vim-cmd", ArgsPrefix: []string{"vmsvc/getallvms"}, ExitCode: 1,
			Stderr: "Failed to login", Times: 1 + r.IntN(5)})
	}
	// esxcfg-vmknic failing for a while, where it matters (no net-stats).
	// Drawn from a stream of its own, so that the draws above, and the
	// incidents the seeds of TestFindings stand for, stay as they were.
	if v := rand.New(rand.NewPCG(uint64(seed), 0x766d6b6e6963)); in.NoNetStats && v.IntN(6) == 0 {
		in.Faults = append(in.Faults, esxsim.Fault{Command: "esxcfg-vmknic", ExitCode: 1,
			Stderr: "Error: Unable to get vmknic list", Times: 1 + v.IntN(6)})
	}
	in.Sc = sc
	// Where the heap invariant applies, heapguard watches until the heap
	// would have run out, and a little more.
	if ok, _ := livenessApplies(in); ok && in.TTE < in.Before+5*time.Minute {
		in.Duration = max(in.Duration, in.TTE-in.Before+20*time.Second)
	}
	return in
}

type flapMAC struct {
	vmid, nic int
	mac       string
}

// flappingMACs are the MACs of the VM NICs that flap fast.
func flappingMACs(sc esxsim.Scenario) []flapMAC {
	var out []flapMAC
	for _, f := range sc.Flaps {
		if f.VMID == 0 || f.Period.D() > fastMax {
			continue
		}
		vm := vmByID(sc, f.VMID)
		for _, n := range vm.NICs {
			if n.Index == f.NIC {
				out = append(out, flapMAC{f.VMID, f.NIC, n.MAC})
			}
		}
	}
	return out
}

func vmByID(sc esxsim.Scenario, id int) *esxsim.VMSpec {
	for i := range sc.VMs {
		if sc.VMs[i].ID == id {
			return &sc.VMs[i]
		}
	}
	return nil
}

// randomAllow draws an allow-list: exact names (which may hold glob
// characters), case variants, prefixes with *, a ? for one character,
// "*", a pattern that matches nothing; empty now and then. With leakers
// given, two times in three each of them is named exactly.
func randomAllow(r *rand.Rand, vms []esxsim.VMSpec, leakers []int) []string {
	if r.IntN(7) == 0 {
		return nil
	}
	var out []string
	add := func(p string) {
		if _, err := path.Match(strings.ToLower(p), ""); err == nil && p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	if r.IntN(3) != 0 {
		for _, id := range leakers {
			for _, vm := range vms {
				if vm.ID == id {
					add(vm.Name)
				}
			}
		}
	}
	for n := r.IntN(4); n > 0; n-- {
		vm := pick(r, vms)
		rs := []rune(vm.Name)
		switch r.IntN(7) {
		case 0:
			add(vm.Name)
		case 1:
			add(strings.ToUpper(vm.Name))
		case 2:
			add(string(rs[:1+r.IntN(min(4, len(rs)))]) + "*")
		case 3:
			i := r.IntN(len(rs))
			rs[i] = '?'
			add(string(rs))
		case 4:
			if r.IntN(3) == 0 {
				add("*")
			}
		default:
			add("zz-nothing-*")
		}
	}
	return out
}
