package policy

import (
	"strings"
	"testing"
	"time"
)

func TestNagiosLine(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HoldPolls = 1
	at := time.Unix(0, 0)
	tests := []struct {
		name string
		obs  Observations
		want string
	}{
		{
			name: "critical with flapping ports",
			obs: Observations{Time: at, Heaps: []HeapObs{hobs("netGPHeap-0x410001000000", 3)}, Flapping: []FlapObs{
				flap("0x3000007", "a", nil), flap("0x3000003", "b", nil), flap("0x3000005", "c", nil)}},
			want: "HEAPGUARD CRITICAL: netGPHeap 3.0% free of max, 3 ports flapping | 'netGPHeap_free'=3.0%;20:;10:;0;100 'flapping_ports'=3;;;0",
		},
		{
			name: "ok names the watched heaps",
			obs:  Observations{Time: at, Heaps: []HeapObs{hobs("vsip-attr", 90), hobs("netGPHeap", 64.04)}},
			want: "HEAPGUARD OK: netGPHeap 64.0% free of max | 'netGPHeap_free'=64.0%;20:;10:;0;100 'flapping_ports'=0;;;0",
		},
		{
			name: "two instances keep their addresses",
			obs:  Observations{Time: at, Heaps: []HeapObs{hobs("netGPHeap-0x1", 50), hobs("netGPHeap-0x2", 60)}},
			want: "HEAPGUARD OK: netGPHeap-0x1 50.0% free of max, netGPHeap-0x2 60.0% free of max | 'netGPHeap-0x1_free'=50.0%;20:;10:;0;100 'netGPHeap-0x2_free'=60.0%;20:;10:;0;100 'flapping_ports'=0;;;0",
		},
		{
			name: "names cannot break the line or the perfdata",
			obs:  Observations{Time: at, Heaps: []HeapObs{hobs("odd'=|name\nx", 2)}},
			want: "HEAPGUARD CRITICAL: odd'=/name x 2.0% free of max | 'odd___name_x_free'=2.0%;20:;10:;0;100 'flapping_ports'=0;;;0",
		},
		{
			name: "many heaps are counted",
			obs:  Observations{Time: at, Heaps: []HeapObs{hobs("h1", 1), hobs("h2", 2), hobs("h3", 3), hobs("h4", 4), hobs("h5", 5)}},
			want: "HEAPGUARD CRITICAL: h1 1.0% free of max, h2 2.0% free of max, h3 3.0% free of max, 2 more heaps | " +
				"'h1_free'=1.0%;20:;10:;0;100 'h2_free'=2.0%;20:;10:;0;100 'h3_free'=3.0%;20:;10:;0;100 'h4_free'=4.0%;20:;10:;0;100 'h5_free'=5.0%;20:;10:;0;100 'flapping_ports'=0;;;0",
		},
		{
			name: "heap error",
			obs:  Observations{Time: at, HeapErr: "vsish: exit status 1 | x"},
			want: "HEAPGUARD UNKNOWN: heaps could not be read: vsish: exit status 1 / x | 'flapping_ports'=0;;;0",
		},
		{
			name: "no heaps at all",
			obs:  Observations{Time: at},
			want: "HEAPGUARD OK: no heaps sampled | 'flapping_ports'=0;;;0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := Decide(cfg, State{}, tt.obs)
			got := p.NagiosLine()
			if got != tt.want {
				t.Errorf("NagiosLine()\n got %s\nwant %s", got, tt.want)
			}
			if strings.ContainsAny(got, "\n\r") || strings.Count(got, "|") != 1 {
				t.Errorf("NagiosLine() %q is not one line with one |", got)
			}
		})
	}
}

// TestNagiosLineNotActing: whatever the plan's status (UNKNOWN included),
// a plan not carried out is CRITICAL, says why first, and never says a VM
// is being powered off.
func TestNagiosLineNotActing(t *testing.T) {
	p := Plan{Status: Unknown, HeapErr: "vsish: exit status 1", Actions: []Action{{Kind: ActPowerOff, Target: "DSVA03", VMID: "3"}}}
	got := p.NagiosLineNotActing("journal cannot be written, no action taken")
	if want := "HEAPGUARD CRITICAL: journal cannot be written, no action taken, heaps could not be read: vsish: exit status 1 |"; !strings.HasPrefix(got, want) {
		t.Errorf("got %q, want it to start %q", got, want)
	}
	if strings.Contains(got, "powering off") {
		t.Errorf("%q says a VM is being powered off", got)
	}
}
