package report

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/heapguard/heapguard/collector"
)

// WriteHTML writes the report as one self-contained HTML page: inline CSS
// and SVG, no script, nothing fetched. Its chart puts r.Timeline on one
// time axis in UTC; its tables hold what the text report holds.
func (r *Report) WriteHTML(w io.Writer) error {
	v := pageView{R: r, Chart: buildChart(&r.Timeline)}
	for _, m := range r.Timeline.Marks {
		if m.Kind == MarkPowerOff || m.Kind == MarkRestart {
			v.Actions = append(v.Actions, m)
		}
	}
	v.HeapsShown, v.HeapsHidden = r.heapsToShow()
	v.LiveShowBelow = liveShowBelow
	if err := v.write(w); err != nil {
		return fmt.Errorf("write report page: %w", err)
	}
	return nil
}

type pageView struct {
	R             *Report
	Chart         *chart // nil when nothing has a time
	Actions       []Mark
	HeapsShown    []Heap
	HeapsHidden   int
	LiveShowBelow float64
}

// Chart geometry, in SVG user units (the SVG scales to the page's width).
const (
	chartW     = 1160.0
	plotLeft   = 96.0
	plotRight  = chartW - 20
	heapTop    = 34.0
	heapH      = 230.0
	laneTop    = heapTop + heapH + 26
	laneRowH   = 18.0
	laneRows   = 3
	portTop    = laneTop + laneRows*laneRowH + 30
	portH      = 190.0
	axisY      = portTop + portH
	chartH     = axisY + 52
	maxBuckets = 720 // port buckets across the plot: about 1.5 px each
)

// Lanes of the marks strip between the two panels.
var laneOf = map[string]int{MarkHeapMaxed: 0, MarkCrash: 1, MarkPowerOff: 2, MarkRestart: 2}

// chart is the timeline laid out: every figure already a string or a
// number, so the template only places them.
type chart struct {
	W, H, Left, Right                     float64
	HeapTop, HeapBottom, PortTop, AxisY   float64
	LaneTop                               float64
	Lanes                                 []lane
	XTicks                                []xTick
	HeapTicks, PortTicks                  []yTick
	WarnY, CritY                          float64
	Heaps                                 []heapLine
	Ports                                 []portLine
	Marks                                 []markView
	PortUnit                              string
	PortsLeftOut                          int
	From, To                              string
	NoHeaps, NoPorts                      bool
	HeapLabelY, PortLabelY, AxisLabelY    float64
	WarnPct, CritPct                      float64
	BucketMinutes                         int
	PortMax                               float64
	heapScale, portScale, t0, t1, spanSec float64
}

type lane struct {
	Y, Mid float64
	Label  string
}

type xTick struct {
	X           float64
	Label, Date string
}

type yTick struct {
	Y     float64
	Label string
}

type heapLine struct {
	Name   string
	Class  string
	Points string // SVG polyline points
	Dots   []dot
}

type dot struct {
	X, Y  float64
	Title string
}

type portLine struct {
	Label, Port string
	Class       string
	Points      string
	Cycles      int
}

type markView struct {
	X, Y       float64
	GuideX     float64 // the mark's time; X may stand aside
	from       string
	Kind       string
	DryRun     bool
	Title      string
	Guide      bool // a line across both panels
	Label      string
	Count      int
	GuideTop   float64
	GuideBelow float64
}

// buildChart lays the timeline out, or returns nil when nothing on it has
// a time.
func buildChart(tl *Timeline) *chart {
	first, last, ok := tl.Span()
	if !ok {
		return nil
	}
	span := last.Sub(first)
	if span < 10*time.Minute {
		// One moment (a single check): centre it in a ten-minute window.
		mid := first.Add(span / 2)
		first, last = mid.Add(-5*time.Minute), mid.Add(5*time.Minute)
		span = last.Sub(first)
	}
	pad := span / 50
	first, last = first.Add(-pad), last.Add(pad)
	c := &chart{W: chartW, H: chartH, Left: plotLeft, Right: plotRight, HeapTop: heapTop, HeapBottom: heapTop + heapH,
		PortTop: portTop, AxisY: axisY, LaneTop: laneTop, WarnPct: reportWarnBelow, CritPct: reportCritBelow,
		t0: float64(first.UnixMilli()) / 1000, t1: float64(last.UnixMilli()) / 1000,
		From: stamp(first), To: stamp(last)}
	c.spanSec = c.t1 - c.t0
	c.HeapLabelY, c.PortLabelY, c.AxisLabelY = heapTop-12, portTop-12, axisY+44
	for i, name := range []string{"heap maxed", "core dumps", "actions"} {
		y := laneTop + float64(i)*laneRowH
		c.Lanes = append(c.Lanes, lane{Y: y, Mid: y + laneRowH/2, Label: name})
	}
	c.xTicks(first, last)

	// Free of max, 0 to 100 %.
	c.heapScale = heapH / 100
	for p := 0; p <= 100; p += 20 {
		c.HeapTicks = append(c.HeapTicks, yTick{Y: c.heapY(float64(p)), Label: strconv.Itoa(p) + "%"})
	}
	c.WarnY, c.CritY = c.heapY(reportWarnBelow), c.heapY(reportCritBelow)
	c.NoHeaps = len(tl.Heaps) == 0
	for i, h := range tl.Heaps {
		hl := heapLine{Name: h.Name, Class: fmt.Sprintf("c%d", i%paletteLen)}
		for _, p := range h.Points {
			x, y := c.x(p.Time), c.heapY(p.PercentFreeOfMax)
			hl.Points += fmt.Sprintf("%.1f,%.1f ", x, y)
			hl.Dots = append(hl.Dots, dot{X: x, Y: y, Title: fmt.Sprintf("%s %.1f%% free of max at %s (%s)", h.Name, p.PercentFreeOfMax, stamp(p.Time), p.Source)})
		}
		c.Heaps = append(c.Heaps, hl)
	}

	// Flap cycles per minute, in buckets of BucketMinutes.
	c.BucketMinutes = bucketMinutes(c.spanSec / 60)
	c.PortUnit = "flap cycles per minute"
	if c.BucketMinutes > 1 {
		c.PortUnit = fmt.Sprintf("flap cycles per minute (mean of %d min)", c.BucketMinutes)
	}
	type series struct {
		buckets []bucket
		total   int
	}
	var all []series
	top := 0.0
	for _, p := range tl.Ports {
		b, total := bucketize(p.Minutes, c.BucketMinutes)
		for _, x := range b {
			top = max(top, x.perMin)
		}
		all = append(all, series{b, total})
	}
	c.NoPorts = len(tl.Ports) == 0
	c.PortsLeftOut = tl.PortsLeftOut
	c.PortMax = niceCeil(max(top, 1))
	c.portScale = portH / c.PortMax
	step := niceCeil(c.PortMax / 4)
	for v := 0.0; v <= c.PortMax+step/1e6; v += step {
		c.PortTicks = append(c.PortTicks, yTick{Y: c.portY(v), Label: strconv.FormatFloat(v, 'f', -1, 64)})
	}
	for i, p := range tl.Ports {
		pl := portLine{Label: p.Label, Port: p.Port, Class: fmt.Sprintf("c%d", (len(tl.Heaps)+i)%paletteLen), Cycles: all[i].total}
		bw := float64(c.BucketMinutes) * 60
		prevEnd := math.Inf(-1)
		for _, b := range all[i].buckets {
			start := float64(b.minute) * 60
			if start > prevEnd+1 {
				// A quiet stretch: the line drops to zero and stays there.
				if !math.IsInf(prevEnd, -1) {
					pl.Points += c.portPoint(prevEnd+bw/2, 0)
				}
				pl.Points += c.portPoint(start-bw/2, 0)
			}
			pl.Points += c.portPoint(start+bw/2, b.perMin)
			prevEnd = start + bw
		}
		pl.Points += c.portPoint(prevEnd+bw/2, 0)
		c.Ports = append(c.Ports, pl)
	}

	c.layMarks(tl.Marks)
	return c
}

func (c *chart) x(t time.Time) float64 {
	return c.xs(float64(t.UnixMilli()) / 1000)
}

func (c *chart) xs(sec float64) float64 {
	x := plotLeft + (sec-c.t0)/c.spanSec*(plotRight-plotLeft)
	return math.Max(plotLeft, math.Min(plotRight, x))
}

func (c *chart) heapY(pct float64) float64 {
	return heapTop + heapH - math.Max(0, math.Min(100, pct))*c.heapScale
}

func (c *chart) portY(v float64) float64 { return portTop + portH - v*c.portScale }

func (c *chart) portPoint(sec, v float64) string {
	return fmt.Sprintf("%.1f,%.1f ", c.xs(sec), c.portY(v))
}

// layMarks places each mark in its lane. Heap-maxed minutes that fall on
// one pixel are one mark; other marks closer than a marker's width (a
// plan's power-offs, journaled in one second) stand side by side around
// their time, and their guide lines stay at the true time.
func (c *chart) layMarks(marks []Mark) {
	const gap = 12.0
	byLane := make([][]int, laneRows)
	for _, m := range marks {
		row, ok := laneOf[m.Kind]
		if !ok {
			continue
		}
		x := c.x(m.Time)
		if m.Kind == MarkHeapMaxed {
			// The mark stands for the whole minute: at its middle.
			x = c.x(m.Time.Add(30 * time.Second))
			if n := len(c.Marks); n > 0 && c.Marks[n-1].Kind == MarkHeapMaxed && x-c.Marks[n-1].GuideX < 2 {
				last := &c.Marks[n-1]
				last.Count += m.Count
				last.Title = fmt.Sprintf("heap at its maximum size: %s from %s to %s", plural(last.Count, "line"), last.from, stamp(m.Time))
				continue
			}
		}
		title := m.Label + " at " + stamp(m.Time)
		if m.Result != "" {
			title += ", " + m.Result
		}
		if m.Reason != "" {
			title += ": " + m.Reason
		}
		c.Marks = append(c.Marks, markView{X: x, GuideX: x, Y: laneTop + float64(row)*laneRowH + laneRowH/2, Kind: m.Kind, DryRun: m.DryRun,
			Title: title, Label: m.Label, Count: m.Count, Guide: m.Kind != MarkHeapMaxed, GuideTop: heapTop, GuideBelow: axisY, from: stamp(m.Time)})
		if m.Kind != MarkHeapMaxed {
			byLane[row] = append(byLane[row], len(c.Marks)-1)
		}
	}
	for _, idx := range byLane {
		for start := 0; start < len(idx); {
			end := start + 1
			for end < len(idx) && c.Marks[idx[end]].GuideX-c.Marks[idx[end-1]].GuideX < gap {
				end++
			}
			n := end - start
			centre := (c.Marks[idx[start]].GuideX + c.Marks[idx[end-1]].GuideX) / 2
			for k := start; k < end; k++ {
				c.Marks[idx[k]].X = centre + (float64(k-start)-float64(n-1)/2)*gap
			}
			start = end
		}
	}
}

// xTicks picks a round step that gives at most about ten labels, and
// writes the date under the first tick and wherever the day changes.
func (c *chart) xTicks(first, last time.Time) {
	steps := []time.Duration{time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
		time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 48 * time.Hour, 7 * 24 * time.Hour}
	span := last.Sub(first)
	step := steps[len(steps)-1]
	for _, s := range steps {
		if span/s <= 10 {
			step = s
			break
		}
	}
	for span/step > 12 {
		step *= 2
	}
	t := first.UTC().Truncate(step)
	if t.Before(first) {
		t = t.Add(step)
	}
	lastDay := ""
	for ; !t.After(last); t = t.Add(step) {
		tick := xTick{X: c.x(t), Label: t.Format("15:04")}
		if step >= 24*time.Hour {
			tick.Label = t.Format("Jan 2")
		}
		if day := t.Format("2006-01-02"); day != lastDay {
			tick.Date, lastDay = day, day
		}
		c.XTicks = append(c.XTicks, tick)
	}
}

type bucket struct {
	minute int64 // first minute of the bucket
	perMin float64
}

// bucketMinutes is the width of a port bucket: one minute, or a round
// number of minutes that keeps the buckets under maxBuckets.
func bucketMinutes(spanMin float64) int {
	for _, m := range []int{1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440} {
		if spanMin/float64(m) <= maxBuckets {
			return m
		}
	}
	return int(math.Ceil(spanMin/maxBuckets/1440) * 1440)
}

// bucketize sums a sorted per-minute series into buckets of width minutes,
// as cycles per minute, and returns the total.
func bucketize(ms []collector.MinuteCount, width int) ([]bucket, int) {
	var out []bucket
	total := 0
	w := int64(width)
	for _, m := range ms {
		total += m.Count
		start := floorDiv(m.Minute, w) * w
		if n := len(out); n > 0 && out[n-1].minute == start {
			out[n-1].perMin += float64(m.Count) / float64(width)
			continue
		}
		out = append(out, bucket{minute: start, perMin: float64(m.Count) / float64(width)})
	}
	return out, total
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v-1e-9 {
			return m * p
		}
	}
	return 10 * p
}

// paletteLen is the number of series colours, the CSS classes c0…c9 of
// the page (Tableau 10: they tell lines apart and print well).
const paletteLen = 10

func pctOrDash(p *float64) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatFloat(*p, 'f', 2, 64) + "%"
}

func joinOr(s []string, sep, empty string) string {
	if len(s) == 0 {
		return empty
	}
	out := s[0]
	for _, x := range s[1:] {
		out += sep + x
	}
	return out
}
