package esxsim

import (
	"fmt"
	"strings"
)

// VmknicRow is one row of `esxcfg-vmknic -l`: one address family of one
// VMkernel NIC (a NIC with IPv6 on has a second row, same MAC).
type VmknicRow struct {
	Name, PortGroup, Family, IP, Netmask, Broadcast, MAC string
	MTU, TSOMSS                                          int
	Enabled                                              bool
	Type, NetStack                                       string
}

// vmknicUsage: unverified (esxcfg-vmknic's own help was not captured).
const vmknicUsage = "esxcfg-vmknic <options> [[<portgroup>|<dvsName> <dvportId>]]\n" +
	"   -l|--list    List VMkernel NICs.\n"

func runVmknic(c *call) int {
	args := c.args()
	if len(args) != 1 || (args[0] != "-l" && args[0] != "--list") {
		fmt.Fprint(c.stderr, vmknicUsage)
		return 1
	}
	st, ok := c.state()
	if !ok {
		return 1
	}
	fmt.Fprint(c.stdout, RenderVmknicL(st.Ver(), vmknicsOf(st)))
	return 0
}

// RenderVmknicL is `esxcfg-vmknic -l`. With VmknicNetStack the columns are
// 11, 40, 10, 40, 16, 16, 18, 8, 10, 8, 20 and 20 wide, the last padded too
// (measured on esxcfg-vmknic-l-trailing-spaces.txt); before, 11, 20, 10,
// 25, 16, 16, 18, 8, 10, 8 and Type unpadded (esxcfg-vmknic-l-no-netstack.txt).
// A value as wide as its column still gets one blank after it.
// unverified: how real widths follow the values (the IP Address column is
// 25 wide in one sample, 40 in two, 15 in a paste not kept).
func RenderVmknicL(v Version, rows []VmknicRow) string {
	widths := []int{11, 20, 10, 25, 16, 16, 18, 8, 10, 8}
	head := []string{"Interface", "Port Group/DVPort", "IP Family", "IP Address", "Netmask", "Broadcast", "MAC Address", "MTU", "TSO MSS", "Enabled", "Type"}
	if v.VmknicNetStack {
		widths = []int{11, 40, 10, 40, 16, 16, 18, 8, 10, 8, 20, 20}
		head = []string{"Interface", "Port Group/DVPort/Opaque Network", "IP Family", "IP Address", "Netmask", "Broadcast", "MAC Address", "MTU", "TSO MSS", "Enabled", "Type", "NetStack"}
	}
	var b strings.Builder
	line := func(cells []string) {
		for i, c := range cells {
			if i < len(widths) {
				b.WriteString(c)
				b.WriteString(strings.Repeat(" ", max(1, widths[i]-len(c))))
				continue
			}
			b.WriteString(c)
		}
		b.WriteByte('\n')
	}
	line(head)
	for _, r := range rows {
		cells := []string{r.Name, r.PortGroup, r.Family, r.IP, r.Netmask, r.Broadcast, r.MAC,
			fmt.Sprint(r.MTU), fmt.Sprint(r.TSOMSS), fmt.Sprint(r.Enabled), r.Type}
		if v.VmknicNetStack {
			cells = append(cells, r.NetStack)
		}
		line(cells)
	}
	return b.String()
}

// vmknicsOf lists the host's VMkernel NICs: the scenario's type-3 ports
// (the same ones net-stats -l shows), one IPv4 row each, addresses made up
// from their order.
func vmknicsOf(st *State) []VmknicRow {
	var rows []VmknicRow
	for _, p := range st.Scenario.Ports {
		if p.Type != 3 {
			continue
		}
		n := len(rows) + 1
		pg := p.PortGroup
		if pg == "" {
			pg = "Management Network"
			if len(rows) > 0 {
				pg = fmt.Sprintf("VMkernel %d", n)
			}
		}
		rows = append(rows, VmknicRow{
			Name: p.Client, PortGroup: pg, Family: "IPv4",
			IP: fmt.Sprintf("192.168.%d.10", n), Netmask: "255.255.255.0", Broadcast: fmt.Sprintf("192.168.%d.255", n),
			MAC: p.MAC, MTU: 1500, TSOMSS: 65535, Enabled: true, Type: "STATIC", NetStack: "defaultTcpipStack",
		})
	}
	return rows
}
