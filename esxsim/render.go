package esxsim

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Renderers are pure: a state (or part of one) in, the command's exact
// bytes out. The golden tests feed them the state of each real sample.

// RenderHeapList is `vsish -e ls /system/heaps/`: one node per line with
// a trailing "/", newest heap (highest address) first, as the order of the
// vsip-* names in vsish-heap-stats-vsip-nsx62-grepped.txt shows.
// unverified: the complete, unfiltered listing was never captured.
func RenderHeapList(heaps []Heap) string {
	hs := slices.Clone(heaps)
	slices.SortStableFunc(hs, func(a, b Heap) int {
		av, _ := strconv.ParseUint(strings.TrimPrefix(a.Address, "0x"), 16, 64)
		bv, _ := strconv.ParseUint(strings.TrimPrefix(b.Address, "0x"), 16, 64)
		switch {
		case av > bv:
			return -1
		case av < bv:
			return 1
		}
		return 0
	})
	var b strings.Builder
	for _, h := range hs {
		b.WriteString(h.FullName())
		b.WriteString("/\n")
	}
	return b.String()
}

// RenderHeapStats is `vsish -e cat|get /system/heaps/<name>/stats`.
// indent: `get` indents fields by 3 spaces (vsish-heap-stats-vsip-nsx62-grepped.txt);
// `cat` as pasted in the incident does not.
//
// 4.x prints the fields of vsish-heap-stats-netGPHeap-esxi4-*.txt byte for
// byte, then "}" where the author wrote "...". 5.x and later print the
// field set of the public VMFS-heap example (lower/upper PA limit, memory
// pool, initial heap size) plus "number of failed allocations" in the
// order of the vsip sample. unverified: the 5.x+ field list and the 4.x
// lines after "lowest percent free…" were never captured in full.
func RenderHeapStats(v Version, h Heap, indent bool) string {
	var b strings.Builder
	in := ""
	if indent {
		in = "   "
	}
	f := func(k string, val any) { fmt.Fprintf(&b, "%s%s:%v\n", in, k, val) }
	b.WriteString("Heap stats {\n")
	f("Name", h.Name)
	f("dynamically growable", 1)
	availCur := max(h.Current-h.Allocated, 0)
	availMax := max(h.Max-h.Allocated, 0)
	if v.Log == LogSyslog4x {
		f("physical contiguity", "Heap_PhysContigType: 1 -> Any Physical Contiguity")
		f("memory type", "MM_AllocType: 0 -> Any")
		f("# of ranges allocated", h.Ranges)
		f("maximum # of ranges", h.MaxRanges)
		f("dlmalloc overhead", h.Overhead)
		f("current heap size", h.Current)
	} else {
		f("physical contiguity", "MM_PhysContigType: 1 -> Any Physical Contiguity")
		f("lower memory PA limit", 0)
		f("upper memory PA limit", -1)
		f("may use reserved memory", 0)
		f("memory pool", 19)
		f("# of ranges allocated", h.Ranges)
		f("dlmalloc overhead", h.Overhead)
		f("current heap size", h.Current)
		f("initial heap size", h.Initial)
	}
	f("current bytes allocated", h.Allocated)
	f("current bytes available", availCur)
	f("current bytes releasable", h.Releasable)
	f("percent free of current size", pct(availCur, h.Current))
	f("percent releasable of current size", pct(h.Releasable, h.Current))
	f("maximum heap size", h.Max)
	f("maximum bytes available", availMax)
	f("percent free of max size", pct(availMax, h.Max))
	f("lowest percent free of max size ever encountered", h.LowestPct)
	if v.Log != LogSyslog4x {
		f("number of failed allocations", h.Failures)
	}
	b.WriteString("}\n")
	return b.String()
}

// RenderGetAllVMs is `vim-cmd vmsvc/getallvms`. Every column is as wide as
// its widest cell or header, cells are left-aligned and padded (the last
// one too), columns are 3 spaces apart; rows are sorted by vmid. Checked
// against vim-cmd-getallvms-esxi9-empty.txt (no VMs), the row of
// vim-cmd-getallvms-grep-row-esxi65.txt and the padded Version/Annotation
// tail of vim-cmd-getallvms.txt.
func RenderGetAllVMs(datastore string, vms []VM) string {
	rows := [][]string{{"Vmid", "Name", "File", "Guest OS", "Version", "Annotation"}}
	sorted := slices.Clone(vms)
	slices.SortFunc(sorted, func(a, b VM) int { return a.ID - b.ID })
	for _, vm := range sorted {
		rows = append(rows, []string{
			strconv.Itoa(vm.ID), vm.Name, "[" + datastore + "] " + vm.Vmx,
			vm.GuestOS, fmt.Sprintf("vmx-%02d", vm.HWVersion), vm.Annotation,
		})
	}
	w := make([]int, 6)
	for _, r := range rows {
		for i, c := range r {
			w[i] = max(w[i], len(c))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		for i, c := range r {
			if i > 0 {
				b.WriteString("   ")
			}
			b.WriteString(c)
			b.WriteString(strings.Repeat(" ", w[i]-len(c)))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// RenderPowerState is `vim-cmd vmsvc/power.getstate ID` (sample
// vim-cmd-power-getstate.txt).
func RenderPowerState(vm VM) string {
	return "Retrieved runtime info\n" + vm.PowerState() + "\n"
}

// netPort is one row of net-stats -l.
type netPort struct {
	ID      PortID
	Type    int
	SubType int
	Switch  string
	MAC     string
	Client  string
}

// RenderNetStatsL is `net-stats -l`: "%-16s %4d %7d %-16s %-18s %s", as
// measured on net-stats-l.txt and net-stats-l-esxi8.txt; rows grouped by
// portset (bits 24-30 of the id) then by port index (low 24 bits), which
// reproduces both samples' order (uplinks with the high bit first on 8.x).
func RenderNetStatsL(ports []netPort) string {
	ps := slices.Clone(ports)
	key := func(p PortID) (uint32, uint32) { return uint32(p) >> 24 & 0x7f, uint32(p) & 0xffffff }
	slices.SortStableFunc(ps, func(a, b netPort) int {
		as, ai := key(a.ID)
		bs, bi := key(b.ID)
		if as != bs {
			return int(as) - int(bs)
		}
		return int(ai) - int(bi)
	})
	var b strings.Builder
	fmt.Fprintf(&b, "%-16s %4s %7s %-16s %-18s %s\n", "PortNum", "Type", "SubType", "SwitchName", "MACAddress", "ClientName")
	for _, p := range ps {
		fmt.Fprintf(&b, "%-16d %4d %7d %-16s %-18s %s\n", uint32(p.ID), p.Type, p.SubType, p.Switch, p.MAC, p.Client)
	}
	return b.String()
}

// portsOf lists the ports net-stats shows: the host's own and those of
// powered-on VMs' present NICs ("<name>.ethN", type 5).
func portsOf(st *State) []netPort {
	var ps []netPort
	for _, p := range st.Scenario.Ports {
		ps = append(ps, netPort{p.Port, p.Type, p.SubType, p.Switch, p.MAC, p.Client})
	}
	for _, vm := range st.VMs {
		if !vm.PoweredOn {
			continue
		}
		for _, n := range presentNICs(vm.NICs) {
			ps = append(ps, netPort{n.Port, 5, nicSubType(n.VirtualDev), n.Switch, n.MAC, fmt.Sprintf("%s.eth%d", vm.Name, n.Index)})
		}
	}
	return ps
}

// nicSubType maps the virtual device to net-stats' SubType. The samples
// show 9 for most VM NICs and 7 for one. unverified: which device is which.
func nicSubType(dev string) int {
	if strings.HasPrefix(dev, "e1000") {
		return 7
	}
	return 9
}

// esxcliTable renders esxcli's table output: columns 2 spaces apart, a
// dashed rule under the header, right-aligned numeric columns. padded
// pads the last column too (esxcli-network-vm-list-trailing-spaces.txt);
// 6.7 and later do not (esxcli-network-vm-list.txt, -2.txt).
func esxcliTable(header []string, right []bool, rows [][]string, padded bool) string {
	w := make([]int, len(header))
	for i, h := range header {
		w[i] = len(h)
	}
	for _, r := range rows {
		for i, c := range r {
			w[i] = max(w[i], len(c))
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		for i, c := range cells {
			if i > 0 {
				b.WriteString("  ")
			}
			last := i == len(cells)-1
			pad := strings.Repeat(" ", w[i]-len(c))
			switch {
			case right[i]:
				b.WriteString(pad + c)
			case last && !padded:
				b.WriteString(c)
			default:
				b.WriteString(c + pad)
			}
		}
		b.WriteByte('\n')
	}
	line(header)
	dashes := make([]string, len(header))
	for i := range header {
		dashes[i] = strings.Repeat("-", w[i])
	}
	line(dashes)
	for _, r := range rows {
		line(r)
	}
	return b.String()
}

// RenderEsxcliVMList is `esxcli network vm list` (running VMs).
func RenderEsxcliVMList(v Version, vms []VM) string {
	var rows [][]string
	for _, vm := range vms {
		if !vm.PoweredOn {
			continue
		}
		var nets []string
		nics := presentNICs(vm.NICs)
		for _, n := range nics {
			nets = append(nets, n.Network)
		}
		rows = append(rows, []string{strconv.Itoa(vm.WorldID), vm.Name, strconv.Itoa(len(nics)), strings.Join(nets, ", ")})
	}
	return esxcliTable([]string{"World ID", "Name", "Num Ports", "Networks"}, []bool{true, false, true, false}, rows, v.EsxcliPadded)
}

// RenderEsxcliPortList is `esxcli network vm port list -w WORLD`
// (esxcli-network-vm-port-list.txt; "DVPort ID: " keeps its trailing
// space on older builds, esxcli-network-vm-port-list-2.txt).
// unverified: "void" as the team uplink of a port without one.
func RenderEsxcliPortList(v Version, vm VM, hostPorts []PortSpec) string {
	var b strings.Builder
	dv := "   DVPort ID:\n"
	if v.EsxcliPadded {
		dv = "   DVPort ID: \n"
	}
	for i, n := range presentNICs(vm.NICs) {
		if i > 0 {
			b.WriteByte('\n')
		}
		uplink, uplinkPort := "void", uint32(0)
		if n.Uplink != "" {
			uplink = n.Uplink
			for _, p := range hostPorts {
				if p.Client == n.Uplink && p.Switch == n.Switch {
					uplinkPort = uint32(p.Port)
				}
			}
		}
		fmt.Fprintf(&b, "   Port ID: %d\n   vSwitch: %s\n   Portgroup: %s\n%s   MAC Address: %s\n   IP Address: 0.0.0.0\n   Team Uplink: %s\n   Uplink Port ID: %d\n   Active Filters:\n",
			uint32(n.Port), n.Switch, n.Network, dv, n.MAC, uplink, uplinkPort)
	}
	return b.String()
}

// RenderVersionGet is `esxcli system version get` (samples
// esxcli-system-version-get.txt for 6.7, -esxi9.txt for 9.0 with its
// Maintenance line).
func RenderVersionGet(v Version) string {
	var b strings.Builder
	fmt.Fprintf(&b, "   Product: VMware ESXi\n   Version: %s\n   Build: Releasebuild-%s\n   Update: %d\n", v.Full, v.Build, v.Update)
	if v.Maintenance {
		b.WriteString("   Maintenance: 0\n")
	}
	fmt.Fprintf(&b, "   Patch: %d\n", v.Patch)
	return b.String()
}

// RenderVmware is `vmware -v`, `-l`, `-vl`/`-lv` (samples vmware-v-esxi41.txt,
// vmware-l-esxi50.txt, vmware-vl-esxi55/60/65.txt).
func RenderVmware(v Version, showV, showL bool) string {
	var b strings.Builder
	if showV {
		fmt.Fprintf(&b, "VMware ESXi %s build-%s\n", v.Full, v.Build)
	}
	if showL {
		b.WriteString(v.Label + "\n")
	}
	return b.String()
}

// RenderKernelSetting is `esxcli system settings kernel list -o
// execinstalledonly`. unverified: no real output was found; this follows
// esxcli's table format and the setting's public columns.
func RenderKernelSetting(v Version, on bool) string {
	val := "FALSE"
	if on {
		val = "TRUE"
	}
	return esxcliTable([]string{"Name", "Type", "Configured", "Runtime", "Default", "Description"},
		make([]bool, 6),
		[][]string{{"execInstalledOnly", "Bool", val, val, "FALSE", "Only allow executables from installed VIBs to be executed."}},
		v.EsxcliPadded)
}

// flapNote is how status shows a flapper: how often it flapped, and
// whether it stopped.
func flapNote(f Flapper) string {
	if f.Stopped {
		return fmt.Sprintf("FLAPPED(%d), stopped", f.Flaps)
	}
	return fmt.Sprintf("FLAPPING(%d)", f.Flaps)
}

// RenderStatus is `esxsim status`: the host for a human.
func RenderStatus(w io.Writer, st *State) {
	v := st.Ver()
	fmt.Fprintf(w, "host %s: VMware ESXi %s build-%s, scenario %s, seed %d\n", st.Scenario.Hostname, v.Full, v.Build, st.Scenario.Name, st.Seed)
	clock := "paused (time moves only with `esxsim run` or `esxsim advance`)"
	if st.Run != nil {
		clock = fmt.Sprintf("running at %gx (esxsim run, pid %d)", st.Run.Speed, st.Run.PID)
	}
	fmt.Fprintf(w, "clock %s, %s, up %s\n\n", st.Now.Format(time.RFC3339), clock, st.Now.Sub(st.Boot).Truncate(time.Second))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VMID\tNAME\tPOWER\tTOOLS\tWORLD\tPORTS (port mac network)")
	for _, vm := range st.VMs {
		power := "on"
		if !vm.PoweredOn {
			power = "off"
		}
		if vm.ShutdownAt != nil {
			power = "shutting down until " + vm.ShutdownAt.Format("15:04:05")
		}
		tools := vm.ToolsInstalled
		if vm.ToolsInstalled == ToolsRunning && !vm.ToolsRunning {
			tools = ToolsNotRunning
		}
		var ports []string
		for _, n := range vm.NICs {
			if n.Absent {
				ports = append(ports, fmt.Sprintf("ethernet%d absent %s", n.Index, n.MAC))
				continue
			}
			flap := ""
			for _, f := range st.Flappers {
				if f.Port == 0 && f.VMID == vm.ID && f.NIC == n.Index {
					flap = " " + flapNote(f)
				}
			}
			ports = append(ports, fmt.Sprintf("%s %s %q%s", n.Port, n.MAC, n.Network, flap))
		}
		fmt.Fprintf(tw, "%d\t%q\t%s\t%s\t%d\t%s\n", vm.ID, vm.Name, power, tools, vm.WorldID, strings.Join(ports, "; "))
	}
	tw.Flush()
	for _, f := range st.Flappers {
		if f.Port == 0 {
			continue
		}
		for _, p := range st.Scenario.Ports {
			if p.Port == f.Port {
				fmt.Fprintf(w, "host port %s %s %s %s\n", p.Port, p.MAC, p.Client, flapNote(f))
			}
		}
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "HEAP\tALLOCATED\tMAX\tFREE%\tLOWEST%\tFAILED\t")
	for _, h := range st.Heaps {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t\n", h.FullName(), h.Allocated, h.Max, h.PctFreeOfMax(), h.LowestPct, h.Failures)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, a := range st.Agents {
		if a.Running {
			fmt.Fprintf(w, "agent %s: running, pid %d (crashes %d, restarts %d)\n", a.Name, a.PID, a.Crashes, a.Restarts)
		} else {
			fmt.Fprintf(w, "agent %s: NOT RUNNING (crashes %d, restarts %d)\n", a.Name, a.Crashes, a.Restarts)
		}
	}
}
