// Package metrics turns what one poll of the agent saw into Prometheus
// metrics: a Snapshot the agent saves as JSON beside its state, and the
// text exposition encoded from it (for node_exporter's textfile collector,
// and for `heapguard serve` answering /metrics). It is pure: it decides
// nothing and writes no file; the agent chooses when to save.
package metrics

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// File names of the saved snapshot in the state folder: a dry run keeps its
// own, as it keeps its own state, so it never passes for the live agent.
const (
	FileName       = "metrics.json"
	DryRunFileName = "metrics.dry-run.json"
	// TextfileName is the exposition's name in the --textfile folder.
	TextfileName = "heapguard.prom"
)

// Version of the snapshot's JSON.
const Version = 1

// Snapshot is everything the metrics say, as of one poll.
type Snapshot struct {
	Version int `json:"version"`
	// Time is the host time of the poll (heapguard_last_check_timestamp_seconds).
	Time   time.Time `json:"time"`
	DryRun bool      `json:"dry_run"`
	Heaps  []Heap    `json:"heaps"`
	Ports  []Port    `json:"ports"`
	// Actions count the steps the agent applied since it started watching
	// the host (kept in its saved state), by kind and final result.
	Actions       []ActionCount `json:"actions"`
	PowerOffsLeft int           `json:"power_offs_left"`
	BreakerOpen   bool          `json:"breaker_open"`
	// Errors are the sources that could not be read for this snapshot.
	Errors []SourceError `json:"errors,omitempty"`
	// TextfileErrors counts the failed writes of the --textfile exposition.
	TextfileErrors uint64 `json:"textfile_errors"`
	// Build is the binary that made the snapshot; Exposition replaces it
	// with the serving binary's.
	Build BuildInfo `json:"build"`
	// Age is set by Exposition only: how old the snapshot is when served
	// (a textfile's age is node_exporter's node_textfile_mtime_seconds).
	Age *time.Duration `json:"-"`
}

// Heap is one heap's figures at the poll. Ratios are 0–1.
type Heap struct {
	// Name is the vsish name ("netGPHeap-0x410001000000").
	Name           string  `json:"name"`
	FreeRatio      float64 `json:"free_ratio"`
	AllocatedBytes int64   `json:"allocated_bytes"`
	MaxBytes       int64   `json:"max_bytes"`
	// LowestFreeRatio is vsish's "lowest percent free of max size ever
	// encountered", when it printed one.
	LowestFreeRatio *float64 `json:"lowest_free_ratio,omitempty"`
	BytesPerSecond  float64  `json:"bytes_per_second"`
	// SecondsToExhaustion is set only when the trend predicts exhaustion.
	SecondsToExhaustion *float64 `json:"seconds_to_exhaustion,omitempty"`
}

// Port is one vNIC port seen cycling in the log.
type Port struct {
	Port string `json:"port"`
	MAC  string `json:"mac"`
	VM   string `json:"vm"`
	// Cycles is the running total of its enabled lines since the agent
	// started watching the host.
	Cycles   uint64 `json:"cycles"`
	Flapping bool   `json:"flapping"`
}

// ActionCount is how many steps of one kind ended with one result.
type ActionCount struct {
	Action string `json:"action"`
	Result string `json:"result"`
	Count  uint64 `json:"count"`
}

// SourceError names a source that could not be read, and why.
type SourceError struct {
	Source string `json:"source"`
	Error  string `json:"error"`
}

// Sources a snapshot reads; each has a heapguard_scrape_errors series.
const (
	SourceLog     = "log"     // the vmkernel log
	SourceHeaps   = "heaps"   // vsish heap list and stats
	SourceMetrics = "metrics" // metrics.json, when served
)

var sources = []string{SourceHeaps, SourceLog, SourceMetrics}

// BuildInfo is heapguard_build_info's labels.
type BuildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"goversion"`
}

// The metric families, in the order they are written.
const (
	nameHeapFree       = "heapguard_heap_free_ratio"
	nameHeapAllocated  = "heapguard_heap_allocated_bytes"
	nameHeapMax        = "heapguard_heap_max_bytes"
	nameHeapLowest     = "heapguard_heap_lowest_free_ratio"
	nameHeapTrend      = "heapguard_heap_trend_bytes_per_second"
	nameHeapExhaustion = "heapguard_heap_time_to_exhaustion_seconds"
	namePortCycles     = "heapguard_port_flap_cycles_total"
	namePortFlapping   = "heapguard_port_flapping"
	nameActions        = "heapguard_actions_total"
	namePowerOffsLeft  = "heapguard_power_offs_left"
	nameBreakerOpen    = "heapguard_breaker_open"
	nameLastCheck      = "heapguard_last_check_timestamp_seconds"
	nameDryRun         = "heapguard_dry_run"
	nameScrapeErrors   = "heapguard_scrape_errors"
	nameTextfileErrors = "heapguard_textfile_write_errors_total"
	nameSnapshotAge    = "heapguard_snapshot_age_seconds"
	nameBuildInfo      = "heapguard_build_info"
)

// family is one metric family: its HELP, TYPE and series.
type family struct {
	name, help, typ string
	series          []series
}

// series is one line of a family: label names and values paired, and the value.
type series struct {
	labels []string
	value  float64
}

const (
	typeGauge   = "gauge"
	typeCounter = "counter"
)

func newFamily(name, typ, help string) *family {
	return &family{name: name, help: help, typ: typ}
}

// add appends a series; nv pairs label names and values.
func (f *family) add(v float64, nv ...string) {
	f.series = append(f.series, series{labels: nv, value: v})
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// families builds the metric families of s, in a fixed order; a family
// with no series (no heap predicted to run out) is left out.
func families(s Snapshot) []*family {
	free := newFamily(nameHeapFree, typeGauge, "Free share of the heap's maximum size (0-1), as vsish reports it.")
	alloc := newFamily(nameHeapAllocated, typeGauge, "Bytes currently allocated in the heap.")
	maxb := newFamily(nameHeapMax, typeGauge, "The heap's maximum size in bytes.")
	lowest := newFamily(nameHeapLowest, typeGauge, "Lowest free share of the maximum size the heap ever reached (0-1), as vsish reports it.")
	trend := newFamily(nameHeapTrend, typeGauge, "Trend of the allocated bytes per second (positive: growing).")
	exh := newFamily(nameHeapExhaustion, typeGauge, "Predicted seconds until the heap reaches its maximum size; only when the trend predicts it.")
	heaps := slices.Clone(s.Heaps)
	slices.SortFunc(heaps, func(a, b Heap) int { return cmp.Compare(a.Name, b.Name) })
	for _, h := range heaps {
		free.add(h.FreeRatio, "heap", h.Name)
		alloc.add(float64(h.AllocatedBytes), "heap", h.Name)
		maxb.add(float64(h.MaxBytes), "heap", h.Name)
		if h.LowestFreeRatio != nil {
			lowest.add(*h.LowestFreeRatio, "heap", h.Name)
		}
		trend.add(h.BytesPerSecond, "heap", h.Name)
		if h.SecondsToExhaustion != nil {
			exh.add(*h.SecondsToExhaustion, "heap", h.Name)
		}
	}

	cycles := newFamily(namePortCycles, typeCounter, "Cycles (enabled lines) of the vNIC port in the vmkernel log since heapguard started watching the host.")
	flapping := newFamily(namePortFlapping, typeGauge, "1 when the port flaps now (enough cycles within the flap window), else 0.")
	ports := slices.Clone(s.Ports)
	slices.SortFunc(ports, func(a, b Port) int {
		return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.MAC, b.MAC), cmp.Compare(a.VM, b.VM))
	})
	for _, p := range ports {
		cycles.add(float64(p.Cycles), "port", p.Port, "mac", p.MAC, "vm", p.VM)
		flapping.add(b2f(p.Flapping), "port", p.Port, "mac", p.MAC, "vm", p.VM)
	}

	actions := newFamily(nameActions, typeCounter, "Remediation steps applied since heapguard started watching the host, by kind and final result.")
	acts := slices.Clone(s.Actions)
	slices.SortFunc(acts, func(a, b ActionCount) int {
		return cmp.Or(cmp.Compare(a.Action, b.Action), cmp.Compare(a.Result, b.Result))
	})
	for _, a := range acts {
		actions.add(float64(a.Count), "action", a.Action, "result", a.Result)
	}

	left := newFamily(namePowerOffsLeft, typeGauge, "VM power-offs the guards still allow within their window.")
	left.add(float64(s.PowerOffsLeft))
	breaker := newFamily(nameBreakerOpen, typeGauge, "1 when the circuit breaker is open (a step failed: no more acting until reset), else 0.")
	breaker.add(b2f(s.BreakerOpen))
	last := newFamily(nameLastCheck, typeGauge, "Host time of the last check, in seconds since the Unix epoch (0: none yet).")
	if s.Time.IsZero() {
		last.add(0)
	} else {
		last.add(float64(s.Time.UnixNano()) / 1e9)
	}
	dry := newFamily(nameDryRun, typeGauge, "1 when these figures come from a dry run, which acts on nothing.")
	dry.add(b2f(s.DryRun))
	scrape := newFamily(nameScrapeErrors, typeGauge, "1 when the source could not be read for these figures, else 0.")
	failed := map[string]bool{}
	for _, e := range s.Errors {
		failed[e.Source] = true
	}
	for _, src := range sources {
		scrape.add(b2f(failed[src]), "source", src)
	}
	tf := newFamily(nameTextfileErrors, typeCounter, "Failed writes of the --textfile exposition since heapguard started watching the host.")
	tf.add(float64(s.TextfileErrors))

	out := []*family{free, alloc, maxb, lowest, trend, exh, cycles, flapping, actions, left, breaker, last, dry, scrape, tf}
	if s.Age != nil {
		age := newFamily(nameSnapshotAge, typeGauge, "Seconds between the last check and this scrape.")
		age.add(s.Age.Seconds())
		out = append(out, age)
	}
	build := newFamily(nameBuildInfo, typeGauge, "Always 1; the labels name the heapguard binary.")
	build.add(1, "version", s.Build.Version, "commit", s.Build.Commit, "goversion", s.Build.GoVersion)
	out = append(out, build)
	return slices.DeleteFunc(out, func(f *family) bool { return len(f.series) == 0 })
}

// The text format's escapes (as github.com/prometheus/common/expfmt
// writes them): HELP escapes backslash and newline, label values also the
// double quote.
var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

// Encode writes s in the Prometheus text exposition format (0.0.4), byte
// for byte as the Prometheus libraries' encoder would (the tests compare):
// the libraries would make the binary a third larger for this one format.
func Encode(w io.Writer, s Snapshot) error {
	var b []byte
	for _, f := range families(s) {
		b = appendFamily(b[:0], f)
		if _, err := w.Write(b); err != nil {
			return fmt.Errorf("encode %s: %w", f.name, err)
		}
	}
	return nil
}

func appendFamily(b []byte, f *family) []byte {
	b = append(b, "# HELP "...)
	b = append(b, f.name...)
	b = append(b, ' ')
	b = append(b, helpEscaper.Replace(f.help)...)
	b = append(b, "\n# TYPE "...)
	b = append(b, f.name...)
	b = append(b, ' ')
	b = append(b, f.typ...)
	b = append(b, '\n')
	for _, s := range f.series {
		b = append(b, f.name...)
		if len(s.labels) > 0 {
			b = append(b, '{')
			for i := 0; i+1 < len(s.labels); i += 2 {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, s.labels[i]...)
				b = append(b, `="`...)
				// The format wants UTF-8; a VM name is whatever bytes its .vmx holds.
				b = append(b, labelEscaper.Replace(strings.ToValidUTF8(s.labels[i+1], "\uFFFD"))...)
				b = append(b, '"')
			}
			b = append(b, '}')
		}
		b = append(b, ' ')
		b = appendFloat(b, s.value)
		b = append(b, '\n')
	}
	return b
}

// appendFloat writes a value as the format (and expfmt) does.
func appendFloat(b []byte, f float64) []byte {
	switch {
	case f == 1:
		return append(b, '1')
	case f == 0:
		return append(b, '0')
	case f == -1:
		return append(b, "-1"...)
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, +1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

// maxFile bounds what Load reads: a snapshot of thousands of ports is far
// smaller; anything larger is not one.
const maxFile = 16 << 20

// Load reads the live snapshot in stateDir (FileName).
func Load(stateDir string) (Snapshot, error) {
	return LoadFile(filepath.Join(stateDir, FileName))
}

// LoadFile reads a snapshot saved with Marshal.
func LoadFile(path string) (Snapshot, error) {
	f, err := os.Open(path)
	if err != nil {
		return Snapshot{}, fmt.Errorf("read metrics %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return Snapshot{}, fmt.Errorf("read metrics %s: %w", path, err)
	}
	if len(b) > maxFile {
		return Snapshot{}, fmt.Errorf("read metrics %s: larger than %d bytes", path, maxFile)
	}
	s, err := Unmarshal(b)
	if err != nil {
		return Snapshot{}, fmt.Errorf("read metrics %s: %w", path, err)
	}
	return s, nil
}

// Unmarshal decodes a snapshot and checks what the exposition needs of it.
func Unmarshal(b []byte) (Snapshot, error) {
	var s Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return Snapshot{}, err
	}
	if s.Version != Version {
		return Snapshot{}, fmt.Errorf("snapshot version %d, want %d", s.Version, Version)
	}
	for _, h := range s.Heaps {
		if h.Name == "" {
			return Snapshot{}, errors.New("a heap without a name")
		}
	}
	for _, p := range s.Ports {
		if p.Port == "" {
			return Snapshot{}, errors.New("a port without an id")
		}
	}
	return s, nil
}

// Marshal encodes a snapshot for Load.
func Marshal(s Snapshot) ([]byte, error) {
	s.Version = Version
	return json.Marshal(s)
}

// Exposition is what `heapguard serve` answers to /metrics: the live
// snapshot in stateDir with build as the build info and its age at now. It
// never fails: a missing or damaged snapshot is a scrape error of the
// "metrics" source, and the answer still carries build_info and the error.
func Exposition(stateDir string, now time.Time, build BuildInfo) []byte {
	return ExpositionFile(filepath.Join(stateDir, FileName), now, build)
}

// ExpositionFile is Exposition of the snapshot at path (the dry runs'
// DryRunFileName, for a serve --dry-run).
func ExpositionFile(path string, now time.Time, build BuildInfo) []byte {
	s, err := LoadFile(path)
	if err != nil {
		s = Snapshot{Errors: []SourceError{{Source: SourceMetrics, Error: err.Error()}}}
	} else if !s.Time.IsZero() {
		age := now.Sub(s.Time)
		s.Age = &age
	}
	s.Build = build
	var b strings.Builder
	b.Grow(256 + 400*(len(s.Ports)+len(s.Heaps)))
	if err := Encode(&b, s); err != nil {
		// A strings.Builder does not fail; keep the promise anyway.
		b.Reset()
		minimal := Snapshot{Build: build, Errors: []SourceError{{Source: SourceMetrics, Error: err.Error()}}}
		_ = Encode(&b, minimal)
	}
	return []byte(b.String())
}

// Ratio turns a percentage into a 0–1 ratio, clamped (vsish rounds, and a
// heap grown past its maximum reads below 0).
func Ratio(pct float64) float64 {
	if math.IsNaN(pct) {
		return 0
	}
	return min(max(pct/100, 0), 1)
}
