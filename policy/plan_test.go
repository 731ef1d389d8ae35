package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// goldenPlans are built with Decide from the seed incident and its
// variations; their renderings are compared with testdata/plan/<name>.txt
// (WriteText), .nagios (NagiosLine) and .json.
func goldenPlans() map[string]Plan {
	at := time.Date(2026, 4, 10, 8, 27, 13, 470_000_000, time.FixedZone("CEST", 2*3600))
	incident := func() Observations {
		return Observations{
			Time: at,
			Heaps: []HeapObs{
				{Name: "netGPHeap-0x410001000000", Base: "netGPHeap", PercentFreeOfMax: 3, MaxBytes: 67109968, AllocatedBytes: 65096669,
					BytesPerSecond: 1946, TimeToExhaustion: 17 * time.Minute, HasPrediction: true},
				{Name: "vsip-attr-0x4100011e6000", Base: "vsip-attr", PercentFreeOfMax: 96, MaxBytes: 41943040, AllocatedBytes: 1677722},
				{Name: "dvfilter-0x410002000000", Base: "dvfilter", PercentFreeOfMax: 81},
			},
			Flapping: []FlapObs{
				flap("0x3000007", "00:50:56:84:5a:b4", &VMRef{ID: "3", Name: "DSVA03", VMX: "/vmfs/volumes/71641d44-1e032a47/DSVA03/dsva03.vmx", PoweredOn: true}),
				flap("0x3000003", "00:50:56:84:5a:b1", &VMRef{ID: "4", Name: "DSVA04", PoweredOn: true}),
				flap("0x3000005", "00:50:56:84:5a:ba", &VMRef{ID: "1", Name: "DSVA01", PoweredOn: true}),
			},
			Vpxa: AgentObs{Known: true, Running: false, CrashSeen: true},
		}
	}
	decide := func(mod func(*Config), obs Observations) Plan {
		cfg := DefaultConfig()
		cfg.HoldPolls = 1
		if mod != nil {
			mod(&cfg)
		}
		p, _ := Decide(cfg, State{}, obs)
		return p
	}
	odd := incident()
	odd.Heaps = odd.Heaps[:1]
	odd.Flapping = []FlapObs{
		flap("0x300000a", "00:50:56:84:5a:c0", vm("7", "web 01 (prod); $(x)", true)),
		flap("0x300000c", "00:50:56:84:5a:c2", vm("8", "evil|name\nsecond line", true)),
		flap("0x300000b", "00:50:56:84:5a:c1", nil),
	}
	odd.Vpxa = running
	heapErr := incident()
	heapErr.Heaps, heapErr.HeapErr = nil, "run vsish -e ls /system/heaps/: timeout after 10s"
	healthy := incident()
	healthy.Heaps[0].PercentFreeOfMax, healthy.Heaps[0].HasPrediction = 64, false
	healthy.Flapping, healthy.Vpxa = nil, running
	return map[string]Plan{
		"incident-allowed":  decide(func(c *Config) { c.PowerOffAllow = []string{"dsva*"} }, incident()),
		"incident-no-allow": decide(nil, incident()),
		"odd-names":         decide(func(c *Config) { c.PowerOffAllow = []string{"DSVA*"} }, odd),
		"heap-error":        decide(nil, heapErr),
		"healthy":           decide(nil, healthy),
	}
}

func TestPlanGolden(t *testing.T) {
	for name, p := range goldenPlans() {
		t.Run(name, func(t *testing.T) {
			var text bytes.Buffer
			if err := p.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			js, err := json.MarshalIndent(p, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			for ext, got := range map[string][]byte{
				".txt":    text.Bytes(),
				".nagios": []byte(p.NagiosLine() + "\n"),
				".json":   append(js, '\n'),
			} {
				file := filepath.Join("testdata", "plan", name+ext)
				if *update {
					if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(file, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(file)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if diff := cmp.Diff(string(want), string(got)); diff != "" {
					t.Errorf("%s (-want +got):\n%s", file, diff)
				}
			}
		})
	}
}

// TestPlanJSONRoundTrip: a plan read back from its JSON is the same plan
// (what the JSON drops on purpose, TimeToExhaustion and the base names,
// is rebuilt here).
func TestPlanJSONRoundTrip(t *testing.T) {
	for name, p := range goldenPlans() {
		js, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var back Plan
		if err := json.Unmarshal(js, &back); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i := range back.Heaps {
			back.Heaps[i].TimeToExhaustion = p.Heaps[i].TimeToExhaustion
			back.Heaps[i].Base = p.Heaps[i].Base
		}
		if diff := cmp.Diff(p, back); diff != "" {
			t.Errorf("%s: JSON round trip (-want +got):\n%s", name, diff)
		}
		if p.Time.Location() != time.UTC {
			t.Errorf("%s: plan time %v is not UTC", name, p.Time)
		}
	}
}

func TestLevel(t *testing.T) {
	tests := []struct {
		l        Level
		str      string
		exit     int
		marshals bool
	}{
		{OK, "OK", 0, true},
		{Warn, "WARNING", 1, true},
		{Crit, "CRITICAL", 2, true},
		{Unknown, "UNKNOWN", 3, true},
		{Level(7), "Level(7)", 3, false},
		{Level(-1), "Level(-1)", 3, false},
	}
	for _, tt := range tests {
		if got := tt.l.String(); got != tt.str {
			t.Errorf("Level(%d).String() = %q, want %q", int(tt.l), got, tt.str)
		}
		if got := tt.l.ExitCode(); got != tt.exit {
			t.Errorf("Level(%d).ExitCode() = %d, want %d", int(tt.l), got, tt.exit)
		}
		b, err := json.Marshal(tt.l)
		if (err == nil) != tt.marshals {
			t.Errorf("marshal Level(%d): %s, %v", int(tt.l), b, err)
		}
		if err != nil {
			continue
		}
		var back Level
		if err := json.Unmarshal(b, &back); err != nil || back != tt.l {
			t.Errorf("Level(%d) through JSON %s = %v, %v", int(tt.l), b, back, err)
		}
	}
	var l Level
	if err := json.Unmarshal([]byte(`"critical"`), &l); err != nil || l != Crit {
		t.Errorf(`unmarshal "critical" = %v, %v; want CRITICAL`, l, err)
	}
	if err := json.Unmarshal([]byte(`"BAD"`), &l); err == nil {
		t.Error(`unmarshal "BAD": no error`)
	}
}

func TestFormatting(t *testing.T) {
	tests := []struct{ got, want string }{
		{short(5 * time.Minute), "5m"},
		{short(90 * time.Minute), "1h30m"},
		{short(2 * time.Hour), "2h"},
		{short(45 * time.Second), "45s"},
		{approx(6*time.Minute + 20*time.Second), "~6m"},
		{approx(90*time.Second + 400*time.Millisecond), "~1m30s"},
		{approx(5*time.Hour + 7*time.Minute), "~5h10m"},
		{rate(1946), "1.9 KB/s"},
		{rate(512), "512 B/s"},
		{rate(3 << 20), "3.0 MB/s"},
		{pct(8.25), "8.2%"},
		{num(12.5), "12.5"},
		{num(10), "10"},
		{plural(1, "VM is"), "1 VM is"},
		{plural(3, "VM is"), "3 VMs are"},
		{plural(0, "port"), "0 ports"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("case %d: got %q, want %q", i, tt.got, tt.want)
		}
	}
}

func TestLiveActions(t *testing.T) {
	p := goldenPlans()["odd-names"]
	var got []string
	for _, a := range p.LiveActions() {
		got = append(got, string(a.Kind)+" "+a.Target)
	}
	want := []string{"alert netGPHeap-0x410001000000", "alert netGPHeap-0x410001000000"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("LiveActions (-want +got):\n%s", diff)
	}
}

// TestHeadlineAgreesWithHeapLines reads every plan rendered in the story
// and golden files and checks that a block's headline and its heap lines
// tell one story: no heap line is worse than the headline, every heap that
// is not OK is named in it, a headline worse than its heaps says why, a
// heap below a threshold that is still OK says it is not yet worse, and no
// note claims no watched heap is low beside one that is.
func TestHeadlineAgreesWithHeapLines(t *testing.T) {
	files, err := filepath.Glob("testdata/*/*.txt")
	if err != nil || len(files) < 10 {
		t.Fatalf("story and golden files: %v (%d found)", err, len(files))
	}
	rank := map[string]int{"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}
	headRE := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (OK|WARNING|CRITICAL|UNKNOWN)(?:: (.*))?$`)
	heapRE := regexp.MustCompile(`^  (OK|WARNING|CRITICAL|UNKNOWN) +(\S+) ([0-9.]+)% free of max(.*)$`)
	perfRE := regexp.MustCompile(`%;([0-9.]+):;([0-9.]+):;0;100`)
	blocks := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(data), "\n")
		for i, l := range lines {
			m := headRE.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			blocks++
			level, causes := m[1], m[2]
			where := fmt.Sprintf("%s:%d", f, i+1)
			if level != "OK" && causes == "" {
				t.Errorf("%s: %s headline says no cause: %q", where, level, l)
			}
			// The block runs to its Nagios line, which holds the thresholds.
			warnBelow, worstHeap := -1.0, 0
			var heaps []string
			var noLowNote bool
			for _, b := range lines[i+1:] {
				if strings.HasPrefix(b, "nagios: ") || strings.HasPrefix(b, "HEAPGUARD ") {
					if pm := perfRE.FindStringSubmatch(b); pm != nil {
						warnBelow, _ = strconv.ParseFloat(pm[1], 64)
					}
					break
				}
				if headRE.MatchString(b) || b == "" {
					break
				}
				if strings.Contains(b, "no watched heap is low") {
					noLowNote = true
				}
				hm := heapRE.FindStringSubmatch(b)
				if hm == nil {
					continue
				}
				heaps = append(heaps, b)
				worstHeap = max(worstHeap, rank[hm[1]])
				if rank[hm[1]] > rank[level] && level != "UNKNOWN" {
					t.Errorf("%s: heap line %q is worse than the headline %q", where, b, l)
				}
				if hm[1] != "OK" && !strings.Contains(causes, hm[2]+" "+hm[1]) {
					t.Errorf("%s: headline %q does not name %s %s", where, l, hm[2], hm[1])
				}
			}
			if rank[level] > worstHeap && level != "OK" && !strings.Contains(causes, "flapping") &&
				!strings.Contains(causes, "vpxa") && !strings.Contains(causes, "heaps could not be read") {
				t.Errorf("%s: headline %q is worse than its heaps without saying why", where, l)
			}
			for _, h := range heaps {
				hm := heapRE.FindStringSubmatch(h)
				p, _ := strconv.ParseFloat(hm[3], 64)
				low := warnBelow >= 0 && p < warnBelow
				if low && hm[1] == "OK" && !strings.Contains(h, "not yet") && !strings.Contains(h, "unusable") {
					t.Errorf("%s: heap line %q is OK below %v%% without saying it is not yet worse", where, h, warnBelow)
				}
				if low && noLowNote && !strings.Contains(h, "[not watched]") {
					t.Errorf("%s: a note says no watched heap is low beside %q", where, h)
				}
			}
		}
	}
	if blocks < 40 {
		t.Fatalf("only %d rendered plans found: the headline pattern no longer matches", blocks)
	}
	t.Logf("%d rendered plans checked in %d files", blocks, len(files))
}
