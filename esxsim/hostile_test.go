package esxsim

import (
	"context"
	"fmt"
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

// fatalTB records the Fatalf of a Host method (and stops it, as
// testing.T's Fatalf would).
type fatalTB struct {
	TB
	msg string
}

type fatalStop struct{}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(fatalStop{})
}

// fatalOf runs fn on a copy of h whose failures are recorded, and returns
// the Fatalf message ("" if none).
func fatalOf(t *testing.T, h *Host, fn func(h *Host)) (msg string) {
	tb := &fatalTB{TB: t}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(fatalStop); !ok {
				panic(r)
			}
			msg = tb.msg
		}
	}()
	fn(&Host{tb: tb, root: h.root})
	return ""
}

// EditVMX changes only the file: a .vmx can claim another VM's MAC and
// keep a stale line while net-stats still shows the truth.
func TestEditVMX(t *testing.T) {
	h := New(t, Incident())
	h.EditVMX("DSVA01", func(s string) string {
		s = strings.Replace(s, `ethernet2.generatedAddress = "00:50:56:84:5a:ba"`, `ethernet2.generatedAddress = "00:50:56:84:5a:b4"`, 1)
		return s + "ethernet3.generatedAddress = \"00:50:56:84:5a:b1\"\n"
	})
	vmx := vmxText(t, h, "DSVA01/DSVA01.vmx")
	if !strings.Contains(vmx, `ethernet2.generatedAddress = "00:50:56:84:5a:b4"`+"\n") ||
		!strings.HasSuffix(vmx, `ethernet3.generatedAddress = "00:50:56:84:5a:b1"`+"\n") || strings.Contains(vmx, "5a:ba") {
		t.Errorf("edited DSVA01.vmx:\n%s", vmx)
	}
	if mustCall(t, h, "net-stats", "-l") != RenderNetStatsL(portsOf(h.State())) || !strings.Contains(mustCall(t, h, "net-stats", "-l"), "00:50:56:84:5a:ba") {
		t.Error("EditVMX changed what net-stats shows")
	}
	if _, err := os.Stat(h.Path("/vmfs/volumes/datastore1/DSVA01/DSVA01.vmx")); err != nil {
		t.Errorf("through the datastore link: %v", err)
	}
	if m := fatalOf(t, h, func(h *Host) { h.EditVMX("nobody", func(s string) string { return s }) }); !strings.Contains(m, `no registered vm named "nobody"`) {
		t.Errorf("EditVMX of an unknown VM: %q", m)
	}
}

// RenderVMX brings the .vmx in line with a Mutate of the VM's NICs.
func TestRenderVMXAfterMutate(t *testing.T) {
	h := New(t, Incident())
	h.Mutate(func(st *State) { st.VM(12).NICs[0].MAC = "00:50:56:3f:10:99" })
	if strings.Contains(vmxText(t, h, "mon-01/mon-01.vmx"), "10:99") {
		t.Fatal("the .vmx changed before RenderVMX")
	}
	h.RenderVMX("mon-01")
	if vmx := vmxText(t, h, "mon-01/mon-01.vmx"); vmx != RenderVmx(h.State().Ver(), *h.State().VM(12)) || !strings.Contains(vmx, `ethernet0.address = "00:50:56:3f:10:99"`) {
		t.Errorf("mon-01.vmx after RenderVMX:\n%s", vmx)
	}
	if !regexp.MustCompile(`00:50:56:3f:10:99 +mon-01\.eth0\n`).MatchString(mustCall(t, h, "net-stats", "-l")) {
		t.Error("net-stats does not show the new MAC")
	}

	sc := Incident()
	sc.VMs = append(sc.VMs, cloneOfDSVA03())
	sc.Flaps = nil
	d := New(t, sc)
	if m := fatalOf(t, d, func(h *Host) { h.RenderVMX("DSVA03") }); !strings.Contains(m, `vms 3 and 20 are both named "DSVA03"`) {
		t.Errorf("RenderVMX of a shared name: %q", m)
	}
}

// Unregistering DSVA03 powers it off, takes it out of getallvms and
// net-stats and stops its flaps; its .vmx stays. Its MAC can then move to
// another VM.
func TestUnregisterAndMoveMAC(t *testing.T) {
	h := New(t, Incident())
	h.Advance(time.Minute)
	before := h.State().Heap("netGPHeap").Allocated
	h.Unregister(3)

	if out := mustCall(t, h, "vim-cmd", "vmsvc/getallvms"); strings.Contains(out, "DSVA03") {
		t.Errorf("getallvms still lists DSVA03:\n%s", out)
	}
	for _, port := range []string{"50331658", "67108869", "50331655"} { // 0x300000a, 0x4000005, 0x3000007
		if c, ok := netStatsClients(t, h)[port]; ok {
			t.Errorf("net-stats still lists port %s (%s)", port, c)
		}
	}
	if out, _, code := h.Call("vim-cmd", "vmsvc/power.getstate", "3"); code == 0 {
		t.Errorf("getstate of the unregistered VM: %q", out)
	}
	vmx := vmxText(t, h, "DSVA03/dsva03.vmx")
	if !strings.Contains(vmx, `ethernet2.generatedAddress = "00:50:56:84:5a:b4"`) {
		t.Errorf("DSVA03's .vmx is gone or changed:\n%s", vmx)
	}
	if got := h.State().Heap("netGPHeap").Allocated; got != before-1048576 {
		t.Errorf("allocated %d -> %d, want DSVA03's 1 MiB back", before, got)
	}
	lines := logLines(t, h.Root(), "/var/log/vmkernel.log")
	flaps := grepCount(lines, "disabled port 0x3000007")
	h.Advance(time.Minute)
	if n := grepCount(logLines(t, h.Root(), "/var/log/vmkernel.log"), "disabled port 0x3000007"); n != flaps {
		t.Errorf("0x3000007 went on flapping after the unregister: %d -> %d lines", flaps, n)
	}
	if len(h.Actions()) != 0 {
		t.Errorf("Host.Unregister logged actions: %+v", h.Actions())
	}

	// The MAC moves to mon-01.
	h.Mutate(func(st *State) { st.VM(12).NICs[0].MAC = "00:50:56:84:5a:b4" })
	h.RenderVMX("mon-01")
	if !regexp.MustCompile(`00:50:56:84:5a:b4 +mon-01\.eth0\n`).MatchString(mustCall(t, h, "net-stats", "-l")) {
		t.Error("net-stats does not show the moved MAC on mon-01")
	}
	if !strings.Contains(vmxText(t, h, "mon-01/mon-01.vmx"), `ethernet0.address = "00:50:56:84:5a:b4"`) {
		t.Error("mon-01.vmx does not carry the moved MAC")
	}

	if m := fatalOf(t, h, func(h *Host) { h.Unregister(3) }); !strings.Contains(m, "no vm with vmid 3") {
		t.Errorf("second Unregister: %q", m)
	}
}

// vim-cmd vmsvc/unregister refuses a running VM, unregisters a powered-off
// one silently, and is logged as an Action.
func TestVimCmdUnregister(t *testing.T) {
	h := New(t, Incident())
	out, _, code := h.Call("vim-cmd", "vmsvc/unregister", "1")
	if code != 1 || !strings.Contains(out, "vim.fault.InvalidPowerState") || h.State().VM(1) == nil {
		t.Errorf("unregister of a running VM: exit %d %q", code, out)
	}
	if out := mustCall(t, h, "vim-cmd", "vmsvc/unregister", "11"); out != "" {
		t.Errorf("unregister printed %q", out)
	}
	if h.State().VM(11) != nil || strings.Contains(mustCall(t, h, "vim-cmd", "vmsvc/getallvms"), "old-build-03") {
		t.Error("vmid 11 still registered")
	}
	if _, _, code := h.Call("vim-cmd", "vmsvc/unregister", "11"); code != 1 {
		t.Errorf("second unregister: exit %d", code)
	}
	var results []string
	for _, a := range h.Actions() {
		results = append(results, a.Target+" "+a.Result)
	}
	if want := []string{"1 InvalidPowerState", "11 ok", "11 NotFound"}; !slices.Equal(results, want) {
		t.Errorf("actions %q, want %q", results, want)
	}
}

// A host port (vmk1) flaps like a VM's, leaks the same way, and goes on
// whatever the VMs do.
func TestHostPortFlaps(t *testing.T) {
	sc, err := ParseScenario([]byte(`{"base": "seed-incident", "name": "vmk-flap",
		"flaps": [{"port": "0x4000002", "period": "5s", "jitter": "10ms", "phase": "1s", "heap": "netGPHeap", "leak_bytes": 1000}],
		"crashes": []}`))
	if err != nil {
		t.Fatal(err)
	}
	h := New(t, sc)
	a0 := h.State().Heap("netGPHeap").Allocated
	h.Advance(time.Minute)
	lines := logLines(t, h.Root(), "/var/log/vmkernel.log")
	down, up := grepCount(lines, "NetPort: 1632: disabled port 0x4000002"), grepCount(lines, "NetPort: 1426: enabled port 0x4000002 with mac 00:50:56:6a:3c:91")
	if down != 12 || up != 12 {
		t.Errorf("vmk1 flapped %d/%d times in a minute, want 12", down, up)
	}
	if got := h.State().Heap("netGPHeap").Allocated - a0; got != 12*1000 {
		t.Errorf("12 flaps leaked %d bytes", got)
	}
	for _, vm := range h.State().VMs {
		if vm.PoweredOn {
			mustCall(t, h, "vim-cmd", "vmsvc/power.off", strconv.Itoa(vm.ID))
		}
	}
	h.Advance(time.Minute)
	if n := grepCount(logLines(t, h.Root(), "/var/log/vmkernel.log"), "enabled port 0x4000002 with mac"); n != 24 {
		t.Errorf("with every VM off vmk1 flapped %d times in two minutes, want 24", n)
	}
	var status strings.Builder
	RenderStatus(&status, h.State())
	if !strings.Contains(status.String(), "host port 0x4000002 00:50:56:6a:3c:91 vmk1 FLAPPING(24)") {
		t.Errorf("status:\n%s", status.String())
	}
}

func TestFlapTargetErrors(t *testing.T) {
	for _, c := range []struct{ name, flap, want string }{
		{"port and vm", `{"port": "0x4000002", "vm": "DSVA01", "nic": 2, "period": "3s"}`, "not both"},
		{"port and nic", `{"port": "0x4000002", "nic": 2, "period": "3s"}`, "not both"},
		{"port and vm_id", `{"port": "0x4000002", "vm_id": 1, "period": "3s"}`, "not both"},
		{"neither", `{"nic": 2, "period": "3s"}`, "give vm (or vm_id) and nic, or a host port"},
		{"unknown port", `{"port": "0x4000099", "period": "3s"}`, "no host port 0x4000099"},
		{"vm's port as host port", `{"port": "0x3000007", "period": "3s"}`, "no host port 0x3000007"},
		{"release without vm", `{"port": "0x4000002", "period": "3s", "heap": "netGPHeap", "release_on_stop": 10}`, "release_on_stop needs a VM"},
		{"unknown vm_id", `{"vm_id": 99, "nic": 0, "period": "3s"}`, "no vm with vm_id 99"},
		{"vm_id and other name", `{"vm_id": 1, "vm": "DSVA03", "nic": 0, "period": "3s"}`, `vm_id 1 is named "DSVA01", not "DSVA03"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseScenario([]byte(`{"base": "seed-incident", "flaps": [` + c.flap + `]}`))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err %v, want %q", err, c.want)
			}
		})
	}
	if _, err := ParseScenario([]byte(`{"base": "seed-incident", "flaps": [{"vm_id": 1, "vm": "DSVA01", "nic": 2, "period": "3s"}]}`)); err != nil {
		t.Errorf("vm_id with its own name: %v", err)
	}
}

// StopFlapping ends a port's flaps while its VM runs on; powering the VM
// off and on does not bring them back.
func TestStopFlapping(t *testing.T) {
	h := New(t, Incident())
	h.Advance(time.Minute)
	h.StopFlapping("DSVA03", 2)
	count := func(s string) int { return grepCount(logLines(t, h.Root(), "/var/log/vmkernel.log"), s) }
	n3, n1 := count("disabled port 0x3000007"), count("disabled port 0x3000005")
	a0 := h.State().Heap("netGPHeap").Allocated
	h.Advance(time.Minute)
	if count("disabled port 0x3000007") != n3 {
		t.Error("DSVA03's ethernet2 still flaps")
	}
	if count("disabled port 0x3000005") < n1+19 {
		t.Error("DSVA01's ethernet2 stopped too")
	}
	if !h.State().VM(3).PoweredOn || netStatsClients(t, h)["50331655"] != "DSVA03.eth2" {
		t.Error("DSVA03 or its port went away")
	}
	// Only DSVA01's and DSVA04's flaps leak now: 6000 bytes each, ~20 a minute.
	if got := h.State().Heap("netGPHeap").Allocated - a0; got < 2*19*6000 || got > 2*21*6000 {
		t.Errorf("leaked %d bytes in a minute with two flapping ports", got)
	}
	mustCall(t, h, "vim-cmd", "vmsvc/power.off", "3")
	mustCall(t, h, "vim-cmd", "vmsvc/power.on", "3")
	h.Advance(time.Minute)
	if count("disabled port 0x3000007") != n3+1 { // the power-off line only
		t.Error("power cycling DSVA03 restarted its flaps")
	}
	var status strings.Builder
	RenderStatus(&status, h.State())
	if !strings.Contains(status.String(), "0x3000007 00:50:56:84:5a:b4 \"vShield-DvFilter\" FLAPPED(") {
		t.Errorf("status:\n%s", status.String())
	}
	if m := fatalOf(t, h, func(h *Host) { h.StopFlapping("DSVA03", 2) }); !strings.Contains(m, `"DSVA03" ethernet2 does not flap`) {
		t.Errorf("second StopFlapping: %q", m)
	}
	if m := fatalOf(t, h, func(h *Host) { h.StopFlapping("mon-01", 0) }); !strings.Contains(m, "does not flap") {
		t.Errorf("StopFlapping of a quiet port: %q", m)
	}
}

// A host port's flaps stop the same way.
func TestStopPortFlapping(t *testing.T) {
	sc := Incident()
	sc.Flaps = []FlapSpec{{Port: 0x4000002, Period: Duration(5 * time.Second), Phase: Duration(time.Second)}}
	h := New(t, sc)
	h.Advance(30 * time.Second)
	h.StopPortFlapping(0x4000002)
	h.Advance(time.Minute)
	if n := grepCount(logLines(t, h.Root(), "/var/log/vmkernel.log"), "disabled port 0x4000002"); n != 6 {
		t.Errorf("vmk1 flapped %d times, want 6 (before the stop only)", n)
	}
	if m := fatalOf(t, h, func(h *Host) { h.StopPortFlapping(0x4000002) }); !strings.Contains(m, "host port 0x4000002 does not flap") {
		t.Errorf("second StopPortFlapping: %q", m)
	}
}

// AddFlap makes the new owner of a moved MAC flap: the log then shows the
// old MAC on another port.
func TestAddFlapOnMovedMAC(t *testing.T) {
	h := New(t, Incident())
	h.Unregister(3)
	h.Mutate(func(st *State) { st.VM(12).NICs[0].MAC = "00:50:56:84:5a:b4" })
	h.RenderVMX("mon-01")
	h.AddFlap(FlapSpec{VMID: 12, NIC: 0, Period: Duration(3 * time.Second), Phase: Duration(500 * time.Millisecond), Heap: "netGPHeap", LeakBytes: 6000})
	h.Advance(10 * time.Second)
	lines := logLines(t, h.Root(), "/var/log/vmkernel.log")
	if n := grepCount(lines, "enabled port 0x3000011 with mac 00:50:56:84:5a:b4"); n != 4 {
		t.Errorf("mon-01 flapped %d times in 10 s, want 4", n)
	}
	if m := fatalOf(t, h, func(h *Host) { h.AddFlap(FlapSpec{VM: "DSVA03", NIC: 2, Period: Duration(3 * time.Second)}) }); !strings.Contains(m, `no vm "DSVA03"`) {
		t.Errorf("AddFlap of an unregistered VM: %q", m)
	}
	if m := fatalOf(t, h, func(h *Host) {
		h.AddFlap(FlapSpec{Port: 0x4000002, Period: Duration(3 * time.Second), Heap: "nope", LeakBytes: 1})
	}); !strings.Contains(m, `no heap "nope"`) {
		t.Errorf("AddFlap with an unknown heap: %q", m)
	}
}

// heapAllocated reads "current bytes allocated" through vsish.
func heapAllocated(t *testing.T, h *Host) int64 {
	t.Helper()
	out := mustCall(t, h, "vsish", "-e", "get", "/system/heaps/netGPHeap-0x410001000000/stats")
	m := regexp.MustCompile(`current bytes allocated:(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("vsish stats:\n%s", out)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// One allocation of 5 MB at 60 % free, then a flat heap; a release gives
// it back; one that does not fit fails as the simulator's own do.
func TestAllocate(t *testing.T) {
	h := New(t, preset(t, "healthy"))
	h.Mutate(func(st *State) {
		hp := st.Heap("netGPHeap")
		hp.Allocated = hp.Max * 40 / 100
		hp.Current = hp.Allocated + 1<<20
	})
	a0 := heapAllocated(t, h)
	h.Advance(10 * time.Minute)
	h.Allocate("netGPHeap", 5<<20)
	if got := heapAllocated(t, h); got != a0+5<<20 {
		t.Errorf("allocated %d, want %d", got, a0+5<<20)
	}
	hp := h.State().Heap("netGPHeap")
	if hp.Current < hp.Allocated || hp.LowestPct != hp.PctFreeOfMax() || hp.PctFreeOfMax() != 52 {
		t.Errorf("heap after the jump: %+v", hp)
	}
	h.Advance(30 * time.Minute)
	if got := heapAllocated(t, h); got != a0+5<<20 {
		t.Errorf("the heap moved after the jump: %d", got)
	}
	h.Allocate("netGPHeap", -5<<20)
	if got := heapAllocated(t, h); got != a0 {
		t.Errorf("after the release: %d, want %d", got, a0)
	}

	h.Allocate("netGPHeap", hp.Max)
	lines := logLines(t, h.Root(), "/var/log/vmkernel.log")
	want := h.State().Now.Format("2006-01-02T15:04:05.000Z") + " cpu"
	for _, l := range lines {
		if strings.Contains(l, "Heap netGPHeap already at its maximum size") && !strings.HasPrefix(l, want) {
			t.Errorf("failure line not at the current time: %q", l)
		}
	}
	if grepCount(lines, "Heap netGPHeap already at its maximum size") != 1 || heapAllocated(t, h) != a0 || h.State().Heap("netGPHeap").Failures != 1 {
		t.Errorf("an allocation over the maximum: %+v", h.State().Heap("netGPHeap"))
	}
	if m := fatalOf(t, h, func(h *Host) { h.Allocate("nope", 1) }); !strings.Contains(m, `no heap "nope"`) {
		t.Errorf("Allocate of an unknown heap: %q", m)
	}
}

// lineTimes returns the timestamps of the ISO-format lines holding sub.
func lineTimes(t *testing.T, lines []string, sub string) []time.Time {
	t.Helper()
	var ts []time.Time
	for _, l := range lines {
		if !strings.Contains(l, sub) {
			continue
		}
		at, err := time.Parse("2006-01-02T15:04:05.000Z", l[:strings.IndexByte(l, ' ')])
		if err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		ts = append(ts, at)
	}
	return ts
}

// A clock stepped back an hour: the flaps go on at their period with
// timestamps an hour earlier, the per-minute leak and a pending guest
// shutdown keep their pace, actions and the published clock follow, and
// `esxsim advance` continues from the new time.
func TestStepClockBack(t *testing.T) {
	sc := Incident()
	sc.Heaps[0].LeakPerMinute = 1000
	h := New(t, sc)
	h.Advance(time.Minute)
	mustCall(t, h, "vim-cmd", "vmsvc/power.shutdown", "1") // 25 s
	before := h.State()
	h.StepClock(-time.Hour)

	st := h.State()
	if want := before.Now.Add(-time.Hour); !st.Now.Equal(want) || !st.Boot.Equal(before.Boot.Add(-time.Hour)) {
		t.Errorf("now %v boot %v, want %v and the boot an hour earlier", st.Now, st.Boot, want)
	}
	if a := readAnchor(t, h.Root()); !a.Sim.Equal(st.Now) || a.Speed != 0 {
		t.Errorf("published clock %+v, want %v", a, st.Now)
	}
	h.Advance(24 * time.Second)
	if !h.State().VM(1).PoweredOn {
		t.Error("the guest shutdown ended early")
	}
	h.Advance(2 * time.Second)
	if h.State().VM(1).PoweredOn {
		t.Error("the guest shutdown did not end 25 s after it began")
	}
	a0 := h.State().Heap("netGPHeap").Allocated
	h.Advance(2 * time.Minute)

	flaps := lineTimes(t, logLines(t, h.Root(), "/var/log/vmkernel.log"), "disabled port 0x3000007")
	i := slices.IndexFunc(flaps[1:], func(at time.Time) bool { return at.Before(flaps[0]) }) + 1
	if i == 0 {
		t.Fatal("no flap line after the step goes back in time")
	}
	last, next := flaps[i-1], flaps[i]
	if gap := next.Sub(last.Add(-time.Hour)); gap < 2990*time.Millisecond || gap > 3030*time.Millisecond {
		t.Errorf("first flap after the step at %v, last before at %v: %s apart on the new clock, want ~3.01s", next, last, gap)
	}
	for j := i + 1; j < len(flaps); j++ {
		if gap := flaps[j].Sub(flaps[j-1]); gap < 2990*time.Millisecond || gap > 3030*time.Millisecond {
			t.Errorf("flaps %v and %v: %s apart", flaps[j-1], flaps[j], gap)
		}
	}
	if n := len(flaps) - i; n < 48 || n > 50 {
		t.Errorf("%d flaps in the 2 min 26 s after the step", n)
	}
	// 2 minutes: two drifts of 1000 bytes and ~40 flaps of DSVA03 and
	// DSVA04 of 6000 each (DSVA01 is off).
	if got := h.State().Heap("netGPHeap").Allocated - a0; (got-2000)%6000 != 0 || got < 2000+78*6000 || got > 2000+82*6000 {
		t.Errorf("leaked %d bytes in 2 minutes after the step", got)
	}
	mustCall(t, h, "vim-cmd", "vmsvc/power.off", "3")
	acts := h.Actions()
	if got, want := acts[len(acts)-1].Time, h.State().Now; !got.Equal(want) || !got.Before(before.Now) {
		t.Errorf("action at %v, want the stepped %v", got, want)
	}

	var o, e strings.Builder
	now := h.State().Now
	if code := Main([]string{"esxsim", "step-clock", "--root", h.Root(), "--by", "-30m"}, nil, &o, &e); code != 0 ||
		o.String() != "esxsim: clock at "+now.Add(-30*time.Minute).Format(time.RFC3339)+"\n" {
		t.Errorf("step-clock: exit %d %q %q", code, o.String(), e.String())
	}
	o.Reset()
	if code := Main([]string{"esxsim", "advance", "--root", h.Root(), "--by", "90s"}, nil, &o, &e); code != 0 ||
		o.String() != "esxsim: clock at "+now.Add(-30*time.Minute+90*time.Second).Format(time.RFC3339)+"\n" {
		t.Errorf("advance after the step: exit %d %q %q", code, o.String(), e.String())
	}
	if code := Main([]string{"esxsim", "step-clock", "--root", h.Root()}, nil, &o, &e); code != 2 {
		t.Errorf("step-clock without --by: exit %d", code)
	}
}

// On 4.x the line's wall time steps but the uptime it prints does not.
func TestStepClockKeepsUptime(t *testing.T) {
	h := New(t, preset(t, "old-esx41"))
	h.Advance(time.Minute)
	h.StepClock(-time.Hour)
	h.Advance(time.Minute)
	re := regexp.MustCompile(`^(\w{3} [ \d]\d \d\d:\d\d:\d\d) vmkernel: (\d+):(\d\d):(\d\d):(\d\d)\.(\d{3}) `)
	var prevWall time.Time
	var prevUp time.Duration
	stepped := false
	for _, l := range logLines(t, h.Root(), "/var/log/messages") {
		m := re.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		wall, err := time.Parse("Jan _2 15:04:05", m[1])
		if err != nil {
			t.Fatal(err)
		}
		var f [5]int
		for i := range f {
			f[i], _ = strconv.Atoi(m[i+2])
		}
		up := time.Duration(f[0])*24*time.Hour + time.Duration(f[1])*time.Hour + time.Duration(f[2])*time.Minute +
			time.Duration(f[3])*time.Second + time.Duration(f[4])*time.Millisecond
		if up < prevUp-5*time.Millisecond {
			t.Errorf("uptime went back at %q", l)
		}
		if wall.Before(prevWall.Add(-50 * time.Minute)) {
			stepped = true
		}
		prevWall, prevUp = wall, up
	}
	if !stepped {
		t.Error("no line shows the step back")
	}
}

// A running `esxsim run` follows a step instead of catching up with the
// wall clock.
func TestStepClockDuringRun(t *testing.T) {
	h := New(t, preset(t, "healthy"))
	start := h.State().Now
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, h.Root(), RunOptions{Speed: 60, Tick: 5 * time.Millisecond}) }()
	for h.State().Run == nil {
		time.Sleep(5 * time.Millisecond)
	}
	h.StepClock(-time.Hour)
	time.Sleep(100 * time.Millisecond)
	now := h.State().Now
	if !now.Before(start) || now.Before(start.Add(-time.Hour)) {
		t.Errorf("a run stepped back an hour from %v is at %v", start, now)
	}
	if a := readAnchor(t, h.Root()); a.Speed != 60 || a.At(time.Now()).After(start) {
		t.Errorf("published anchor %+v after the step", a)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if a := readAnchor(t, h.Root()); a.Speed != 0 || !a.Sim.Equal(h.State().Now) {
		t.Errorf("anchor after the run %+v, state at %v", a, h.State().Now)
	}
}

// AppendLog puts hand-made lines into the live log, in between the
// simulator's, and rotates like them.
func TestAppendLog(t *testing.T) {
	sc := Incident()
	sc.Log = LogSpec{RotateBytes: 4000, Keep: 3}
	h := New(t, sc)
	h.Advance(10 * time.Second)
	old := "2014-06-10T05:00:00.000Z cpu3:35459)NetPort: 1426: enabled port 0x3000007 with mac 00:50:56:84:5a:b4"
	h.AppendLog(old, "not a vmkernel line")
	lines := logLines(t, h.Root(), "/var/log/vmkernel.log")
	if got := lines[len(lines)-2:]; !slices.Equal(got, []string{old, "not a vmkernel line"}) {
		t.Errorf("last lines %q", got)
	}
	h.Advance(10 * time.Second)
	lines = logLines(t, h.Root(), "/var/log/vmkernel.log")
	if i := slices.Index(lines, old); i < 0 || i+2 >= len(lines) || lines[i+1] != "not a vmkernel line" {
		t.Errorf("the appended lines are lost or not followed by the simulator's")
	}
	if _, err := os.Stat(h.Path("/var/log/vmkernel.0.gz")); err != nil {
		t.Fatalf("no rotation yet: %v", err)
	}
	live, _ := os.ReadFile(h.Path("/var/log/vmkernel.log"))
	h.AppendLog(strings.Repeat("x", 4000))
	now, err := os.ReadFile(h.Path("/var/log/vmkernel.log"))
	if err != nil || len(now) != 0 {
		t.Errorf("a line over the rotation size left %d bytes in the live log (had %d): %v", len(now), len(live), err)
	}
}

// A VM whose power state cannot be read for a while: a scenario fault on
// power.getstate of one vmid, and the same fault added at run time.
func TestGetStateFault(t *testing.T) {
	sc, err := ParseScenario([]byte(`{"base": "seed-incident", "name": "getstate-fails",
		"faults": [{"command": "vim-cmd", "args_prefix": ["vmsvc/power.getstate", "3"], "exit_code": 1,
			"stderr": "vim-cmd: failed\n", "times": 2}]}`))
	if err != nil {
		t.Fatal(err)
	}
	h := New(t, sc)
	getstate := func(id string) (string, string, int) { return h.Call("vim-cmd", "vmsvc/power.getstate", id) }
	for i := range 2 {
		if out, errOut, code := getstate("3"); code != 1 || out != "" || errOut != "vim-cmd: failed\n" {
			t.Errorf("call %d: exit %d %q %q, want the fault", i, code, out, errOut)
		}
		mustCall(t, h, "vim-cmd", "vmsvc/power.getstate", "4")
	}
	if out := mustCall(t, h, "vim-cmd", "vmsvc/power.getstate", "3"); out != "Retrieved runtime info\nPowered on\n" {
		t.Errorf("third call %q", out)
	}

	h.AddFault(Fault{Command: "vim-cmd", ArgsPrefix: []string{"vmsvc/power.getstate"}, Stdout: "Retrieved runtime info\n", Times: 1})
	if out := mustCall(t, h, "vim-cmd", "vmsvc/power.getstate", "4"); out != "Retrieved runtime info\n" {
		t.Errorf("with the added fault: %q", out)
	}
	if out := mustCall(t, h, "vim-cmd", "vmsvc/power.getstate", "4"); out != "Retrieved runtime info\nPowered on\n" {
		t.Errorf("after the added fault: %q", out)
	}
	if len(h.Actions()) != 0 {
		t.Errorf("getstate faults logged as actions: %+v", h.Actions())
	}
	if m := fatalOf(t, h, func(h *Host) { h.AddFault(Fault{Command: "vim_cmd"}) }); !strings.Contains(m, `fault command "vim_cmd"`) {
		t.Errorf("AddFault of an unknown command: %q", m)
	}
}
