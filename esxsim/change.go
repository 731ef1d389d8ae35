package esxsim

import (
	"fmt"
	"os"

	"github.com/heapguard/heapguard/host"
)

// Changes a test makes to a laid-out host beyond what its scenario says:
// each takes the root's lock like every other reader and writer, and none
// is logged as an Action (they are the test's setup, not a command).

// locked runs fn on the state under the exclusive lock without saving the
// state: for changes to files that the state only describes.
func locked(root string, fn func(st *State) error) error { return withState(root, true, fn) }

// vmxPath is where a VM's .vmx lives under root.
func vmxPath(root string, st *State, vm *VM) string {
	return host.Path(root, "vmfs/volumes/"+st.Scenario.DatastoreUUID+"/"+vm.Vmx)
}

// uniqueVM returns the one registered VM with that display name.
func (st *State) uniqueVM(name string) (*VM, error) {
	var found *VM
	for i := range st.VMs {
		if st.VMs[i].Name != name {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("vms %d and %d are both named %q", found.ID, st.VMs[i].ID, name)
		}
		found = &st.VMs[i]
	}
	if found == nil {
		return nil, fmt.Errorf("no registered vm named %q", name)
	}
	return found, nil
}

// unregisterVM removes a VM from the inventory (sim.unregister).
func unregisterVM(root string, id int) error {
	return update(root, func(st *State) error {
		s, err := newSim(root, st)
		if err != nil {
			return err
		}
		if err := s.unregister(id, st.Now, ""); err != nil {
			return err
		}
		return s.flush()
	})
}

// live is the scenario as the host stands now (registered VMs, live
// heaps), to check run-time changes with the scenario's own rules.
func (st *State) live() *Scenario {
	sc := st.Scenario
	sc.VMs = nil
	for _, vm := range st.VMs {
		sc.VMs = append(sc.VMs, VMSpec{ID: vm.ID, Name: vm.Name, Vmx: vm.Vmx, NICs: vm.NICs})
	}
	sc.Heaps = nil
	for _, h := range st.Heaps {
		sc.Heaps = append(sc.Heaps, HeapSpec{Name: h.Name})
	}
	return &sc
}

// addFlap starts a new flapping port on a running host.
func addFlap(root string, f FlapSpec) error {
	return update(root, func(st *State) error {
		sc := st.live()
		hnames := map[string]bool{}
		for _, h := range sc.Heaps {
			hnames[h.Name] = true
		}
		if err := sc.checkFlap(f, hnames); err != nil {
			return err
		}
		s, err := newSim(root, st)
		if err != nil {
			return err
		}
		fl, err := s.newFlapper(sc, f, st.Now)
		if err != nil {
			return err
		}
		st.Scenario.Flaps = append(st.Scenario.Flaps, f)
		st.Flappers = append(st.Flappers, fl)
		return s.flush()
	})
}

// stopFlapping stops the flappers of one VM NIC (port 0) or one host port
// for good; the port stays up.
func stopFlapping(root, vmName string, nic int, port PortID) error {
	return update(root, func(st *State) error {
		id := 0
		if port == 0 {
			vm, err := st.uniqueVM(vmName)
			if err != nil {
				return fmt.Errorf("stop flapping: %w", err)
			}
			id = vm.ID
		}
		stopped := 0
		for i := range st.Flappers {
			f := &st.Flappers[i]
			if f.Stopped || f.Port != port || port == 0 && (f.VMID != id || f.NIC != nic) {
				continue
			}
			f.Stopped = true
			stopped++
		}
		if stopped > 0 {
			return nil
		}
		if port != 0 {
			return fmt.Errorf("stop flapping: host port %s does not flap", port)
		}
		return fmt.Errorf("stop flapping: %q ethernet%d does not flap", vmName, nic)
	})
}

// allocate takes n bytes of the named heap now (gives them back when
// n < 0), failing and logging as the simulator's own allocations do.
func allocate(root, heap string, n int64) error {
	return update(root, func(st *State) error {
		h := st.Heap(heap)
		if h == nil {
			return fmt.Errorf("allocate: no heap %q", heap)
		}
		s, err := newSim(root, st)
		if err != nil {
			return err
		}
		s.alloc(h, n, st.Now)
		return s.flush()
	})
}

// appendLog writes raw lines to the live vmkernel log (messages on 4.x),
// rotating it as the simulator's own lines do.
func appendLog(root string, lines []string) error {
	return locked(root, func(st *State) error {
		raw := make([]string, len(lines))
		for i, l := range lines {
			raw[i] = l + "\n"
		}
		return appendRotating(host.Path(root, st.Ver().LogPath()), raw, st.Scenario.Log)
	})
}

// addFault makes later calls of a command misbehave.
func addFault(root string, f Fault) error {
	if err := checkFault(f); err != nil {
		return err
	}
	return update(root, func(st *State) error {
		for len(st.FaultHits) < len(st.Scenario.Faults) {
			st.FaultHits = append(st.FaultHits, 0)
		}
		st.Scenario.Faults = append(st.Scenario.Faults, f)
		st.FaultHits = append(st.FaultHits, 0)
		return nil
	})
}

// editVmx replaces the .vmx of the VM named name by edit's result.
func editVmx(root, name string, edit func(text string) string) error {
	return locked(root, func(st *State) error {
		vm, err := st.uniqueVM(name)
		if err != nil {
			return err
		}
		p := vmxPath(root, st, vm)
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("edit .vmx of %q: %w", name, err)
		}
		if err := host.WriteFileAtomic(p, []byte(edit(string(b))), 0o644); err != nil {
			return fmt.Errorf("edit .vmx of %q: %w", name, err)
		}
		return nil
	})
}

// renderVmxFile rewrites the .vmx of the VM named name from the state.
func renderVmxFile(root, name string) error {
	return locked(root, func(st *State) error {
		vm, err := st.uniqueVM(name)
		if err != nil {
			return err
		}
		if err := host.WriteFileAtomic(vmxPath(root, st, vm), []byte(RenderVmx(st.Ver(), *vm)), 0o644); err != nil {
			return fmt.Errorf("render .vmx of %q: %w", name, err)
		}
		return nil
	})
}
