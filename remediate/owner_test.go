package remediate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
)

// ownerHost is a small host for OwnerOf: DSVA02 (vmid 2) and DSVA03
// (vmid 3) each with ethernet2; DSVA03's MAC ...:b4 flaps on port
// 0x3000007 (50331655), as in the seed incident.
type ownerHost struct {
	vmx      map[string]string // folder -> .vmx text
	rows     []VMRow
	ports    []NetPort
	portsErr error                 // net-stats failed (it exists)
	power    map[string]PowerState // vmid -> state; absent: getstate fails
	// vmknics are esxcfg-vmknic's NICs (nil: unknown), vmknicsErr why
	// they are unknown.
	vmknics    []Vmknic
	vmknicsErr error
	// seen is what the log says of the flapping port besides its flaps.
	seen PortLog
}

const (
	flapPort = 0x3000007
	flapMAC  = "00:50:56:84:5a:b4"
)

func vmxText(name string, nics ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "displayName = %q\n", name)
	for _, n := range nics {
		b.WriteString(n)
	}
	return b.String()
}

// nic renders one ethernetN: present, addressType "vpx", generatedAddress.
func nic(i int, present bool, mac string) string {
	p := "TRUE"
	if !present {
		p = "FALSE"
	}
	return fmt.Sprintf("ethernet%d.present = %q\nethernet%d.addressType = \"vpx\"\nethernet%d.generatedAddress = %q\n", i, p, i, i, mac)
}

func newOwnerHost() *ownerHost {
	return &ownerHost{
		vmx: map[string]string{
			"DSVA02": vmxText("DSVA02", nic(2, true, "00:50:56:84:5a:b2")),
			"DSVA03": vmxText("DSVA03", nic(2, true, flapMAC)),
		},
		rows: []VMRow{
			{ID: "2", Name: "DSVA02", Datastore: "datastore1", Path: "DSVA02/DSVA02.vmx"},
			{ID: "3", Name: "DSVA03", Datastore: "datastore1", Path: "DSVA03/DSVA03.vmx"},
		},
		ports: []NetPort{
			{PortNum: 0x3000006, Type: 5, SubType: 9, SwitchName: "vSwitch1", MAC: "00:50:56:84:5a:b2", ClientName: "DSVA02.eth2"},
			{PortNum: flapPort, Type: 5, SubType: 9, SwitchName: "vSwitch1", MAC: flapMAC, ClientName: "DSVA03.eth2"},
		},
		power:   map[string]PowerState{"2": PoweredOn, "3": PoweredOn},
		vmknics: []Vmknic{{Name: "vmk0", MAC: "00:25:b5:00:0a:1e"}},
	}
}

func (h *ownerHost) owner(t *testing.T) PortOwner {
	t.Helper()
	fsys := fstest.MapFS{}
	for dir, text := range h.vmx {
		fsys["vmfs/volumes/datastore1/"+dir+"/"+dir+".vmx"] = &fstest.MapFile{Data: []byte(text)}
	}
	inv := NewInventory(fsys, h.rows, h.ports).WithPorts(h.ports, h.portsErr)
	inv.Vmknics, inv.VmknicsErr = h.vmknics, h.vmknicsErr
	power := func(_ context.Context, vmid string) (PowerState, error) {
		if st, ok := h.power[vmid]; ok {
			return st, nil
		}
		return "", errors.New("vim-cmd: connection refused")
	}
	return inv.OwnerOf(context.Background(), flapPort, "00-50-56-84-5A-B4", h.seen, power)
}

func TestOwnerOf(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(h *ownerHost)
		// owner is the vmid confirmed ("" none), off the one confirmed off.
		owner, off string
		ambiguous  bool
		why        string // part of Why when no owner
		claimants  int
		vmknic     string // the VMkernel NIC the port is taken for
	}{
		{name: "the incident: one claimant, confirmed live", owner: "3", claimants: 1},
		// A .vmx edited after the flap began: DSVA02 also declares the MAC;
		// net-stats still names DSVA03's NIC, which settles it.
		{name: "edited vmx claims the MAC too", setup: func(h *ownerHost) {
			h.vmx["DSVA02"] = vmxText("DSVA02", nic(2, true, flapMAC))
		}, owner: "3", claimants: 2},
		// The edit moved the MAC: only DSVA02 declares it, net-stats names DSVA03.
		{name: "edited vmx took the MAC away", setup: func(h *ownerHost) {
			h.vmx["DSVA02"] = vmxText("DSVA02", nic(2, true, flapMAC))
			h.vmx["DSVA03"] = vmxText("DSVA03", nic(2, true, "00:50:56:84:5a:b9"))
		}, why: `net-stats says port 0x3000007 belongs to "DSVA03" ethernet2, but no registered VM of that name uses MAC`, claimants: 1},
		// The MAC moved to DSVA02 (its new port elsewhere); the old owner
		// is unregistered and its port gone.
		{name: "MAC moved, old port gone", setup: func(h *ownerHost) {
			h.rows = h.rows[:1]
			h.vmx["DSVA02"] = vmxText("DSVA02", nic(2, true, flapMAC))
			h.ports = []NetPort{{PortNum: 0x3000009, Type: 5, SubType: 9, SwitchName: "vSwitch1", MAC: flapMAC, ClientName: "DSVA02.eth2"}}
		}, why: "net-stats does not list port 0x3000007 now", claimants: 2},
		// A vmknic flaps; a VM lists its MAC on a NIC that is not present.
		{name: "vmknic port, absent NIC claims the MAC", setup: func(h *ownerHost) {
			h.vmx["DSVA03"] = vmxText("DSVA03", nic(2, false, flapMAC))
			h.ports[1] = NetPort{PortNum: flapPort, Type: 3, SwitchName: "vSwitch1", MAC: flapMAC, ClientName: "vmk1"}
		}, why: `net-stats lists port 0x3000007 as a VMkernel NIC (type 3) "vmk1", not a VM's NIC`, claimants: 1},
		// net-stats names another NIC of the claimant than the one the
		// .vmx gives the MAC: the two disagree, nothing is confirmed.
		{name: "net-stats names another NIC of the VM", setup: func(h *ownerHost) {
			h.ports[1].ClientName = "DSVA03.eth1"
		}, why: `net-stats says port 0x3000007 belongs to "DSVA03" ethernet1, but no registered VM of that name uses MAC 00:50:56:84:5a:b4 on a present ethernet1`, claimants: 1},
		{name: "port carries another MAC", setup: func(h *ownerHost) {
			h.ports[1].MAC = "00:50:56:84:5a:b9"
		}, why: "net-stats gives port 0x3000007 MAC 00:50:56:84:5a:b9", claimants: 1},
		// Stale claims never make the live owner ambiguous.
		{name: "powered-off VM with a stale copy", setup: func(h *ownerHost) {
			h.vmx["old"] = vmxText("old", nic(0, true, flapMAC))
			h.rows = append(h.rows, VMRow{ID: "9", Name: "old", Datastore: "datastore1", Path: "old/old.vmx"})
			h.power["9"] = PoweredOff
		}, owner: "3", claimants: 2},
		{name: "unregistered copy of the VM", setup: func(h *ownerHost) {
			h.vmx["copy"] = vmxText("DSVA03", nic(2, true, flapMAC))
		}, owner: "3", claimants: 2},
		{name: "unused generatedAddress line on a static NIC", setup: func(h *ownerHost) {
			h.vmx["DSVA02"] = vmxText("DSVA02", "ethernet2.present = \"TRUE\"\nethernet2.addressType = \"static\"\nethernet2.address = \"00:50:56:00:00:02\"\nethernet2.generatedAddress = \""+flapMAC+"\"\n")
			h.ports[0].MAC = "00:50:56:00:00:02"
		}, owner: "3", claimants: 2},
		// Ambiguity that remains.
		{name: "twins of one name and NIC", setup: func(h *ownerHost) {
			h.vmx["DSVA02"] = vmxText("DSVA03", nic(2, true, flapMAC))
			h.rows[0].Name = "DSVA03"
		}, ambiguous: true, why: `2 VMs named "DSVA03" use MAC`, claimants: 2},
		{name: "no port list, two live claimants", setup: func(h *ownerHost) {
			h.ports = nil
			h.vmx["DSVA02"] = vmxText("DSVA02", nic(2, true, flapMAC))
		}, ambiguous: true, why: "(2 confirmed on, 0 of unknown power state) and this host has no port list", claimants: 2},
		{name: "no port list, one live claimant", setup: func(h *ownerHost) {
			h.ports = nil
			h.vmx["DSVA02"] = vmxText("DSVA02", nic(2, false, flapMAC))
		}, owner: "3", claimants: 2},
		// Without a port list, only live claims count.
		{name: "no port list, unused address line", setup: func(h *ownerHost) {
			h.ports = nil
			h.vmx["DSVA02"] = vmxText("DSVA02", "ethernet2.present = \"TRUE\"\nethernet2.addressType = \"static\"\nethernet2.address = \"00:50:56:00:00:02\"\nethernet2.generatedAddress = \""+flapMAC+"\"\n")
		}, owner: "3", claimants: 2},
		{name: "no port list, unregistered copy", setup: func(h *ownerHost) {
			h.ports = nil
			h.vmx["copy"] = vmxText("DSVA03", nic(2, true, flapMAC))
		}, owner: "3", claimants: 2},
		// Without a port list a powered-off claimant may be the one whose
		// port flapped (heapguard powered it off a poll ago): the one still
		// on is not blamed for its flaps.
		{name: "no port list, powered-off copy", setup: func(h *ownerHost) {
			h.ports = nil
			h.vmx["old"] = vmxText("old", nic(0, true, flapMAC))
			h.rows = append(h.rows, VMRow{ID: "9", Name: "old", Datastore: "datastore1", Path: "old/old.vmx"})
			h.power["9"] = PoweredOff
		}, ambiguous: true, why: "1 powered on, 1 off", claimants: 2},
		// What cannot be read never lets another candidate through.
		{name: "twins, one power state unreadable", setup: func(h *ownerHost) {
			h.vmx["DSVA02"] = vmxText("DSVA03", nic(2, true, flapMAC))
			h.rows[0].Name = "DSVA03"
			delete(h.power, "2")
		}, ambiguous: true, why: "1 of unknown power state", claimants: 2},
		{name: "no port list, twins, one power state unreadable", setup: func(h *ownerHost) {
			h.ports = nil
			h.vmx["DSVA02"] = vmxText("DSVA02", nic(2, true, flapMAC))
			delete(h.power, "2")
		}, ambiguous: true, why: "1 of unknown power state", claimants: 2},
		// One claimant's power state unreadable, the other off; neither
		// may be blamed, and the alert must say ambiguous, naming both.
		{name: "no port list, one power state unreadable, the other off", setup: func(h *ownerHost) {
			h.ports = nil
			h.vmx["DSVA02"] = vmxText("DSVA02", nic(2, true, flapMAC))
			delete(h.power, "3")
			h.power["2"] = PoweredOff
		}, ambiguous: true, why: "2 registered VMs use MAC 00:50:56:84:5a:b4 on a present NIC (0 confirmed on, 1 of unknown power state, the others off)", claimants: 2},
		{name: "no port list, two claimants, both off", setup: func(h *ownerHost) {
			h.ports = nil
			h.vmx["DSVA02"] = vmxText("DSVA02", nic(2, true, flapMAC))
			h.power["2"], h.power["3"] = PoweredOff, PoweredOff
		}, ambiguous: true, why: "(0 confirmed on, 0 of unknown power state, the others off)", claimants: 2},
		{name: "a VM of the client's name has an unreadable .vmx", setup: func(h *ownerHost) {
			h.rows = append(h.rows, VMRow{ID: "7", Name: "DSVA03", Datastore: "datastore1", Path: "gone/gone.vmx"})
		}, why: "the .vmx of vmid 7 of that name could not be read", claimants: 1},
		// Without a port list a VMkernel NIC's port cannot be told from a
		// VM's by the log line: a vmknic holding the MAC makes the port the
		// host's, and vmknics that are unknown leave it unconfirmed.
		{name: "no port list, a vmknic holds the MAC a VM declares", setup: func(h *ownerHost) {
			h.ports = nil
			h.vmknics = append(h.vmknics, Vmknic{Name: "vmk1", MAC: flapMAC})
		}, ambiguous: true, why: "MAC 00:50:56:84:5a:b4 is the host's VMkernel NIC vmk1 (esxcfg-vmknic -l) and 1 registered VM(s) declare it", claimants: 1, vmknic: "vmk1"},
		{name: "no port list, a vmknic holds the MAC, no live claim", setup: func(h *ownerHost) {
			h.ports = nil
			h.vmx["DSVA03"] = vmxText("DSVA03", nic(2, false, flapMAC))
			h.vmknics = append(h.vmknics, Vmknic{Name: "vmk1", MAC: flapMAC})
		}, why: "is the host's VMkernel NIC vmk1 (esxcfg-vmknic -l): without a port list, port 0x3000007 is taken for vmk1's, never a VM's", claimants: 1, vmknic: "vmk1"},
		{name: "no port list, a vmknic holds the MAC of a powered-off VM", setup: func(h *ownerHost) {
			h.ports = nil
			h.power["3"] = PoweredOff
			h.vmknics = append(h.vmknics, Vmknic{Name: "vmk1", MAC: flapMAC})
		}, ambiguous: true, why: "VMkernel NIC vmk1", claimants: 1, vmknic: "vmk1"},
		{name: "no port list, esxcfg-vmknic failed", setup: func(h *ownerHost) {
			h.ports = nil
			h.vmknics, h.vmknicsErr = nil, errors.New("esxcfg-vmknic -l: exit status 1")
		}, why: "the host's VMkernel NICs are unknown (esxcfg-vmknic -l: exit status 1) and this host has no port list: port 0x3000007 with MAC 00:50:56:84:5a:b4 may be a VMkernel NIC's", claimants: 1},
		{name: "no port list, vmknics not read", setup: func(h *ownerHost) {
			h.ports, h.vmknics = nil, nil
		}, why: "the host's VMkernel NICs are unknown (esxcfg-vmknic -l was not read)", claimants: 1},
		{name: "no port list, vmknics unknown, only claimant off", setup: func(h *ownerHost) {
			h.ports, h.vmknics = nil, nil
			h.power["3"] = PoweredOff
		}, why: "may be a VMkernel NIC's", claimants: 1},
		{name: "no port list, no vmknic at all", setup: func(h *ownerHost) {
			h.ports, h.vmknics = nil, []Vmknic{}
		}, owner: "3", claimants: 1},
		// net-stats names the port's client: a vmknic's MAC does not matter.
		{name: "port list settles a MAC a vmknic holds", setup: func(h *ownerHost) {
			h.vmknics = append(h.vmknics, Vmknic{Name: "vmk1", MAC: flapMAC})
		}, owner: "3", claimants: 1},
		{name: "no port list and an unreadable .vmx", setup: func(h *ownerHost) {
			h.ports = nil
			h.rows = append(h.rows, VMRow{ID: "7", Name: "other", Datastore: "datastore1", Path: "gone/gone.vmx"})
		}, why: `the .vmx of vmid 7 ("other") could not be read`, claimants: 1},
		{name: "net-stats exists and failed", setup: func(h *ownerHost) {
			h.ports, h.portsErr = nil, errors.New("net-stats -l: command timed out after 10s")
		}, why: "the port list could not be read this poll", claimants: 1},
		// Power states.
		{name: "power state unreadable", setup: func(h *ownerHost) {
			delete(h.power, "3")
		}, why: "no VM of that name is confirmed powered on", claimants: 1},
		{name: "owner powered off, port gone", setup: func(h *ownerHost) {
			h.ports = h.ports[:1]
			h.power["3"] = PoweredOff
		}, off: "3", claimants: 1},
		{name: "owner powered off, unregistered copy", setup: func(h *ownerHost) {
			h.ports = h.ports[:1]
			h.power["3"] = PoweredOff
			h.vmx["copy"] = vmxText("DSVA03", nic(2, true, flapMAC))
		}, off: "3", claimants: 2},
		{name: "claimant off but another live claimant on", setup: func(h *ownerHost) {
			h.ports = h.ports[:1]
			h.power["3"] = PoweredOff
			h.vmx["DSVA02"] = vmxText("DSVA02", nic(2, true, flapMAC))
		}, why: "net-stats does not list port", claimants: 2},
		{name: "client not a VM NIC", setup: func(h *ownerHost) {
			h.ports[1].ClientName = "vmnic3"
		}, why: `net-stats client "vmnic3" of port 0x3000007 does not name a VM's NIC`, claimants: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newOwnerHost()
			if tc.setup != nil {
				tc.setup(h)
			}
			o := h.owner(t)
			var owner, off string
			if o.Owner != nil {
				owner = o.Owner.VMID
			}
			if o.Off != nil {
				off = o.Off.VMID
			}
			if owner != tc.owner || off != tc.off || o.Ambiguous != tc.ambiguous {
				t.Errorf("owner %q off %q ambiguous %v, want %q %q %v (why %q)", owner, off, o.Ambiguous, tc.owner, tc.off, tc.ambiguous, o.Why)
			}
			if tc.why != "" && !strings.Contains(o.Why, tc.why) {
				t.Errorf("why %q, want it to hold %q", o.Why, tc.why)
			}
			if (owner != "" || off != "") && o.Why != "" {
				t.Errorf("a confirmed owner with a why: %q", o.Why)
			}
			var vmk string
			if o.Vmknic != nil {
				vmk = o.Vmknic.Name
			}
			if vmk != tc.vmknic {
				t.Errorf("vmknic %q, want %q", vmk, tc.vmknic)
			}
			if len(o.Claimants()) != tc.claimants {
				t.Errorf("claimants %q, want %d", o.Claimants(), tc.claimants)
			}
			if o.MAC != flapMAC {
				t.Errorf("MAC %q, want it normalised to %s", o.MAC, flapMAC)
			}
		})
	}
}

func TestSplitClient(t *testing.T) {
	for _, tc := range []struct {
		in   string
		name string
		nic  int
		ok   bool
	}{
		{"DSVA03.eth2", "DSVA03", 2, true},
		{"NSX Manager.eth0", "NSX Manager", 0, true},
		{"web 01 (prod); $(x).eth0", "web 01 (prod); $(x)", 0, true},
		{"a.eth1.eth3", "a.eth1", 3, true},
		{"vmk0", "", 0, false},
		{".eth0", "", 0, false},
		{"x.eth", "", 0, false},
		{"x.eth-1", "", 0, false},
		{"x.eth99999", "", 0, false},
	} {
		name, nic, ok := splitClient(tc.in)
		if name != tc.name || nic != tc.nic || ok != tc.ok {
			t.Errorf("splitClient(%q) = %q, %d, %v; want %q, %d, %v", tc.in, name, nic, ok, tc.name, tc.nic, tc.ok)
		}
	}
}
