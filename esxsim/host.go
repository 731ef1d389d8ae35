package esxsim

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/heapguard/heapguard/host"
)

// TB is the part of testing.TB that New needs (so this package does not
// import testing).
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	TempDir() string
}

// Option changes how New lays out a host.
type Option func(*InitOptions)

// WithVersion picks the ESXi version ("4.1", "5.5", "8.0", …).
func WithVersion(v string) Option { return func(o *InitOptions) { o.Version = v } }

// WithSeed overrides the scenario's seed.
func WithSeed(n int64) Option { return func(o *InitOptions) { o.Seed = &n } }

// WithBinary links bin/* and the init scripts to a multi-call binary
// (a test binary whose TestMain dispatches on IsMultiCall, or the path
// BuildBinary returns).
func WithBinary(path string) Option { return func(o *InitOptions) { o.Binary = path } }

// Host is a simulated ESXi host laid out in a test's temp dir, the way
// govmomi's simulator.Test hands a test a real endpoint.
type Host struct {
	tb   TB
	root string
}

// New lays out sc in tb.TempDir() and returns its handle.
func New(tb TB, sc Scenario, opts ...Option) *Host {
	tb.Helper()
	var o InitOptions
	for _, f := range opts {
		f(&o)
	}
	root := tb.TempDir()
	if err := Init(root, sc, o); err != nil {
		tb.Fatalf("esxsim.New: %v", err)
	}
	return &Host{tb: tb, root: root}
}

// Root is the host's root folder (what heapguard's --root takes).
func (h *Host) Root() string { return h.root }

// Path maps a host path ("/var/log/vmkernel.log") under the root.
func (h *Host) Path(p string) string { return host.Path(h.root, p) }

// Bin is the path of a tool ("vim-cmd", "vsish", "vpxa", "vmware-vpxa").
func (h *Host) Bin(name string) string { return toolPath(h.root, name) }

// Advance moves simulated time forward by d, synchronously.
func (h *Host) Advance(d time.Duration) {
	h.tb.Helper()
	if err := Advance(h.root, d); err != nil {
		h.tb.Fatalf("esxsim: advance %s: %v", d, err)
	}
}

// StepClock steps the simulated clock by d (back when negative) as an NTP
// step would (StepSimClock): scheduled events keep their pace in the new
// time, later log lines and actions carry stepped times, the published
// clock follows. Not to be confused with the StepClock type, a host.Clock
// whose Sleep advances the simulation.
func (h *Host) StepClock(d time.Duration) {
	h.tb.Helper()
	if err := StepSimClock(h.root, d); err != nil {
		h.tb.Fatalf("esxsim: step clock by %s: %v", d, err)
	}
}

// State returns a copy of the simulated truth.
func (h *Host) State() *State {
	h.tb.Helper()
	st, err := LoadState(h.root)
	if err != nil {
		h.tb.Fatalf("esxsim: %v", err)
	}
	return st
}

// Mutate changes the state directly (to set up a case a scenario does not
// cover, e.g. a heap's figures); the change is not logged as an Action.
func (h *Host) Mutate(fn func(st *State)) {
	h.tb.Helper()
	if err := update(h.root, func(st *State) error { fn(st); return nil }); err != nil {
		h.tb.Fatalf("esxsim: mutate: %v", err)
	}
}

// Unregister removes the VM with that vmid from the inventory, as
// `vim-cmd vmsvc/unregister` would after powering it off: a running VM is
// powered off first (its ports go down and leave net-stats), it leaves
// getallvms, its flapping ports stop for good, and its .vmx stays on the
// datastore. Not logged as an Action.
func (h *Host) Unregister(id int) {
	h.tb.Helper()
	if err := unregisterVM(h.root, id); err != nil {
		h.tb.Fatalf("esxsim: %v", err)
	}
}

// AddFlap makes one more port flap from now on (first flap at now +
// f.Phase, random within a period when 0), checked like a scenario's flap
// against the VMs registered now: e.g. the new owner of a moved MAC.
func (h *Host) AddFlap(f FlapSpec) {
	h.tb.Helper()
	if err := addFlap(h.root, f); err != nil {
		h.tb.Fatalf("esxsim: AddFlap: %v", err)
	}
}

// StopFlapping stops the flapping of ethernet<nic> of the registered VM
// with that display name for good, without powering it off: the port stays
// up and stops leaking (what it leaked stays allocated).
func (h *Host) StopFlapping(vm string, nic int) {
	h.tb.Helper()
	if err := stopFlapping(h.root, vm, nic, 0); err != nil {
		h.tb.Fatalf("esxsim: %v", err)
	}
}

// StopPortFlapping is StopFlapping for a host port (a flap's "port").
func (h *Host) StopPortFlapping(port PortID) {
	h.tb.Helper()
	if port == 0 {
		h.tb.Fatalf("esxsim: StopPortFlapping: port 0")
	}
	if err := stopFlapping(h.root, "", 0, port); err != nil {
		h.tb.Fatalf("esxsim: %v", err)
	}
}

// Allocate takes bytes of the heap (name without address) at the current
// simulated time, once; negative bytes give memory back. Like a flap's
// leak it fails when it would leave less than the heap's reserve: the heap
// is unchanged, the log gets the "already at its maximum size" pair, and a
// crash the scenario ties to the heap may follow.
func (h *Host) Allocate(heap string, bytes int64) {
	h.tb.Helper()
	if err := allocate(h.root, heap, bytes); err != nil {
		h.tb.Fatalf("esxsim: %v", err)
	}
}

// AppendLog appends lines as they are, each with a newline, to the live
// vmkernel log (/var/log/messages on 4.x; never vmkwarning.log), under the
// root's lock and with its rotation: for out-of-order, malformed or
// hand-made lines.
func (h *Host) AppendLog(lines ...string) {
	h.tb.Helper()
	if err := appendLog(h.root, lines); err != nil {
		h.tb.Fatalf("esxsim: AppendLog: %v", err)
	}
}

// AddFault adds a fault (as in the scenario's faults) from now on: e.g.
// vim-cmd with ArgsPrefix ["vmsvc/power.getstate", "3"], ExitCode 1 and
// Times 2 for a VM whose power state cannot be read twice. The scenario's
// faults come first when several match.
func (h *Host) AddFault(f Fault) {
	h.tb.Helper()
	if err := addFault(h.root, f); err != nil {
		h.tb.Fatalf("esxsim: AddFault: %v", err)
	}
}

// EditVMX rewrites the .vmx of the registered VM with that display name as
// edit returns it (atomically), e.g. to claim another VM's MAC or leave a
// stale ethernetN.generatedAddress line. The state is not changed.
func (h *Host) EditVMX(name string, edit func(text string) string) {
	h.tb.Helper()
	if err := editVmx(h.root, name, edit); err != nil {
		h.tb.Fatalf("esxsim: EditVMX: %v", err)
	}
}

// RenderVMX rewrites the .vmx of the registered VM with that display name
// from the state, so that after a Mutate of its NICs the .vmx agrees with
// net-stats and the log.
func (h *Host) RenderVMX(name string) {
	h.tb.Helper()
	if err := renderVmxFile(h.root, name); err != nil {
		h.tb.Fatalf("esxsim: RenderVMX: %v", err)
	}
}

// Actions returns the parsed action log (what commands changed).
func (h *Host) Actions() []Action {
	h.tb.Helper()
	acts, bad, err := ReadActions(h.root)
	if err != nil || bad > 0 {
		h.tb.Fatalf("esxsim: actions: %v (%d bad lines)", err, bad)
	}
	return acts
}

// InstallBinary points bin/* and the init scripts at a multi-call binary.
func (h *Host) InstallBinary(path string) {
	h.tb.Helper()
	if err := InstallBinary(h.root, path); err != nil {
		h.tb.Fatalf("esxsim: %v", err)
	}
}

// Call runs a tool in-process (no exec): name is "vim-cmd", "vsish",
// "vpxa", …; it returns stdout, stderr and the exit code. Faults that
// hang do hang here; exec the installed binary to test timeouts.
func (h *Host) Call(name string, args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	code = Main(append([]string{h.Bin(name)}, args...), strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

var build struct {
	once sync.Once
	path string
	err  error
}

// BuildBinary builds cmd/esxsim once per test process (cached in a temp
// dir) and returns its path, for tests that want the real binary rather
// than the TestMain pattern (e.g. inside a chroot).
func BuildBinary(tb TB) string {
	tb.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "esxsim-bin-")
		if err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(dir, "esxsim")
		cmd := exec.Command("go", "build", "-o", build.path, "github.com/heapguard/heapguard/cmd/esxsim")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = &buildError{err: err, out: string(out)}
		}
	})
	if build.err != nil {
		tb.Fatalf("esxsim: build binary: %v", build.err)
	}
	return build.path
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }
