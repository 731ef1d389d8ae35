package policy

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Level is a heap's or the host's status, in Nagios terms.
type Level int

const (
	OK Level = iota
	Warn
	Crit
	// Unknown: the heaps could not be read, nothing can be judged.
	Unknown
)

var levelNames = [...]string{OK: "OK", Warn: "WARNING", Crit: "CRITICAL", Unknown: "UNKNOWN"}

func (l Level) String() string {
	if l < 0 || int(l) >= len(levelNames) {
		return "Level(" + strconv.Itoa(int(l)) + ")"
	}
	return levelNames[l]
}

// ExitCode is the Nagios plugin exit status: 0 OK, 1 WARNING, 2 CRITICAL,
// 3 UNKNOWN (also for a level out of range).
func (l Level) ExitCode() int {
	if l < OK || l > Unknown {
		return 3
	}
	return int(l)
}

// MarshalText writes the level as its name ("CRITICAL"), so JSON holds a
// string.
func (l Level) MarshalText() ([]byte, error) {
	if l < 0 || int(l) >= len(levelNames) {
		return nil, fmt.Errorf("agent: marshal level %d: out of range", int(l))
	}
	return []byte(levelNames[l]), nil
}

// UnmarshalText reads a level name, in any case.
func (l *Level) UnmarshalText(b []byte) error {
	for i, n := range levelNames {
		if strings.EqualFold(n, string(b)) {
			*l = Level(i)
			return nil
		}
	}
	return fmt.Errorf("agent: unknown level %q", b)
}

// Thresholds are the configured percentages, kept in the plan for the
// Nagios performance data.
type Thresholds struct {
	WarnBelow  float64 `json:"warn_below"`
	CritBelow  float64 `json:"crit_below"`
	ClearAbove float64 `json:"clear_above"`
}

// HeapVerdict is one heap's level this poll and why.
type HeapVerdict struct {
	HeapFigures
	// Base is the name without its address suffix, for status lines.
	Base    string `json:"-"`
	Level   Level  `json:"level"`
	Watched bool   `json:"watched"`
	// Changed: the heap entered Level on this poll.
	Changed bool `json:"changed,omitempty"`
	// Pending is the worse level whose condition holds but not yet for
	// enough polls (OK: none): a heap at 10 % that is still OK says so.
	Pending       Level `json:"pending,omitempty"`
	HasPrediction bool  `json:"predicted,omitempty"`
	// TimeToExhaustion is in the JSON as seconds_to_exhaustion.
	TimeToExhaustion time.Duration `json:"-"`
	// Why explains Level in words and numbers.
	Why string `json:"why,omitempty"`
}

// Plan is the outcome of one poll: what is wrong, and the ordered actions,
// each with its reason. Live runs, dry runs, reports, JSON and the journal
// all render the same Plan.
type Plan struct {
	// Time is the host time of the poll, in UTC.
	Time time.Time `json:"time"`
	// Status is the worst of everything: the Nagios status.
	Status     Level         `json:"status"`
	Thresholds Thresholds    `json:"thresholds"`
	Heaps      []HeapVerdict `json:"heaps"`
	Flapping   []FlapObs     `json:"flapping,omitempty"`
	Vpxa       AgentObs      `json:"vpxa"`
	// HeapErr is why the heaps could not be read (Status is then UNKNOWN).
	HeapErr string `json:"heap_error,omitempty"`
	// Actions are to be carried out in order; those with Skipped set are
	// listed to say what would be done and why it is not.
	Actions []Action `json:"actions"`
	// Notes say what was considered and not done, and why.
	Notes []string `json:"notes,omitempty"`
	// Forget are flapping ports whose VM is off: their flaps are over, and
	// the driver drops their history so that a VM powered on again must
	// flap anew before it counts as flapping.
	Forget []string `json:"forget,omitempty"`
}

// LiveActions returns the actions to carry out (those not skipped).
func (p Plan) LiveActions() []Action {
	var out []Action
	for _, a := range p.Actions {
		if a.Skipped == "" {
			out = append(out, a)
		}
	}
	return out
}

// WriteText writes the plan for people: the status, the heaps that matter,
// the flapping ports, vpxa, each action with its reason (skipped ones with
// why) and the notes. It has no blank lines.
func (p Plan) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, clean(stamp(p.Time)+" "+p.Headline()))
	shown, others := 0, 0
	for _, v := range p.Heaps {
		if v.Watched || v.Level != OK {
			shown++
		} else {
			others++
		}
	}
	if shown > 0 || others > 0 {
		fmt.Fprintln(bw, "heaps:")
	}
	for _, v := range p.Heaps {
		if !v.Watched && v.Level == OK {
			continue
		}
		line := fmt.Sprintf("  %-8s %s", v.Level, heapText(v))
		if v.Why != "" {
			line += " (" + v.Why + ")"
		}
		if !v.Watched {
			line += " [not watched]"
		}
		if v.Changed {
			line += " [changed]"
		}
		fmt.Fprintln(bw, clean(line))
	}
	if others > 0 {
		fmt.Fprintf(bw, "  %s not watched and OK\n", plural(others, "other heap"))
	}
	if len(p.Flapping) > 0 {
		fmt.Fprintln(bw, "flapping ports:")
		for _, f := range p.Flapping {
			vm := "no known VM"
			switch {
			case f.VM != nil:
				vm = vmText(*f.VM)
			case f.Ambiguous:
				vm = "ambiguous owner (" + strings.Join(f.Claimants, ", ") + ")"
			case f.Unconfirmed != "":
				vm = "no VM confirmed (" + f.Unconfirmed + ")"
			}
			fmt.Fprintln(bw, clean("  "+flapText(f)+": "+vm))
		}
	}
	fmt.Fprintf(bw, "vpxa: %s\n", vpxaState(p.Vpxa))
	if len(p.Actions) == 0 {
		fmt.Fprintln(bw, "actions: none")
	} else {
		fmt.Fprintln(bw, "actions:")
	}
	for i, a := range p.Actions {
		head := actionText(a)
		if a.Skipped != "" {
			fmt.Fprintln(bw, clean(fmt.Sprintf("  %d. SKIPPED %s: %s", i+1, head, a.Skipped)))
			fmt.Fprintln(bw, clean("     would have: "+a.Reason))
			continue
		}
		fmt.Fprintln(bw, clean(fmt.Sprintf("  %d. %s: %s", i+1, head, a.Reason)))
	}
	if len(p.Notes) > 0 {
		fmt.Fprintln(bw, "notes:")
	}
	for _, n := range p.Notes {
		fmt.Fprintln(bw, clean("  - "+n))
	}
	return bw.Flush()
}

// Headline is the status and what makes it so ("WARNING: 3 ports
// flapping"; "CRITICAL: netGPHeap CRITICAL, 3 ports flapping"), built from
// the same heap levels as the heap lines, so that a block's status and its
// lines can never disagree without the headline saying why.
func (p Plan) Headline() string {
	var causes []string
	if p.HeapErr != "" {
		causes = append(causes, "heaps could not be read")
	}
	for _, v := range p.Heaps {
		if v.Level != OK {
			causes = append(causes, v.Name+" "+v.Level.String())
		}
	}
	if n := len(p.Flapping); n > 0 {
		causes = append(causes, plural(n, "port")+" flapping")
	}
	if a := p.Vpxa; a.Known && (!a.Running || a.CrashSeen) {
		causes = append(causes, Agent+" "+vpxaState(a))
	}
	if p.Status == OK || len(causes) == 0 {
		return p.Status.String()
	}
	return p.Status.String() + ": " + strings.Join(causes, ", ")
}

func actionText(a Action) string {
	switch a.Kind {
	case ActPowerOff:
		s := "power off VM " + quoteName(a.Target)
		if a.VMID != "" {
			s += " (vmid " + a.VMID + ")"
		}
		return s
	case ActRestartAgent:
		return "restart " + a.Target
	case ActVerify:
		return "verify " + a.Target
	case ActAlert:
		return "alert " + a.Target
	}
	return string(a.Kind) + " " + a.Target
}

// clean keeps one item on one line whatever the names hold.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

// heapText is "netGPHeap 8.2% free of max, falling 1.9 KB/s, exhausted in ~6m".
func heapText(v HeapVerdict) string {
	s := v.Name + " " + pct(v.PercentFreeOfMax) + " free of max"
	switch r := v.BytesPerSecond; {
	case r > 0:
		s += ", falling " + rate(r)
	case r < 0:
		s += ", rising " + rate(-r)
	}
	if v.HasPrediction {
		if v.TimeToExhaustion <= 0 {
			s += ", exhausted now"
		} else {
			s += ", exhausted in " + approx(v.TimeToExhaustion)
		}
	}
	return s
}

// heapReason is heapText with the level's why after the percentage, as
// actions give it: "netGPHeap 8.2% free of max (below 10% for 3 polls),
// falling 1.9 KB/s, exhausted in ~6m".
func heapReason(v HeapVerdict) string {
	if v.Why == "" {
		return heapText(v)
	}
	head := v.Name + " " + pct(v.PercentFreeOfMax) + " free of max"
	return head + " (" + v.Why + ")" + strings.TrimPrefix(heapText(v), head)
}

// flapText is "port 0x3000007 (MAC 00:50:56:84:5a:b4) flapped 97 times in 5m".
func flapText(f FlapObs) string {
	s := "port " + f.Port
	if f.MAC != "" {
		s += " (MAC " + f.MAC + ")"
	}
	s += " flapped " + plural(f.Cycles, "time")
	if f.Window > 0 {
		s += " in " + short(f.Window)
	}
	return s
}

// vmText names a VM unambiguously: the name is quoted, whatever it holds.
func vmText(vm VMRef) string {
	s := "VM " + quoteName(vm.Name)
	var tags []string
	if vm.ID != "" {
		tags = append(tags, "vmid "+vm.ID)
	}
	if vm.PoweredOn {
		tags = append(tags, "powered on")
	} else {
		tags = append(tags, "powered off")
	}
	return s + " (" + strings.Join(tags, ", ") + ")"
}

func quoteName(s string) string { return strconv.Quote(s) }

func vpxaText(a AgentObs) string {
	switch {
	case !a.Running && a.CrashSeen:
		return Agent + " crashed (core dump logged) and is not running"
	case !a.Running:
		return Agent + " is not running"
	case a.CrashSeen:
		return Agent + " crashed since the last poll (core dump logged)"
	}
	return Agent + " is running"
}

func vpxaState(a AgentObs) string {
	switch {
	case !a.Known:
		return "unknown"
	case !a.Running && a.CrashSeen:
		return "crashed, not running"
	case !a.Running:
		return "not running"
	case a.CrashSeen:
		return "running, crashed since the last poll"
	}
	return "running"
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	if strings.HasSuffix(what, " is") {
		return strconv.Itoa(n) + " " + strings.TrimSuffix(what, " is") + "s are"
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// num writes a threshold without trailing zeros ("10", "12.5").
func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func pct(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) + "%" }

// rate writes bytes per second in binary units, as ESXi's tools do.
func rate(bps float64) string {
	if math.IsNaN(bps) || math.IsInf(bps, 0) {
		return "? B/s"
	}
	units := []string{"B", "KB", "MB", "GB", "TB"}
	i := 0
	for bps >= 1024 && i < len(units)-1 {
		bps /= 1024
		i++
	}
	if i == 0 {
		return strconv.FormatFloat(bps, 'f', 0, 64) + " B/s"
	}
	return strconv.FormatFloat(bps, 'f', 1, 64) + " " + units[i] + "/s"
}

// short writes a duration without zero units ("5m", "1h30m", "45s").
func short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// approx rounds a predicted duration to what is worth reading: seconds
// under 2 minutes, minutes under 2 hours, then 10 minutes.
func approx(d time.Duration) string {
	switch {
	case d < 2*time.Minute:
		d = d.Round(time.Second)
	case d < 2*time.Hour:
		d = d.Round(time.Minute)
	default:
		d = d.Round(10 * time.Minute)
	}
	return "~" + short(d)
}

// stamp writes a time as RFC 3339 in UTC.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
