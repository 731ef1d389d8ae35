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
func locked(root string, fn func(st *State) error) error {
	unlock, err := lockRoot(root, true)
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
