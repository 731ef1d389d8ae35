package policy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/heapguard/heapguard/heap"
)

// Policy stories are raft-style data-driven files, testdata/stories/*.txt.
// A file is a sequence of blocks; a block is
//
//	# comments and blank lines (kept)
//	command args...
//	input lines...
//	----
//	output lines (never blank)
//	<blank line or end of file>
//
// Commands:
//
//	config [watch=G,G] [allow=G,G] [warn=P] [crit=P] [clear=P] [hold=N]
//	       [predict=D] [restart-settle=D] [poweroff-settle=D]
//	    starts from DefaultConfig; output "ok" or the validation error.
//	    The config applies to later polls; the state is kept.
//	poll AT [repeat=N every=D]
//	    one poll at AT (a Go duration after 2026-04-10T08:00:00Z) with the
//	    observations in the input lines. With repeat=N, N polls every D
//	    with the same observations: the output has the Nagios line of each
//	    earlier poll, then the full text (WriteText and Nagios line) of the
//	    last one. Input lines:
//	      heap NAME free=P [rate=BYTES/S] [tte=D] [max=N] [alloc=N] [exhausted=WHY]
//	        (tte given: a prediction exists; exhausted: hard evidence)
//	      flap PORT [mac=M] cycles=N [window=D] [vm=ID] [name=NAME] [vmx=P] [on|off]
//	           [unconfirmed=WHY] [claimants=A;B] [ambiguous]
//	        (vm= or name= given: the host confirms that VM owns the port;
//	        otherwise unconfirmed= says why none is)
//	      vpxa running|down [crashed]     (no vpxa line: vpxa state unknown)
//	      heaperr TEXT
//	      guards left=N [next=D] [restart-at=D] [breaker=WHY]
//	        (no guards line: the guards' answer is not known to the policy;
//	        next and restart-at are durations after the story's epoch)
//	state
//	    the State as JSON, as `heapguard check` would save it.
//
// Values with spaces are Go-quoted: name="web 01 (prod); $(x)". Outputs are
// rewritten with `go test ./policy -run TestPolicyStories -update`. Between
// polls the state goes through JSON and back, as it does under cron.

var storyEpoch = time.Date(2026, 4, 10, 8, 0, 0, 0, time.UTC)

type storyBlock struct {
	pre    []string // comments and blank lines before the command
	cmd    string
	input  []string
	output []string
}

func parseStory(data string) ([]storyBlock, error) {
	var blocks []storyBlock
	var b storyBlock
	sc := bufio.NewScanner(strings.NewReader(data))
	const (
		pre = iota
		input
		output
	)
	state, n := pre, 0
	for sc.Scan() {
		n++
		line := sc.Text()
		switch state {
		case pre:
			if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
				b.pre = append(b.pre, line)
				continue
			}
			if line == "----" {
				return nil, fmt.Errorf("line %d: ---- without a command", n)
			}
			b.cmd, state = line, input
		case input:
			if line == "----" {
				state = output
				continue
			}
			b.input = append(b.input, line)
		case output:
			if strings.TrimSpace(line) == "" {
				blocks = append(blocks, b)
				b, state = storyBlock{}, pre
				b.pre = append(b.pre, line)
				continue
			}
			b.output = append(b.output, line)
		}
	}
	switch state {
	case input:
		return nil, fmt.Errorf("command %q has no ---- line", b.cmd)
	case output:
		blocks = append(blocks, b)
	default:
		if len(b.pre) > 0 {
			blocks = append(blocks, b) // trailing comments
		}
	}
	return blocks, sc.Err()
}

func writeStory(blocks []storyBlock) string {
	var sb strings.Builder
	for _, b := range blocks {
		for _, l := range b.pre {
			sb.WriteString(l + "\n")
		}
		if b.cmd == "" {
			continue
		}
		sb.WriteString(b.cmd + "\n")
		for _, l := range b.input {
			sb.WriteString(l + "\n")
		}
		sb.WriteString("----\n")
		for _, l := range b.output {
			sb.WriteString(l + "\n")
		}
	}
	return sb.String()
}

// fields splits a line on spaces; a value may be a Go-quoted string
// (key="a b" or "a b").
func storyFields(line string) ([]string, error) {
	var out []string
	i := 0
	for i < len(line) {
		if line[i] == ' ' || line[i] == '\t' {
			i++
			continue
		}
		j := i
		for j < len(line) && line[j] != ' ' && line[j] != '\t' {
			if line[j] == '"' {
				end := j + 1
				for end < len(line) && line[end] != '"' {
					if line[end] == '\\' {
						end++
					}
					end++
				}
				if end >= len(line) {
					return nil, fmt.Errorf("unterminated quote in %q", line)
				}
				j = end
			}
			j++
		}
		tok := line[i:j]
		if k := strings.IndexByte(tok, '='); k >= 0 && k+1 < len(tok) && tok[k+1] == '"' {
			v, err := strconv.Unquote(tok[k+1:])
			if err != nil {
				return nil, fmt.Errorf("value in %q: %w", tok, err)
			}
			tok = tok[:k+1] + v
		} else if strings.HasPrefix(tok, `"`) {
			v, err := strconv.Unquote(tok)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", tok, err)
			}
			tok = v
		}
		out = append(out, tok)
		i = j
	}
	return out, nil
}

func storyKeyvals(toks []string) (map[string]string, []string) {
	kv := map[string]string{}
	var bare []string
	for _, t := range toks {
		if k, v, ok := strings.Cut(t, "="); ok {
			kv[k] = v
		} else {
			bare = append(bare, t)
		}
	}
	return kv, bare
}

func storyConfig(args []string) (Config, error) {
	cfg := DefaultConfig()
	kv, bare := storyKeyvals(args)
	if len(bare) > 0 {
		return cfg, fmt.Errorf("config: unexpected %q", bare)
	}
	list := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, ",")
	}
	var err error
	for k, v := range kv {
		switch k {
		case "watch":
			cfg.WatchHeaps = list(v)
		case "allow":
			cfg.PowerOffAllow = list(v)
		case "warn":
			cfg.WarnBelow, err = strconv.ParseFloat(v, 64)
		case "crit":
			cfg.CritBelow, err = strconv.ParseFloat(v, 64)
		case "clear":
			cfg.ClearAbove, err = strconv.ParseFloat(v, 64)
		case "hold":
			cfg.HoldPolls, err = strconv.Atoi(v)
		case "predict":
			cfg.Predict, err = time.ParseDuration(v)
		case "restart-settle":
			cfg.RestartSettle, err = time.ParseDuration(v)
		case "poweroff-settle":
			cfg.PowerOffSettle, err = time.ParseDuration(v)
		default:
			return cfg, fmt.Errorf("config: unknown key %q", k)
		}
		if err != nil {
			return cfg, fmt.Errorf("config %s: %w", k, err)
		}
	}
	return cfg, nil
}

func storyObs(lines []string) (Observations, error) {
	var obs Observations
	for _, line := range lines {
		toks, err := storyFields(line)
		if err != nil {
			return obs, err
		}
		if len(toks) == 0 {
			continue
		}
		kv, bare := storyKeyvals(toks[1:])
		num := func(k string) float64 {
			if err != nil || kv[k] == "" {
				return 0
			}
			var v float64
			v, err = strconv.ParseFloat(kv[k], 64)
			return v
		}
		dur := func(k string) time.Duration {
			if err != nil || kv[k] == "" {
				return 0
			}
			var v time.Duration
			v, err = time.ParseDuration(kv[k])
			return v
		}
		switch toks[0] {
		case "heap":
			if len(bare) != 1 {
				return obs, fmt.Errorf("heap line %q: want one name", line)
			}
			h := HeapObs{
				Name:             bare[0],
				Base:             heap.BaseName(bare[0]),
				PercentFreeOfMax: num("free"),
				BytesPerSecond:   num("rate"),
				MaxBytes:         int64(num("max")),
				AllocatedBytes:   int64(num("alloc")),
				Exhausted:        kv["exhausted"],
			}
			if _, ok := kv["tte"]; ok {
				h.HasPrediction, h.TimeToExhaustion = true, dur("tte")
			}
			obs.Heaps = append(obs.Heaps, h)
		case "flap":
			if len(bare) < 1 {
				return obs, fmt.Errorf("flap line %q: want a port", line)
			}
			f := FlapObs{Port: bare[0], MAC: kv["mac"], Cycles: int(num("cycles")), Window: dur("window"), Unconfirmed: kv["unconfirmed"]}
			if c := kv["claimants"]; c != "" {
				f.Claimants = strings.Split(c, ";")
			}
			_, hasID := kv["vm"]
			_, hasName := kv["name"]
			if hasID || hasName {
				f.VM = &VMRef{ID: kv["vm"], Name: kv["name"], VMX: kv["vmx"], PoweredOn: true}
			}
			for _, b := range bare[1:] {
				switch {
				case b == "ambiguous":
					f.Ambiguous = true
				case b == "on" && f.VM != nil:
					f.VM.PoweredOn = true
				case b == "off" && f.VM != nil:
					f.VM.PoweredOn = false
				default:
					return obs, fmt.Errorf("flap line %q: unexpected %q", line, b)
				}
			}
			obs.Flapping = append(obs.Flapping, f)
		case "vpxa":
			obs.Vpxa.Known = true
			for _, b := range bare {
				switch b {
				case "running":
					obs.Vpxa.Running = true
				case "down":
					obs.Vpxa.Running = false
				case "crashed":
					obs.Vpxa.CrashSeen = true
				default:
					return obs, fmt.Errorf("vpxa line %q: unexpected %q", line, b)
				}
			}
		case "heaperr":
			obs.HeapErr = strings.TrimSpace(strings.TrimPrefix(line, "heaperr"))
		case "guards":
			g := &GuardObs{PowerOffsLeft: int(num("left")), BreakerWhy: kv["breaker"], BreakerOpen: kv["breaker"] != ""}
			if _, ok := kv["next"]; ok {
				g.NextPowerOffAt = storyEpoch.Add(dur("next"))
			}
			if _, ok := kv["restart-at"]; ok {
				g.RestartAllowedAt = storyEpoch.Add(dur("restart-at"))
			}
			obs.Guards = g
		default:
			return obs, fmt.Errorf("unknown observation %q", line)
		}
		if err != nil {
			return obs, fmt.Errorf("%q: %w", line, err)
		}
	}
	return obs, nil
}

// roundTrip saves and loads the state as `heapguard check` does between
// runs; the loaded state must equal the saved one.
func storyRoundTrip(t *testing.T, st State) State {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatalf("marshal state: %v", err)
	}
	var back State
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("unmarshal state %s: %v", b, err)
	}
	if diff := cmp.Diff(st, back); diff != "" {
		t.Fatalf("state changed through JSON (-saved +loaded):\n%s", diff)
	}
	return back
}

func storyPlanText(t *testing.T, p Plan) []string {
	t.Helper()
	var buf bytes.Buffer
	if err := p.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	out := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	return append(out, "nagios: "+p.NagiosLine())
}

func runStory(t *testing.T, blocks []storyBlock) {
	cfg := DefaultConfig()
	var st State
	for i := range blocks {
		b := &blocks[i]
		if b.cmd == "" {
			continue
		}
		toks, err := storyFields(b.cmd)
		if err != nil || len(toks) == 0 {
			t.Fatalf("command %q: %v", b.cmd, err)
		}
		var out []string
		switch toks[0] {
		case "config":
			c, err := storyConfig(toks[1:])
			if err != nil {
				t.Fatalf("%q: %v", b.cmd, err)
			}
			if err := c.Validate(); err != nil {
				out = strings.Split(err.Error(), "\n")
			} else {
				cfg, out = c, []string{"ok"}
			}
		case "poll":
			if len(toks) < 2 {
				t.Fatalf("%q: want poll AT", b.cmd)
			}
			at, err := time.ParseDuration(toks[1])
			if err != nil {
				t.Fatalf("%q: %v", b.cmd, err)
			}
			kv, _ := storyKeyvals(toks[2:])
			repeat, every := 1, time.Duration(0)
			if kv["repeat"] != "" {
				if repeat, err = strconv.Atoi(kv["repeat"]); err != nil || repeat < 1 {
					t.Fatalf("%q: bad repeat", b.cmd)
				}
				if every, err = time.ParseDuration(kv["every"]); err != nil {
					t.Fatalf("%q: repeat needs every=D: %v", b.cmd, err)
				}
			}
			obs, err := storyObs(b.input)
			if err != nil {
				t.Fatalf("%q: %v", b.cmd, err)
			}
			for n := range repeat {
				obs.Time = storyEpoch.Add(at + time.Duration(n)*every)
				var p Plan
				p, st = Decide(cfg, st, obs)
				st = storyRoundTrip(t, st)
				if n < repeat-1 {
					out = append(out, stamp(p.Time)+" "+p.NagiosLine())
					continue
				}
				out = append(out, storyPlanText(t, p)...)
			}
		case "state":
			js, err := json.MarshalIndent(st, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			out = strings.Split(string(js), "\n")
		default:
			t.Fatalf("unknown command %q", b.cmd)
		}
		if *update {
			b.output = out
			continue
		}
		if diff := cmp.Diff(strings.Join(b.output, "\n"), strings.Join(out, "\n")); diff != "" {
			t.Errorf("after %q (-want +got):\n%s", b.cmd, diff)
		}
	}
}

func TestPolicyStories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "stories", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no stories in testdata/stories")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			blocks, err := parseStory(string(data))
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			runStory(t, blocks)
			if *update {
				if err := os.WriteFile(file, []byte(writeStory(blocks)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func hobs(name string, free float64) HeapObs {
	return HeapObs{Name: name, Base: heap.BaseName(name), PercentFreeOfMax: free, MaxBytes: 67109968, AllocatedBytes: int64(67109968 * (100 - free) / 100)}
}

func flap(port, mac string, vm *VMRef) FlapObs {
	return FlapObs{Port: port, MAC: mac, Cycles: 97, Window: 5 * time.Minute, VM: vm}
}

func vm(id, name string, on bool) *VMRef { return &VMRef{ID: id, Name: name, PoweredOn: on} }

var running = AgentObs{Known: true, Running: true}

// summary is one action as the tables compare it.
func summary(p Plan) []string {
	var out []string
	for _, a := range p.Actions {
		s := string(a.Kind) + " " + a.Target
		if a.Skipped != "" {
			s += " SKIPPED: " + a.Skipped
		}
		out = append(out, s)
	}
	return out
}

func TestDecide(t *testing.T) {
	dsva03 := flap("0x3000007", "00:50:56:84:5a:b4", vm("3", "DSVA03", true))
	odd := flap("0x300000a", "00:50:56:84:5a:c0", vm("7", "web 01 (prod); $(x)", true))
	crit := func(free float64, flaps ...FlapObs) Observations {
		return Observations{Heaps: []HeapObs{hobs("netGPHeap", free)}, Flapping: flaps, Vpxa: running}
	}
	times := func(n int, o Observations) []Observations {
		var out []Observations
		for range n {
			out = append(out, o)
		}
		return out
	}
	tests := []struct {
		name       string
		cfg        func(*Config)
		steps      []Observations
		wantStatus Level
		wantLevel  Level // of netGPHeap in the last plan (when sampled)
		want       []string
		wantNote   string // a substring of one note of the last plan
		wantReason string // a substring of the first action's reason
	}{
		{
			name:       "below crit for 2 polls is not yet critical",
			steps:      times(2, crit(8, dsva03)),
			wantStatus: Warn, // the flapping port
			wantLevel:  OK,
		},
		{
			name:       "below crit for 3 polls is critical, no allow-list",
			steps:      times(3, crit(8.2, dsva03)),
			wantStatus: Crit,
			wantLevel:  Crit,
			want: []string{
				"power_off DSVA03 SKIPPED: not in --power-off-allow (empty)",
				"restart_agent vpxa SKIPPED: no VM is being powered off and vpxa is running: a restart would not free heap",
				"alert netGPHeap",
			},
			wantReason: "netGPHeap 8.2% free of max (below 10% for 3 polls); port 0x3000007 (MAC 00:50:56:84:5a:b4) flapped 97 times in 5m",
		},
		{
			name:       "allow-list matches case-insensitively",
			cfg:        func(c *Config) { c.PowerOffAllow = []string{"dsva*"} },
			steps:      times(3, crit(8, dsva03, odd)),
			wantStatus: Crit,
			wantLevel:  Crit,
			want: []string{
				"power_off DSVA03",
				`power_off web 01 (prod); $(x) SKIPPED: not in --power-off-allow [dsva*]`,
				"restart_agent vpxa",
				"verify vpxa",
			},
		},
		{
			name:       "odd name matched only by its own glob",
			cfg:        func(c *Config) { c.PowerOffAllow = []string{"WEB 01 (PROD); $(X)"}; c.HoldPolls = 1 },
			steps:      []Observations{crit(5, odd)},
			wantStatus: Crit,
			wantLevel:  Crit,
			want:       []string{"power_off web 01 (prod); $(x)", "restart_agent vpxa", "verify vpxa"},
		},
		{
			name:       "bad glob used anyway matches nothing",
			cfg:        func(c *Config) { c.PowerOffAllow = []string{"DSVA["}; c.HoldPolls = 1 },
			steps:      []Observations{crit(5, dsva03)},
			wantStatus: Crit,
			wantLevel:  Crit,
			want: []string{
				"power_off DSVA03 SKIPPED: not in --power-off-allow [DSVA[]",
				"restart_agent vpxa SKIPPED: no VM is being powered off and vpxa is running: a restart would not free heap",
				"alert netGPHeap",
			},
		},
		{
			name:       "critical without flapping port alerts only",
			cfg:        func(c *Config) { c.PowerOffAllow = []string{"*"} },
			steps:      times(3, crit(3)),
			wantStatus: Crit,
			wantLevel:  Crit,
			want:       []string{"alert netGPHeap"},
			wantReason: "no flapping port to blame; powering off VMs blindly is not safe",
		},
		{
			name:       "flapping MAC with no VM",
			cfg:        func(c *Config) { c.PowerOffAllow = []string{"*"}; c.HoldPolls = 1 },
			steps:      []Observations{crit(3, flap("0x300000b", "00:50:56:84:5a:c1", nil))},
			wantStatus: Crit,
			wantLevel:  Crit,
			want:       []string{"alert netGPHeap", "alert netGPHeap"},
			wantReason: "its MAC belongs to no known VM",
		},
		{
			name:       "VM already off is not powered off again",
			cfg:        func(c *Config) { c.PowerOffAllow = []string{"*"}; c.HoldPolls = 1 },
			steps:      []Observations{crit(3, flap("0x3000007", "00:50:56:84:5a:b4", vm("3", "DSVA03", false)))},
			wantStatus: Crit,
			wantLevel:  Crit,
			want:       []string{"alert netGPHeap"},
			wantNote:   `VM "DSVA03" (vmid 3, powered off) is already powered off`,
		},
		{
			name: "two flapping ports of one VM give one power-off",
			cfg:  func(c *Config) { c.PowerOffAllow = []string{"*"}; c.HoldPolls = 1 },
			steps: []Observations{crit(3, dsva03,
				flap("0x3000008", "00:50:56:84:5a:b5", vm("3", "DSVA03", true)))},
			wantStatus: Crit,
			wantLevel:  Crit,
			want:       []string{"power_off DSVA03", "restart_agent vpxa", "verify vpxa"},
			wantReason: "flapped 97 times in 5m; port 0x3000008 (MAC 00:50:56:84:5a:b5) flapped 97 times in 5m",
		},
		{
			name: "power-off not planned twice while it settles",
			cfg:  func(c *Config) { c.PowerOffAllow = []string{"*"}; c.HoldPolls = 1 },
			steps: []Observations{
				crit(3, dsva03),
				{Time: time.Unix(30, 0), Heaps: []HeapObs{hobs("netGPHeap", 3)}, Flapping: []FlapObs{dsva03}, Vpxa: running},
			},
			wantStatus: Crit,
			wantLevel:  Crit,
			want:       nil,
			wantNote:   `power-off of VM "DSVA03" (vmid 3, powered on) planned at 1970-01-01T00:00:00Z: waiting for it until 1970-01-01T00:05:00Z`,
		},
		{
			name: "power-off planned again once the wait is over",
			cfg:  func(c *Config) { c.PowerOffAllow = []string{"*"}; c.HoldPolls = 1 },
			steps: []Observations{
				crit(3, dsva03),
				{Time: time.Unix(300, 0), Heaps: []HeapObs{hobs("netGPHeap", 3)}, Flapping: []FlapObs{dsva03}, Vpxa: running},
			},
			wantStatus: Crit,
			wantLevel:  Crit,
			want:       []string{"power_off DSVA03", "restart_agent vpxa", "verify vpxa"},
		},
		{
			name:       "heap error: unknown, nothing done",
			cfg:        func(c *Config) { c.PowerOffAllow = []string{"*"}; c.HoldPolls = 1 },
			steps:      []Observations{crit(3, dsva03), {HeapErr: "vsish: exit status 1", Flapping: []FlapObs{dsva03}, Vpxa: AgentObs{Known: true, Running: true}}},
			wantStatus: Unknown,
			wantLevel:  -1,
			wantNote:   "heaps could not be read (vsish: exit status 1): no VM is powered off without heap figures",
		},
		{
			// Fails if a vpxa that is down waits for heap figures.
			name:       "heap error, vpxa down: critical, restarted, verified on the agent",
			cfg:        func(c *Config) { c.PowerOffAllow = []string{"*"} },
			steps:      []Observations{{HeapErr: "vsish: exit status 1", Flapping: []FlapObs{dsva03}, Vpxa: AgentObs{Known: true}}},
			wantStatus: Crit,
			wantLevel:  -1,
			want:       []string{"restart_agent vpxa", "verify vpxa"},
			wantReason: "vpxa is not running; the heaps cannot be read, but a restart needs no heap figure",
		},
		{
			name:       "vpxa down with a healthy heap is restarted",
			steps:      []Observations{{Heaps: []HeapObs{hobs("netGPHeap", 70)}, Vpxa: AgentObs{Known: true, CrashSeen: true}}},
			wantStatus: Crit,
			wantLevel:  OK,
			want:       []string{"restart_agent vpxa", "verify vpxa"},
			wantReason: "vpxa crashed (core dump logged) and is not running",
		},
		{
			name: "vpxa restart not planned again within 2 minutes",
			steps: []Observations{
				{Heaps: []HeapObs{hobs("netGPHeap", 70)}, Vpxa: AgentObs{Known: true}},
				{Time: time.Unix(119, 0), Heaps: []HeapObs{hobs("netGPHeap", 70)}, Vpxa: AgentObs{Known: true}},
			},
			wantStatus: Crit,
			wantLevel:  OK,
			wantNote:   "vpxa restart planned at 1970-01-01T00:00:00Z: waiting for its effect until 1970-01-01T00:02:00Z",
		},
		{
			name:       "flapping without a leak",
			cfg:        func(c *Config) { c.PowerOffAllow = []string{"*"} },
			steps:      times(3, crit(60, dsva03)),
			wantStatus: Warn,
			wantLevel:  OK,
			wantNote:   "1 port flapping but no watched heap is low: no action (flapping without a leak)",
		},
		{
			name: "unwatched critical heap alerts only",
			cfg:  func(c *Config) { c.PowerOffAllow = []string{"*"}; c.HoldPolls = 1 },
			steps: []Observations{{
				Heaps:    []HeapObs{hobs("netGPHeap-0x410001000000", 60), hobs("vsip-attr-0x4100011e6000", 2)},
				Flapping: []FlapObs{dsva03}, Vpxa: running,
			}},
			wantStatus: Crit,
			wantLevel:  -1,
			want:       []string{"alert vsip-attr-0x4100011e6000"},
		},
		{
			name:       "prediction on one sample is not enough",
			cfg:        func(c *Config) { c.PowerOffAllow = []string{"*"} },
			steps:      []Observations{{Heaps: []HeapObs{{Name: "netGPHeap", PercentFreeOfMax: 60, HasPrediction: true, TimeToExhaustion: time.Minute}}, Flapping: []FlapObs{dsva03}}},
			wantStatus: Warn,
			wantLevel:  OK,
		},
		{
			name:       "prediction held for 3 polls is critical",
			cfg:        func(c *Config) { c.PowerOffAllow = []string{"*"} },
			steps:      times(3, Observations{Heaps: []HeapObs{{Name: "netGPHeap", PercentFreeOfMax: 60, HasPrediction: true, TimeToExhaustion: 15 * time.Minute}}, Flapping: []FlapObs{dsva03}}),
			wantStatus: Crit,
			wantLevel:  Crit,
			want:       []string{"power_off DSVA03", "restart_agent vpxa", "verify vpxa"},
			wantReason: "netGPHeap 60.0% free of max (exhaustion predicted within 15m for 3 polls), exhausted in ~15m",
		},
		{
			name:       "unusable reading keeps the level",
			steps:      []Observations{{Heaps: []HeapObs{hobs("netGPHeap", math.NaN())}}},
			wantStatus: OK,
			wantLevel:  OK,
			wantNote:   "heap netGPHeap: unusable reading NaN% free of max, ignored",
		},
		{
			name:       "a heap sampled twice counts once",
			cfg:        func(c *Config) { c.HoldPolls = 2 },
			steps:      []Observations{{Heaps: []HeapObs{hobs("netGPHeap", 5), hobs("netGPHeap", 5)}}},
			wantStatus: OK,
			wantLevel:  OK,
			wantNote:   "heap netGPHeap sampled twice in one poll: the second sample is ignored",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			var st State
			var p Plan
			for i, o := range tt.steps {
				if o.Time.IsZero() {
					o.Time = time.Unix(int64(60*i), 0)
				}
				p, st = Decide(cfg, st, o)
			}
			if p.Status != tt.wantStatus {
				t.Errorf("Status = %v, want %v", p.Status, tt.wantStatus)
			}
			if tt.wantLevel >= 0 {
				var got Level = -1
				for _, v := range p.Heaps {
					if v.Name == "netGPHeap" {
						got = v.Level
					}
				}
				if got != tt.wantLevel {
					t.Errorf("netGPHeap level = %v, want %v", got, tt.wantLevel)
				}
			}
			if diff := cmp.Diff(tt.want, summary(p)); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
			if tt.wantNote != "" && !slices.ContainsFunc(p.Notes, func(n string) bool { return strings.Contains(n, tt.wantNote) }) {
				t.Errorf("no note contains %q; notes:\n%s", tt.wantNote, strings.Join(p.Notes, "\n"))
			}
			if tt.wantReason != "" && (len(p.Actions) == 0 || !strings.Contains(p.Actions[0].Reason, tt.wantReason)) {
				t.Errorf("first action's reason lacks %q; actions: %+v", tt.wantReason, p.Actions)
			}
		})
	}
}

func TestDecidePowerOffCarriesFigures(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HoldPolls, cfg.PowerOffAllow = 1, []string{"DSVA*"}
	h := HeapObs{Name: "netGPHeap", PercentFreeOfMax: 8.2, MaxBytes: 67109968, AllocatedBytes: 61606351,
		BytesPerSecond: 1946, TimeToExhaustion: 6 * time.Minute, HasPrediction: true}
	p, _ := Decide(cfg, State{}, Observations{Time: time.Unix(0, 0), Heaps: []HeapObs{h},
		Flapping: []FlapObs{flap("0x3000007", "00:50:56:84:5a:b4", vm("3", "DSVA03", true))}, Vpxa: running})
	want := Action{
		Kind: ActPowerOff, Target: "DSVA03", VMID: "3", Port: "0x3000007", MAC: "00:50:56:84:5a:b4",
		Reason: "netGPHeap 8.2% free of max (below 10% for 1 poll), falling 1.9 KB/s, exhausted in ~6m; port 0x3000007 (MAC 00:50:56:84:5a:b4) flapped 97 times in 5m",
		Heap: &HeapFigures{Name: "netGPHeap", PercentFreeOfMax: 8.2, MaxBytes: 67109968, AllocatedBytes: 61606351,
			BytesPerSecond: 1946, SecondsToExhaustion: 360},
	}
	if len(p.Actions) == 0 {
		t.Fatal("no actions")
	}
	if diff := cmp.Diff(want, p.Actions[0]); diff != "" {
		t.Errorf("power-off (-want +got):\n%s", diff)
	}
}

// TestDecidePure: the same inputs give the same plan, and the caller's
// state and observations are not changed.
func TestDecidePure(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HoldPolls, cfg.PowerOffAllow = 1, []string{"*"}
	st := State{
		Heaps:             map[string]HeapState{"netGPHeap": {Level: Warn, WarnPolls: 5}},
		PowerOffPlannedAt: map[string]time.Time{"vmid:9": time.Unix(0, 0)},
	}
	obs := Observations{Time: time.Unix(100, 0), Heaps: []HeapObs{hobs("netGPHeap", 3)}, Vpxa: running,
		Flapping: []FlapObs{flap("0x3000009", "m2", vm("4", "b", true)), flap("0x3000007", "m1", vm("3", "a", true))}}
	stCopy := st.clone()
	obsFlaps := slices.Clone(obs.Flapping)
	p1, s1 := Decide(cfg, st, obs)
	p2, s2 := Decide(cfg, st, obs)
	if diff := cmp.Diff(p1, p2); diff != "" {
		t.Errorf("plans differ (-first +second):\n%s", diff)
	}
	if diff := cmp.Diff(s1, s2); diff != "" {
		t.Errorf("states differ (-first +second):\n%s", diff)
	}
	if diff := cmp.Diff(stCopy, st); diff != "" {
		t.Errorf("input state changed (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(obsFlaps, obs.Flapping); diff != "" {
		t.Errorf("input observations changed (-before +after):\n%s", diff)
	}
	p1.Flapping[0].VM.Name = "changed"
	if obs.Flapping[0].VM.Name == "changed" || obs.Flapping[1].VM.Name == "changed" {
		t.Error("the plan aliases the caller's VMRef")
	}
	// Flipping the order of the flapping ports gives the same plan.
	slices.Reverse(obs.Flapping)
	p3, _ := Decide(cfg, st, obs)
	if diff := cmp.Diff(p2, p3); diff != "" {
		t.Errorf("plan depends on input order (-want +got):\n%s", diff)
	}
}

func TestDecideForgetsStaleHeaps(t *testing.T) {
	cfg := DefaultConfig()
	_, st := Decide(cfg, State{}, Observations{Time: time.Unix(0, 0), Heaps: []HeapObs{hobs("netGPHeap-0x1", 5)}})
	_, st = Decide(cfg, st, Observations{Time: time.Unix(3600, 0), Heaps: []HeapObs{hobs("netGPHeap-0x2", 50)}})
	if _, ok := st.Heaps["netGPHeap-0x1"]; !ok {
		t.Error("heap forgotten after exactly an hour")
	}
	_, st = Decide(cfg, st, Observations{Time: time.Unix(3601, 0), Heaps: []HeapObs{hobs("netGPHeap-0x2", 50)}})
	if _, ok := st.Heaps["netGPHeap-0x1"]; ok {
		t.Error("heap not seen for over an hour still in the state")
	}
}

// TestDecideBlindForgetsNoHeap: a poll that cannot read the heaps keeps
// every heap's counts, however long since it was sampled (an hourly cron
// job, then an hour of unreadable heaps), so the next poll that reads
// them judges them on those counts.
func TestDecideBlindForgetsNoHeap(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HoldPolls = 3
	st := State{}
	for i := range 2 {
		_, st = Decide(cfg, st, Observations{Time: time.Unix(int64(3600*i), 0), Heaps: []HeapObs{hobs("netGPHeap", 3)}, Vpxa: running})
	}
	_, st = Decide(cfg, st, Observations{Time: time.Unix(3*3600, 0), HeapErr: "vsish timed out", Vpxa: running})
	if hs, ok := st.Heaps["netGPHeap"]; !ok || hs.CritPolls != 2 {
		t.Fatalf("after a blind poll 2 h after the last sample: netGPHeap %+v (kept %v), want its 2 CRITICAL polls kept", hs, ok)
	}
	p, _ := Decide(cfg, st, Observations{Time: time.Unix(4*3600, 0), Heaps: []HeapObs{hobs("netGPHeap", 3)}, Vpxa: running})
	if p.Status != Crit {
		t.Errorf("the third low sample, an hour later: %v, want CRITICAL", p.Status)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string // substring; "" = valid
	}{
		{name: "default", mod: func(*Config) {}},
		{name: "allow-list", mod: func(c *Config) { c.PowerOffAllow = []string{"DSVA*", "web 0[1-3]"} }},
		{name: "bad allow glob", mod: func(c *Config) { c.PowerOffAllow = []string{"DSVA["} }, wantErr: `--power-off-allow "DSVA[": syntax error in pattern`},
		{name: "bad watch glob", mod: func(c *Config) { c.WatchHeaps = []string{`net\`} }, wantErr: `--watch-heap "net\\"`},
		{name: "empty glob", mod: func(c *Config) { c.PowerOffAllow = []string{""} }, wantErr: "--power-off-allow: empty pattern"},
		{name: "crit above warn", mod: func(c *Config) { c.CritBelow = 30 }, wantErr: "--crit-below 30 is above --warn-below 20"},
		{name: "clear below warn", mod: func(c *Config) { c.ClearAbove = 15 }, wantErr: "--clear-above 15 is below --warn-below 20"},
		{name: "NaN", mod: func(c *Config) { c.WarnBelow = math.NaN() }, wantErr: "--warn-below NaN"},
		{name: "over 100", mod: func(c *Config) { c.ClearAbove = 101 }, wantErr: "--clear-above 101"},
		{name: "hold 0", mod: func(c *Config) { c.HoldPolls = 0 }, wantErr: "--hold-polls 0"},
		{name: "negative predict", mod: func(c *Config) { c.Predict = -time.Second }, wantErr: "--predict -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mod(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Validate() = %v, does not wrap ErrInvalidConfig", err)
			}
		})
	}
}

// fuzzVMs are the VMs a fuzzed poll can see flapping; the allow-lists below
// match some of them.
var fuzzVMs = []VMRef{
	{ID: "1", Name: "DSVA01"},
	{ID: "3", Name: "dsva03"},
	{ID: "7", Name: "web 01 (prod); $(x)"},
	{ID: "9", Name: "db[1]"},
	{ID: "", Name: "no id", VMX: "/vmfs/volumes/x/noid/noid.vmx"},
}

var fuzzAllow = [][]string{nil, {"DSVA*"}, {"dsva0[1-3]", "DB?1]"}, {"*"}, {"DSVA["}, {"web 01 (prod); $(x)"}}

// FuzzDecide drives the policy with random observation sequences and checks
// the safety invariants on every plan.
func FuzzDecide(f *testing.F) {
	f.Add([]byte{1, 3, 2, 200, 5, 9, 1, 0, 0, 3, 7, 100})
	f.Add([]byte("\x00\x05\x03\x05\x07\x02\x01\x01\x05\x07\x02\x01\x01\x05\x07\x02\x01\x01"))
	f.Add(bytes.Repeat([]byte{3, 2, 4, 1, 9, 2, 3, 1}, 20))
	f.Fuzz(func(t *testing.T, data []byte) {
		next := func() byte {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return b
		}
		cfg := DefaultConfig()
		cfg.PowerOffAllow = fuzzAllow[int(next())%len(fuzzAllow)]
		cfg.HoldPolls = 1 + int(next()%4)
		now := time.Date(2026, 4, 10, 8, 0, 0, 0, time.UTC)
		var st State
		lastRestart := time.Time{}
		lastOff := map[string]time.Time{}
		for poll := 0; len(data) > 0 && poll < 200; poll++ {
			now = now.Add(time.Duration(next()) * time.Second)
			obs := Observations{Time: now}
			b := next()
			if b%17 == 0 {
				obs.HeapErr = "vsish: timeout"
			}
			free := float64(next()) / 2.55
			h := HeapObs{Name: "netGPHeap-0x410001000000", Base: "netGPHeap", PercentFreeOfMax: free, BytesPerSecond: float64(b) * 10}
			if b%3 == 0 {
				h.HasPrediction, h.TimeToExhaustion = true, time.Duration(next())*10*time.Second
			}
			obs.Heaps = append(obs.Heaps, h)
			if b%5 == 0 {
				obs.Heaps = append(obs.Heaps, HeapObs{Name: "vsip-attr", PercentFreeOfMax: float64(next() % 101)})
			}
			nflap := int(next() % 4)
			for i := range nflap {
				c := next()
				fl := FlapObs{Port: fmt.Sprintf("0x300000%d", i), MAC: fmt.Sprintf("00:50:56:84:5a:%02x", c), Cycles: int(c)}
				if c%6 != 0 {
					v := fuzzVMs[int(c)%len(fuzzVMs)]
					v.PoweredOn = c%7 != 0
					fl.VM = &v
				}
				obs.Flapping = append(obs.Flapping, fl)
			}
			a := next()
			obs.Vpxa = AgentObs{Known: a&1 != 0, Running: a&2 != 0, CrashSeen: a&4 != 0}

			p, st2 := Decide(cfg, st, obs)
			p2, _ := Decide(cfg, st, obs)
			if diff := cmp.Diff(p, p2); diff != "" {
				t.Fatalf("poll %d: not deterministic:\n%s", poll, diff)
			}
			if obs.HeapErr != "" {
				// Blind, the policy powers nothing off and changes no heap
				// state; a vpxa that is down is restarted (CRITICAL when it
				// is not running) and verified on the agent alone.
				want := Unknown
				if obs.Vpxa.Known && !obs.Vpxa.Running {
					want = Crit
				}
				restarted := false
				for _, a := range p.Actions {
					switch {
					case a.Kind == ActRestartAgent && obs.Vpxa.down():
						restarted = restarted || a.Skipped == ""
					case a.Kind == ActVerify && a.AgentOnly:
					default:
						t.Fatalf("poll %d: heap error, %s, but actions %v", poll, vpxaText(obs.Vpxa), summary(p))
					}
				}
				if p.Status != want {
					t.Fatalf("poll %d: heap error, %s, but status %v", poll, vpxaText(obs.Vpxa), p.Status)
				}
				// It may only forget marks whose settle time is over.
				kept := st.clone()
				if !within(now, kept.RestartPlannedAt, cfg.RestartSettle) {
					kept.RestartPlannedAt = time.Time{}
				}
				for k, at := range kept.PowerOffPlannedAt {
					if !within(now, at, cfg.PowerOffSettle) {
						delete(kept.PowerOffPlannedAt, k)
					}
				}
				if len(kept.PowerOffPlannedAt) == 0 {
					kept.PowerOffPlannedAt = nil
				}
				if restarted {
					kept.RestartPlannedAt = now
				}
				if diff := cmp.Diff(kept, st2); diff != "" {
					t.Fatalf("poll %d: heap error changed the state:\n%s", poll, diff)
				}
			}
			critWatched := false
			for _, v := range p.Heaps {
				if v.Watched && v.Level == Crit {
					critWatched = true
				}
			}
			seen := map[string]bool{}
			for _, act := range p.Actions {
				switch {
				case act.Kind == ActPowerOff && act.Skipped == "":
					if !critWatched {
						t.Fatalf("poll %d: power-off of %q without a CRITICAL watched heap", poll, act.Target)
					}
					allowed := false
					for _, g := range cfg.PowerOffAllow {
						if ok, err := path.Match(strings.ToLower(g), strings.ToLower(act.Target)); err == nil && ok {
							allowed = true
						}
					}
					if !allowed {
						t.Fatalf("poll %d: power-off of %q not in the allow-list %q", poll, act.Target, cfg.PowerOffAllow)
					}
					flapping := false
					for _, fl := range obs.Flapping {
						if fl.VM != nil && fl.VM.Name == act.Target && fl.VM.ID == act.VMID && fl.VM.PoweredOn && fl.Port == act.Port {
							flapping = true
						}
					}
					if !flapping {
						t.Fatalf("poll %d: power-off of %q (vmid %q) without a flapping port of a powered-on VM", poll, act.Target, act.VMID)
					}
					k := act.VMID + "/" + act.Target
					if seen[k] {
						t.Fatalf("poll %d: two power-offs of %q in one plan", poll, act.Target)
					}
					seen[k] = true
					if t0, ok := lastOff[k]; ok && now.Sub(t0) < cfg.PowerOffSettle {
						t.Fatalf("poll %d: power-off of %q again %v after the last", poll, act.Target, now.Sub(t0))
					}
					lastOff[k] = now
				case act.Kind == ActRestartAgent && act.Skipped == "":
					if !lastRestart.IsZero() && now.Sub(lastRestart) < cfg.RestartSettle {
						t.Fatalf("poll %d: restart again %v after the last", poll, now.Sub(lastRestart))
					}
					lastRestart = now
				}
				if act.Reason == "" {
					t.Fatalf("poll %d: action without a reason: %+v", poll, act)
				}
			}
			if p.Status < OK || p.Status > Unknown {
				t.Fatalf("poll %d: status %d out of range", poll, p.Status)
			}
			if _, err := json.Marshal(p); err != nil {
				t.Fatalf("poll %d: marshal plan: %v", poll, err)
			}
			if err := p.WriteText(io.Discard); err != nil {
				t.Fatal(err)
			}
			if line := p.NagiosLine(); strings.ContainsAny(line, "\n\r") || strings.Count(line, "|") != 1 {
				t.Fatalf("poll %d: bad Nagios line %q", poll, line)
			}
			st = storyRoundTrip(t, st2)
		}
	})
}

// TestAdvance: a power-off or restart that never started (a guard refused
// it, or heapguard was stopping) leaves no "planned at" mark, so the next
// poll plans it again instead of waiting for it; one that started keeps
// its mark.
func TestAdvance(t *testing.T) {
	at := time.Date(2014, 6, 10, 8, 0, 0, 0, time.UTC)
	st := State{PowerOffPlannedAt: map[string]time.Time{"vmid:4": at, "vmid:1": at}, RestartPlannedAt: at}
	actions := []Action{
		{Kind: ActPowerOff, VMID: "4"},
		{Kind: ActPowerOff, VMID: "1"},
		{Kind: ActRestartAgent, Target: "vpxa"},
	}
	next := Advance(st, actions, []bool{true, false, false})
	if _, ok := next.PowerOffPlannedAt["vmid:4"]; !ok {
		t.Error("the power-off that ran lost its mark")
	}
	if _, ok := next.PowerOffPlannedAt["vmid:1"]; ok {
		t.Error("the refused power-off kept its mark")
	}
	if !next.RestartPlannedAt.IsZero() {
		t.Error("the refused restart kept its mark")
	}
	if _, ok := st.PowerOffPlannedAt["vmid:1"]; !ok {
		t.Error("Advance changed the state it was given")
	}
}

// TestResume: after a restart the marks are those of the steps the
// journal says started within their settle times, whatever the saved
// state held.
func TestResume(t *testing.T) {
	now := time.Date(2014, 6, 10, 8, 0, 0, 0, time.UTC)
	cfg := DefaultConfig()
	st := State{PowerOffPlannedAt: map[string]time.Time{"vmid:9": now}, RestartPlannedAt: now} // never started
	next := Resume(st, cfg, now, []Started{
		{Kind: ActPowerOff, VMID: "4", At: now.Add(-time.Minute)},
		{Kind: ActPowerOff, VMID: "1", At: now.Add(-time.Hour)}, // settled long ago
		{Kind: ActRestartAgent, Target: Agent, At: now.Add(-30 * time.Second)},
		{Kind: ActRestartAgent, Target: "hostd", At: now.Add(-10 * time.Second)},
	})
	want := map[string]time.Time{"vmid:4": now.Add(-time.Minute)}
	if fmt.Sprint(next.PowerOffPlannedAt) != fmt.Sprint(want) {
		t.Errorf("power-off marks %v, want %v", next.PowerOffPlannedAt, want)
	}
	if !next.RestartPlannedAt.Equal(now.Add(-30 * time.Second)) {
		t.Errorf("restart mark %v, want 30s ago", next.RestartPlannedAt)
	}
}

// TestAllowsAny: patterns that match every VM name are picked out; a
// pattern meant for some VMs, even a wide one, is not.
func TestAllowsAny(t *testing.T) {
	c := Config{PowerOffAllow: []string{"DSVA*", "*", "**", "?*", "*?", "[a-zæ]*", "??*", "*-*", "[!x]*", `\*`}}
	got := c.AllowsAny()
	want := []string{"*", "**", "?*", "*?"}
	if !slices.Equal(got, want) {
		t.Errorf("AllowsAny() = %q, want %q", got, want)
	}
	if got := (Config{PowerOffAllow: []string{"DSVA*"}}).AllowsAny(); len(got) != 0 {
		t.Errorf("DSVA*: %q", got)
	}
}
