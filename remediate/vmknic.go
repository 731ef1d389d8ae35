package remediate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"time"

	"github.com/heapguard/heapguard/host"
)

// VmknicTimeout bounds `esxcfg-vmknic -l`, which answers from the kernel's
// network configuration, like net-stats.
const VmknicTimeout = 10 * time.Second

// ErrNoVmknicList is wrapped by LoadVmknics' error when the host has no
// esxcfg-vmknic (not found, or exit 127). It exists on ESXi 4.1 through
// 8.0, so its absence is a host heapguard does not know.
var ErrNoVmknicList = errors.New("no esxcfg-vmknic on this host")

// LoadVmknics runs `esxcfg-vmknic -l` (timeout 0: VmknicTimeout). Nil NICs
// mean they are unknown, and the error says why; output with lines it
// cannot read gives nil too: a list missing one vmknic is no list.
func LoadVmknics(ctx context.Context, runner host.Runner, timeout time.Duration) ([]Vmknic, error) {
	res, err := runner.Run(ctx, orDefault(timeout, VmknicTimeout), "esxcfg-vmknic", "-l")
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) || res.ExitCode == 127 {
			return nil, fmt.Errorf("esxcfg-vmknic -l: %w: %w", ErrNoVmknicList, err)
		}
		return nil, fmt.Errorf("esxcfg-vmknic -l: %w", err)
	}
	nics, err := ParseVmknics(bytes.NewReader(res.Stdout))
	if err != nil {
		return nil, fmt.Errorf("esxcfg-vmknic -l: %w", err)
	}
	if len(nics) == 0 {
		// ESXi is managed through a VMkernel NIC (vmk0): a list without
		// one is not the host's whole list.
		return nil, fmt.Errorf("esxcfg-vmknic -l: no VMkernel NIC listed, not even vmk0: %w", ErrBadOutput)
	}
	return nics, nil
}

// vmknicOf returns the host's VMkernel NIC that holds mac.
func (inv *Inventory) vmknicOf(mac string) (Vmknic, bool) {
	for _, n := range inv.Vmknics {
		if n.MAC == mac {
			return n, true
		}
	}
	return Vmknic{}, false
}

// vmknicHolds settles a flapping port on a host without a port list whose
// MAC a VMkernel NIC holds: the port is taken for the host's, never a
// VM's. It reports whether it did.
func (inv *Inventory) vmknicHolds(o *PortOwner) bool {
	n, ok := inv.vmknicOf(o.MAC)
	if !ok {
		return false
	}
	o.Vmknic = &n
	live := 0
	for _, c := range o.Claims {
		if c.live() {
			live++
		}
	}
	o.Why = fmt.Sprintf("MAC %s is the host's VMkernel NIC %s (esxcfg-vmknic -l): without a port list, port %s is taken for %s's, never a VM's; check %s's uplink and port group",
		o.MAC, n.Name, portText(o.Port), n.Name, n.Name)
	if live > 0 {
		// A VM declaring the vmknic's MAC could own the port too: say so
		// with the word the alerts use.
		o.Ambiguous = true
		o.Why = fmt.Sprintf("MAC %s is the host's VMkernel NIC %s (esxcfg-vmknic -l) and %d registered VM(s) declare it: without a port list, port %s is taken for %s's, never a VM's; check %s's uplink and port group",
			o.MAC, n.Name, live, portText(o.Port), n.Name, n.Name)
	}
	return true
}

// unknownVmknics withdraws the VM a port was given to by its MAC alone
// when the host's VMkernel NICs are unknown (esxcfg-vmknic failed, or was
// not read): the log line of a VMkernel NIC's port ("NetPort: … enabled
// port 0x… with mac …") is the VM ports' line, and its port id is from the
// same range (net-stats-l.txt: vmk2 at 67108869 next to vmnic3, vmk5 among
// the VMs' ports on DvsPortset-1), so the port may be a vmknic's.
func (inv *Inventory) unknownVmknics(o *PortOwner) {
	if inv.Vmknics != nil || o.Owner == nil && o.Off == nil {
		return
	}
	c := o.Owner
	if c == nil {
		c = o.Off
	}
	why := "esxcfg-vmknic -l was not read"
	if inv.VmknicsErr != nil {
		why = inv.VmknicsErr.Error()
	}
	o.Owner, o.Off = nil, nil
	o.Why = fmt.Sprintf("the host's VMkernel NICs are unknown (%s) and this host has no port list: port %s with MAC %s may be a VMkernel NIC's rather than %s's NIC",
		why, portText(o.Port), o.MAC, c)
}
