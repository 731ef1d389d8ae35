package remediate

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/heapguard/heapguard/host"
)

// Claim is one ethernetN of a .vmx file that declares a MAC.
type Claim struct {
	VMID string `json:"vmid,omitempty"` // "" when the VM is not registered
	Name string `json:"name"`
	VMX  string `json:"vmx,omitempty"`
	NIC  int    `json:"nic"`
	// Present is ethernetN.present; InUse says the MAC is the address the
	// NIC uses (the line its addressType selects), not a leftover line.
	Present bool `json:"present"`
	InUse   bool `json:"in_use"`
	// Power is the VM's power state read at plan time; "" when it was not
	// read (not a candidate) and PowerUnknown when reading it failed.
	Power PowerState `json:"power,omitempty"`
}

// PowerUnknown marks a claim whose power state could not be read: it is
// never acted on, and never counted as off either.
const PowerUnknown PowerState = "unknown"

func (c Claim) String() string {
	s := strconv.Quote(c.Name)
	var tags []string
	if c.VMID != "" {
		tags = append(tags, "vmid "+c.VMID)
	} else {
		tags = append(tags, "not registered")
	}
	tags = append(tags, fmt.Sprintf("ethernet%d", c.NIC))
	if !c.Present {
		tags = append(tags, "NIC not present")
	}
	if !c.InUse {
		tags = append(tags, "unused address line")
	}
	if c.Power != "" {
		tags = append(tags, strings.ToLower(string(c.Power)))
	}
	return s + " (" + strings.Join(tags, ", ") + ")"
}

// live reports whether the claim can be the port's owner: a registered
// VM's present NIC using that MAC. Other claims never make an owner
// ambiguous.
func (c Claim) live() bool { return c.VMID != "" && c.Present && c.InUse }

// PortOwner is what the host says, at plan time, about who owns a flapping
// port. Owner is set only when exactly one VM is confirmed: otherwise Why
// says what disagrees, and nothing may be powered off for this port.
type PortOwner struct {
	Port uint32 `json:"port"`
	MAC  string `json:"mac"`
	// Live is net-stats' row for the port; nil when net-stats does not
	// list it or did not answer (LiveSource false).
	Live       *NetPort `json:"live,omitempty"`
	LiveSource bool     `json:"live_source"`
	// Claims are every .vmx NIC that declares the MAC.
	Claims []Claim `json:"claims,omitempty"`
	Owner  *Claim  `json:"owner,omitempty"`
	// Off is the port's only possible owner when it is confirmed powered
	// off: the flaps are over, nothing is to be done.
	Off *Claim `json:"off,omitempty"`
	// Vmknic is the host's VMkernel NIC holding the MAC, on a host
	// without a port list: the port is taken for the host's, never a VM's.
	Vmknic *Vmknic `json:"vmknic,omitempty"`
	// Ambiguous: more than one VM could own the port, and nothing live
	// tells them apart.
	Ambiguous bool   `json:"ambiguous,omitempty"`
	Why       string `json:"why,omitempty"`
	// Notes are facts that do not block acting (another live VM with the
	// same MAC, a port net-stats settled).
	Notes []string `json:"notes,omitempty"`
}

// Claimants names every claim, for alerts.
func (o PortOwner) Claimants() []string {
	out := make([]string, len(o.Claims))
	for i, c := range o.Claims {
		out[i] = c.String()
	}
	return out
}

// PowerReader reads a VM's power state (vim-cmd vmsvc/power.getstate).
type PowerReader func(ctx context.Context, vmid string) (PowerState, error)

// RunnerPower reads power states through runner with a timeout.
func RunnerPower(runner host.Runner, timeout time.Duration) PowerReader {
	return func(ctx context.Context, vmid string) (PowerState, error) {
		if err := checkVMID(vmid); err != nil {
			return "", err
		}
		res, err := runner.Run(ctx, timeout, getStateArgv(vmid)...)
		if err != nil {
			return "", fmt.Errorf("get power state of vmid %s: %w", vmid, err)
		}
		return ParsePowerState(bytes.NewReader(res.Stdout))
	}
}

// OwnerOf decides which VM, if any, owns the port the log saw flapping
// with mac. The .vmx files only say who claims the MAC; the port must be
// confirmed live: net-stats must list it as a VM port (type 5) with that
// MAC, its client ("<name>.eth<N>") must be exactly one registered VM's
// present NIC using the MAC, and that VM must be powered on. On a host
// without net-stats, the one registered, present, powered-on claimant is
// the owner, and a second one makes the MAC ambiguous, unless the MAC is
// a VMkernel NIC's (esxcfg-vmknic -l) or the VMkernel NICs are unknown:
// then no VM owns the port, nor when seen says the port is down or its MAC
// came up on another port since (staleClaim). A net-stats that exists and
// failed confirms nothing. Power states are read only for candidates.
func (inv *Inventory) OwnerOf(ctx context.Context, port uint32, mac string, seen PortLog, power PowerReader) PortOwner {
	o := PortOwner{Port: port, LiveSource: inv.Ports != nil}
	m, ok := NormalizeMAC(mac)
	if !ok {
		o.MAC = mac
		o.Why = fmt.Sprintf("the log gives no usable MAC for port %s", portText(port))
		return o
	}
	o.MAC = m
	o.Claims = inv.claims(m)
	switch {
	case o.LiveSource:
		inv.confirmLive(ctx, &o, power)
	case inv.PortsErr != nil:
		o.Why = fmt.Sprintf("the port list could not be read this poll (%v): port %s cannot be confirmed", inv.PortsErr, portText(o.Port))
	default:
		inv.pickClaimant(ctx, &o, power)
		staleClaim(&o, seen)
	}
	return o
}

// confirmLive checks the port against net-stats and picks the claimant
// net-stats names.
func (inv *Inventory) confirmLive(ctx context.Context, o *PortOwner, power PowerReader) {
	p, ok := inv.byPort[o.Port]
	if !ok {
		if inv.onlyClaimantOff(ctx, o, power) {
			return
		}
		o.Why = fmt.Sprintf("net-stats does not list port %s now (its VM was powered off, unregistered or moved)", portText(o.Port))
		return
	}
	o.Live = &p
	switch {
	case p.Type != netStatsVMPort:
		o.Why = fmt.Sprintf("net-stats lists port %s as %s %q, not a VM's NIC", portText(o.Port), portTypeText(p.Type), p.ClientName)
		return
	case p.MAC != o.MAC:
		o.Why = fmt.Sprintf("net-stats gives port %s MAC %s (client %q), the log %s", portText(o.Port), p.MAC, p.ClientName, o.MAC)
		return
	}
	name, nic, ok := splitClient(p.ClientName)
	if !ok {
		o.Why = fmt.Sprintf("net-stats client %q of port %s does not name a VM's NIC", p.ClientName, portText(o.Port))
		return
	}
	if vm, ok := inv.unread(func(vm InventoryVM) bool { return vm.Name == name }); ok {
		o.Why = fmt.Sprintf("net-stats says port %s belongs to %q ethernet%d, and the .vmx of vmid %s of that name could not be read: it may use MAC %s too",
			portText(o.Port), name, nic, vm.ID, o.MAC)
		return
	}
	var cands []int
	for i, c := range o.Claims {
		if c.live() && c.Name == name && c.NIC == nic {
			cands = append(cands, i)
		}
	}
	if len(cands) == 0 {
		o.Why = fmt.Sprintf("net-stats says port %s belongs to %q ethernet%d, but no registered VM of that name uses MAC %s on a present ethernet%d",
			portText(o.Port), name, nic, o.MAC, nic)
		return
	}
	on, unknown := inv.poweredOn(ctx, o, cands, power)
	switch {
	case len(on) == 1 && unknown == 0:
		c := o.Claims[on[0]]
		o.Owner = &c
		for i, other := range o.Claims {
			if i != on[0] && other.live() {
				o.Notes = append(o.Notes, fmt.Sprintf("MAC %s is also declared by %s; net-stats names %s as the port's client", o.MAC, other, c))
			}
		}
	case len(on)+unknown > 1:
		o.Ambiguous = true
		o.Why = fmt.Sprintf("%d VMs named %q use MAC %s on ethernet%d (%d confirmed on, %d of unknown power state): net-stats cannot tell them apart",
			len(cands), name, o.MAC, nic, len(on), unknown)
	default:
		o.Why = fmt.Sprintf("net-stats lists port %s for %q, but no VM of that name is confirmed powered on", portText(o.Port), name)
	}
}

// pickClaimant is the rule without a live port list: the one registered
// VM using the MAC on a present NIC, when it is powered on, every
// registered VM's .vmx was read, and no VMkernel NIC holds the MAC (nor
// may: they were read). Another registered claimant, even one powered
// off, makes the MAC ambiguous: its port may be the one that flapped.
func (inv *Inventory) pickClaimant(ctx context.Context, o *PortOwner, power PowerReader) {
	if vm, ok := inv.unread(func(InventoryVM) bool { return true }); ok {
		o.Why = fmt.Sprintf("the .vmx of vmid %s (%q) could not be read and this host has no port list: it may use MAC %s too", vm.ID, vm.Name, o.MAC)
		return
	}
	if inv.vmknicHolds(o) {
		return
	}
	defer inv.unknownVmknics(o)
	var cands []int
	for i, c := range o.Claims {
		if c.live() {
			cands = append(cands, i)
		}
	}
	if len(cands) == 0 {
		o.Why = fmt.Sprintf("no registered VM uses MAC %s on a present NIC", o.MAC)
		return
	}
	on, unknown := inv.poweredOn(ctx, o, cands, power)
	switch {
	case len(on) == 1 && unknown == 0 && len(cands) == 1:
		c := o.Claims[on[0]]
		o.Owner = &c
		o.Notes = append(o.Notes, "not confirmed live: this host has no port list (net-stats -l)")
	case len(on) == 1 && unknown == 0:
		// The flaps in the window may have been the port of a claimant
		// powered off since (heapguard's own power-off, say): without a
		// port list nothing says the one still on ever flapped.
		o.Ambiguous = true
		o.Why = fmt.Sprintf("%d registered VMs use MAC %s on a present NIC (1 powered on, %d off) and this host has no port list to tell whose port flapped",
			len(cands), o.MAC, len(cands)-1)
	case len(on)+unknown > 1:
		o.Ambiguous = true
		o.Why = fmt.Sprintf("%d VMs use MAC %s (%d confirmed on, %d of unknown power state) and this host has no port list to tell them apart",
			len(cands), o.MAC, len(on), unknown)
	case len(cands) > 1:
		// None confirmed on, or one on beside an unreadable one: still
		// several VMs whose port may be the one that flapped.
		o.Ambiguous = true
		o.Why = fmt.Sprintf("%d registered VMs use MAC %s on a present NIC (%d confirmed on, %d of unknown power state, the others off) and this host has no port list to tell whose port flapped",
			len(cands), o.MAC, len(on), unknown)
	case len(cands) == 1 && o.Claims[cands[0]].Power == PoweredOff:
		off := o.Claims[cands[0]]
		o.Off = &off
	default:
		o.Why = fmt.Sprintf("no VM using MAC %s is confirmed powered on", o.MAC)
	}
}

// onlyClaimantOff sets o.Off when exactly one registered VM uses the MAC
// on a present NIC and it is confirmed powered off.
func (inv *Inventory) onlyClaimantOff(ctx context.Context, o *PortOwner, power PowerReader) bool {
	var live []int
	for i, c := range o.Claims {
		if c.live() {
			live = append(live, i)
		}
	}
	if len(live) != 1 || power == nil {
		return false
	}
	c := &o.Claims[live[0]]
	st, err := power(ctx, c.VMID)
	if err != nil {
		c.Power = PowerUnknown
		o.Notes = append(o.Notes, err.Error())
		return false
	}
	c.Power = st
	if st != PoweredOff {
		return false
	}
	off := *c
	o.Off = &off
	return true
}

// poweredOn reads the candidates' power states (into o.Claims) and returns
// those confirmed on, and how many could not be read. An unknown state is
// never on, nor off: the caller must not take another candidate for the
// only one.
func (inv *Inventory) poweredOn(ctx context.Context, o *PortOwner, cands []int, power PowerReader) (on []int, unknown int) {
	for _, i := range cands {
		st := PowerUnknown
		if power != nil {
			if s, err := power(ctx, o.Claims[i].VMID); err == nil {
				st = s
			} else {
				o.Notes = append(o.Notes, err.Error())
			}
		}
		o.Claims[i].Power = st
		switch st {
		case PoweredOn:
			on = append(on, i)
		case PowerUnknown:
			unknown++
		}
	}
	return on, unknown
}

// unread returns a registered VM matching which whose .vmx could not be
// found or read: its NICs are unknown.
func (inv *Inventory) unread(which func(InventoryVM) bool) (InventoryVM, bool) {
	for _, vm := range inv.VMs {
		if vm.ID != "" && vm.VMX == "" && which(vm) {
			return vm, true
		}
	}
	return InventoryVM{}, false
}

// claims lists every NIC of the inventory that declares mac, registered
// VMs first.
func (inv *Inventory) claims(mac string) []Claim {
	var out []Claim
	for _, vm := range inv.VMs {
		for _, n := range vm.NICs {
			for _, m := range n.MACs() {
				if m == mac {
					out = append(out, Claim{VMID: vm.ID, Name: vm.Name, VMX: vm.VMX, NIC: n.Index, Present: n.Present, InUse: n.MAC() == mac})
				}
			}
		}
	}
	return out
}

// netStatsVMPort is net-stats' Type of a VM's virtual NIC port; 3 is a
// VMkernel NIC, 4 an uplink, 0 an internal port (samples net-stats-l*.txt).
const netStatsVMPort = 5

func portTypeText(t int) string {
	switch t {
	case 3:
		return "a VMkernel NIC (type 3)"
	case 4:
		return "an uplink (type 4)"
	}
	return fmt.Sprintf("a port of type %d", t)
}

// splitClient splits net-stats' client "<VM name>.eth<N>"; the name may
// hold dots and blanks.
func splitClient(client string) (name string, nic int, ok bool) {
	i := strings.LastIndex(client, ".eth")
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(client[i+len(".eth"):])
	if err != nil || n < 0 || n > maxNICIndex {
		return "", 0, false
	}
	return client[:i], n, true
}

func portText(port uint32) string {
	return fmt.Sprintf("0x%x", port)
}
