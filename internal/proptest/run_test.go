package proptest

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/heapguard/heapguard/agent"
	"github.com/heapguard/heapguard/esxsim"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

// rootTB is the esxsim.TB of one incident: its roots live under dir
// (removed when the incident ends, so thousands of incidents do not fill
// the disk), and a Fatalf ends the incident, not the test.
type rootTB struct{ dir string }

type tbFatal string

func (rootTB) Helper()                           {}
func (rootTB) Fatalf(format string, args ...any) { panic(tbFatal(fmt.Sprintf(format, args...))) }
func (t rootTB) TempDir() string {
	d, err := os.MkdirTemp(t.dir, "root-")
	if err != nil {
		panic(tbFatal(err.Error()))
	}
	return d
}

// poll is what the host looked like when a heapguard poll began: the
// vmids registered and powered on, and whether the MAC move was done.
type poll struct {
	At         time.Time
	Registered map[int]bool
	On         map[int]bool
	Moved      bool
}

// run is what one incident left behind.
type run struct {
	in      incident
	root    string
	polls   []poll
	actions []esxsim.Action
	journal []remediate.Entry
	final   *esxsim.State
	// checkErrs are the errors heapguard's polls returned (not failures
	// by themselves: a fault may cause them).
	checkErrs []string
	// dryDiff lists what differs between the dry-run host and a host left
	// alone through the same time and changes.
	dryDiff []string
	wall    time.Duration
}

// runIncident lays the incident out, runs heapguard's check every
// interval of host time for in.Duration with the stepped clock (the host
// moves only while heapguard waits), and collects what the invariants
// need. err is a failure of the test's own setup.
func runIncident(in incident) (r *run, err error) {
	start := time.Now()
	dir, err := os.MkdirTemp(scratch(), "heapguard-prop-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	defer func() {
		if p := recover(); p != nil {
			msg, ok := p.(tbFatal)
			if !ok {
				panic(p)
			}
			err = fmt.Errorf("setup: %s", msg)
		}
	}()
	tb := rootTB{dir: dir}
	h := esxsim.New(tb, in.Sc)
	r = &run{in: in, root: h.Root()}
	setup(h, in)
	var ref *esxsim.Host
	if in.DryRun {
		ref = esxsim.New(tb, in.Sc)
		setup(ref, in)
	}

	h.Advance(in.Before)
	if ref != nil {
		ref.Advance(in.Before)
	}
	clock := esxsim.NewStepClock(h.Root())
	cfg := policy.DefaultConfig()
	cfg.PowerOffAllow, cfg.HoldPolls = in.Allow, in.Hold
	opt := agent.Options{
		Root: h.Root(), StateDir: filepath.Join(dir, "state"), Interval: interval, DryRun: in.DryRun,
		Policy: cfg, Guards: remediate.GuardLimits{MaxPowerOffs: in.MaxOffs, PowerOffWindow: in.Window},
		FlapCycles: flapCycles, FlapWindow: flapWindow,
		ShutdownTimeout: shutdownTimeout, CommandTimeout: 5 * time.Second,
		Clock: clock, Runner: esxsim.Runner{Root: h.Root()},
	}
	w, err := agent.Open(opt)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	ctx := context.Background()
	t0 := clock.Now()
	moved := false
	for clock.Now().Sub(t0) < in.Duration {
		if err := clock.Sleep(ctx, interval); err != nil {
			w.Close()
			return nil, err
		}
		if ref != nil {
			ref.Advance(interval)
		}
		if m := in.Move; m != nil && !moved && clock.Now().Sub(t0) >= m.At {
			moveMAC(h, m)
			if ref != nil {
				moveMAC(ref, m)
			}
			moved = true
		}
		st := h.State()
		p := poll{At: st.Now, Registered: map[int]bool{}, On: map[int]bool{}, Moved: moved}
		for _, vm := range st.VMs {
			p.Registered[vm.ID] = true
			p.On[vm.ID] = vm.PoweredOn
		}
		r.polls = append(r.polls, p)
		if _, err := w.Check(ctx); err != nil {
			r.checkErrs = append(r.checkErrs, err.Error())
		}
	}
	if err := w.Close(); err != nil {
		r.checkErrs = append(r.checkErrs, "close: "+err.Error())
	}
	r.actions = h.Actions()
	r.final = h.State()
	f, err := os.Open(filepath.Join(opt.StateDir, remediate.JournalFile))
	if err != nil {
		return nil, err
	}
	entries, bad, err := remediate.ReadJournal(f)
	f.Close()
	if err != nil || bad > 0 {
		r.checkErrs = append(r.checkErrs, fmt.Sprintf("journal: %v, %d bad lines", err, bad))
	}
	r.journal = entries
	if ref != nil {
		r.dryDiff, err = diffTrees(ref.Root(), h.Root())
		if err != nil {
			return nil, err
		}
	}
	r.wall = time.Since(start)
	return r, nil
}

// setup makes the changes an incident asks for before heapguard starts.
func setup(h *esxsim.Host, in incident) {
	if in.NoNetStats {
		if err := os.Remove(h.Bin("net-stats")); err != nil {
			panic(tbFatal(err.Error()))
		}
	}
	st := h.State()
	for _, c := range in.Claims {
		vm := st.VM(c.VMID)
		old := ""
		for _, n := range vm.NICs {
			if n.Index == c.NIC {
				old = n.MAC
			}
		}
		p := h.Path("/vmfs/volumes/" + st.Scenario.DatastoreUUID + "/" + vm.Vmx)
		b, err := os.ReadFile(p)
		if err != nil {
			panic(tbFatal(err.Error()))
		}
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(b), old, c.MAC)), 0o644); err != nil {
			panic(tbFatal(err.Error()))
		}
	}
	for _, f := range in.Faults {
		h.AddFault(f)
	}
}

// moveMAC unregisters m.From (its port leaves net-stats, its flaps stop)
// and gives its MAC to m.To's NIC, .vmx and vSwitch port alike.
func moveMAC(h *esxsim.Host, m *macMove) {
	h.Unregister(m.From)
	h.Mutate(func(st *esxsim.State) {
		vm := st.VM(m.To)
		for i := range vm.NICs {
			if vm.NICs[i].Index == m.ToNIC {
				vm.NICs[i].MAC = m.MAC
			}
		}
	})
	st := h.State()
	vm := st.VM(m.To)
	p := h.Path("/vmfs/volumes/" + st.Scenario.DatastoreUUID + "/" + vm.Vmx)
	if err := os.WriteFile(p, []byte(esxsim.RenderVmx(st.Ver(), *vm)), 0o644); err != nil {
		panic(tbFatal(err.Error()))
	}
}

// diffTrees compares every file, folder and link under two roots (mode,
// bytes, link target). esxsim's state file is compared without its fault
// counters (a fault hit by a read-only call counts in the state), its
// published clock without the wall time it was published at.
func diffTrees(a, b string) ([]string, error) {
	type node struct {
		mode fs.FileMode
		data string
	}
	walk := func(root string) (map[string]node, error) {
		out := map[string]node{}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			info, err := d.Info()
			if err != nil {
				return err
			}
			n := node{mode: info.Mode()}
			switch {
			case d.Type()&fs.ModeSymlink != 0:
				n.data, err = os.Readlink(p)
			case d.Type().IsRegular():
				var b []byte
				b, err = os.ReadFile(p)
				n.data = string(b)
				switch "/" + filepath.ToSlash(rel) {
				case esxsim.StatePath:
					n.data = without(b, "fault_hits")
				case host.SimClockPath:
					n.data = without(b, "wall")
				}
			}
			out[rel] = n
			return err
		})
		return out, err
	}
	na, err := walk(a)
	if err != nil {
		return nil, err
	}
	nb, err := walk(b)
	if err != nil {
		return nil, err
	}
	var diff []string
	for p, x := range na {
		y, ok := nb[p]
		switch {
		case !ok:
			diff = append(diff, "removed "+p)
		case x.mode != y.mode:
			diff = append(diff, fmt.Sprintf("mode of %s: %v -> %v", p, x.mode, y.mode))
		case x.data != y.data:
			diff = append(diff, "changed "+p)
		}
	}
	for p := range nb {
		if _, ok := na[p]; !ok {
			diff = append(diff, "added "+p)
		}
	}
	slices.Sort(diff)
	return diff, nil
}

// without is a JSON object's text without one key.
func without(b []byte, key string) string {
	var st map[string]any
	if err := json.Unmarshal(b, &st); err != nil {
		return string(b)
	}
	delete(st, key)
	out, err := json.Marshal(st)
	if err != nil {
		return string(b)
	}
	return string(out)
}

// scratch is where incidents lay out their hosts: /dev/shm when it can be
// written (every write of the simulated host and of heapguard is synced,
// and a disk's fsync would be most of the run's time), else TMPDIR.
func scratch() string {
	if d, err := os.MkdirTemp("/dev/shm", "heapguard-prop-probe-"); err == nil {
		os.Remove(d)
		return "/dev/shm"
	}
	return os.TempDir()
}
