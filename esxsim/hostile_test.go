package esxsim

import (
	"strings"
	"testing"
	"time"
)

// Tests of the hostile-but-ordinary setups acceptance tests build: shared
// display names, absent NICs, edited .vmx files, unregistered VMs,
// flapping host ports, one-off allocations, clock steps, hand-made log
// lines and faults added at run time.

// netStatsClients returns net-stats -l's ClientName column by port number
// (decimal, as printed).
func netStatsClients(t *testing.T, h *Host) map[string]string {
	t.Helper()
	out := mustCall(t, h, "net-stats", "-l")
	clients := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) < 6 {
			t.Fatalf("net-stats line %q", l)
		}
		clients[f[0]] = strings.Join(f[5:], " ")
	}
	return clients
}

// cloneOfDSVA03 is a second VM with DSVA03's display name (a clone
// registered next to it), with one NIC.
func cloneOfDSVA03() VMSpec {
	return VMSpec{ID: 20, Name: "DSVA03", Vmx: "DSVA03_1/DSVA03.vmx", GuestOS: "other26xLinux64Guest", HWVersion: 8,
		NICs: []NIC{{Index: 0, Network: "VM Network", VirtualDev: "vmxnet3", AddressType: "vpx",
			MAC: "00:50:56:84:5a:c3", Port: 0x3000013, Switch: "vSwitch0", Uplink: "vmnic0"}}}
}

// Two VMs may share a display name, as on ESXi: net-stats then shows two
// clients "DSVA03.eth0", and a flap names its VM by vmid.
func TestSharedDisplayName(t *testing.T) {
	sc := Incident()
	sc.VMs = append(sc.VMs, cloneOfDSVA03())
	if err := Init(t.TempDir(), sc, InitOptions{}); err == nil || !strings.Contains(err.Error(), "give vm_id") {
		t.Fatalf("a flap naming a shared display name: err %v, want one asking for vm_id", err)
	}
	for i := range sc.Flaps {
		if sc.Flaps[i].VM == "DSVA03" {
			sc.Flaps[i].VMID = 3
		}
	}
	h := New(t, sc)
	clients := netStatsClients(t, h)
	if clients["50331658"] != "DSVA03.eth0" || clients["50331667"] != "DSVA03.eth0" {
		t.Errorf("net-stats clients of 0x300000a and 0x3000013: %q, %q; want DSVA03.eth0 twice", clients["50331658"], clients["50331667"])
	}
	out := mustCall(t, h, "vim-cmd", "vmsvc/getallvms")
	if n := strings.Count(out, "DSVA03   "); n != 2 {
		t.Errorf("getallvms shows DSVA03 %d times:\n%s", n, out)
	}
	h.Advance(time.Minute)
	lines := logLines(t, h.Root(), "/var/log/vmkernel.log")
	if grepCount(lines, "disabled port 0x3000007") < 15 || grepCount(lines, "port 0x3000013") != 0 {
		t.Error("the flap did not stay on vmid 3's ethernet2")
	}
	// Powering the clone off leaves vmid 3 flapping.
	mustCall(t, h, "vim-cmd", "vmsvc/power.off", "20")
	n := grepCount(lines, "disabled port 0x3000007")
	h.Advance(time.Minute)
	if grepCount(logLines(t, h.Root(), "/var/log/vmkernel.log"), "disabled port 0x3000007") <= n {
		t.Error("powering off the clone stopped vmid 3's flaps")
	}
}
