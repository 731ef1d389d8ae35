package esxsim

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrScenario is wrapped by every error about a bad scenario.
var ErrScenario = errors.New("esxsim: bad scenario")

//go:embed scenarios/*.json
var presetFS embed.FS

// Duration is a time.Duration written as "3s" or "1h30m" in scenario files.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration %s: want a string like \"3s\"", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Scenario is what a simulated host holds and what happens to it. The
// format is documented in scenarios/README.md; presets are embedded.
type Scenario struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Base names a preset this scenario starts from; every top-level key
	// given here replaces the base's key whole (arrays are not merged).
	Base string `json:"base,omitempty"`

	Version  string    `json:"version"`        // "5.5"; --version overrides it
	Seed     int64     `json:"seed"`           // the only source of randomness; --seed overrides it
	Hostname string    `json:"hostname"`       // "esx01.lab.local"
	Start    time.Time `json:"start"`          // simulated time at init
	Uptime   Duration  `json:"uptime"`         // how long the host had been up at Start
	CPUs     int       `json:"cpus,omitempty"` // for cpuN in log lines (default 24)

	DatastoreUUID string `json:"datastore_uuid"`
	Datastore     string `json:"datastore"` // "datastore1", a symlink to the uuid

	// ExecInstalledOnly is VMkernel.Boot.execInstalledOnly (8.0).
	ExecInstalledOnly bool `json:"exec_installed_only,omitempty"`
	// AcceptanceLevel is what `esxcli software acceptance get` says
	// (VMwareCertified, VMwareAccepted, PartnerSupported or
	// CommunitySupported; "" is PartnerSupported, as ESXi ships).
	AcceptanceLevel string `json:"acceptance_level,omitempty"`
	// SecureBoot: UEFI secure boot is on, so esxcli refuses
	// CommunitySupported VIBs.
	SecureBoot bool `json:"secure_boot,omitempty"`

	VMs     []VMSpec   `json:"vms"`
	Heaps   []HeapSpec `json:"heaps"`
	Flaps   []FlapSpec `json:"flaps,omitempty"`
	Crashes []Crash    `json:"crashes,omitempty"`
	// Ports are the host's own ports (uplinks vmnicN, VMkernel NICs vmkN)
	// shown by net-stats -l next to the VMs' ports.
	Ports  []PortSpec `json:"ports,omitempty"`
	Noise  Noise      `json:"noise"`
	Log    LogSpec    `json:"log"`
	Faults []Fault    `json:"faults,omitempty"`
}

// VMSpec is one registered VM.
type VMSpec struct {
	ID         int    `json:"id"`   // vim-cmd vmid
	Name       string `json:"name"` // displayName
	Vmx        string `json:"vmx"`  // relative to the datastore: "DSVA03/dsva03.vmx"
	GuestOS    string `json:"guest_os"`
	HWVersion  int    `json:"hw_version"`
	Annotation string `json:"annotation,omitempty"`
	PoweredOff bool   `json:"powered_off,omitempty"`
	// Tools is VMware Tools while the VM runs: "running" (default),
	// "notRunning" (installed, not running), "notInstalled".
	Tools string `json:"tools,omitempty"`
	// ShutdownTime is how long a guest shutdown takes (default 20s).
	ShutdownTime Duration `json:"shutdown_time,omitempty"`
	WorldID      int      `json:"world_id,omitempty"` // 0: drawn from the seed
	MemoryMB     int      `json:"memory_mb,omitempty"`
	NumCPUs      int      `json:"num_cpus,omitempty"`
	NICs         []NIC    `json:"nics"`
}

// NIC is one virtual NIC (ethernetN) and the vSwitch port it sits on.
type NIC struct {
	Index      int    `json:"index"` // N of ethernetN
	Network    string `json:"network"`
	VirtualDev string `json:"virtual_dev"` // "vmxnet3", "e1000"
	// AddressType is "vpx" (vCenter-generated, ethernetN.generatedAddress),
	// "generated" (host-generated) or "static" (ethernetN.address).
	AddressType string `json:"address_type"`
	MAC         string `json:"mac"`
	Port        PortID `json:"port"` // "0x3000005"
	Switch      string `json:"switch"`
	Uplink      string `json:"uplink,omitempty"`
	// Absent is a NIC the .vmx keeps with ethernetN.present = "FALSE": it
	// has no port, so it never shows in net-stats or esxcli, nor flaps.
	Absent bool `json:"absent,omitempty"`
}

// presentNICs drops the absent NICs: those the VM runs with.
func presentNICs(nics []NIC) []NIC {
	var ps []NIC
	for _, n := range nics {
		if !n.Absent {
			ps = append(ps, n)
		}
	}
	return ps
}

// PortID is a vSwitch port id; hex ("0x3000005") in scenario files and
// vmkernel logs, decimal in net-stats and esxcli.
type PortID uint32

func (p PortID) String() string { return fmt.Sprintf("0x%x", uint32(p)) }

func (p PortID) MarshalJSON() ([]byte, error) { return json.Marshal(p.String()) }

func (p *PortID) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n uint32
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("port id %s: want \"0x3000005\" or a number", b)
		}
		*p = PortID(n)
		return nil
	}
	n, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		return fmt.Errorf("port id %q: %w", s, err)
	}
	*p = PortID(n)
	return nil
}

// HeapSpec is one vmkernel heap as vsish shows it.
type HeapSpec struct {
	Name       string `json:"name"`    // "netGPHeap"
	Address    string `json:"address"` // "0x410001000000": the vsish name is Name-Address
	Max        int64  `json:"max"`
	Current    int64  `json:"current,omitempty"` // current heap size (default Max)
	Initial    int64  `json:"initial,omitempty"`
	Allocated  int64  `json:"allocated"`
	Releasable int64  `json:"releasable,omitempty"`
	Overhead   int64  `json:"overhead,omitempty"` // dlmalloc overhead
	Ranges     int    `json:"ranges,omitempty"`
	MaxRanges  int    `json:"max_ranges,omitempty"`
	// Grow is how much the current size grows (one more range) when an
	// allocation does not fit (default 4 MiB).
	Grow int64 `json:"grow,omitempty"`
	// Reserve: an allocation fails when it would leave less than Reserve
	// bytes available of the maximum. It stands for fragmentation: in the
	// incident the heap failed 4364-byte allocations with 3344800 bytes
	// "available".
	Reserve int64 `json:"reserve,omitempty"`
	// LeakPerMinute is allocated (or, negative, freed) every simulated minute.
	LeakPerMinute int64 `json:"leak_per_minute,omitempty"`
	// AllocSize is the request that fails once the heap is full (default 4364).
	AllocSize int64 `json:"alloc_size,omitempty"`
	// LowestPct is the "lowest percent free of max size ever encountered"
	// at Start (default: the current percent).
	LowestPct *int `json:"lowest_pct,omitempty"`
}

// FlapSpec makes one port go down and up over and over: a VM NIC's (VM or
// VMID, and NIC) or one of the host's own Ports (Port).
type FlapSpec struct {
	VM string `json:"vm,omitempty"` // VM display name
	// VMID picks the VM by vmid, for display names two VMs share.
	VMID int `json:"vm_id,omitempty"`
	NIC  int `json:"nic"` // ethernet index
	// Port is a host port (Scenario.Ports: a VMkernel NIC, an uplink) that
	// flaps whatever the VMs do; it excludes VM, VMID and NIC.
	Port   PortID   `json:"port,omitempty"`
	Period Duration `json:"period"`
	Jitter Duration `json:"jitter,omitempty"` // uniform in ±Jitter
	Phase  Duration `json:"phase,omitempty"`  // first flap at Start+Phase
	// Heap (name without address) loses LeakBytes at every flap.
	Heap      string `json:"heap,omitempty"`
	LeakBytes int64  `json:"leak_bytes,omitempty"`
	// ReleaseOnStop is given back to Heap when the VM powers off.
	ReleaseOnStop int64 `json:"release_on_stop,omitempty"`
}

// Crash makes an agent dump core when a heap keeps failing allocations.
type Crash struct {
	Agent         string `json:"agent"` // "vpxa" or "hostd"
	Heap          string `json:"heap"`
	AfterFailures int    `json:"after_failures"` // failed allocations since the agent started
}

// PortSpec is a host port (not a VM's) for net-stats -l.
type PortSpec struct {
	Port    PortID `json:"port"`
	Type    int    `json:"type"` // 3 VMkernel NIC, 4 uplink, 0 internal
	SubType int    `json:"subtype"`
	Switch  string `json:"switch"`
	MAC     string `json:"mac"`
	Client  string `json:"client"` // "vmnic0", "vmk0"
	// PortGroup is a VMkernel NIC's port group in esxcfg-vmknic -l;
	// "" gives "Management Network" to the first, "VMkernel N" to others.
	PortGroup string `json:"port_group,omitempty"`
}

// Noise is how many unrelated vmkernel lines appear.
type Noise struct {
	PerMinute float64 `json:"per_minute"`
}

// LogSpec is vmsyslogd's rotation.
type LogSpec struct {
	RotateBytes int64 `json:"rotate_bytes,omitempty"` // default 1 MiB
	Keep        int   `json:"keep,omitempty"`         // rotated files kept (default 8)
}

// Fault makes a command misbehave: hang, exit non-zero, print something
// else, or print truncated output.
type Fault struct {
	Command    string   `json:"command"`               // "vim-cmd", "vsish", "vpxa" (init script), …
	ArgsPrefix []string `json:"args_prefix,omitempty"` // matches when the args start with these
	Hang       bool     `json:"hang,omitempty"`
	// HangFor bounds a hang (default 1h of wall time) so a forgotten
	// process ends by itself.
	HangFor  Duration `json:"hang_for,omitempty"`
	ExitCode int      `json:"exit_code,omitempty"`
	Stdout   string   `json:"stdout,omitempty"` // replaces the real output when set
	Stderr   string   `json:"stderr,omitempty"`
	// Truncate cuts the real stdout to this many bytes (0: no cut).
	Truncate int `json:"truncate,omitempty"`
	// Times is how many matching calls the fault hits (0: all).
	Times int `json:"times,omitempty"`
}

// PresetNames lists the embedded scenarios.
func PresetNames() []string {
	ents, _ := fs.ReadDir(presetFS, "scenarios")
	var n []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".json") {
			n = append(n, strings.TrimSuffix(e.Name(), ".json"))
		}
	}
	return n
}

// Preset returns an embedded scenario by name.
func Preset(name string) (Scenario, error) {
	return loadPreset(name, 0)
}

// Incident returns the default scenario, the seed incident.
func Incident() Scenario {
	sc, err := Preset("seed-incident")
	if err != nil {
		// The preset is embedded and tested; this cannot fail in a build
		// that passed its tests.
		panic(err)
	}
	return sc
}

// LoadScenario takes a preset name or a JSON file path.
func LoadScenario(nameOrFile string) (Scenario, error) {
	if slices.Contains(PresetNames(), nameOrFile) {
		return Preset(nameOrFile)
	}
	b, err := os.ReadFile(nameOrFile)
	if err != nil {
		return Scenario{}, fmt.Errorf("%w: %q is no preset (%s) and no readable file: %v",
			ErrScenario, nameOrFile, strings.Join(PresetNames(), ", "), err)
	}
	return ParseScenario(b)
}

// ParseScenario reads a scenario file's JSON (resolving "base").
func ParseScenario(b []byte) (Scenario, error) {
	return parseScenario(b, 0)
}

func loadPreset(name string, depth int) (Scenario, error) {
	b, err := presetFS.ReadFile(path.Join("scenarios", name+".json"))
	if err != nil {
		return Scenario{}, fmt.Errorf("%w: no preset %q (have %s)", ErrScenario, name, strings.Join(PresetNames(), ", "))
	}
	sc, err := parseScenario(b, depth)
	if err != nil {
		return Scenario{}, fmt.Errorf("preset %s: %w", name, err)
	}
	return sc, nil
}

func parseScenario(b []byte, depth int) (Scenario, error) {
	if depth > 4 {
		return Scenario{}, fmt.Errorf("%w: \"base\" nests too deep", ErrScenario)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return Scenario{}, fmt.Errorf("%w: %v", ErrScenario, err)
	}
	if raw, ok := top["base"]; ok {
		var base string
		if err := json.Unmarshal(raw, &base); err != nil {
			return Scenario{}, fmt.Errorf("%w: base: %v", ErrScenario, err)
		}
		bs, err := loadPreset(base, depth+1)
		if err != nil {
			return Scenario{}, err
		}
		bb, err := json.Marshal(bs)
		if err != nil {
			return Scenario{}, err
		}
		var merged map[string]json.RawMessage
		if err := json.Unmarshal(bb, &merged); err != nil {
			return Scenario{}, err
		}
		for k, v := range top {
			merged[k] = v
		}
		if b, err = json.Marshal(merged); err != nil {
			return Scenario{}, err
		}
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var sc Scenario
	if err := dec.Decode(&sc); err != nil {
		return Scenario{}, fmt.Errorf("%w: %v", ErrScenario, err)
	}
	sc.defaults()
	if err := sc.Validate(); err != nil {
		return Scenario{}, err
	}
	return sc, nil
}

func (sc *Scenario) defaults() {
	if sc.Version == "" {
		sc.Version = "5.5"
	}
	if sc.CPUs <= 0 {
		sc.CPUs = 24
	}
	if sc.Datastore == "" {
		sc.Datastore = "datastore1"
	}
	if sc.Hostname == "" {
		sc.Hostname = "esx01.lab.local"
	}
	if sc.Start.IsZero() {
		sc.Start = time.Date(2014, 6, 10, 6, 0, 0, 0, time.UTC)
	}
	if sc.Log.RotateBytes <= 0 {
		sc.Log.RotateBytes = 1 << 20
	}
	if sc.Log.Keep <= 0 {
		sc.Log.Keep = 8
	}
	for i := range sc.VMs {
		vm := &sc.VMs[i]
		if vm.Tools == "" {
			vm.Tools = ToolsRunning
		}
		if vm.ShutdownTime == 0 {
			vm.ShutdownTime = Duration(20 * time.Second)
		}
		if vm.HWVersion == 0 {
			vm.HWVersion = 8
		}
		if vm.MemoryMB == 0 {
			vm.MemoryMB = 2048
		}
		if vm.NumCPUs == 0 {
			vm.NumCPUs = 2
		}
	}
	for i := range sc.Heaps {
		h := &sc.Heaps[i]
		if h.Current == 0 {
			h.Current = h.Max
		}
		if h.Initial == 0 {
			h.Initial = min(h.Current, 2<<20)
		}
		if h.Ranges == 0 {
			h.Ranges = 1
		}
		if h.MaxRanges == 0 {
			h.MaxRanges = 200
		}
		if h.Overhead == 0 {
			h.Overhead = 1008
		}
		if h.Grow == 0 {
			h.Grow = 4 << 20
		}
		if h.AllocSize == 0 {
			h.AllocSize = 4364
		}
	}
	for i := range sc.Crashes {
		if sc.Crashes[i].AfterFailures <= 0 {
			sc.Crashes[i].AfterFailures = 1
		}
	}
}

// Tools states.
const (
	ToolsRunning      = "running"
	ToolsNotRunning   = "notRunning"
	ToolsNotInstalled = "notInstalled"
)

// Validate checks a scenario's internal consistency.
func (sc *Scenario) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrScenario, sc.Name, fmt.Sprintf(format, a...))
	}
	if sc.Name == "" {
		return fmt.Errorf("%w: no name", ErrScenario)
	}
	if !isKnownVersion(sc.Version) {
		return bad("unknown version %q (known: %s)", sc.Version, strings.Join(VersionNames(), ", "))
	}
	if sc.AcceptanceLevel != "" && acceptanceRank(sc.AcceptanceLevel) < 0 {
		return bad("acceptance_level %q: want VMwareCertified, VMwareAccepted, PartnerSupported or CommunitySupported", sc.AcceptanceLevel)
	}
	if sc.DatastoreUUID == "" || strings.ContainsAny(sc.DatastoreUUID, "/\x00") || strings.HasPrefix(sc.DatastoreUUID, ".") {
		return bad("datastore_uuid %q is not a folder name", sc.DatastoreUUID)
	}
	if strings.ContainsAny(sc.Datastore, "/\x00") || strings.HasPrefix(sc.Datastore, ".") {
		return bad("datastore %q is not a folder name", sc.Datastore)
	}
	ids, ports, macs := map[int]bool{}, map[PortID]bool{}, map[string]bool{}
	for _, vm := range sc.VMs {
		if vm.ID <= 0 || ids[vm.ID] {
			return bad("vm %q: id %d is not positive or not unique", vm.Name, vm.ID)
		}
		ids[vm.ID] = true
		// Display names need not be unique, as on ESXi: vmids are.
		if vm.Name == "" {
			return bad("vm id %d: empty name", vm.ID)
		}
		if err := checkRelPath(vm.Vmx); err != nil || !strings.HasSuffix(vm.Vmx, ".vmx") {
			return bad("vm %q: vmx %q must be a relative path ending in .vmx", vm.Name, vm.Vmx)
		}
		switch vm.Tools {
		case ToolsRunning, ToolsNotRunning, ToolsNotInstalled:
		default:
			return bad("vm %q: tools %q (want running, notRunning or notInstalled)", vm.Name, vm.Tools)
		}
		for _, n := range vm.NICs {
			if n.Index < 0 || n.Index > 9 {
				return bad("vm %q: nic index %d", vm.Name, n.Index)
			}
			if !validMAC(n.MAC) {
				return bad("vm %q: mac %q is malformed", vm.Name, n.MAC)
			}
			// An absent NIC has no port, and its MAC is only text in a
			// .vmx: it may repeat another NIC's.
			if n.Absent {
				continue
			}
			if ports[n.Port] || n.Port == 0 {
				return bad("vm %q: port %s is zero or not unique", vm.Name, n.Port)
			}
			ports[n.Port] = true
			if macs[n.MAC] {
				return bad("vm %q: mac %q is not unique", vm.Name, n.MAC)
			}
			macs[n.MAC] = true
			switch n.AddressType {
			case "vpx", "generated", "static":
			default:
				return bad("vm %q: address_type %q (want vpx, generated or static)", vm.Name, n.AddressType)
			}
		}
	}
	hnames := map[string]bool{}
	for _, h := range sc.Heaps {
		if h.Name == "" || h.Address == "" || hnames[h.Name] || strings.ContainsAny(h.Name+h.Address, "/ \n") {
			return bad("heap %q-%q: empty, not unique, or holds / or space", h.Name, h.Address)
		}
		hnames[h.Name] = true
		if h.Max <= 0 || h.Allocated < 0 || h.Allocated > h.Max || h.Current > h.Max || h.Allocated > h.Current {
			return bad("heap %s: need 0 <= allocated <= current <= max (%d, %d, %d)", h.Name, h.Allocated, h.Current, h.Max)
		}
	}
	for _, f := range sc.Flaps {
		if err := sc.checkFlap(f, hnames); err != nil {
			return bad("%v", err)
		}
	}
	for _, c := range sc.Crashes {
		if c.Agent != "vpxa" && c.Agent != "hostd" {
			return bad("crash: agent %q (want vpxa or hostd)", c.Agent)
		}
		if !hnames[c.Heap] {
			return bad("crash: no heap %q", c.Heap)
		}
	}
	for _, p := range sc.Ports {
		if ports[p.Port] || p.Port == 0 {
			return bad("port %s is zero or not unique", p.Port)
		}
		ports[p.Port] = true
	}
	if !(sc.Noise.PerMinute >= 0 && sc.Noise.PerMinute <= 6000) {
		return bad("noise per_minute %v out of 0..6000", sc.Noise.PerMinute)
	}
	for _, f := range sc.Faults {
		if err := checkFault(f); err != nil {
			return bad("%v", err)
		}
	}
	return nil
}

// faultCommands are the names a Fault's Command can match (faultCommand).
var faultCommands = []string{"vsish", "vim-cmd", "net-stats", "esxcfg-vmknic", "esxcli", "vmware", "vpxa", "hostd"}

func checkFault(f Fault) error {
	if !slices.Contains(faultCommands, f.Command) {
		return fmt.Errorf("fault command %q (want one of %s)", f.Command, strings.Join(faultCommands, ", "))
	}
	if f.Times < 0 || f.Truncate < 0 {
		return fmt.Errorf("fault of %s: negative times or truncate", f.Command)
	}
	return nil
}

// checkFlap checks one flap spec against the scenario's VMs, ports and
// heaps (hnames).
func (sc *Scenario) checkFlap(f FlapSpec, hnames map[string]bool) error {
	if f.Port != 0 {
		if f.VM != "" || f.VMID != 0 || f.NIC != 0 {
			return fmt.Errorf("flap of port %s: give either port or vm/vm_id and nic, not both", f.Port)
		}
		if !slices.ContainsFunc(sc.Ports, func(p PortSpec) bool { return p.Port == f.Port }) {
			return fmt.Errorf("flap: no host port %s in ports", f.Port)
		}
		if f.ReleaseOnStop != 0 {
			return fmt.Errorf("flap of port %s: release_on_stop needs a VM that powers off", f.Port)
		}
	} else {
		if f.VM == "" && f.VMID == 0 {
			return errors.New("flap: give vm (or vm_id) and nic, or a host port")
		}
		vm, err := sc.flapVM(f)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(presentNICs(vm.NICs), func(n NIC) bool { return n.Index == f.NIC }) {
			return fmt.Errorf("flap: vm %q has no present ethernet%d", vm.Name, f.NIC)
		}
	}
	if f.Period.D() < 10*time.Millisecond || f.Jitter.D() < 0 || f.Jitter.D() >= f.Period.D()/2 {
		return fmt.Errorf("flap %s: period must be >= 10ms and jitter < period/2", f.target())
	}
	if (f.LeakBytes != 0 || f.ReleaseOnStop != 0) && !hnames[f.Heap] {
		return fmt.Errorf("flap %s: no heap %q", f.target(), f.Heap)
	}
	return nil
}

// flapVM finds the VM a flap spec names: by vmid when given (the name, if
// also given, must agree), else by a display name only one VM has.
func (sc *Scenario) flapVM(f FlapSpec) (*VMSpec, error) {
	var found *VMSpec
	for i := range sc.VMs {
		vm := &sc.VMs[i]
		if f.VMID != 0 && vm.ID != f.VMID || f.VMID == 0 && vm.Name != f.VM {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("flap: vms %d and %d are both named %q; give vm_id", found.ID, vm.ID, f.VM)
		}
		found = vm
	}
	switch {
	case found == nil && f.VMID != 0:
		return nil, fmt.Errorf("flap: no vm with vm_id %d", f.VMID)
	case found == nil:
		return nil, fmt.Errorf("flap: no vm %q", f.VM)
	case f.VM != "" && found.Name != f.VM:
		return nil, fmt.Errorf("flap: vm_id %d is named %q, not %q", f.VMID, found.Name, f.VM)
	}
	return found, nil
}

// target names what a flap spec flaps, for messages.
func (f FlapSpec) target() string {
	switch {
	case f.Port != 0:
		return "port " + f.Port.String()
	case f.VMID != 0:
		return fmt.Sprintf("vm_id %d ethernet%d", f.VMID, f.NIC)
	}
	return fmt.Sprintf("%s ethernet%d", f.VM, f.NIC)
}

func checkRelPath(p string) error {
	if p == "" || path.IsAbs(p) || strings.Contains(p, "\x00") {
		return errors.New("bad path")
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." {
			return errors.New("bad path")
		}
	}
	return nil
}

func validMAC(s string) bool {
	if len(s) != 17 {
		return false
	}
	for i := 0; i < 17; i++ {
		c := s[i]
		if i%3 == 2 {
			if c != ':' {
				return false
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
