package policy

import (
	"strconv"
	"strings"
)

// nagiosHeaps caps how many heaps the status text names.
const nagiosHeaps = 3

// NagiosLine renders the plan as one Nagios plugin output line:
//
//	HEAPGUARD CRITICAL: netGPHeap 3.0% free of max, 3 ports flapping | 'netGPHeap_free'=3.0%;20:;10:;0;100 'flapping_ports'=3;;;0
//
// The text names the heaps that are not OK (or the watched ones when all
// are OK), the flapping ports, vpxa when it is down and what the plan does.
// Performance data follows the plugin guidelines
// ('label'=value[UOM];[warn];[crit];[min];[max]). The thresholds are
// written as ranges "20:" and "10:": in the guidelines' range syntax a bare
// "20" would mean "alert above 20", the opposite of a free-space threshold.
func (p Plan) NagiosLine() string { return p.nagios("") }

// NagiosLineNotActing is the line of a plan whose actions were not (all)
// carried out because of why (the journal cannot be written): CRITICAL,
// why first, and nothing that says a VM is being powered off.
func (p Plan) NagiosLineNotActing(why string) string {
	p.Status = Crit
	p.Actions = nil
	return p.nagios(why)
}

func (p Plan) nagios(first string) string {
	var parts, perf []string
	if first != "" {
		parts = append(parts, first)
	}
	if p.HeapErr != "" {
		parts = append(parts, "heaps could not be read: "+p.HeapErr)
	}
	// Heaps are named without their address suffix, which is noise on a
	// status line and may change across reboots (graphs keep their label),
	// unless two heaps would then share a name.
	bases := map[string]int{}
	for _, v := range p.Heaps {
		bases[v.Base]++
	}
	label := func(v HeapVerdict) string {
		if v.Base != "" && bases[v.Base] == 1 {
			return v.Base
		}
		return v.Name
	}
	var named []HeapVerdict
	for _, v := range p.Heaps {
		if v.Level != OK {
			named = append(named, v)
		}
	}
	if len(named) == 0 {
		for _, v := range p.Heaps {
			if v.Watched {
				named = append(named, v)
			}
		}
	}
	for i, v := range named {
		if i == nagiosHeaps {
			parts = append(parts, plural(len(named)-nagiosHeaps, "more heap"))
			break
		}
		part := label(v) + " " + pct(v.PercentFreeOfMax) + " free of max"
		if v.Watched && v.Pending > v.Level && v.Why != "" {
			// A low heap held back by --hold-polls says so: an OK line
			// at 7% free would mislead whoever reads only this line.
			part += " (" + v.Why + ")"
		}
		parts = append(parts, part)
	}
	for _, v := range p.Heaps {
		if v.Watched || v.Level != OK {
			perf = append(perf, perfLabel(label(v)+"_free")+"="+strconv.FormatFloat(v.PercentFreeOfMax, 'f', 1, 64)+"%;"+
				num(p.Thresholds.WarnBelow)+":;"+num(p.Thresholds.CritBelow)+":;0;100")
		}
	}
	if n := len(p.Flapping); n > 0 {
		parts = append(parts, plural(n, "port")+" flapping")
	}
	if p.Vpxa.down() {
		parts = append(parts, Agent+" "+vpxaState(p.Vpxa))
	}
	var off, notAllowed, refused int
	for _, a := range p.Actions {
		switch {
		case a.Kind != ActPowerOff:
		case a.Skipped == "":
			off++
		case strings.HasPrefix(a.Skipped, notInAllowList):
			notAllowed++
		default:
			refused++
		}
	}
	if off > 0 {
		parts = append(parts, "powering off "+plural(off, "VM"))
	}
	if notAllowed > 0 {
		parts = append(parts, plural(notAllowed, "VM")+" not allowed to be powered off")
	}
	if refused > 0 {
		parts = append(parts, plural(refused, "power-off")+" refused by the guards")
	}
	if len(parts) == 0 {
		parts = append(parts, "no heaps sampled")
	}
	perf = append(perf, "'flapping_ports'="+strconv.Itoa(len(p.Flapping))+";;;0")
	text := strings.Map(func(r rune) rune {
		switch r {
		case '|':
			return '/' // would start the performance data
		case '\n', '\r':
			return ' '
		}
		return r
	}, strings.Join(parts, ", "))
	return "HEAPGUARD " + p.Status.String() + ": " + text + " | " + strings.Join(perf, " ")
}

// perfLabel quotes a label; the guidelines forbid = and ' inside it.
func perfLabel(s string) string {
	return "'" + strings.Map(func(r rune) rune {
		switch r {
		case '=', '\'', '|', '\n', '\r', ' ':
			return '_'
		}
		return r
	}, s) + "'"
}
