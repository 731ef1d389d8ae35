package esxsim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/heapguard/heapguard/host"
)

// Paths under a simulated root (host paths).
const (
	StatePath   = "/var/lib/esxsim/state.json"
	lockPath    = "/var/lib/esxsim/lock"
	ActionsPath = "/var/log/esxsim-actions.log"
)

// ErrNoState is returned when a root holds no simulated host.
var ErrNoState = errors.New("esxsim: no simulated host here (run esxsim init)")

// State is the simulated truth, stored as one JSON file.
type State struct {
	Scenario Scenario  `json:"scenario"`
	Version  string    `json:"version"`
	Seed     int64     `json:"seed"`
	Now      time.Time `json:"now"`  // simulated clock
	Boot     time.Time `json:"boot"` // simulated boot time (uptime in 4.x lines)

	VMs      []VM      `json:"vms"`
	Heaps    []Heap    `json:"heaps"`
	Agents   []Agent   `json:"agents"`
	Flappers []Flapper `json:"flappers"`

	NextNoise time.Time `json:"next_noise"`
	NextDrift time.Time `json:"next_drift"`
	// RNG is the PCG generator's state: randomness comes only from the seed.
	RNG       []byte `json:"rng"`
	FaultHits []int  `json:"fault_hits"`
	// Run is set while an `esxsim run` drives the clock.
	Run *RunInfo `json:"run,omitempty"`
	// Cores counts /var/core/*-zdump.NNN files written.
	Cores int `json:"cores"`
	// VIBs are those esxcli software vib install put into the root.
	VIBs []InstalledVIB `json:"vibs,omitempty"`
	// LogStalled: vmsyslogd writes nothing (hung, or its disk gone);
	// the host goes on, its log lines are lost (Host.StallLog).
	LogStalled bool `json:"log_stalled,omitempty"`
}

// VM is a registered VM's live state.
type VM struct {
	ID         int    `json:"id"`
	Name       string `json:"name"`
	Vmx        string `json:"vmx"` // relative to the datastore
	GuestOS    string `json:"guest_os"`
	HWVersion  int    `json:"hw_version"`
	Annotation string `json:"annotation"`
	PoweredOn  bool   `json:"powered_on"`
	// ToolsInstalled is the scenario's Tools while running; ToolsRunning
	// says whether Tools runs now (never while powered off).
	ToolsInstalled string     `json:"tools_installed"`
	ToolsRunning   bool       `json:"tools_running"`
	ShutdownAt     *time.Time `json:"shutdown_at,omitempty"` // a guest shutdown in progress ends then
	ShutdownTime   Duration   `json:"shutdown_time"`
	WorldID        int        `json:"world_id"`
	MemoryMB       int        `json:"memory_mb"`
	NumCPUs        int        `json:"num_cpus"`
	NICs           []NIC      `json:"nics"`
}

// PowerState is vim-cmd's word for the VM's power state.
func (vm *VM) PowerState() string {
	if vm.PoweredOn {
		return "Powered on"
	}
	return "Powered off"
}

// Heap is one heap's live figures.
type Heap struct {
	Name          string `json:"name"`
	Address       string `json:"address"`
	Max           int64  `json:"max"`
	Current       int64  `json:"current"`
	Initial       int64  `json:"initial"`
	Allocated     int64  `json:"allocated"`
	Releasable    int64  `json:"releasable"`
	Overhead      int64  `json:"overhead"`
	Ranges        int    `json:"ranges"`
	MaxRanges     int    `json:"max_ranges"`
	Grow          int64  `json:"grow"`
	Reserve       int64  `json:"reserve"`
	LeakPerMinute int64  `json:"leak_per_minute"`
	AllocSize     int64  `json:"alloc_size"`
	LowestPct     int    `json:"lowest_pct"`
	Failures      int64  `json:"failures"` // failed allocations
}

// FullName is the vsish node name, "netGPHeap-0x410001000000".
func (h *Heap) FullName() string { return h.Name + "-" + h.Address }

// PctFreeOfMax is "percent free of max size": ESXi truncates (3344800 of
// 67109968 is 4.98 and prints 4; sample vsish-heap-stats-netGPHeap-esxi4-after.txt).
func (h *Heap) PctFreeOfMax() int { return pct(h.Max-h.Allocated, h.Max) }

func pct(part, whole int64) int {
	if whole <= 0 || part <= 0 {
		return 0
	}
	return int(part * 100 / whole)
}

// Agent is a management agent (vpxa, hostd).
type Agent struct {
	Name    string `json:"name"`
	Running bool   `json:"running"`
	PID     int    `json:"pid"`
	// Watchdog is the PID of the agent's watchdog-<name> process, which
	// outlives a crash of the agent (5.x-7.x init scripts name it).
	Watchdog int `json:"watchdog"`
	// Failures counts failed allocations of the crash heap since the agent
	// last started (Scenario.Crashes).
	Failures int `json:"failures"`
	Crashes  int `json:"crashes"`
	Restarts int `json:"restarts"`
}

// Flapper is one flapping port's schedule (Scenario.Flaps[i] for
// Flappers[i]): a VM NIC's, found by vmid so that VMs sharing a display
// name stay apart, or a host port's.
type Flapper struct {
	VM     string    `json:"vm,omitempty"` // the VM's display name, for people
	VMID   int       `json:"vm_id,omitempty"`
	NIC    int       `json:"nic"`
	Port   PortID    `json:"port,omitempty"` // a host port (Scenario.Ports) instead of a VM NIC
	Next   time.Time `json:"next"`
	Worlds [2]int    `json:"worlds"` // the worlds that log this port's lines
	Flaps  int64     `json:"flaps"`
	// Stopped: the port flaps no more, whatever its VM does.
	Stopped bool `json:"stopped,omitempty"`
}

// flapTarget is the port a flapper takes down and up.
type flapTarget struct {
	Port PortID
	MAC  string
}

// flapPort returns the port f flaps and whether it flaps now: a host port
// always, a present VM NIC while its VM is registered and running.
func (st *State) flapPort(f *Flapper) (flapTarget, bool) {
	if f.Stopped {
		return flapTarget{}, false
	}
	if f.Port != 0 {
		for _, p := range st.Scenario.Ports {
			if p.Port == f.Port {
				return flapTarget{p.Port, p.MAC}, true
			}
		}
		return flapTarget{}, false
	}
	vm := st.VM(f.VMID)
	if vm == nil || !vm.PoweredOn {
		return flapTarget{}, false
	}
	for _, n := range presentNICs(vm.NICs) {
		if n.Index == f.NIC {
			return flapTarget{n.Port, n.MAC}, true
		}
	}
	return flapTarget{}, false
}

// RunInfo describes the `esxsim run` driving the clock: the simulated
// time is Start + (wall time - Since) x Speed.
type RunInfo struct {
	PID   int       `json:"pid"`
	Speed float64   `json:"speed"`
	Since time.Time `json:"since"` // wall time
	// Start is the simulated time at Since; a clock step moves it.
	Start time.Time `json:"start"`
}

// VM returns the VM with that vmid.
func (st *State) VM(id int) *VM {
	for i := range st.VMs {
		if st.VMs[i].ID == id {
			return &st.VMs[i]
		}
	}
	return nil
}

// VMByName returns the VM with that display name.
func (st *State) VMByName(name string) *VM {
	for i := range st.VMs {
		if st.VMs[i].Name == name {
			return &st.VMs[i]
		}
	}
	return nil
}

// Heap returns the heap with that name (without address).
func (st *State) Heap(name string) *Heap {
	for i := range st.Heaps {
		if st.Heaps[i].Name == name {
			return &st.Heaps[i]
		}
	}
	return nil
}

// Agent returns the agent with that name.
func (st *State) Agent(name string) *Agent {
	for i := range st.Agents {
		if st.Agents[i].Name == name {
			return &st.Agents[i]
		}
	}
	return nil
}

// Ver returns the state's ESXi version.
func (st *State) Ver() Version {
	v, err := LookupVersion(st.Version)
	if err != nil {
		return versions[2]
	}
	return v
}

// LoadState reads a root's state under a shared lock.
func LoadState(root string) (*State, error) {
	var out *State
	err := view(root, func(st *State) error { out = st; return nil })
	return out, err
}

// lockRoot takes the root's flock; every reader and writer goes through it,
// so a command never sees a state that `run` is half-way through changing.
func lockRoot(root string, exclusive bool) (func(), error) {
	p := host.Path(root, lockPath)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNoState, root)
		}
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return func() { f.Close() }, nil // closing the descriptor drops the lock
}

func readState(root string) (*State, error) {
	p := host.Path(root, StatePath)
	b, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNoState, root)
		}
		return nil, fmt.Errorf("read state: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("read state %s: %w", p, err)
	}
	return &st, nil
}

// writeState replaces the state file atomically (host.WriteFileAtomic).
func writeState(root string, st *State) error {
	p := host.Path(root, StatePath)
	b, err := json.MarshalIndent(st, "", " ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	if err := host.WriteFileAtomic(p, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// view runs fn on the state under the shared lock, for readers.
func view(root string, fn func(st *State) error) error { return withState(root, false, fn) }

// withState runs fn on the state under the root's lock without saving it.
func withState(root string, exclusive bool, fn func(st *State) error) error {
	unlock, err := lockRoot(root, exclusive)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := readState(root)
	if err != nil {
		return err
	}
	return fn(st)
}

func update(root string, fn func(st *State) error) error {
	unlock, err := lockRoot(root, true)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := readState(root)
	if err != nil {
		return err
	}
	if err := fn(st); err != nil {
		return err
	}
	return writeState(root, st)
}

// publishClock writes the host.SimClockAnchor for the program under test.
func publishClock(root string, sim time.Time, speed float64) error {
	return host.WriteSimClock(root, host.SimClockAnchor{Sim: sim.UTC(), Wall: time.Now().UTC(), Speed: speed})
}

// publishRunClock publishes the clock of a running `esxsim run`.
func publishRunClock(root string, r *RunInfo) error {
	return host.WriteSimClock(root, host.SimClockAnchor{Sim: r.Start.UTC(), Wall: r.Since.UTC(), Speed: r.Speed})
}

// Action is one line of var/log/esxsim-actions.log: a command that changes
// something (power operations, agent start/stop/restart), with the
// simulated time, the full argv and how it ended. Read-only commands are
// not logged.
type Action struct {
	Time time.Time `json:"time"` // simulated
	// Tool is the called-as name ("vim-cmd", "vpxa", "vmware-vpxa", "hostd").
	Tool string   `json:"tool"`
	Argv []string `json:"argv"` // argv[0] as called, then the arguments
	// Target is the vmid or agent name acted on.
	Target string `json:"target,omitempty"`
	Exit   int    `json:"exit"`
	// Result is "ok", or what went wrong ("ToolsUnavailable",
	// "InvalidPowerState", "fault: hang", "fault: exit 1", …).
	Result string `json:"result"`
	// Detail is what a service saw: the crontab crond loaded, the service
	// lines inetd read, the files auto-backup.sh saved.
	Detail string `json:"detail,omitempty"`
}

func appendAction(root string, a Action) error {
	p := host.Path(root, ActionsPath)
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("append action: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("append action: %w", err)
	}
	return nil
}

// ReadActions parses a root's action log. Lines that do not parse are
// skipped and counted in bad.
func ReadActions(root string) (acts []Action, bad int, err error) {
	b, err := os.ReadFile(host.Path(root, ActionsPath))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, 0, nil
		}
		return nil, 0, fmt.Errorf("read actions: %w", err)
	}
	acts, bad = ParseActions(b)
	return acts, bad, nil
}

// ParseActions parses action-log JSON lines, skipping and counting bad ones.
func ParseActions(b []byte) (acts []Action, bad int) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var a Action
		if err := json.Unmarshal(line, &a); err != nil || a.Tool == "" {
			bad++
			continue
		}
		acts = append(acts, a)
	}
	if sc.Err() != nil {
		bad++
	}
	return acts, bad
}

func ensureDir(p string) error {
	return os.MkdirAll(filepath.Dir(p), 0o755)
}
