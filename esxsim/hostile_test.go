package esxsim

import (
	"os"
	"regexp"
	"slices"
	"strconv"
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

// vmxText reads a VM's .vmx as the datastore holds it.
func vmxText(t *testing.T, h *Host, vmx string) string {
	t.Helper()
	b, err := os.ReadFile(h.Path("/vmfs/volumes/" + h.State().Scenario.DatastoreUUID + "/" + vmx))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// An absent NIC is in the .vmx (present = "FALSE"), even with another
// VM's MAC, but has no port: net-stats, esxcli and the log never show it.
func TestAbsentNIC(t *testing.T) {
	sc := Incident()
	mon := &sc.VMs[slices.IndexFunc(sc.VMs, func(v VMSpec) bool { return v.ID == 12 })]
	mon.NICs = append(mon.NICs, NIC{Index: 1, Network: "vShield-DvFilter", VirtualDev: "vmxnet3", AddressType: "vpx",
		MAC: "00:50:56:84:5a:b4", Absent: true}) // DSVA03's flapping ethernet2
	h := New(t, sc)

	vmx := vmxText(t, h, "mon-01/mon-01.vmx")
	for _, want := range []string{
		"ethernet1.generatedAddress = \"00:50:56:84:5a:b4\"\n",
		"ethernet1.present = \"FALSE\"\n",
		"ethernet0.present = \"TRUE\"\n",
	} {
		if !strings.Contains(vmx, want) {
			t.Errorf("mon-01.vmx lacks %q:\n%s", want, vmx)
		}
	}
	for port, client := range netStatsClients(t, h) {
		if strings.HasPrefix(client, "mon-01.") && client != "mon-01.eth0" {
			t.Errorf("net-stats shows %s for port %s", client, port)
		}
	}
	list := mustCall(t, h, "esxcli", "network", "vm", "list")
	world := strconv.Itoa(h.State().VM(12).WorldID)
	if !regexp.MustCompile(`(?m)^ *` + world + `  mon-01\s+1  VM Network *$`).MatchString(list) {
		t.Errorf("esxcli network vm list counts the absent NIC:\n%s", list)
	}
	ports := mustCall(t, h, "esxcli", "network", "vm", "port", "list", "-w", world)
	if len(regexp.MustCompile(`(?m)^   Port ID:`).FindAllString(ports, -1)) != 1 || strings.Contains(ports, "5a:b4") {
		t.Errorf("esxcli port list shows the absent NIC:\n%s", ports)
	}
	mustCall(t, h, "vim-cmd", "vmsvc/power.off", "12")
	mustCall(t, h, "vim-cmd", "vmsvc/power.on", "12")
	lines := logLines(t, h.Root(), "/var/log/vmkernel.log")
	if n := grepCount(lines, "port 0x0"); n != 0 {
		t.Errorf("%d log lines for the absent NIC's port", n)
	}

	// A flap cannot name it; and a NIC made absent stops flapping.
	sc.Flaps = []FlapSpec{{VM: "mon-01", NIC: 1, Period: Duration(3 * time.Second)}}
	if err := Init(t.TempDir(), sc, InitOptions{}); err == nil || !strings.Contains(err.Error(), "no present ethernet1") {
		t.Errorf("flap of an absent NIC: err %v", err)
	}
	h.Mutate(func(st *State) { st.VM(3).NICs[2].Absent = true })
	h.Advance(time.Minute)
	if n := grepCount(logLines(t, h.Root(), "/var/log/vmkernel.log"), "port 0x3000007"); n != grepCount(lines, "port 0x3000007") {
		t.Errorf("DSVA03's absent ethernet2 went on flapping")
	}
}
