package heap

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2012, 7, 26, 1, 0, 0, 0, time.UTC)

// secs judges growth over spans of a second, for windows of a few seconds.
var secs = TrendConfig{RateSpan: time.Second}

func pt(sec int, alloc, max int64) Point {
	return Point{T: t0.Add(time.Duration(sec) * time.Second), Allocated: alloc, Max: max}
}

func TestTrend(t *testing.T) {
	tests := []struct {
		name   string
		cfg    TrendConfig
		full   []string // full name per point; "" keeps it
		points []Point
		want   Trend
	}{
		{
			name:   "no samples",
			points: nil,
			want:   Trend{Heap: "h", NoPrediction: "no samples"},
		},
		{
			name:   "straight line: exact slope and eta",
			cfg:    secs,
			points: []Point{pt(0, 1000, 10000), pt(10, 2000, 10000), pt(20, 3000, 10000), pt(30, 4000, 10000)},
			want: Trend{Heap: "h", Points: 4, Span: 30 * time.Second, BytesPerSecond: 100, Last: pt(30, 4000, 10000),
				Predicted: true, Rate: 100, TimeToExhaustion: 60 * time.Second, ExhaustionAt: t0.Add(90 * time.Second)},
		},
		{
			// Least squares through (0,0) (10,100) (20,400): slope = 20.
			name:   "noisy line, eta from the last observed value",
			cfg:    secs,
			points: []Point{pt(0, 0, 1000), pt(10, 100, 1000), pt(20, 400, 1000)},
			want: Trend{Heap: "h", Points: 3, Span: 20 * time.Second, BytesPerSecond: 20, Last: pt(20, 400, 1000),
				Predicted: true, Rate: 20, TimeToExhaustion: 30 * time.Second, ExhaustionAt: t0.Add(50 * time.Second)},
		},
		{
			// The default spans are a minute: 30 s of growth is not yet sustained.
			name:   "10 s polls: no prediction before two 1-minute spans",
			points: []Point{pt(0, 1000, 10000), pt(10, 2000, 10000), pt(20, 3000, 10000), pt(30, 4000, 10000)},
			want: Trend{Heap: "h", Points: 4, Span: 30 * time.Second, BytesPerSecond: 100, Last: pt(30, 4000, 10000),
				NoPrediction: "growth not sustained yet: 0 of 2 spans of 1m0s"},
		},
		{
			name:   "two points: slope but no prediction",
			points: []Point{pt(0, 1000, 10000), pt(10, 2000, 10000)},
			want:   Trend{Heap: "h", Points: 2, Span: 10 * time.Second, BytesPerSecond: 100, Last: pt(10, 2000, 10000), NoPrediction: "2 samples, need 3"},
		},
		{
			name:   "flat",
			points: []Point{pt(0, 5000, 10000), pt(10, 5000, 10000), pt(20, 5000, 10000)},
			want:   Trend{Heap: "h", Points: 3, Span: 20 * time.Second, Last: pt(20, 5000, 10000), NoPrediction: "allocation not growing"},
		},
		{
			name:   "falling allocation",
			points: []Point{pt(0, 5000, 10000), pt(10, 4900, 10000), pt(20, 4800, 10000)},
			want:   Trend{Heap: "h", Points: 3, Span: 20 * time.Second, BytesPerSecond: -10, Last: pt(20, 4800, 10000), NoPrediction: "allocation not growing"},
		},
		{
			name:   "same time",
			points: []Point{pt(5, 1, 10), pt(5, 2, 10), pt(5, 3, 10)},
			want:   Trend{Heap: "h", Points: 3, Last: pt(5, 3, 10), NoPrediction: "all samples at the same time"},
		},
		{
			name:   "already exhausted",
			cfg:    secs,
			points: []Point{pt(0, 8, 10), pt(1, 9, 10), pt(2, 10, 10)},
			want: Trend{Heap: "h", Points: 3, Span: 2 * time.Second, BytesPerSecond: 1, Last: pt(2, 10, 10),
				Predicted: true, Rate: 1, ExhaustionAt: t0.Add(2 * time.Second)},
		},
		{
			// 2^63 - 1 bytes left at 1 B/s is more than a Duration holds.
			name:   "exhaustion beyond a Duration",
			cfg:    secs,
			points: []Point{pt(0, 0, math.MaxInt64), pt(1, 1, math.MaxInt64), pt(2, 2, math.MaxInt64)},
			want: Trend{Heap: "h", Points: 3, Span: 2 * time.Second, BytesPerSecond: 1, Last: pt(2, 2, math.MaxInt64),
				Predicted: true, Rate: 1, TimeToExhaustion: math.MaxInt64, ExhaustionAt: t0.Add(2 * time.Second).Add(math.MaxInt64)},
		},
		{
			// Heap re-created: the maximum changed, the old points go.
			name:   "max changes resets",
			points: []Point{pt(0, 100, 1000), pt(10, 200, 1000), pt(20, 300, 1000), pt(30, 10, 2000), pt(40, 20, 2000)},
			want:   Trend{Heap: "h", Points: 2, Span: 10 * time.Second, BytesPerSecond: 1, Last: pt(40, 20, 2000), NoPrediction: "2 samples, need 3"},
		},
		{
			// VMs powered off: allocation fell by more than 3 % of max.
			name:   "sharp drop resets",
			cfg:    secs,
			points: []Point{pt(0, 500, 1000), pt(10, 600, 1000), pt(20, 700, 1000), pt(30, 100, 1000), pt(40, 110, 1000), pt(50, 120, 1000)},
			want: Trend{Heap: "h", Points: 3, Span: 20 * time.Second, BytesPerSecond: 1, Last: pt(50, 120, 1000),
				Predicted: true, Rate: 1, TimeToExhaustion: 880 * time.Second, ExhaustionAt: t0.Add(930 * time.Second)},
		},
		{
			// A 2 % dip is churn: the window keeps it, and the slope (6.4)
			// is below the median interval rate (10).
			name:   "small drop does not reset",
			cfg:    secs,
			points: []Point{pt(0, 500, 1000), pt(10, 480, 1000), pt(20, 580, 1000), pt(30, 680, 1000)},
			want: Trend{Heap: "h", Points: 4, Span: 30 * time.Second, BytesPerSecond: 6.4, Last: pt(30, 680, 1000),
				Predicted: true, Rate: 6.4, TimeToExhaustion: 50 * time.Second, ExhaustionAt: t0.Add(80 * time.Second)},
		},
		{
			name:   "new address resets",
			full:   []string{"h-0x1", "h-0x1", "h-0x2", ""},
			points: []Point{pt(0, 1, 100), pt(1, 2, 100), pt(2, 3, 100), pt(3, 4, 100)},
			want:   Trend{Heap: "h", Points: 2, Span: time.Second, BytesPerSecond: 1, Last: pt(3, 4, 100), NoPrediction: "2 samples, need 3"},
		},
		{
			name:   "time backwards resets",
			points: []Point{pt(10, 1, 100), pt(20, 2, 100), pt(5, 3, 100)},
			want:   Trend{Heap: "h", Points: 1, Last: pt(5, 3, 100), NoPrediction: "1 samples, need 3"},
		},
		{
			name:   "window by count",
			cfg:    TrendConfig{MaxPoints: 3, ResetDrop: 1, RateSpan: time.Second},
			points: []Point{pt(0, 0, 1000), pt(10, 900, 1000), pt(20, 100, 1000), pt(30, 110, 1000), pt(40, 120, 1000)},
			want: Trend{Heap: "h", Points: 3, Span: 20 * time.Second, BytesPerSecond: 1, Last: pt(40, 120, 1000),
				Predicted: true, Rate: 1, TimeToExhaustion: 880 * time.Second, ExhaustionAt: t0.Add(920 * time.Second)},
		},
		{
			name: "window by host time",
			cfg:  TrendConfig{MaxAge: 20 * time.Second, ResetDrop: 1, RateSpan: time.Second},
			points: []Point{pt(0, 800, 1000), pt(10, 0, 1000),
				pt(100, 100, 1000), pt(110, 200, 1000), pt(120, 300, 1000)},
			want: Trend{Heap: "h", Points: 3, Span: 20 * time.Second, BytesPerSecond: 10, Last: pt(120, 300, 1000),
				Predicted: true, Rate: 10, TimeToExhaustion: 70 * time.Second, ExhaustionAt: t0.Add(190 * time.Second)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Series{Heap: "h"}
			for i, p := range tt.points {
				full := ""
				if i < len(tt.full) {
					full = tt.full[i]
				}
				s.Add(tt.cfg, full, p)
			}
			if diff := cmp.Diff(tt.want, s.Trend(tt.cfg)); diff != "" {
				t.Errorf("trend (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSeriesResetReason(t *testing.T) {
	s := &Series{Heap: "netGPHeap"}
	s.Add(TrendConfig{}, "", pt(0, 900, 1000))
	if r := s.Add(TrendConfig{}, "", pt(3, 100, 1000)); !strings.Contains(r, "dropped from 900 to 100") {
		t.Errorf("reset reason %q", r)
	}
	if s.Resets != 1 || s.LastReset == "" {
		t.Errorf("Resets=%d LastReset=%q", s.Resets, s.LastReset)
	}
}

// A state file whose config holds no reset_drop or rate_span, as `heapguard
// check` writes it with the defaults, loads with the defaults: its window,
// which holds a drop of 5.7 % of max, restarts at the next point.
func TestTrendsLoadsDefaultState(t *testing.T) {
	const saved = `{"config":{},"heaps":{"netGPHeap":{"heap":"netGPHeap","full_name":"netGPHeap-0x410001000000","points":[` +
		`{"t":"2014-06-10T07:40:00Z","allocated":57000000,"max":67109968},` +
		`{"t":"2014-06-10T07:45:00Z","allocated":58800000,"max":67109968},` +
		`{"t":"2014-06-10T07:50:00Z","allocated":55000000,"max":67109968}]}}}`
	var ts Trends
	if err := json.Unmarshal([]byte(saved), &ts); err != nil {
		t.Fatal(err)
	}
	s := ts.Heaps["netGPHeap"]
	if s == nil || len(s.Points) != 3 || ts.Config != (TrendConfig{}) {
		t.Fatalf("loaded %+v", ts)
	}
	if tr := s.Trend(ts.Config); tr.Predicted || tr.NoPrediction != "allocation not growing" {
		t.Errorf("loaded trend %+v", tr)
	}
	at := time.Date(2014, 6, 10, 7, 55, 0, 0, time.UTC)
	r := s.Add(ts.Config, "netGPHeap-0x410001000000", Point{T: at, Allocated: 55300000, Max: 67109968})
	if !strings.Contains(r, "dropped from 58800000 to 55300000") || len(s.Points) != 1 || s.Resets != 1 {
		t.Errorf("reset %q, %d points, %d resets; want a reset from the window's highest", r, len(s.Points), s.Resets)
	}
}

// The state `heapguard check` saves survives a JSON round trip and goes on
// fitting where it stopped: the seed heap leaking 4364 bytes every 3 s.
func TestTrendsJSONRoundTrip(t *testing.T) {
	stats := readFixture(t, "vsish-heap-stats-netGPHeap-esxi4-depleted.txt")
	samples, err := ParseStats(strings.NewReader(stats))
	if err != nil {
		t.Fatal(err)
	}
	base := samples[0]
	at := func(i int) Sample {
		s := base
		s.Fields = append([]Field(nil), base.Fields...)
		for j := range s.Fields {
			if s.Fields[j].Key == KeyAllocated {
				s.Fields[j].Num = 60000000 + int64(i)*4364
			}
		}
		return s
	}
	// Spans of a second: the figures are seconds apart.
	ts := Trends{Config: secs}
	for i := range 2 {
		if _, err := ts.Observe(t0.Add(time.Duration(i)*3*time.Second), at(i)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(ts)
	if err != nil {
		t.Fatal(err)
	}
	var back Trends
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ts, back); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}
	tr, err := back.Observe(t0.Add(6*time.Second), at(2))
	if err != nil {
		t.Fatal(err)
	}
	// 67109968 - 60008728 = 7101240 bytes left at 4364/3 bytes per second.
	left, rate := 7101240.0, 4364.0/3
	wantETA := time.Duration(left / rate * float64(time.Second))
	if d := tr.TimeToExhaustion - wantETA; !tr.Predicted || tr.Points != 3 || d > time.Millisecond || d < -time.Millisecond {
		t.Errorf("trend after reload = %+v, want 3 points and eta %v", tr, wantETA)
	}
	if _, err := back.Observe(t0, Sample{Name: "x"}); err == nil {
		t.Error("Observe accepted a sample without sizes")
	}
}

// Field figures: netGPHeap's maximum size, the daemon's and cron's poll
// intervals, and the seed incident's leak (three ports flapping every
// 3.01 s, 6000 bytes a flap: 0.53 % of max a minute).
const (
	gpMax      = 67109968
	daemonPoll = 10 * time.Second
	cronPoll   = 5 * time.Minute
	seedLeak   = 3 * 6000 / 3.01 // bytes per second
)

// pctFree is the allocation that leaves pct percent of netGPHeap free.
func pctFree(pct float64) float64 { return gpMax * (1 - pct/100) }

// poll is one observation of a replay and the trend after it.
type poll struct {
	at    time.Duration // since the first poll
	alloc int64
	reset string
	tr    Trend
}

// replay polls alloc every step from 0 through d into a fresh Series with
// the default config and returns each poll.
func replay(step, d time.Duration, alloc func(at time.Duration) float64) ([]poll, *Series) {
	s := &Series{Heap: "netGPHeap"}
	var out []poll
	for at := time.Duration(0); at <= d; at += step {
		a := int64(alloc(at))
		r := s.Add(TrendConfig{}, "netGPHeap-0x410001000000", Point{T: t0.Add(at), Allocated: a, Max: gpMax})
		out = append(out, poll{at: at, alloc: a, reset: r, tr: s.Trend(TrendConfig{})})
	}
	return out, s
}

// noise is uniform in ±n bytes, the same sequence on every run.
func noise(n float64) func() float64 {
	r := rand.New(rand.NewPCG(20120726, 1))
	return func() float64 { return (2*r.Float64() - 1) * n }
}

// steps is size times the number of jumps (times in at) at or before d.
func steps(d time.Duration, size float64, at []time.Duration) float64 {
	var sum float64
	for _, j := range at {
		if d >= j {
			sum += size
		}
	}
	return sum
}

// TestTrendIgnoresJumps: a one-off allocation, or a few far apart, is not
// a rate. "Far apart" means the window stays flat in most of its spans: in
// the daemon's 10-minute window up to four jumps in different minutes, in
// cron's three or four points a jump in one interval only.
func TestTrendIgnoresJumps(t *testing.T) {
	const jump = 5 << 20 // bytes, at 60 % free
	m := time.Minute
	tests := []struct {
		name  string
		step  time.Duration
		jumps []time.Duration
	}{
		{"one jump, daemon", daemonPoll, []time.Duration{15 * m}},
		{"one jump 30 s after the start, daemon", daemonPoll, []time.Duration{30 * time.Second}},
		{"one jump, cron", cronPoll, []time.Duration{17*m + 30*time.Second}},
		{"two jumps 5 minutes apart, daemon", daemonPoll, []time.Duration{15 * m, 20 * m}},
		{"three jumps 3 minutes apart, daemon", daemonPoll, []time.Duration{15 * m, 18 * m, 21 * m}},
		{"two jumps 15 minutes apart, cron", cronPoll, []time.Duration{17*m + 30*time.Second, 32*m + 30*time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			end := tt.jumps[len(tt.jumps)-1] + 15*m
			polls, s := replay(tt.step, end, func(at time.Duration) float64 {
				return pctFree(60) + steps(at, jump, tt.jumps)
			})
			for _, p := range polls {
				switch {
				case p.tr.Predicted:
					t.Errorf("at %v: predicted exhaustion in %v (rate %.0f B/s, slope %.0f B/s)", p.at, p.tr.TimeToExhaustion, p.tr.Rate, p.tr.BytesPerSecond)
				case p.at > tt.jumps[0] && p.tr.BytesPerSecond > 0 && !strings.HasPrefix(p.tr.NoPrediction, "growth not sustained"):
					t.Errorf("at %v: NoPrediction %q, want growth not sustained", p.at, p.tr.NoPrediction)
				}
			}
			if s.Resets != 0 {
				t.Errorf("%d resets (%s)", s.Resets, s.LastReset)
			}
		})
	}
}

// TestTrendSawtooth: a heap that fills and gives back (1 % of max, below
// ResetDrop) with no net growth is never predicted once the window holds a
// whole cycle, whatever the phase. A cycle longer than the window (10
// minutes in the daemon), or one that cron's 5-minute polls alias into a
// slow ramp (a 4-minute period), rises like a leak until it gives back.
func TestTrendSawtooth(t *testing.T) {
	const amp = gpMax / 100
	m := time.Minute
	for _, tt := range []struct {
		name   string
		step   time.Duration
		period time.Duration
	}{
		{"period 1m, daemon", daemonPoll, m},
		{"period 2m, daemon", daemonPoll, 2 * m},
		{"period 3m, daemon", daemonPoll, 3 * m},
		{"period 5m, daemon", daemonPoll, 5 * m},
		{"period 9m, daemon", daemonPoll, 9 * m},
		{"period 7m, cron", cronPoll, 7 * m},
		{"period 10m, cron", cronPoll, 10 * m},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for phase := time.Duration(0); phase < tt.period; phase += tt.period / 6 {
				polls, s := replay(tt.step, time.Hour, func(at time.Duration) float64 {
					return pctFree(60) + amp*float64((at+phase)%tt.period)/float64(tt.period)
				})
				for _, p := range polls {
					if p.at >= 15*m && p.tr.Predicted {
						t.Errorf("phase %v, at %v: predicted exhaustion in %v (rate %.0f B/s, slope %.0f B/s)", phase, p.at, p.tr.TimeToExhaustion, p.tr.Rate, p.tr.BytesPerSecond)
					}
				}
				if s.Resets != 0 {
					t.Errorf("phase %v: %d resets (%s)", phase, s.Resets, s.LastReset)
				}
			}
		})
	}
}

// TestTrendSteadyLeak: growth in every span is predicted at about the real
// rate (within 20 %) as soon as the window holds two rate spans: 2 minutes
// of the daemon's polls, cron's third point. Noise up to half of what the
// leak adds between two polls, staircases and a jump on top of the leak
// included.
func TestTrendSteadyLeak(t *testing.T) {
	m := time.Minute
	// The seed incident's heap, one 6000-byte allocation per flap of each port.
	flaps := func(at time.Duration) float64 {
		var n float64
		for _, phase := range []time.Duration{812 * time.Millisecond, 993 * time.Millisecond, 1127 * time.Millisecond} {
			if at >= phase {
				n += float64((at-phase)/(3010*time.Millisecond) + 1)
			}
		}
		return 6000 * n
	}
	tests := []struct {
		name  string
		step  time.Duration
		rate  float64 // bytes per second, the real leak
		level func(at time.Duration) float64
		noise float64 // ± bytes on each reading
		from  time.Duration
	}{
		{
			name: "seed incident flaps, daemon", step: daemonPoll, rate: seedLeak, from: 2 * m,
			level: func(at time.Duration) float64 { return pctFree(67) + flaps(at) },
		},
		{
			// Half of the 60 KB the leak adds between two polls.
			name: "seed incident, daemon, ±32 KB noise", step: daemonPoll, rate: seedLeak, noise: 32 << 10, from: 2 * m,
			level: func(at time.Duration) float64 { return pctFree(67) + seedLeak*at.Seconds() },
		},
		{
			name: "seed incident flaps, cron", step: cronPoll, rate: seedLeak, from: 2 * cronPoll,
			level: func(at time.Duration) float64 { return pctFree(67) + flaps(at) },
		},
		{
			name: "seed incident, cron, ±128 KB noise", step: cronPoll, rate: seedLeak, noise: 128 << 10, from: 2 * cronPoll,
			level: func(at time.Duration) float64 { return pctFree(67) + seedLeak*at.Seconds() },
		},
		{
			// esxsim's slow-leak: 350 KB taken once a minute.
			name: "350 KB each minute, daemon", step: daemonPoll, rate: 350000.0 / 60, from: 2 * m,
			level: func(at time.Duration) float64 { return pctFree(67) + 350000*float64(at/m) },
		},
		{
			// The jump pulls the slope up to 13 KB/s, exhaustion in 14
			// minutes; the leak is 1 KB/s, exhaustion in 3 hours.
			name: "5 MB jump on a 1 KB/s leak at 25 % free, daemon", step: daemonPoll, rate: 1000, from: 2 * m,
			level: func(at time.Duration) float64 {
				return pctFree(25) + 1000*at.Seconds() + steps(at, 5<<20, []time.Duration{15 * m})
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := noise(tt.noise)
			polls, _ := replay(tt.step, 60*m, func(at time.Duration) float64 { return tt.level(at) + n() })
			for _, p := range polls {
				// The real time to exhaustion from the noiseless level.
				want := time.Duration((gpMax - tt.level(p.at)) / tt.rate * float64(time.Second))
				got := p.tr.TimeToExhaustion
				switch {
				case p.at >= tt.from && !p.tr.Predicted:
					t.Errorf("at %v: not predicted: %s", p.at, p.tr.NoPrediction)
				case p.tr.Predicted && (got < want*8/10 || got > want*12/10):
					t.Errorf("at %v: exhaustion in %v, want %v ± 20 %% (rate %.0f B/s, slope %.0f B/s)", p.at, got, want, p.tr.Rate, p.tr.BytesPerSecond)
				}
			}
		})
	}
}

// TestTrendRestartsAfterRecovery: the field case, a leak of 4.6 KB/s down
// to 9.4 % free, then a remediation: the next reading is 13.4 % free (4 %
// of max given back) and a slower leak of 1 KB/s goes on. The window
// restarts at the drop, so no poll after it predicts from the old leak
// (exhaustion in about 32 minutes); once the new window holds two spans the
// prediction is the slow leak's (about 2.5 hours).
func TestTrendRestartsAfterRecovery(t *testing.T) {
	m := time.Minute
	const fast, slow = 4600.0, 1000.0 // bytes per second
	tests := []struct {
		name     string
		step     time.Duration
		before   time.Duration // the last poll before the give-back
		releases int           // polls the give-back is spread over
	}{
		{"daemon, given back at once", daemonPoll, 15 * m, 1},
		{"daemon, given back over three polls", daemonPoll, 15 * m, 3},
		{"cron, given back at once", cronPoll, 15 * m, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			level := func(at time.Duration) float64 {
				if at <= tt.before {
					return pctFree(9.4) - fast*(tt.before-at).Seconds()
				}
				n := min(int((at-tt.before)/tt.step), tt.releases)
				given := (pctFree(9.4) - pctFree(13.4)) * float64(n) / float64(tt.releases)
				return pctFree(9.4) - given + slow*(at-tt.before-tt.step).Seconds()
			}
			polls, s := replay(tt.step, tt.before+30*m, level)
			var resetAt time.Duration
			for _, p := range polls {
				if p.reset != "" {
					if resetAt != 0 {
						t.Errorf("at %v: second reset %q", p.at, p.reset)
					}
					resetAt = p.at
				}
			}
			if s.Resets != 1 || !strings.Contains(s.LastReset, "allocation dropped from") {
				t.Errorf("Resets %d, LastReset %q; want 1 reset for the drop", s.Resets, s.LastReset)
			}
			if last := tt.before + time.Duration(tt.releases)*tt.step; resetAt > last {
				t.Errorf("reset at %v, want by %v", resetAt, last)
			}
			for _, p := range polls {
				if p.at <= tt.before {
					continue
				}
				want := time.Duration((gpMax - level(p.at)) / slow * float64(time.Second))
				got := p.tr.TimeToExhaustion
				switch {
				case p.tr.Predicted && (got < want*8/10 || got > want*12/10):
					t.Errorf("at %v: exhaustion in %v, want none or %v ± 20 %% (rate %.0f B/s, slope %.0f B/s)", p.at, got, want, p.tr.Rate, p.tr.BytesPerSecond)
				case p.at >= resetAt+2*max(tt.step, m) && !p.tr.Predicted:
					t.Errorf("at %v: not predicted: %s", p.at, p.tr.NoPrediction)
				}
			}
		})
	}
}

// FuzzTrend: any points, in any order and of any size, through Add or as
// read back from a state file, give a trend with no NaN or infinity, a
// time to exhaustion of 0 or more, and a reason whenever nothing is
// predicted. Each point is 13 bytes: flags, a time step in ms (in s with
// flag 4), the allocation.
func FuzzTrend(f *testing.F) {
	point := func(flags byte, dt int32, alloc int64) []byte {
		b := []byte{flags}
		b = binary.LittleEndian.AppendUint32(b, uint32(dt))
		return binary.LittleEndian.AppendUint64(b, uint64(alloc))
	}
	var leak, jump, drop []byte
	for i := range 40 {
		leak = append(leak, point(0, 10000, 40000000+int64(i)*59800)...)
		jump = append(jump, point(0, 10000, 40000000+int64(min(i/20, 1))*5<<20)...)
		drop = append(drop, point(0, 10000, 60000000-int64(i/20)*2684398+int64(i)*1000)...)
	}
	f.Add(leak, int64(0), int64(0), uint8(0), uint8(0), 0.0)
	f.Add(jump, int64(time.Minute), int64(time.Second), uint8(5), uint8(4), 0.5)
	f.Add(drop, int64(-1), int64(1), uint8(255), uint8(1), math.NaN())
	f.Add(point(7, -1, math.MinInt64+1), int64(0), int64(0), uint8(0), uint8(0), math.Inf(1))
	f.Fuzz(func(t *testing.T, data []byte, maxAge, rateSpan int64, maxPoints, minPoints uint8, resetDrop float64) {
		cfg := TrendConfig{MaxPoints: int(maxPoints), MaxAge: time.Duration(maxAge), MinPoints: int(minPoints),
			ResetDrop: resetDrop, RateSpan: time.Duration(rateSpan)}
		check := func(tr Trend, what string) {
			t.Helper()
			for _, v := range []float64{tr.BytesPerSecond, tr.Rate} {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("%s: %+v", what, tr)
				}
			}
			if tr.TimeToExhaustion < 0 || tr.Predicted != (tr.NoPrediction == "") || tr.Predicted && !(tr.Rate > 0) {
				t.Fatalf("%s: %+v", what, tr)
			}
		}
		s := &Series{Heap: "h"}
		var raw []Point
		at := t0
		for ; len(data) >= 13; data = data[13:] {
			flags := data[0]
			step := time.Duration(int32(binary.LittleEndian.Uint32(data[1:5])))
			if flags&4 != 0 {
				at = at.Add(step * time.Second)
			} else {
				at = at.Add(step * time.Millisecond)
			}
			p := Point{T: at, Allocated: int64(binary.LittleEndian.Uint64(data[5:13])), Max: gpMax}
			switch flags & 3 {
			case 1:
				p.Max = 1000
			case 2:
				p.Max = math.MaxInt64
			case 3:
				p.Max = int64(int8(flags))
			}
			full := ""
			if flags&8 != 0 {
				full = fmt.Sprintf("h-0x%d", flags>>4)
			}
			raw = append(raw, p)
			s.Add(cfg, full, p)
			if n, max := len(s.Points), cfg.withDefaults().MaxPoints; n < 1 || n > max {
				t.Fatalf("%d points in a window of %d", n, max)
			}
			check(s.Trend(cfg), "after Add")
		}
		check((&Series{Heap: "h", Points: raw}).Trend(cfg), "read back")
	})
}
