package esxsim

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func sample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func ver(t *testing.T, name string) Version {
	t.Helper()
	v, err := LookupVersion(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestGetAllVMsEmptyMatchesESXi9Sample(t *testing.T) {
	want := sample(t, "vim-cmd-getallvms-esxi9-empty.txt")
	if diff := cmp.Diff(want, RenderGetAllVMs("datastore1", nil)); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

// The 6.5 sample is one row of a listing whose widest Name was 20 bytes
// and widest File 58; the blog that carried it strips trailing spaces.
func TestGetAllVMsRowMatchesESXi65Sample(t *testing.T) {
	want := strings.TrimSuffix(sample(t, "vim-cmd-getallvms-grep-row-esxi65.txt"), "\n")
	vmx := strings.Repeat("x", 58-len("[datastore1] ")-len("/y.vmx")) + "/y.vmx"
	vms := []VM{
		{ID: 7, Name: "gen", Vmx: "gen/gen.vmx", GuestOS: "otherLinux64Guest", HWVersion: 13},
		{ID: 9, Name: strings.Repeat("n", 20), Vmx: vmx, GuestOS: "centos64Guest", HWVersion: 13},
	}
	out := RenderGetAllVMs("datastore1", vms)
	var got string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "7 ") {
			got = strings.TrimRight(l, " ")
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

// vim-cmd-getallvms.txt (5.5) had its names shortened by its author, so
// only the columns from Guest OS on are as printed: Guest OS padded to the
// widest (windows7Server64Guest), Version, and the empty Annotation cell
// padded to the header's width (the trailing spaces).
func TestGetAllVMsTailMatchesESXi55Sample(t *testing.T) {
	lines := strings.Split(strings.TrimSuffix(sample(t, "vim-cmd-getallvms.txt"), "\n"), "\n")
	vms := []VM{
		{ID: 1, Name: "VM1", Vmx: "VM1/VM1.vmx", GuestOS: "rhel6_64Guest", HWVersion: 8},
		{ID: 2, Name: "VM2", Vmx: "VM2/VM2.vmx", GuestOS: "windows7Server64Guest", HWVersion: 8},
	}
	got := strings.Split(RenderGetAllVMs("datastore1", vms), "\n")
	for i, guest := range []string{"rhel6_64Guest", "windows7Server64Guest"} {
		w, g := lines[i+1], got[i+1]
		w, g = w[strings.Index(w, guest):], g[strings.Index(g, guest):]
		if diff := cmp.Diff(w, g); diff != "" {
			t.Errorf("row %d (-want +got)\n%s", i+1, diff)
		}
	}
	if !strings.HasSuffix(lines[0], "Version   Annotation") || !strings.HasSuffix(got[0], "Version   Annotation") {
		t.Errorf("header tails differ: %q vs %q", lines[0], got[0])
	}
}

func incidentHeap() Heap {
	return Heap{Name: "netGPHeap", Address: "0x410001000000", Max: 67109968, Current: 67109968, Initial: 2097152,
		Allocated: 63765168, Releasable: 19568, Overhead: 2448, Ranges: 20, MaxRanges: 200, LowestPct: 0}
}

// The sample's two "..." lines are the author's elision; ESXi closes the
// block with "}".
func TestHeapStatsMatchesESXi4AfterSample(t *testing.T) {
	want := strings.Replace(sample(t, "vsish-heap-stats-netGPHeap-esxi4-after.txt"), "...\n...\n", "}\n", 1)
	if diff := cmp.Diff(want, RenderHeapStats(ver(t, "4.1"), incidentHeap(), false)); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

// The "depleted" paste shows the same byte counts as the "after" one but
// 0 in both "percent free" lines: 3344800 of 67109968 is 4% by ESXi's own
// truncation, so the author's two pastes cannot both come from one
// consistent heap. Every other line must match.
func TestHeapStatsMatchesESXi4DepletedSampleExceptPercent(t *testing.T) {
	want := strings.Split(strings.Replace(sample(t, "vsish-heap-stats-netGPHeap-esxi4-depleted.txt"), "...\n...\n", "}\n", 1), "\n")
	got := strings.Split(RenderHeapStats(ver(t, "4.1"), incidentHeap(), false), "\n")
	if len(want) != len(got) {
		t.Fatalf("got %d lines, want %d", len(got), len(want))
	}
	for i := range want {
		if want[i] == got[i] {
			continue
		}
		if slices.Contains([]string{"percent free of current size:0", "percent free of max size:0"}, want[i]) &&
			strings.HasSuffix(got[i], ":4") {
			continue
		}
		t.Errorf("line %d: got %q, want %q", i+1, got[i], want[i])
	}
}

func TestPercentTruncates(t *testing.T) {
	for _, c := range []struct {
		part, whole int64
		want        int
	}{
		{3344800, 67109968, 4}, {0, 100, 0}, {99, 100, 99}, {100, 100, 100}, {5, 0, 0}, {-1, 10, 0},
		{536875872 - 944, 536875872, 99},
	} {
		if got := pct(c.part, c.whole); got != c.want {
			t.Errorf("pct(%d, %d) = %d, want %d", c.part, c.whole, got, c.want)
		}
	}
}

func TestPowerStateMatchesSample(t *testing.T) {
	want := sample(t, "vim-cmd-power-getstate.txt")
	if diff := cmp.Diff(want, RenderPowerState(VM{ID: 7})); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

func TestVersionGetMatchesSamples(t *testing.T) {
	for v, file := range map[string]string{"6.7": "esxcli-system-version-get.txt", "9.0": "esxcli-system-version-get-esxi9.txt"} {
		if diff := cmp.Diff(sample(t, file), RenderVersionGet(ver(t, v))); diff != "" {
			t.Errorf("%s (-want +got)\n%s", v, diff)
		}
	}
}

func TestVmwareMatchesSamples(t *testing.T) {
	for _, c := range []struct {
		ver, file    string
		showV, showL bool
	}{
		{"4.1", "vmware-v-esxi41.txt", true, false},
		{"5.0", "vmware-l-esxi50.txt", false, true},
		{"5.5", "vmware-vl-esxi55.txt", true, true},
		{"6.0", "vmware-vl-esxi60.txt", true, true},
		{"6.5", "vmware-vl-esxi65.txt", true, true},
	} {
		if diff := cmp.Diff(sample(t, c.file), RenderVmware(ver(t, c.ver), c.showV, c.showL)); diff != "" {
			t.Errorf("%s (-want +got)\n%s", c.file, diff)
		}
	}
}

// parseNetStats reads a net-stats -l sample back into ports, so the
// renderer can be fed the sample's own ports (in reverse order, to check
// the ordering rule too).
func parseNetStats(t *testing.T, s string) []netPort {
	t.Helper()
	var ps []netPort
	for _, l := range strings.Split(strings.TrimSpace(s), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) < 6 {
			t.Fatalf("short line %q", l)
		}
		id, err1 := strconv.ParseUint(f[0], 10, 32)
		typ, err2 := strconv.Atoi(f[1])
		sub, err3 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("bad line %q", l)
		}
		ps = append(ps, netPort{PortID(id), typ, sub, f[3], f[4], strings.Join(f[5:], " ")})
	}
	slices.Reverse(ps)
	return ps
}

func TestNetStatsMatchesSamples(t *testing.T) {
	for _, file := range []string{"net-stats-l.txt", "net-stats-l-esxi8.txt"} {
		want := sample(t, file)
		if diff := cmp.Diff(want, RenderNetStatsL(parseNetStats(t, want))); diff != "" {
			t.Errorf("%s (-want +got)\n%s", file, diff)
		}
	}
}

func vmsFromEsxcliList(t *testing.T, s string) []VM {
	t.Helper()
	var vms []VM
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for _, l := range lines[2:] {
		f := strings.Fields(l)
		id, _ := strconv.Atoi(f[0])
		netCol := strings.LastIndex(lines[1], "  ") + 2 // the Networks column starts after the last rule gap
		nets := strings.Split(strings.TrimRight(l[netCol:], " "), ", ")
		vm := VM{Name: f[1], WorldID: id, PoweredOn: true}
		for _, n := range nets {
			vm.NICs = append(vm.NICs, NIC{Network: n})
		}
		vms = append(vms, vm)
	}
	return vms
}

func TestEsxcliVMListMatchesSamples(t *testing.T) {
	for file, v := range map[string]string{
		"esxcli-network-vm-list.txt":                 "6.7",
		"esxcli-network-vm-list-2.txt":               "7.0",
		"esxcli-network-vm-list-trailing-spaces.txt": "6.5",
	} {
		want := sample(t, file)
		if diff := cmp.Diff(want, RenderEsxcliVMList(ver(t, v), vmsFromEsxcliList(t, want))); diff != "" {
			t.Errorf("%s (-want +got)\n%s", file, diff)
		}
	}
}

func TestEsxcliPortListMatchesSamples(t *testing.T) {
	uplink := func(port PortID) []PortSpec {
		return []PortSpec{{Port: port, Type: 4, Switch: "vSwitch0", Client: "vmnic0"}}
	}
	vm1 := VM{PoweredOn: true, NICs: []NIC{
		{Network: "Security_Lab_Site1_Outside", MAC: "00:0c:29:47:03:dc", Port: 33554578, Switch: "vSwitch0", Uplink: "vmnic0"},
		{Network: "Site1_to_CPE", MAC: "00:0c:29:47:03:d2", Port: 33554579, Switch: "vSwitch0", Uplink: "vmnic0"},
	}}
	if diff := cmp.Diff(sample(t, "esxcli-network-vm-port-list.txt"), RenderEsxcliPortList(ver(t, "7.0"), vm1, uplink(33554434))); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	vm2 := VM{PoweredOn: true, NICs: []NIC{{Network: "VM Network", MAC: "00:50:56:ac:e2:16", Port: 33554458, Switch: "vSwitch0", Uplink: "vmnic0"}}}
	if diff := cmp.Diff(sample(t, "esxcli-network-vm-port-list-2.txt"), RenderEsxcliPortList(ver(t, "6.5"), vm2, uplink(33554436))); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

func TestHeapListNewestFirst(t *testing.T) {
	hs := []Heap{{Name: "a", Address: "0x4100"}, {Name: "b", Address: "0x4300"}, {Name: "c", Address: "0x4200"}}
	want := "b-0x4300/\nc-0x4200/\na-0x4100/\n"
	if got := RenderHeapList(hs); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestKernelSettingFollowsScenario(t *testing.T) {
	for _, on := range []bool{false, true} {
		out := RenderKernelSetting(ver(t, "8.0"), on)
		lines := strings.Split(out, "\n")
		want := map[bool]string{false: "FALSE", true: "TRUE"}[on]
		if f := strings.Fields(lines[2]); len(f) < 4 || f[0] != "execInstalledOnly" || f[2] != want || f[3] != want {
			t.Errorf("on=%v: row %q", on, lines[2])
		}
		if !strings.HasPrefix(lines[1], "-----------------  ----  ----------") {
			t.Errorf("rule %q", lines[1])
		}
	}
}

// The incident's .vmx lines (vmx-ethernet-grep-H-esxi4.txt) are what
// grep -H finds in the seed scenario's files.
func TestVmxHoldsIncidentMACs(t *testing.T) {
	sc := Incident()
	st, err := newState(sc, ver(t, "5.5"), sc.Seed)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(sample(t, "vmx-ethernet-grep-H-esxi4.txt")), "\n") {
		path, line, _ := strings.Cut(l, ":")
		rel := strings.TrimPrefix(path, "/volumes/71641d44-1e032a47/")
		var found bool
		for _, vm := range st.VMs {
			if vm.Vmx == rel {
				found = strings.Contains(RenderVmx(ver(t, "5.5"), vm), line+"\n")
			}
		}
		if !found {
			t.Errorf("no vmx %s with %q", rel, line)
		}
	}
}

// The ethernet lines of a generated .vmx have the shape of the real ones
// (pciSlotNumber aside: it differs per VM).
func TestVmxEthernetLinesAsSamples(t *testing.T) {
	macRe := regexp.MustCompile(`generatedAddress = "([0-9a-f:]{17})"`)
	var vm VM
	for _, file := range []string{"vmx-ethernet.txt", "vmx-ethernet-2.txt"} {
		want := sample(t, file)
		m := macRe.FindStringSubmatch(want)
		if m == nil {
			t.Fatalf("%s: no generatedAddress", file)
		}
		vm = VM{ID: 1, Name: "sitea_vm1", Vmx: "sitea_vm1/sitea_vm1.vmx", HWVersion: 8, GuestOS: "otherLinux64Guest",
			NICs: []NIC{{Index: 0, Network: "VM Network", VirtualDev: "e1000", AddressType: "vpx", MAC: m[1]}}}
		got := RenderVmx(ver(t, "5.5"), vm)
		for _, l := range strings.Split(strings.TrimSpace(want), "\n") {
			if strings.HasPrefix(l, "ethernet0.pciSlotNumber") {
				continue
			}
			if !strings.Contains(got, l+"\n") {
				t.Errorf("%s: missing %q in\n%s", file, l, got)
			}
		}
	}
	vm.NICs[0].AddressType, vm.NICs[0].MAC = "static", "00:50:56:3f:00:01"
	got := RenderVmx(ver(t, "5.5"), vm)
	if !strings.Contains(got, "ethernet0.addressType = \"static\"\nethernet0.address = \"00:50:56:3f:00:01\"\n") || strings.Contains(got, "generatedAddress") {
		t.Errorf("static NIC:\n%s", got)
	}
}
