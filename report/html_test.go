package report

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/heapguard/heapguard/collector"
	"github.com/heapguard/heapguard/heap"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

// svgNode is an element of the page's chart as encoding/xml reads it.
type svgNode struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Nodes   []svgNode  `xml:",any"`
	Text    string     `xml:",chardata"`
}

func (n svgNode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (n svgNode) walk(f func(svgNode)) {
	f(n)
	for _, c := range n.Nodes {
		c.walk(f)
	}
}

// childText is the text of n's first child element named name.
func (n svgNode) childText(name string) string {
	for _, c := range n.Nodes {
		if c.XMLName.Local == name {
			return c.Text
		}
	}
	return ""
}

// chartOf parses the page's chart, which must be well-formed XML: a
// browser draws what a strict parser reads the same way.
func chartOf(t *testing.T, page string) svgNode {
	t.Helper()
	start := strings.Index(page, `<svg class="chart"`)
	if start < 0 {
		t.Fatalf("no chart in the page:\n%s", page)
	}
	end := strings.Index(page[start:], "</svg>")
	var root svgNode
	if err := xml.Unmarshal([]byte(page[start:start+end+len("</svg>")]), &root); err != nil {
		t.Fatalf("chart is not well-formed: %v", err)
	}
	return root
}

// pageSeries lists the chart's series ("heap netGPHeap", "port DSVA03
// (0x3000007)") and marks ("power_off power off DSVA03 (dry run) dry-run").
func pageSeries(root svgNode) (series, marks []string) {
	root.walk(func(n svgNode) {
		if kind := n.attr("data-series"); kind != "" {
			series = append(series, kind+" "+n.attr("data-name"))
		}
		if kind := n.attr("data-mark"); kind != "" {
			m := kind + " " + n.attr("data-label")
			if n.attr("data-dry-run") == "true" {
				m += " dry-run"
			}
			marks = append(marks, m)
		}
	})
	return series, marks
}

func TestWriteHTMLSeries(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2014, 6, 10, h, m, 0, 0, time.UTC) }
	minute := func(h, m int) int64 { return at(h, m).Unix() / 60 }
	sum := collector.NewSummary(0, 0)
	ports := []*collector.PortSummary{
		{Port: 0x3000007, Minutes: []collector.MinuteCount{{Minute: minute(7, 0), Count: 20}, {Minute: minute(7, 1), Count: 19}}},
		{Port: 0x3000005, Minutes: []collector.MinuteCount{{Minute: minute(7, 0), Count: 3}}},
		{Port: 0x3000009}, // seen, never enabled: no series
	}
	sum.Heaps = []collector.HeapSummary{{Heap: "netGPHeap", Kind: collector.KindHeapMaxed, Count: 5,
		Minutes: []collector.MinuteCount{{Minute: minute(7, 30), Count: 5}}}}
	r := &Report{Verdict: "CRITICAL", Ports: []Port{{Port: "0x3000007", VM: "DSVA03"}, {Port: "0x3000005"}, {Port: "0x3000009"}},
		Crashes: []Crash{{Agent: "vpxa", Processes: []string{"vpxa-worker"}, Time: at(7, 31)}, {Agent: "hostd", Processes: []string{"hostd"}}}}
	r.Timeline = timelineOf(sum, ports, r.Ports, r.Crashes)
	fig := &policy.HeapFigures{Name: "netGPHeap-0x410001000000", PercentFreeOfMax: 8.7}
	journal := []remediate.Entry{
		{Time: "2014-06-10T07:20:00Z", PlanID: "p1", Action: remediate.ActDecide, Heap: fig, DryRun: true},
		{Time: "2014-06-10T07:20:00Z", PlanID: "p1", Action: policy.ActPowerOff, Target: "DSVA03", VMID: "3", Result: remediate.ResultStarted, DryRun: true, Heap: fig},
		{Time: "2014-06-10T07:20:00Z", PlanID: "p1", Action: policy.ActPowerOff, Target: "DSVA03", VMID: "3", Result: remediate.ResultDryRun, DryRun: true, Heap: fig},
		{Time: "2014-06-10T07:40:00Z", PlanID: "p2", Action: policy.ActRestartAgent, Target: "vpxa", Result: remediate.ResultOK},
		{Time: "2014-06-10T07:40:01Z", PlanID: "p2", Action: policy.ActVerify, Target: "vpxa", Result: remediate.ResultOK,
			Heap: &policy.HeapFigures{Name: "netGPHeap-0x410001000000", PercentFreeOfMax: 60}},
		{Time: "yesterday", Action: policy.ActPowerOff, Target: "lost"},
	}
	if bad := r.Timeline.AddJournal(journal, time.Time{}); bad != 1 {
		t.Errorf("entries with a bad time: %d, want 1", bad)
	}
	r.Timeline.AddTrends(heap.Trends{Heaps: map[string]*heap.Series{
		"netGPHeap":  {Heap: "netGPHeap", Points: []heap.Point{{T: at(7, 30), Allocated: 75, Max: 100}, {T: at(7, 40).Add(time.Second), Allocated: 40, Max: 100}}},
		"vmfs3":      {Heap: "vmfs3", Points: []heap.Point{{T: at(7, 30), Allocated: 10, Max: 100}}},
		"netPktHeap": {Heap: "netPktHeap", Points: []heap.Point{{T: at(7, 10), Allocated: 10, Max: 100}}},
	}}, at(7, 15))
	free, comfy := 40.0, 90.0
	r.Timeline.AddHeapSamples([]Heap{{Name: "netGPHeap", PercentFreeOfMax: &free, Source: LiveSource, Live: true},
		{Name: "vmfs3", PercentFreeOfMax: &comfy, Source: LiveSource, Live: true}}, at(7, 45))

	var buf bytes.Buffer
	if err := r.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	series, marks := pageSeries(chartOf(t, buf.String()))
	if diff := cmp.Diff([]string{"heap netGPHeap", "port DSVA03 (0x3000007)", "port 0x3000005"}, series); diff != "" {
		t.Errorf("series (-want +got):\n%s", diff)
	}
	wantMarks := []string{"power_off power off DSVA03 (dry run) dry-run", "heap_maxed netGPHeap at its maximum size (5 lines)",
		"crash vpxa core dump (vpxa-worker)", "restart restart vpxa"}
	if diff := cmp.Diff(wantMarks, marks); diff != "" {
		t.Errorf("marks (-want +got):\n%s", diff)
	}
	var points []string
	for _, p := range r.Timeline.Heaps[0].Points {
		points = append(points, p.Time.Format("15:04:05")+" "+p.Source)
	}
	if diff := cmp.Diff([]string{"07:20:00 journal", "07:30:00 state", "07:40:01 journal", "07:45:00 live"}, points); diff != "" {
		t.Errorf("netGPHeap points, one per time (-want +got):\n%s", diff)
	}
	if got := r.Timeline.Heaps[0].Points[1].PercentFreeOfMax; got != 25 {
		t.Errorf("free of max from the trend window: %g, want 25", got)
	}
}

// TestWriteHTMLEscapes gives VMs, heaps and reasons names a page could
// mistake for markup: each must come out as the same text, in the chart
// and in the tables, and no element of theirs may appear.
func TestWriteHTMLEscapes(t *testing.T) {
	hostile := "<script>alert(\"x\")</script> & 'DSVA'\n<b>bold</b>"
	at := time.Date(2014, 6, 10, 7, 0, 0, 0, time.UTC)
	r := &Report{Verdict: "WARNING", Reasons: []string{hostile},
		Ports: []Port{{Port: "0x3000007", VM: hostile, VMX: "/vmfs/volumes/x/" + hostile + ".vmx", MAC: "00:50:56:84:5a:b4", Flapping: true}},
		Heaps: []Heap{{Name: hostile, Source: hostile}}, Warnings: []string{hostile}, Files: []string{hostile}}
	ports := []*collector.PortSummary{{Port: 0x3000007, Minutes: []collector.MinuteCount{{Minute: at.Unix() / 60, Count: 20}}}}
	r.Timeline = timelineOf(collector.NewSummary(0, 0), ports, r.Ports, nil)
	r.Timeline.AddJournal([]remediate.Entry{{Time: "2014-06-10T07:01:00Z", PlanID: "p", Action: policy.ActPowerOff, Target: hostile,
		Reason: hostile, Result: remediate.ResultDryRun, DryRun: true}}, time.Time{})
	var buf bytes.Buffer
	if err := r.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, raw := range []string{"<script", "<b>", "alert(\"x\")"} {
		if strings.Contains(page, raw) {
			t.Errorf("the page holds %q unescaped", raw)
		}
	}
	root := chartOf(t, page)
	var titles []string
	root.walk(func(n svgNode) {
		if n.attr("data-series") == "port" || n.attr("data-mark") != "" {
			titles = append(titles, n.childText("title"))
		}
	})
	want := []string{hostile + " (0x3000007): 20 cycles", "power off " + hostile + " (dry run) at 2014-06-10T07:01:00Z, dry_run: " + hostile}
	if diff := cmp.Diff(want, titles); diff != "" {
		t.Errorf("chart titles, read back (-want +got):\n%s", diff)
	}
	// The tables: every text node of the page, read back by a tokenizer
	// that knows HTML's entities, holds the name whole.
	if n := strings.Count(htmlText(t, page), hostile); n < 6 {
		t.Errorf("the name is whole in %d places of the page's text, want at least 6 (reason, port, vmx, heap, action, warning)", n)
	}
}

// htmlText is the page's text as a browser shows it, tags dropped and
// entities decoded; encoding/xml reads HTML well enough for that in
// non-strict mode.
func htmlText(t *testing.T, page string) string {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(page))
	d.Strict = false
	d.AutoClose = xml.HTMLAutoClose
	d.Entity = xml.HTMLEntity
	var b strings.Builder
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read the page back: %v", err)
		}
		if cd, ok := tok.(xml.CharData); ok {
			b.Write(cd)
		}
	}
	return b.String()
}

func TestWriteHTMLEmpty(t *testing.T) {
	r := &Report{Verdict: "OK"}
	var buf bytes.Buffer
	if err := r.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "Nothing to draw") || strings.Contains(buf.String(), `<svg class="chart"`) {
		t.Errorf("a report with nothing timed draws an empty chart:\n%s", buf.String())
	}
}

func TestXTicksUTC(t *testing.T) {
	tl := Timeline{Marks: []Mark{
		{Time: time.Date(2014, 6, 10, 22, 50, 0, 0, time.FixedZone("CEST", 2*3600)), Kind: MarkCrash},
		{Time: time.Date(2014, 6, 11, 1, 10, 0, 0, time.UTC), Kind: MarkCrash},
	}}
	c := buildChart(&tl)
	var got []string
	for _, tk := range c.XTicks {
		got = append(got, tk.Label+"|"+tk.Date)
	}
	// 20:50Z to 01:10Z, padded: half-hour ticks, the date where the day
	// changes, in UTC whatever zone a time came in.
	want := []string{"21:00|2014-06-10", "21:30|", "22:00|", "22:30|", "23:00|", "23:30|", "00:00|2014-06-11", "00:30|", "01:00|"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ticks (-want +got):\n%s", diff)
	}
}

func TestTimelinePortsDrawn(t *testing.T) {
	at := time.Date(2014, 6, 10, 7, 0, 0, 0, time.UTC)
	mk := func(flapping, quiet int) *Timeline {
		var sorted []*collector.PortSummary
		var ports []Port
		for i := range flapping + quiet {
			id := collector.Port(0x3000000 + i)
			sorted = append(sorted, &collector.PortSummary{Port: id, Minutes: []collector.MinuteCount{{Minute: at.Unix() / 60, Count: 20}}})
			ports = append(ports, Port{Port: id.String(), Flapping: i < flapping})
		}
		tl := timelineOf(collector.NewSummary(0, 0), sorted, ports, nil)
		return &tl
	}
	for _, tc := range []struct {
		name                   string
		flapping, quiet        int
		wantDrawn, wantLeftOut int
	}{
		{"two flapping, six quiet: the busiest three quiet drawn", 2, 6, 5, 3},
		{"twenty flapping: sixteen lines", 20, 0, 16, 4},
		{"quiet only", 0, 2, 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl := mk(tc.flapping, tc.quiet)
			if len(tl.Ports) != tc.wantDrawn || tl.PortsLeftOut != tc.wantLeftOut {
				t.Errorf("drawn %d, left out %d; want %d, %d", len(tl.Ports), tl.PortsLeftOut, tc.wantDrawn, tc.wantLeftOut)
			}
		})
	}
}

// FuzzWriteHTML gives the page any VM name, heap name and reason: the
// chart stays well-formed, draws one series per port and per heap, and
// reads the names back whole. Names are kept to what XML can carry
// (valid UTF-8, no control characters but tab and newline): the limit of
// the reader, not of the page.
func FuzzWriteHTML(f *testing.F) {
	f.Add("DSVA03", "netGPHeap", "port flapped 10 times", 20)
	f.Add("<script>alert(1)</script>", "a&b", "\"quoted\" 'single'\nnext line", 0)
	f.Add("]]><!--", "</title><g data-series=\"x\">", "{{.}}", -5)
	f.Fuzz(func(t *testing.T, vm, heapName, reason string, cycles int) {
		clean := func(s string) string {
			return strings.Map(func(r rune) rune {
				if r == utf8.RuneError || (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || (r >= 0xfffe && r <= 0xffff) {
					return -1
				}
				return r
			}, strings.ToValidUTF8(s, ""))
		}
		vm, heapName, reason = clean(vm), clean(heapName), clean(reason)
		at := time.Date(2014, 6, 10, 7, 0, 0, 0, time.UTC)
		r := &Report{Verdict: "WARNING", Reasons: []string{reason}, Ports: []Port{{Port: "0x3000007", VM: vm, Flapping: true}}}
		sorted := []*collector.PortSummary{{Port: 0x3000007, Minutes: []collector.MinuteCount{{Minute: at.Unix() / 60, Count: cycles}}}}
		r.Timeline = timelineOf(collector.NewSummary(0, 0), sorted, r.Ports, nil)
		fig := &policy.HeapFigures{Name: heapName, PercentFreeOfMax: float64(cycles)}
		r.Timeline.AddJournal([]remediate.Entry{{Time: "2014-06-10T07:01:00Z", PlanID: "p", Action: policy.ActPowerOff, Target: vm,
			Reason: reason, Result: remediate.ResultDryRun, DryRun: true, Heap: fig}}, time.Time{})
		var buf bytes.Buffer
		if err := r.WriteHTML(&buf); err != nil {
			t.Fatal(err)
		}
		series, marks := pageSeries(chartOf(t, buf.String()))
		wantSeries := []string{"port " + r.Timeline.Ports[0].Label}
		if heapName != "" {
			wantSeries = []string{"heap " + heap.BaseName(heapName), "port " + r.Timeline.Ports[0].Label}
		}
		if diff := cmp.Diff(wantSeries, series); diff != "" {
			t.Errorf("series (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"power_off power off " + vm + " (dry run) dry-run"}, marks); diff != "" {
			t.Errorf("marks (-want +got):\n%s", diff)
		}
	})
}
