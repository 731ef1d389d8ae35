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
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"
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

// family starts a metric family.
func family(name, help string, typ dto.MetricType) *dto.MetricFamily {
	return &dto.MetricFamily{Name: proto.String(name), Help: proto.String(help), Type: typ.Enum()}
}

// labels pairs names and values; values are made valid UTF-8, which the
// exposition requires (a VM name is whatever bytes its .vmx holds).
func labels(nv ...string) []*dto.LabelPair {
	out := make([]*dto.LabelPair, 0, len(nv)/2)
	for i := 0; i+1 < len(nv); i += 2 {
		out = append(out, &dto.LabelPair{Name: proto.String(nv[i]), Value: proto.String(strings.ToValidUTF8(nv[i+1], "\uFFFD"))})
	}
	return out
}

func addGauge(f *dto.MetricFamily, v float64, lp []*dto.LabelPair) {
	f.Metric = append(f.Metric, &dto.Metric{Label: lp, Gauge: &dto.Gauge{Value: proto.Float64(v)}})
}

func addCounter(f *dto.MetricFamily, v float64, lp []*dto.LabelPair) {
	f.Metric = append(f.Metric, &dto.Metric{Label: lp, Counter: &dto.Counter{Value: proto.Float64(v)}})
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Families builds the metric families of s, in a fixed order; a family
// with no series (no heap predicted to run out) is left out.
func Families(s Snapshot) []*dto.MetricFamily {
	gauge, counter := dto.MetricType_GAUGE, dto.MetricType_COUNTER
	free := family(nameHeapFree, "Free share of the heap's maximum size (0-1), as vsish reports it.", gauge)
	alloc := family(nameHeapAllocated, "Bytes currently allocated in the heap.", gauge)
	maxb := family(nameHeapMax, "The heap's maximum size in bytes.", gauge)
	lowest := family(nameHeapLowest, "Lowest free share of the maximum size the heap ever reached (0-1), as vsish reports it.", gauge)
	trend := family(nameHeapTrend, "Trend of the allocated bytes per second (positive: growing).", gauge)
	exh := family(nameHeapExhaustion, "Predicted seconds until the heap reaches its maximum size; only when the trend predicts it.", gauge)
	heaps := slices.Clone(s.Heaps)
	slices.SortFunc(heaps, func(a, b Heap) int { return cmp.Compare(a.Name, b.Name) })
	for _, h := range heaps {
		lp := labels("heap", h.Name)
		addGauge(free, h.FreeRatio, lp)
		addGauge(alloc, float64(h.AllocatedBytes), lp)
		addGauge(maxb, float64(h.MaxBytes), lp)
		if h.LowestFreeRatio != nil {
			addGauge(lowest, *h.LowestFreeRatio, lp)
		}
		addGauge(trend, h.BytesPerSecond, lp)
		if h.SecondsToExhaustion != nil {
			addGauge(exh, *h.SecondsToExhaustion, lp)
		}
	}

	cycles := family(namePortCycles, "Cycles (enabled lines) of the vNIC port in the vmkernel log since heapguard started watching the host.", counter)
	flapping := family(namePortFlapping, "1 when the port flaps now (enough cycles within the flap window), else 0.", gauge)
	ports := slices.Clone(s.Ports)
	slices.SortFunc(ports, func(a, b Port) int {
		return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.MAC, b.MAC), cmp.Compare(a.VM, b.VM))
	})
	for _, p := range ports {
		lp := labels("port", p.Port, "mac", p.MAC, "vm", p.VM)
		addCounter(cycles, float64(p.Cycles), lp)
		addGauge(flapping, b2f(p.Flapping), lp)
	}

	actions := family(nameActions, "Remediation steps applied since heapguard started watching the host, by kind and final result.", counter)
	acts := slices.Clone(s.Actions)
	slices.SortFunc(acts, func(a, b ActionCount) int {
		return cmp.Or(cmp.Compare(a.Action, b.Action), cmp.Compare(a.Result, b.Result))
	})
	for _, a := range acts {
		addCounter(actions, float64(a.Count), labels("action", a.Action, "result", a.Result))
	}

	left := family(namePowerOffsLeft, "VM power-offs the guards still allow within their window.", gauge)
	addGauge(left, float64(s.PowerOffsLeft), nil)
	breaker := family(nameBreakerOpen, "1 when the circuit breaker is open (a step failed: no more acting until reset), else 0.", gauge)
	addGauge(breaker, b2f(s.BreakerOpen), nil)
	last := family(nameLastCheck, "Host time of the last check, in seconds since the Unix epoch (0: none yet).", gauge)
	if s.Time.IsZero() {
		addGauge(last, 0, nil)
	} else {
		addGauge(last, float64(s.Time.UnixNano())/1e9, nil)
	}
	dry := family(nameDryRun, "1 when these figures come from a dry run, which acts on nothing.", gauge)
	addGauge(dry, b2f(s.DryRun), nil)
	scrape := family(nameScrapeErrors, "1 when the source could not be read for these figures, else 0.", gauge)
	failed := map[string]bool{}
	for _, e := range s.Errors {
		failed[e.Source] = true
	}
	for _, src := range sources {
		addGauge(scrape, b2f(failed[src]), labels("source", src))
	}
	tf := family(nameTextfileErrors, "Failed writes of the --textfile exposition since heapguard started watching the host.", counter)
	addCounter(tf, float64(s.TextfileErrors), nil)

	out := []*dto.MetricFamily{free, alloc, maxb, lowest, trend, exh, cycles, flapping, actions, left, breaker, last, dry, scrape, tf}
	if s.Age != nil {
		age := family(nameSnapshotAge, "Seconds between the last check and this scrape.", gauge)
		addGauge(age, s.Age.Seconds(), nil)
		out = append(out, age)
	}
	build := family(nameBuildInfo, "Always 1; the labels name the heapguard binary.", gauge)
	addGauge(build, 1, labels("version", s.Build.Version, "commit", s.Build.Commit, "goversion", s.Build.GoVersion))
	out = append(out, build)
	return slices.DeleteFunc(out, func(f *dto.MetricFamily) bool { return len(f.Metric) == 0 })
}

// Encode writes s in the Prometheus text exposition format.
func Encode(w io.Writer, s Snapshot) error {
	for _, f := range Families(s) {
		if _, err := expfmt.MetricFamilyToText(w, f); err != nil {
			return fmt.Errorf("encode %s: %w", f.GetName(), err)
		}
	}
	return nil
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
	s, err := Load(stateDir)
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
		// Only a family without series fails to encode, and Families
		// drops those; keep the promise anyway with the smallest answer.
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
