package heap

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2012, 7, 26, 1, 0, 0, 0, time.UTC)

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
			points: []Point{pt(0, 1000, 10000), pt(10, 2000, 10000), pt(20, 3000, 10000), pt(30, 4000, 10000)},
			want: Trend{Heap: "h", Points: 4, Span: 30 * time.Second, BytesPerSecond: 100, Last: pt(30, 4000, 10000),
				Predicted: true, TimeToExhaustion: 60 * time.Second, ExhaustionAt: t0.Add(90 * time.Second)},
		},
		{
			// Least squares through (0,0) (10,100) (20,400): slope = 20.
			name:   "noisy line, eta from the last observed value",
			points: []Point{pt(0, 0, 1000), pt(10, 100, 1000), pt(20, 400, 1000)},
			want: Trend{Heap: "h", Points: 3, Span: 20 * time.Second, BytesPerSecond: 20, Last: pt(20, 400, 1000),
				Predicted: true, TimeToExhaustion: 30 * time.Second, ExhaustionAt: t0.Add(50 * time.Second)},
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
			points: []Point{pt(0, 8, 10), pt(1, 9, 10), pt(2, 10, 10)},
			want: Trend{Heap: "h", Points: 3, Span: 2 * time.Second, BytesPerSecond: 1, Last: pt(2, 10, 10),
				Predicted: true, ExhaustionAt: t0.Add(2 * time.Second)},
		},
		{
			// Heap re-created: the maximum changed, the old points go.
			name:   "max changes resets",
			points: []Point{pt(0, 100, 1000), pt(10, 200, 1000), pt(20, 300, 1000), pt(30, 10, 2000), pt(40, 20, 2000)},
			want:   Trend{Heap: "h", Points: 2, Span: 10 * time.Second, BytesPerSecond: 1, Last: pt(40, 20, 2000), NoPrediction: "2 samples, need 3"},
		},
		{
			// VMs powered off: allocation fell by more than 10 % of max.
			name:   "sharp drop resets",
			points: []Point{pt(0, 500, 1000), pt(10, 600, 1000), pt(20, 700, 1000), pt(30, 100, 1000), pt(40, 110, 1000), pt(50, 120, 1000)},
			want: Trend{Heap: "h", Points: 3, Span: 20 * time.Second, BytesPerSecond: 1, Last: pt(50, 120, 1000),
				Predicted: true, TimeToExhaustion: 880 * time.Second, ExhaustionAt: t0.Add(930 * time.Second)},
		},
		{
			name:   "small drop does not reset",
			points: []Point{pt(0, 500, 1000), pt(10, 450, 1000), pt(20, 600, 1000)},
			want: Trend{Heap: "h", Points: 3, Span: 20 * time.Second, BytesPerSecond: 5, Last: pt(20, 600, 1000),
				Predicted: true, TimeToExhaustion: 80 * time.Second, ExhaustionAt: t0.Add(100 * time.Second)},
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
			cfg:    TrendConfig{MaxPoints: 3, ResetDrop: 1},
			points: []Point{pt(0, 0, 1000), pt(10, 900, 1000), pt(20, 100, 1000), pt(30, 110, 1000), pt(40, 120, 1000)},
			want: Trend{Heap: "h", Points: 3, Span: 20 * time.Second, BytesPerSecond: 1, Last: pt(40, 120, 1000),
				Predicted: true, TimeToExhaustion: 880 * time.Second, ExhaustionAt: t0.Add(920 * time.Second)},
		},
		{
			name: "window by host time",
			cfg:  TrendConfig{MaxAge: 20 * time.Second, ResetDrop: 1},
			points: []Point{pt(0, 800, 1000), pt(10, 0, 1000),
				pt(100, 100, 1000), pt(110, 200, 1000), pt(120, 300, 1000)},
			want: Trend{Heap: "h", Points: 3, Span: 20 * time.Second, BytesPerSecond: 10, Last: pt(120, 300, 1000),
				Predicted: true, TimeToExhaustion: 70 * time.Second, ExhaustionAt: t0.Add(190 * time.Second)},
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
	ts := Trends{}
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
