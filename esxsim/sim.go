package esxsim

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/heapguard/heapguard/host"
)

// sim applies time and commands to a State. Everything random is drawn
// from the PCG generator whose state lives in the State, and events are
// processed strictly in time order, so the same scenario and seed give
// the same host whatever steps the clock is advanced in.
type sim struct {
	root  string
	st    *State
	v     Version
	pcg   *rand.PCG
	r     *rand.Rand
	lines []logLine
	cores []string
}

func newSim(root string, st *State) (*sim, error) {
	pcg := rand.NewPCG(0, 0)
	if err := pcg.UnmarshalBinary(st.RNG); err != nil {
		return nil, fmt.Errorf("state rng: %w", err)
	}
	return &sim{root: root, st: st, v: st.Ver(), pcg: pcg, r: rand.New(pcg)}, nil
}

// flush writes pending log lines and core files and saves the RNG state.
func (s *sim) flush() error {
	b, err := s.pcg.MarshalBinary()
	if err != nil {
		return err
	}
	s.st.RNG = b
	if s.root == "" {
		s.lines, s.cores = nil, nil
		return nil
	}
	if err := writeLog(s.root, s.st, s.lines); err != nil {
		return err
	}
	s.lines = s.lines[:0]
	for _, c := range s.cores {
		p := host.Path(s.root, c)
		body := fmt.Sprintf("esxsim fake core dump\nfile %s\ntime %s\n", c, s.st.Now.Format(time.RFC3339Nano))
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			return fmt.Errorf("write core %s: %w", c, err)
		}
	}
	s.cores = s.cores[:0]
	return nil
}

func (s *sim) log(at time.Time, world int, warn bool, format string, a ...any) {
	s.lines = append(s.lines, logLine{At: at, CPU: s.r.IntN(s.st.Scenario.CPUs), World: world, Warn: warn, Msg: fmt.Sprintf(format, a...)})
}

func (s *sim) world() int { return s.v.WorldBase + s.r.IntN(max(s.v.WorldBase/2, 1000)) }

func (s *sim) jitter(d Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(s.r.Int64N(2*int64(d)+1)) - time.Duration(d)
}

type eventKind int

const (
	evNone eventKind = iota
	evFlap
	evShutdown
	evNoise
	evDrift
)

func (s *sim) nextEvent() (time.Time, eventKind, int) {
	var at time.Time
	kind, idx := evNone, 0
	consider := func(t time.Time, k eventKind, i int) {
		if !t.IsZero() && (kind == evNone || t.Before(at)) {
			at, kind, idx = t, k, i
		}
	}
	for i := range s.st.VMs {
		if s.st.VMs[i].ShutdownAt != nil {
			consider(*s.st.VMs[i].ShutdownAt, evShutdown, i)
		}
	}
	for i := range s.st.Flappers {
		if _, ok := s.st.flapPort(&s.st.Flappers[i]); ok {
			consider(s.st.Flappers[i].Next, evFlap, i)
		}
	}
	if s.st.Scenario.Noise.PerMinute > 0 {
		consider(s.st.NextNoise, evNoise, 0)
	}
	for _, h := range s.st.Heaps {
		if h.LeakPerMinute != 0 {
			consider(s.st.NextDrift, evDrift, 0)
			break
		}
	}
	return at, kind, idx
}

// advance moves the clock to `to`, applying every event on the way.
func (s *sim) advance(to time.Time) error {
	for {
		at, kind, i := s.nextEvent()
		if kind == evNone || at.After(to) {
			break
		}
		if at.After(s.st.Now) {
			s.st.Now = at
		}
		switch kind {
		case evFlap:
			s.flap(i, at)
		case evShutdown:
			s.powerOff(&s.st.VMs[i], at, "")
		case evNoise:
			s.noise(at)
		case evDrift:
			s.drift(at)
		}
		if len(s.lines) > 20000 {
			if err := s.flush(); err != nil {
				return err
			}
		}
	}
	if to.After(s.st.Now) {
		s.st.Now = to
	}
	return nil
}

func (s *sim) flap(i int, at time.Time) {
	f := &s.st.Flappers[i]
	spec := s.st.Scenario.Flaps[i]
	nic, _ := s.st.flapPort(f)
	w := f.Worlds[f.Flaps%2]
	cpu := s.r.IntN(s.st.Scenario.CPUs)
	// The pair shares cpu and world and is ~3 ms apart, as in the incident.
	s.lines = append(s.lines,
		logLine{At: at, CPU: cpu, World: w, Msg: fmt.Sprintf("NetPort: %d: disabled port %s", s.v.LineNetPortDisabled, nic.Port)},
		logLine{At: at.Add(3 * time.Millisecond), CPU: cpu, World: w, Msg: fmt.Sprintf("NetPort: %d: enabled port %s with mac %s", s.v.LineNetPortEnabled, nic.Port, nic.MAC)})
	f.Flaps++
	if spec.LeakBytes != 0 {
		if h := s.st.Heap(spec.Heap); h != nil {
			s.alloc(h, spec.LeakBytes, at.Add(4*time.Millisecond))
		}
	}
	f.Next = at.Add(spec.Period.D() + s.jitter(spec.Jitter))
}

// alloc takes n bytes from h (gives them back when n < 0). An allocation
// that would leave less than the heap's Reserve fails with the incident's
// two WARNING lines and may crash an agent.
func (s *sim) alloc(h *Heap, n int64, at time.Time) {
	if n <= 0 {
		h.Allocated = max(h.Allocated+n, 0)
		return
	}
	if h.Max-h.Allocated-n < h.Reserve {
		h.Failures++
		// The pair shares cpu and world, as in the incident.
		w, cpu := s.world(), s.r.IntN(s.st.Scenario.CPUs)
		s.lines = append(s.lines,
			logLine{At: at, CPU: cpu, World: w, Warn: true, Msg: fmt.Sprintf("WARNING: Heap: %d: Heap %s already at its %s. Cannot expand.", s.v.LineHeapMax, h.Name, s.v.MaxSizeWording())},
			logLine{At: at, CPU: cpu, World: w, Warn: true, Msg: fmt.Sprintf("WARNING: Heap: %d: Heap_Align(%s, %d/%d bytes, 8 align) failed. caller: 0x41801c90bb4e", s.v.LineHeapAlign, h.Name, h.AllocSize, h.AllocSize)})
		s.heapFailed(h, at)
		return
	}
	h.Allocated += n
	for h.Allocated > h.Current && h.Current < h.Max {
		h.Current = min(h.Current+h.Grow, h.Max)
		h.Ranges++
	}
	h.LowestPct = min(h.LowestPct, h.PctFreeOfMax())
}

func (s *sim) heapFailed(h *Heap, at time.Time) {
	for _, c := range s.st.Scenario.Crashes {
		a := s.st.Agent(c.Agent)
		if c.Heap != h.Name || a == nil || !a.Running {
			continue
		}
		a.Failures++
		if a.Failures >= c.AfterFailures {
			s.crash(a, at.Add(4*time.Millisecond))
		}
	}
}

// crash writes the incident's core-dump lines and the core file.
func (s *sim) crash(a *Agent, at time.Time) {
	core := fmt.Sprintf("/var/core/%s-zdump.%03d", a.Name, a.Crashes)
	w := a.PID + 23 // a worker world of the agent's cartel
	s.log(at, w, false, "User: %d: wantCoreDump : %s -enabled : 1", s.v.LineUser, a.Name)
	s.log(at.Add(184*time.Millisecond), w, false, "UserDump: %d: Dumping cartel %d (from world %d) to file %s ...", s.v.LineUserDump, a.PID, w, core)
	s.cores = append(s.cores, core)
	a.Running, a.PID, a.Failures = false, 0, 0
	a.Crashes++
	s.st.Cores++
}

// powerOff stops a VM: its ports go down (and stop flapping) and the
// scenario's memory comes back.
func (s *sim) powerOff(vm *VM, at time.Time, opID string) {
	vm.PoweredOn, vm.ToolsRunning, vm.ShutdownAt = false, false, nil
	for _, n := range presentNICs(vm.NICs) {
		s.lines = append(s.lines, logLine{At: at, CPU: s.r.IntN(s.st.Scenario.CPUs), World: vm.WorldID, OpID: opID,
			Msg: fmt.Sprintf("NetPort: %d: disabled port %s", s.v.LineNetPortDisabled, n.Port)})
	}
	for i, f := range s.st.Scenario.Flaps {
		if s.st.Flappers[i].VMID != vm.ID || f.ReleaseOnStop == 0 {
			continue
		}
		if h := s.st.Heap(f.Heap); h != nil {
			s.alloc(h, -f.ReleaseOnStop, at)
		}
	}
}

// unregister removes the VM with that vmid from the inventory: powered off
// first if it runs (its ports go down), its flappers stopped for good. Its
// files stay on the datastore, as after `vim-cmd vmsvc/unregister`.
func (s *sim) unregister(id int, at time.Time, opID string) error {
	i := slices.IndexFunc(s.st.VMs, func(vm VM) bool { return vm.ID == id })
	if i < 0 {
		return fmt.Errorf("unregister: no vm with vmid %d", id)
	}
	if s.st.VMs[i].PoweredOn {
		s.powerOff(&s.st.VMs[i], at, opID)
	}
	for j := range s.st.Flappers {
		if f := &s.st.Flappers[j]; f.Port == 0 && f.VMID == id {
			f.Stopped = true
		}
	}
	s.st.VMs = slices.Delete(s.st.VMs, i, i+1)
	return nil
}

func (s *sim) powerOn(vm *VM, at time.Time, opID string) {
	vm.PoweredOn = true
	vm.ToolsRunning = vm.ToolsInstalled == ToolsRunning
	vm.WorldID = s.world()
	for _, n := range presentNICs(vm.NICs) {
		s.lines = append(s.lines, logLine{At: at, CPU: s.r.IntN(s.st.Scenario.CPUs), World: vm.WorldID, OpID: opID,
			Msg: fmt.Sprintf("NetPort: %d: enabled port %s with mac %s", s.v.LineNetPortEnabled, n.Port, n.MAC)})
	}
	for i, f := range s.st.Scenario.Flaps {
		if s.st.Flappers[i].VMID == vm.ID {
			s.st.Flappers[i].Next = at.Add(f.Period.D() + s.jitter(f.Jitter))
		}
	}
}

func (s *sim) drift(at time.Time) {
	for i := range s.st.Heaps {
		if h := &s.st.Heaps[i]; h.LeakPerMinute != 0 {
			s.alloc(h, h.LeakPerMinute, at)
		}
	}
	s.st.NextDrift = at.Add(time.Minute)
}

func (s *sim) nextNoise(at time.Time) time.Time {
	mean := 60 / s.st.Scenario.Noise.PerMinute // seconds
	d := time.Duration(s.r.ExpFloat64() * mean * float64(time.Second))
	return at.Add(max(min(d, 24*time.Hour), time.Millisecond))
}

func (s *sim) noise(at time.Time) {
	s.st.NextNoise = s.nextNoise(at)
	const dev = "naa.600508b1001c3a4f9c2e7d1b5a6f0e21"
	r := s.r
	running := []string{}
	for _, vm := range s.st.VMs {
		if vm.PoweredOn {
			running = append(running, vm.Name)
		}
	}
	n := 8
	if s.v.Log == LogISO8x {
		n = 9
	}
	switch r.IntN(n) {
	case 0:
		s.log(at, s.world(), false, "NMP: nmp_ResetDeviceLogThrottling:3345: last error status from device %s repeated %d times", dev, 1+r.IntN(40))
	case 1:
		s.log(at, s.world(), false, "ScsiDeviceIO: 2331: Cmd(0x4124%08x) 0x1a, CmdSN 0x%x from world 0 to dev \"%s\" failed H:0x0 D:0x2 P:0x0 Valid sense data: 0x5 0x24 0x0.", r.Uint32(), r.IntN(0x10000), dev)
	case 2:
		if len(running) > 0 {
			s.log(at, s.world(), false, "VSCSI: 2891: handle %d(vscsi0:0):Reset [Retries: 0/0] from (vmm0:%s)", 8192+r.IntN(100), running[r.IntN(len(running))])
		}
	case 3:
		s.log(at, s.world(), false, "CpuSched: 692: user latency of %d vmnic0-0-tx 0 changed by %d HELPER_MISC_QUEUE-1-2 -6", s.world(), s.world())
	case 4:
		old := r.IntN(2)
		s.log(at, s.world(), false, "Config: 727: \"TrackMigrations\" = %d, Old Value: %d, (Status: 0x0)", 1-old, old)
	case 5:
		s.log(at, s.world(), false, "NetSched: 628: vmnic0-0-tx: worldID = %d exits", s.world())
	case 6:
		s.log(at, s.world(), false, "Uplink: 537: vmnic%d: Driver claims supporting 0 RX queues, and 0 queues are accepted.", r.IntN(2))
	case 7:
		avg := 1000 + r.IntN(20000)
		s.log(at, s.world(), true, "WARNING: ScsiDeviceIO: 1218: Device %s performance has deteriorated. I/O latency increased from average value of %d microseconds to %d microseconds.", dev, avg, avg*(20+r.IntN(10)))
	case 8:
		s.log(at, s.world(), false, "NRandomHwrng: 500: Out of entropy, refreshing.")
	}
}

// newFlapper schedules a checked flap spec of sc: its first flap at now +
// Phase (random within a period when 0).
func (s *sim) newFlapper(sc *Scenario, f FlapSpec, now time.Time) (Flapper, error) {
	fl := Flapper{NIC: f.NIC, Port: f.Port}
	if f.Port == 0 {
		vm, err := sc.flapVM(f)
		if err != nil {
			return Flapper{}, err
		}
		fl.VM, fl.VMID = vm.Name, vm.ID
	}
	phase := f.Phase.D()
	if phase <= 0 {
		phase = time.Duration(s.r.Int64N(int64(f.Period)))
	}
	w := s.world()
	fl.Next, fl.Worlds = now.Add(phase), [2]int{w, w - 1}
	return fl, nil
}

// newState builds the state at the scenario's start.
func newState(sc Scenario, ver Version, seed int64) (*State, error) {
	st := &State{Scenario: sc, Version: ver.Name, Seed: seed, Now: sc.Start.UTC()}
	st.Scenario.Version = ver.Name
	st.Scenario.Seed = seed
	up := sc.Uptime.D()
	if up <= 0 {
		up = 72 * time.Hour
	}
	st.Boot = st.Now.Add(-up)
	pcg := rand.NewPCG(uint64(seed), uint64(seed)^0x9e3779b97f4a7c15)
	b, err := pcg.MarshalBinary()
	if err != nil {
		return nil, err
	}
	st.RNG = b
	s, err := newSim("", st)
	if err != nil {
		return nil, err
	}
	for _, v := range sc.VMs {
		vm := VM{ID: v.ID, Name: v.Name, Vmx: v.Vmx, GuestOS: v.GuestOS, HWVersion: min(v.HWVersion, ver.MaxHW),
			Annotation: v.Annotation, PoweredOn: !v.PoweredOff, ToolsInstalled: v.Tools, ShutdownTime: v.ShutdownTime,
			WorldID: v.WorldID, MemoryMB: v.MemoryMB, NumCPUs: v.NumCPUs, NICs: append([]NIC(nil), v.NICs...)}
		vm.ToolsRunning = vm.PoweredOn && v.Tools == ToolsRunning
		if vm.WorldID == 0 {
			vm.WorldID = s.world()
		}
		st.VMs = append(st.VMs, vm)
	}
	for _, h := range sc.Heaps {
		hp := Heap{Name: h.Name, Address: h.Address, Max: h.Max, Current: h.Current, Initial: h.Initial, Allocated: h.Allocated,
			Releasable: h.Releasable, Overhead: h.Overhead, Ranges: h.Ranges, MaxRanges: h.MaxRanges, Grow: h.Grow,
			Reserve: h.Reserve, LeakPerMinute: h.LeakPerMinute, AllocSize: h.AllocSize}
		hp.LowestPct = hp.PctFreeOfMax()
		if h.LowestPct != nil {
			hp.LowestPct = *h.LowestPct
		}
		st.Heaps = append(st.Heaps, hp)
	}
	for _, name := range []string{"hostd", "vpxa"} {
		pid := s.world()
		st.Agents = append(st.Agents, Agent{Name: name, Running: true, PID: pid, Watchdog: pid - 1 - s.r.IntN(40)})
	}
	for _, f := range sc.Flaps {
		fl, err := s.newFlapper(&sc, f, st.Now)
		if err != nil {
			return nil, err
		}
		st.Flappers = append(st.Flappers, fl)
	}
	if sc.Noise.PerMinute > 0 {
		st.NextNoise = s.nextNoise(st.Now)
	}
	st.NextDrift = st.Now.Add(time.Minute)
	st.FaultHits = make([]int, len(sc.Faults))
	if err := s.flush(); err != nil {
		return nil, err
	}
	return st, nil
}
