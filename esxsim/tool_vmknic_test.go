package esxsim

import (
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// vmknicRows reads an esxcfg-vmknic -l sample back into rows by its
// header's column starts, so the renderer can be fed the sample's own NICs.
func vmknicRows(t *testing.T, s string) []VmknicRow {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	head := lines[0]
	var starts []int
	for _, h := range []string{"Interface", "Port Group", "IP Family", "IP Address", "Netmask", "Broadcast", "MAC Address", "MTU", "TSO MSS", "Enabled", "Type", "NetStack"} {
		if i := strings.Index(head, h); i >= 0 {
			starts = append(starts, i)
		}
	}
	var rows []VmknicRow
	for _, l := range lines[1:] {
		var f []string
		for i, s := range starts {
			end := len(l)
			if i+1 < len(starts) {
				end = starts[i+1]
			}
			f = append(f, strings.TrimSpace(l[s:end]))
		}
		mtu, err1 := strconv.Atoi(f[7])
		tso, err2 := strconv.Atoi(f[8])
		if err1 != nil || err2 != nil {
			t.Fatalf("bad line %q", l)
		}
		r := VmknicRow{Name: f[0], PortGroup: f[1], Family: f[2], IP: f[3], Netmask: f[4], Broadcast: f[5], MAC: f[6],
			MTU: mtu, TSOMSS: tso, Enabled: f[9] == "true", Type: f[10]}
		if len(f) > 11 {
			r.NetStack = f[11]
		}
		rows = append(rows, r)
	}
	return rows
}

// TestVmknicMatchesSamples renders each sample's own rows in the format
// of a version that prints it and compares byte for byte: the padded
// NetStack format (6.0 on) and the older one without NetStack.
func TestVmknicMatchesSamples(t *testing.T) {
	for _, c := range []struct{ file, ver string }{
		{"esxcfg-vmknic-l-trailing-spaces.txt", "6.7"},
		{"esxcfg-vmknic-l-no-netstack.txt", "5.5"},
	} {
		want := sample(t, c.file)
		if diff := cmp.Diff(want, RenderVmknicL(ver(t, c.ver), vmknicRows(t, want))); diff != "" {
			t.Errorf("%s (-want +got)\n%s", c.file, diff)
		}
	}
}

// TestVmknicListsTheHostsVmknics: esxcfg-vmknic -l names every type-3 port
// of the scenario with the MAC net-stats gives it, and nothing else.
func TestVmknicListsTheHostsVmknics(t *testing.T) {
	sc := Incident()
	sc.Ports = []PortSpec{
		{Port: 0x3000002, Type: 4, Switch: "vSwitch0", MAC: "00:25:b5:00:0a:1e", Client: "vmnic0"},
		{Port: 0x3000006, Type: 3, Switch: "vSwitch0", MAC: "00:25:b5:00:0a:1e", Client: "vmk0"},
		{Port: 0x4000002, Type: 3, Switch: "vmservice-vswitch", MAC: "00:50:56:6a:3c:91", Client: "vmk1", PortGroup: "vmservice-vmknic-pg"},
	}
	for _, v := range []string{"4.1", "6.0", "8.0"} {
		t.Run(v, func(t *testing.T) {
			sc.Version = v
			h := New(t, sc)
			out, errOut, code := h.Call("esxcfg-vmknic", "-l")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if len(lines) != 3 || !strings.HasPrefix(lines[0], "Interface  Port Group/DVPort") {
				t.Fatalf("want a header and 2 rows, got:\n%s", out)
			}
			for i, want := range []struct{ name, pg, mac string }{
				{"vmk0", "Management Network", "00:25:b5:00:0a:1e"},
				{"vmk1", "vmservice-vmknic-pg", "00:50:56:6a:3c:91"},
			} {
				f := strings.Fields(lines[i+1])
				if f[0] != want.name || !strings.Contains(lines[i+1], " "+want.pg+" ") || !strings.Contains(lines[i+1], " "+want.mac+" ") {
					t.Errorf("row %d = %q, want %s on %q with %s", i+1, lines[i+1], want.name, want.pg, want.mac)
				}
			}
			if _, _, code := h.Call("esxcfg-vmknic"); code == 0 {
				t.Error("esxcfg-vmknic without -l exits 0")
			}
		})
	}
}
