package report

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"time"
)

// The page is written by code, not by html/template: text/template's
// reflection keeps every exported method of the binary alive, which cost
// 2.2 MB of binary and 1.8 MB of start-up memory in every heapguard
// process, cron checks included. Every string from the report goes out
// through text or attr, which escape it; markup is only ever literal.

// pageWriter writes the page, keeping the first write error.
type pageWriter struct {
	w   *bufio.Writer
	err error
}

// raw writes trusted markup: literals of this file only.
func (p *pageWriter) raw(ss ...string) {
	for _, s := range ss {
		if p.err == nil {
			_, p.err = p.w.WriteString(s)
		}
	}
}

// text writes s as element content: escaped, valid UTF-8, no NUL.
func (p *pageWriter) text(s string) { p.raw(escapeHTML(s, false)) }

// attr writes s as a double-quoted attribute's value: escaped as text,
// and line breaks and tabs as character references, so that they survive
// attribute-value normalisation.
func (p *pageWriter) attr(s string) { p.raw(escapeHTML(s, true)) }

// num writes a coordinate with one decimal.
func (p *pageWriter) num(v float64) { p.raw(strconv.FormatFloat(v, 'f', 1, 64)) }

// g writes a number as Go's %v does (axis values, counts).
func (p *pageWriter) g(v float64) { p.raw(strconv.FormatFloat(v, 'f', -1, 64)) }

func (p *pageWriter) int(n int64) { p.raw(strconv.FormatInt(n, 10)) }

var (
	textEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;", "\x00", "\uFFFD")
	attrEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;", "\x00", "\uFFFD",
		"\n", "&#10;", "\r", "&#13;", "\t", "&#9;")
)

func escapeHTML(s string, attr bool) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if attr {
		return attrEscaper.Replace(s)
	}
	return textEscaper.Replace(s)
}

// pageStamp is a table's time: UTC to the second, "-" when unknown.
func pageStamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

func (v *pageView) write(out io.Writer) error {
	p := &pageWriter{w: bufio.NewWriter(out)}
	r := v.R
	p.raw("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>heapguard report: ")
	p.text(r.Verdict)
	p.raw("</title>\n", pageCSS, "\n</head>\n<body>\n<h1>heapguard report</h1>\n<p class=\"sub\">")
	p.text(plural(len(r.Files), "file"))
	p.raw(" read, ")
	p.int(r.Lines)
	p.raw(" lines, ")
	p.int(r.Unparsed)
	p.raw(" unparsed, ")
	p.int(r.Oversized)
	p.raw(" oversized")
	if r.HostVersion != "" {
		p.raw(" &middot; host ")
		p.text(r.HostVersion)
	}
	if c := v.Chart; c != nil {
		p.raw(" &middot; ")
		p.text(c.From)
		p.raw(" to ")
		p.text(c.To)
		p.raw(" (UTC)")
	}
	p.raw("</p>\n\n<section class=\"panel\" id=\"verdict\">\n<h2>Verdict <span class=\"verdict ")
	p.attr(r.Verdict)
	p.raw("\">")
	p.text(r.Verdict)
	p.raw("</span></h2>\n")
	if len(r.Reasons) > 0 {
		p.raw("<ul class=\"reasons\">")
		for _, s := range r.Reasons {
			p.raw("<li>")
			p.text(s)
			p.raw("</li>")
		}
		p.raw("</ul>")
	} else {
		p.raw("<p class=\"none\">Nothing wrong found.</p>")
	}
	p.raw("\n</section>\n\n<section class=\"panel\" id=\"timeline\">\n<h2>Timeline</h2>\n")
	if v.Chart != nil {
		v.Chart.write(p)
	} else {
		p.raw("<p class=\"none\">Nothing to draw: no event, journal entry or live sample has a time.</p>\n")
	}
	p.raw("</section>\n\n")
	v.writeTables(p)
	p.raw("</body>\n</html>\n")
	if p.err == nil {
		p.err = p.w.Flush()
	}
	return p.err
}

// line writes an SVG line element with the given class.
func (p *pageWriter) line(class string, x1, y1, x2, y2 float64) {
	p.raw("<line class=\"", class, "\" x1=\"")
	p.num(x1)
	p.raw("\" y1=\"")
	p.num(y1)
	p.raw("\" x2=\"")
	p.num(x2)
	p.raw("\" y2=\"")
	p.num(y2)
	p.raw("\"/>")
}

// tickText writes an axis label right-aligned left of the plot.
func (p *pageWriter) tickText(x, y float64, anchor, class, label string) {
	p.raw("<text class=\"", class, "\" x=\"")
	p.num(x)
	p.raw("\" y=\"")
	p.num(y)
	p.raw("\" text-anchor=\"", anchor, "\">")
	p.text(label)
	p.raw("</text>")
}

func (c *chart) write(p *pageWriter) {
	p.raw("<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 ")
	p.g(c.W)
	p.raw(" ")
	p.g(c.H)
	p.raw("\" role=\"img\" aria-label=\"heap free of max and flap cycles over time (UTC)\">\n<title>heap free of max and flap cycles over time (UTC)</title>\n")
	for _, top := range [][2]float64{{c.HeapTop, c.HeapBottom}, {c.PortTop, c.AxisY}} {
		p.raw("<rect class=\"frame\" x=\"")
		p.g(c.Left)
		p.raw("\" y=\"")
		p.g(top[0])
		p.raw("\" width=\"")
		p.num(c.Right - c.Left)
		p.raw("\" height=\"")
		p.num(top[1] - top[0])
		p.raw("\"/>\n")
	}
	for _, t := range c.XTicks {
		p.line("grid", t.X, c.HeapTop, t.X, c.AxisY)
		p.raw("\n")
	}
	p.raw("<g class=\"panel-heap\">\n<text class=\"title\" x=\"")
	p.g(c.Left)
	p.raw("\" y=\"")
	p.g(c.HeapLabelY)
	p.raw("\">Heap free of max (%)</text>\n")
	for _, t := range c.HeapTicks {
		p.line("grid", c.Left, t.Y, c.Right, t.Y)
		p.tickText(c.Left-8, t.Y+4, "end", "tick", t.Label)
		p.raw("\n")
	}
	for _, l := range []struct {
		class, what string
		y, pct      float64
	}{{"warn", "WARNING", c.WarnY, c.WarnPct}, {"crit", "CRITICAL", c.CritY, c.CritPct}} {
		p.raw("<line class=\"", l.class, "\" x1=\"")
		p.g(c.Left)
		p.raw("\" y1=\"")
		p.num(l.y)
		p.raw("\" x2=\"")
		p.g(c.Right)
		p.raw("\" y2=\"")
		p.num(l.y)
		p.raw("\"><title>", l.what, " below ")
		p.g(l.pct)
		p.raw("% free of max</title></line>\n")
	}
	if c.NoHeaps {
		p.tickText(c.Left+12, c.HeapTop+22, "start", "muted", "no heap figure with a time: no journal or saved state of heapguard found, no live sample")
		p.raw("\n")
	}
	for _, h := range c.Heaps {
		p.raw("<g class=\"series heap\" data-series=\"heap\" data-name=\"")
		p.attr(h.Name)
		p.raw("\">\n<title>")
		p.text(h.Name)
		p.raw("</title>\n<polyline class=\"")
		p.attr(h.Class)
		p.raw("\" points=\"")
		p.attr(h.Points)
		p.raw("\"/>\n")
		for _, d := range h.Dots {
			p.raw("<circle class=\"")
			p.attr(h.Class)
			p.raw("\" cx=\"")
			p.num(d.X)
			p.raw("\" cy=\"")
			p.num(d.Y)
			p.raw("\" r=\"3.5\"><title>")
			p.text(d.Title)
			p.raw("</title></circle>\n")
		}
		p.raw("</g>\n")
	}
	p.raw("</g>\n<g class=\"lanes\">\n")
	for _, l := range c.Lanes {
		p.raw("<rect class=\"lane\" x=\"")
		p.g(c.Left)
		p.raw("\" y=\"")
		p.g(l.Y)
		p.raw("\" width=\"")
		p.num(c.Right - c.Left)
		p.raw("\" height=\"17\"/>")
		p.tickText(c.Left-8, l.Mid+4, "end", "tick", l.Label)
		p.raw("\n")
	}
	p.raw("</g>\n<g class=\"panel-ports\">\n<text class=\"title\" x=\"")
	p.g(c.Left)
	p.raw("\" y=\"")
	p.g(c.PortLabelY)
	p.raw("\">")
	p.text(c.PortUnit)
	p.raw(", per port</text>\n")
	for _, t := range c.PortTicks {
		p.line("grid", c.Left, t.Y, c.Right, t.Y)
		p.tickText(c.Left-8, t.Y+4, "end", "tick", t.Label)
		p.raw("\n")
	}
	if c.NoPorts {
		p.tickText(c.Left+12, c.PortTop+22, "start", "muted", "no port flapped (no enabled-port line with a time)")
		p.raw("\n")
	}
	for _, l := range c.Ports {
		p.raw("<g class=\"series port\" data-series=\"port\" data-name=\"")
		p.attr(l.Label)
		p.raw("\" data-port=\"")
		p.attr(l.Port)
		p.raw("\">\n<title>")
		p.text(l.Label)
		p.raw(": ")
		p.int(int64(l.Cycles))
		p.raw(" cycles</title>\n<polyline class=\"")
		p.attr(l.Class)
		p.raw("\" points=\"")
		p.attr(l.Points)
		p.raw("\"/>\n</g>\n")
	}
	p.raw("</g>\n<g class=\"marks\">\n")
	for _, m := range c.Marks {
		m.write(p)
	}
	p.raw("</g>\n<g class=\"x-axis\">\n")
	p.line("axis", c.Left, c.AxisY, c.Right, c.AxisY)
	p.raw("\n")
	for _, t := range c.XTicks {
		p.line("axis", t.X, c.AxisY, t.X, c.AxisY+5)
		p.tickText(t.X, c.AxisY+18, "middle", "tick", t.Label)
		if t.Date != "" {
			p.tickText(t.X, c.AxisY+32, "middle", "muted", t.Date)
		}
		p.raw("\n")
	}
	p.tickText(c.Right, c.AxisLabelY, "end", "tick", "time (UTC)")
	p.raw("\n</g>\n</svg>\n<ul class=\"legend\">\n")
	for _, h := range c.Heaps {
		p.raw("<li><svg width=\"22\" height=\"10\" aria-hidden=\"true\"><line class=\"")
		p.attr(h.Class)
		p.raw("\" x1=\"0\" y1=\"5\" x2=\"22\" y2=\"5\" stroke-width=\"3\"/></svg>")
		p.text(h.Name)
		p.raw(" free of max</li>\n")
	}
	for _, l := range c.Ports {
		p.raw("<li><svg width=\"22\" height=\"10\" aria-hidden=\"true\"><line class=\"")
		p.attr(l.Class)
		p.raw("\" x1=\"0\" y1=\"5\" x2=\"22\" y2=\"5\" stroke-width=\"2\"/></svg>")
		p.text(l.Label)
		p.raw("</li>\n")
	}
	p.raw(`<li><svg width="22" height="10" aria-hidden="true"><line class="warn" x1="0" y1="5" x2="22" y2="5"/></svg>warning / <svg width="22" height="10" aria-hidden="true"><line class="crit" x1="0" y1="5" x2="22" y2="5"/></svg>critical level</li>` + "\n")
	if c.PortsLeftOut > 0 {
		p.raw("<li class=\"none\">")
		p.text(plural(c.PortsLeftOut, "more port"))
		p.raw(" with cycles, in the table below</li>\n")
	}
	p.raw(`<li><svg width="12" height="14" aria-hidden="true"><rect class="mark heap_maxed" x="4.5" y="1" width="3" height="12"/></svg>heap maxed</li>
<li><svg width="14" height="16" aria-hidden="true"><path class="mark crash" d="M7 1 l6 7 l-6 7 l-6 -7 z"/></svg>core dump</li>
<li><svg width="14" height="14" aria-hidden="true"><path class="mark power_off" d="M2 2 h10 l-5 10 z"/></svg>power-off, <svg width="14" height="14" aria-hidden="true"><circle class="mark restart" cx="7" cy="7" r="5"/></svg>restart; hollow: dry run</li>
</ul>
`)
}

func (m *markView) write(p *pageWriter) {
	p.raw("<g class=\"mark-group\" data-mark=\"")
	p.attr(m.Kind)
	p.raw("\"")
	if m.DryRun {
		p.raw(" data-dry-run=\"true\"")
	}
	p.raw(" data-label=\"")
	p.attr(m.Label)
	p.raw("\">\n<title>")
	p.text(m.Title)
	p.raw("</title>\n")
	if m.Guide {
		p.line("guide", m.GuideX, m.GuideTop, m.GuideX, m.GuideBelow)
	}
	p.raw("\n")
	dry := ""
	if m.DryRun {
		dry = " dry-run"
	}
	switch m.Kind {
	case MarkHeapMaxed:
		p.raw("<rect class=\"mark heap_maxed\" x=\"")
		p.num(m.X - 1.5)
		p.raw("\" y=\"")
		p.num(m.Y - 6)
		p.raw("\" width=\"3\" height=\"12\"/>\n")
	case MarkCrash:
		p.raw("<path class=\"mark crash\" d=\"M")
		p.num(m.X)
		p.raw(" ")
		p.num(m.Y - 7)
		p.raw(" l6 7 l-6 7 l-6 -7 z\"/>\n")
	case MarkPowerOff:
		p.raw("<path class=\"mark power_off", dry, "\" d=\"M")
		p.num(m.X - 5)
		p.raw(" ")
		p.num(m.Y - 5)
		p.raw(" h10 l-5 10 z\"/>\n")
	default:
		p.raw("<circle class=\"mark restart", dry, "\" cx=\"")
		p.num(m.X)
		p.raw("\" cy=\"")
		p.num(m.Y)
		p.raw("\" r=\"5\"/>\n")
	}
	p.raw("</g>\n")
}

// table writes a table's head and rows, or none when there are no rows.
func (p *pageWriter) table(style string, heads []string, rows int, row func(i int)) {
	p.raw("<table", style, ">\n<thead><tr>")
	for _, h := range heads {
		if num, ok := strings.CutPrefix(h, "#"); ok {
			p.raw("<th class=\"num\">", num, "</th>")
		} else {
			p.raw("<th>", h, "</th>")
		}
	}
	p.raw("</tr></thead>\n<tbody>\n")
	for i := range rows {
		p.raw("<tr>")
		row(i)
		p.raw("</tr>\n")
	}
	p.raw("</tbody>\n</table>")
}

// td writes one cell of escaped text with an optional class.
func (p *pageWriter) td(class, s string) {
	if class == "" {
		p.raw("<td>")
	} else {
		p.raw("<td class=\"", class, "\">")
	}
	p.text(s)
	p.raw("</td>")
}

func (p *pageWriter) tdNum(n int) { p.td("num", strconv.Itoa(n)) }

func (p *pageWriter) section(id, title string, body func()) {
	p.raw("<section class=\"panel\" id=\"", id, "\">\n<h2>", title, "</h2>\n")
	body()
	p.raw("\n</section>\n\n")
}

func (p *pageWriter) none(s string) { p.raw("<p class=\"none\">", s, "</p>") }

func (v *pageView) writeTables(p *pageWriter) {
	r := v.R
	p.section("ports", "Ports", func() {
		if len(r.Ports) == 0 {
			p.none("No port seen.")
			return
		}
		p.table("", []string{"Port", "MAC", "VM", "#Cycles", "#Disabled", "#Peak/min", "First (UTC)", "Last (UTC)", "Flapping"}, len(r.Ports), func(i int) {
			x := r.Ports[i]
			p.td("mono", x.Port)
			p.td("mono", orDash(x.MAC))
			p.raw("<td>")
			p.text(orDash(x.VM))
			if x.VMX != "" {
				p.raw("<br><span class=\"none\">")
				p.text(x.VMX)
				p.raw("</span>")
			}
			p.raw("</td>")
			p.tdNum(x.Enabled)
			p.tdNum(x.Disabled)
			p.tdNum(x.CyclesPerMin)
			p.td("time", pageStamp(x.First))
			p.td("time", pageStamp(x.Last))
			p.raw("<td>")
			if x.Flapping {
				p.raw("<span class=\"yes\">yes</span>")
			} else {
				p.raw("no")
			}
			if x.Untimed > 0 {
				p.raw(" (", strconv.Itoa(x.Untimed), " untimed)")
			}
			p.raw("</td>")
		})
	})
	p.section("heaps", "Heap samples", func() {
		if len(v.HeapsShown) == 0 {
			p.none("No heap sampled.")
			return
		}
		p.table("", []string{"Heap", "#Free of max", "#Lowest free ever", "Source", ""}, len(v.HeapsShown), func(i int) {
			h := v.HeapsShown[i]
			name := h.FullName
			if name == "" {
				name = h.Name
			}
			p.td("mono", name)
			p.td("num", pctOrDash(h.PercentFreeOfMax))
			lowest := "-"
			if h.LowestFreeEver != nil {
				lowest = strconv.FormatInt(*h.LowestFreeEver, 10) + "%"
			}
			p.td("num", lowest)
			src := h.Source
			if h.Live {
				src = "live, vsish"
			}
			p.td("", src)
			inc := ""
			if h.Incomplete {
				inc = "incomplete"
			}
			p.td("", inc)
		})
		if v.HeapsHidden > 0 {
			p.raw("\n<p class=\"none\">… and ")
			p.text(plural(v.HeapsHidden, "more heap"))
			p.raw(" sampled live, each at least ")
			p.g(v.LiveShowBelow)
			p.raw("% free of max (--json lists every heap).</p>")
		}
	})
	p.section("events", "Heap events", func() {
		if len(r.HeapEvents) == 0 {
			p.none("None.")
			return
		}
		p.table("", []string{"Heap", "Kind", "#Lines", "#Time unknown", "First (UTC)", "Last (UTC)"}, len(r.HeapEvents), func(i int) {
			e := r.HeapEvents[i]
			p.td("mono", e.Heap)
			p.td("", e.Kind)
			p.tdNum(e.Count)
			p.tdNum(e.Untimed)
			p.td("time", pageStamp(e.First))
			p.td("time", pageStamp(e.Last))
		})
	})
	p.section("dumps", "Process dumps and crashes", func() {
		if len(r.Dumps) == 0 {
			p.none("No process dump.")
		} else {
			p.table("", []string{"Process", "Agent", "#Dumps", "#wantCoreDump", "Last (UTC)"}, len(r.Dumps), func(i int) {
				d := r.Dumps[i]
				p.td("mono", d.Process)
				p.td("", orDash(d.Agent))
				p.tdNum(d.Count)
				p.tdNum(d.CoreDumps)
				p.td("time", pageStamp(d.Last))
			})
		}
		if len(r.Crashes) > 0 {
			p.raw("\n")
			p.table(` style="margin-top:12px"`, []string{"Crash of", "Time (UTC)", "Processes", "#Lines"}, len(r.Crashes), func(i int) {
				c := r.Crashes[i]
				p.td("", orDash(c.Agent))
				when := "time unknown"
				if !c.Time.IsZero() {
					when = pageStamp(c.Time)
				}
				p.td("time", when)
				p.td("mono", joinOr(c.Processes, ", ", "-"))
				p.tdNum(c.Lines)
			})
		}
	})
	p.section("actions", "heapguard's actions (journal)", func() {
		if len(v.Actions) == 0 {
			p.none("No power-off or restart journaled.")
			return
		}
		p.table("", []string{"Time (UTC)", "Action", "Result", "Reason"}, len(v.Actions), func(i int) {
			a := v.Actions[i]
			p.td("time", pageStamp(a.Time))
			p.td("", a.Label)
			p.td("", a.Result)
			p.td("", a.Reason)
		})
	})
	if len(r.Warnings) > 0 || len(r.Errors) > 0 {
		p.section("messages", "Warnings and errors", func() {
			p.raw("<ul class=\"msgs\">")
			for _, e := range r.Errors {
				p.raw("<li><strong>error:</strong> ")
				p.text(e)
				p.raw("</li>")
			}
			for _, w := range r.Warnings {
				p.raw("<li>warning: ")
				p.text(w)
				p.raw("</li>")
			}
			p.raw("</ul>")
		})
	}
	p.section("files", "Files", func() {
		if len(r.Files) == 0 {
			p.none("No log read.")
		} else {
			p.raw("<ul class=\"files\">")
			for _, f := range r.Files {
				p.raw("<li>read ")
				p.text(f)
				p.raw("</li>")
			}
			for _, f := range r.NotRead {
				p.raw("<li>not read ")
				p.text(f)
				p.raw("</li>")
			}
			p.raw("</ul>")
		}
		if j := r.Timeline.Journal; j != "" {
			p.raw("\n<ul class=\"files\"><li>heapguard's journal ")
			p.text(j)
			p.raw("</li></ul>")
		}
	})
}

// pageCSS is the page's whole style sheet.
const pageCSS = `<style>
:root { color-scheme: light; }
body { margin: 0; padding: 20px 24px 40px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #1f2328; background: #f4f5f7; }
h1 { font-size: 20px; font-weight: 600; margin: 0 0 4px; }
h2 { font-size: 15px; font-weight: 600; margin: 0 0 10px; }
.sub { color: #57606a; margin: 0 0 16px; }
.panel { background: #fff; border: 1px solid #d8dee4; border-radius: 4px; padding: 14px 16px; margin: 0 0 16px; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 3px; font-weight: 700; color: #fff; background: #57606a; }
.verdict.OK { background: #2da44e; } .verdict.WARNING { background: #bf8700; } .verdict.CRITICAL { background: #cf222e; } .verdict.UNKNOWN { background: #6e40c9; }
ul.reasons { margin: 8px 0 0; padding-left: 20px; }
svg.chart { display: block; width: 100%; height: auto; font: 12px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
svg .frame { fill: #fff; stroke: #d8dee4; }
svg .grid { stroke: #eaeef2; stroke-width: 1; }
svg .axis { stroke: #8c959f; stroke-width: 1; }
svg .tick { fill: #57606a; }
svg .title { fill: #1f2328; font-weight: 600; }
svg .muted { fill: #8c959f; }
svg .warn { stroke: #bf8700; stroke-dasharray: 6 4; stroke-width: 1; }
svg .crit { stroke: #cf222e; stroke-dasharray: 6 4; stroke-width: 1; }
svg .lane { fill: #f6f8fa; }
svg polyline { fill: none; stroke-width: 2; stroke-linejoin: round; }
svg .heap polyline { stroke-width: 2.5; }
svg .guide { stroke: #57606a; stroke-width: 1; stroke-dasharray: 2 3; opacity: .55; }
svg .mark.heap_maxed { fill: #cf222e; }
svg .mark.crash { fill: #8250df; stroke: #fff; }
svg .mark.power_off, svg .mark.restart { fill: #1f2328; stroke: #1f2328; stroke-width: 1.5; }
svg .mark.dry-run { fill: #fff; stroke-dasharray: 2 1.5; }
.c0 { stroke: #4e79a7; fill: #4e79a7; } .c1 { stroke: #f28e2b; fill: #f28e2b; } .c2 { stroke: #59a14f; fill: #59a14f; }
.c3 { stroke: #b07aa1; fill: #b07aa1; } .c4 { stroke: #76b7b2; fill: #76b7b2; } .c5 { stroke: #edc948; fill: #edc948; }
.c6 { stroke: #9c755f; fill: #9c755f; } .c7 { stroke: #ff9da7; fill: #ff9da7; } .c8 { stroke: #e15759; fill: #e15759; }
.c9 { stroke: #bab0ac; fill: #bab0ac; }
svg polyline.c0, svg polyline.c1, svg polyline.c2, svg polyline.c3, svg polyline.c4, svg polyline.c5, svg polyline.c6, svg polyline.c7, svg polyline.c8, svg polyline.c9 { fill: none; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 22px; margin: 10px 0 0 54px; padding: 0; list-style: none; color: #1f2328; }
.legend li { display: flex; align-items: center; gap: 7px; white-space: pre-wrap; }
.legend svg { flex: none; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 5px 10px 5px 0; border-bottom: 1px solid #eaeef2; vertical-align: top; white-space: pre-wrap; }
th { color: #57606a; font-weight: 600; border-bottom: 1px solid #d8dee4; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.time { white-space: nowrap; font-variant-numeric: tabular-nums; }
td.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
.none { color: #8c959f; }
.yes { color: #cf222e; font-weight: 600; }
.files { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; color: #57606a; margin: 4px 0 0; padding-left: 18px; }
.msgs li { margin: 2px 0; }
</style>`
