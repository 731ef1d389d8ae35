package metrics

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

	"github.com/heapguard/heapguard/internal/promtest"
)

func ptr[T any](v T) *T { return &v }

// full is a snapshot with every family present.
func full() Snapshot {
	return Snapshot{
		Version: Version,
		Time:    time.Date(2026, 4, 10, 8, 27, 13, 500_000_000, time.UTC),
		DryRun:  true,
		Heaps: []Heap{
			{Name: "netGPHeap-0x410001000000", FreeRatio: 0.04, AllocatedBytes: 96 << 20, MaxBytes: 100 << 20,
				LowestFreeRatio: ptr(0.03), BytesPerSecond: 2048, SecondsToExhaustion: ptr(600.0)},
			{Name: "dvfilter-generic-fastpath-0x4100", FreeRatio: 0.9, AllocatedBytes: 1 << 20, MaxBytes: 10 << 20},
		},
		Ports: []Port{
			{Port: "0x3000007", MAC: "00:50:56:aa:bb:01", VM: "DSVA01", Cycles: 120, Flapping: true},
			{Port: "0x3000009", MAC: "00:50:56:aa:bb:09", VM: "", Cycles: 1},
		},
		Actions: []ActionCount{
			{Action: "power_off", Result: "dry_run", Count: 3},
			{Action: "restart_agent", Result: "ok", Count: 1},
		},
		PowerOffsLeft:  2,
		BreakerOpen:    true,
		Errors:         []SourceError{{Source: SourceLog, Error: "permission denied"}},
		TextfileErrors: 4,
		Build:          BuildInfo{Version: "v1.2.3", Commit: "abc1234", GoVersion: "go1.26.8"},
		Age:            ptr(90 * time.Second),
	}
}

func parse(t testing.TB, b []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, b)
	}
	return fams
}

func encode(t testing.TB, s Snapshot) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Encode(&b, s); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func labelMap(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

func TestEncodeValues(t *testing.T) {
	out := encode(t, full())
	fams := parse(t, out)
	value := func(name string, want map[string]string) float64 {
		t.Helper()
		f := fams[name]
		if f == nil {
			t.Fatalf("no %s in\n%s", name, out)
		}
		for _, m := range f.GetMetric() {
			if fmt.Sprint(labelMap(m)) != fmt.Sprint(want) {
				continue
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue()
			}
		}
		t.Fatalf("%s has no series %v in\n%s", name, want, out)
		return 0
	}
	heap := map[string]string{"heap": "netGPHeap-0x410001000000"}
	dsva := map[string]string{"port": "0x3000007", "mac": "00:50:56:aa:bb:01", "vm": "DSVA01"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"heapguard_heap_free_ratio", heap, 0.04},
		{"heapguard_heap_allocated_bytes", heap, 96 << 20},
		{"heapguard_heap_max_bytes", heap, 100 << 20},
		{"heapguard_heap_lowest_free_ratio", heap, 0.03},
		{"heapguard_heap_trend_bytes_per_second", heap, 2048},
		{"heapguard_heap_time_to_exhaustion_seconds", heap, 600},
		{"heapguard_port_flap_cycles_total", dsva, 120},
		{"heapguard_port_flapping", dsva, 1},
		{"heapguard_port_flapping", map[string]string{"port": "0x3000009", "mac": "00:50:56:aa:bb:09", "vm": ""}, 0},
		{"heapguard_actions_total", map[string]string{"action": "power_off", "result": "dry_run"}, 3},
		{"heapguard_power_offs_left", map[string]string{}, 2},
		{"heapguard_breaker_open", map[string]string{}, 1},
		{"heapguard_last_check_timestamp_seconds", map[string]string{}, 1775809633.5},
		{"heapguard_dry_run", map[string]string{}, 1},
		{"heapguard_scrape_errors", map[string]string{"source": "log"}, 1},
		{"heapguard_scrape_errors", map[string]string{"source": "heaps"}, 0},
		{"heapguard_textfile_write_errors_total", map[string]string{}, 4},
		{"heapguard_snapshot_age_seconds", map[string]string{}, 90},
		{"heapguard_build_info", map[string]string{"version": "v1.2.3", "commit": "abc1234", "goversion": "go1.26.8"}, 1},
	} {
		if got := value(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Heaps that predict nothing or printed no lowest figure have no such series.
	if n := len(fams["heapguard_heap_time_to_exhaustion_seconds"].GetMetric()); n != 1 {
		t.Errorf("time_to_exhaustion has %d series, want 1 (the predicted heap only)", n)
	}
	for name, f := range fams {
		if f.GetHelp() == "" {
			t.Errorf("%s has no HELP", name)
		}
		if !strings.Contains(string(out), "# TYPE "+name+" ") {
			t.Errorf("%s has no TYPE", name)
		}
	}
}

// hostileNames are VM names a .vmx may hold.
var hostileNames = []string{
	`quo"te`, `back\slash`, "new\nline", `$(reboot)`, "`id`", `a\"b\\n`, "tab\there", "{}=,",
	"ünïcødé ☃", "bad\xffutf8", `\`, `"`, "\r\n", "end\\",
}

func TestEncodeEscapesLabelValues(t *testing.T) {
	var s Snapshot
	for i, name := range hostileNames {
		s.Ports = append(s.Ports, Port{Port: fmt.Sprintf("0x%x", 0x3000000+i), MAC: "00:50:56:00:00:01", VM: name, Cycles: uint64(i + 1)})
		s.Heaps = append(s.Heaps, Heap{Name: name + fmt.Sprint(i), FreeRatio: 0.5})
	}
	s.Build = BuildInfo{Version: `v"1\` + "\n"}
	out := encode(t, s)
	fams := parse(t, out)
	got := map[string]string{}
	for _, m := range fams["heapguard_port_flap_cycles_total"].GetMetric() {
		l := labelMap(m)
		got[l["port"]] = l["vm"]
	}
	for i, name := range hostileNames {
		port := fmt.Sprintf("0x%x", 0x3000000+i)
		want := strings.ToValidUTF8(name, "\uFFFD")
		if got[port] != want {
			t.Errorf("vm label of %s = %q, want %q", port, got[port], want)
		}
	}
	heaps := map[string]bool{}
	for _, m := range fams["heapguard_heap_free_ratio"].GetMetric() {
		heaps[labelMap(m)["heap"]] = true
	}
	for i, name := range hostileNames {
		if want := strings.ToValidUTF8(name, "\uFFFD") + fmt.Sprint(i); !heaps[want] {
			t.Errorf("heap %q lost", want)
		}
	}
	if v := labelMap(fams["heapguard_build_info"].GetMetric()[0])["version"]; v != `v"1\`+"\n" {
		t.Errorf("build version label = %q", v)
	}
	promtest.Check(t, out)
}

func TestEncodeEmpty(t *testing.T) {
	fams := parse(t, encode(t, Snapshot{}))
	for _, name := range []string{"heapguard_build_info", "heapguard_last_check_timestamp_seconds", "heapguard_scrape_errors"} {
		if fams[name] == nil {
			t.Errorf("empty snapshot: no %s", name)
		}
	}
	if fams["heapguard_heap_free_ratio"] != nil || fams["heapguard_snapshot_age_seconds"] != nil {
		t.Error("empty snapshot: families without data are written")
	}
}

func TestLoadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := full()
	s.Age = nil
	b, err := Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileName), b, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(encode(t, got), encode(t, s)) {
		t.Errorf("loaded snapshot encodes differently:\n%s\nwant\n%s", encode(t, got), encode(t, s))
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), FileName) {
		t.Errorf("missing file: err %v, want one naming %s", err, FileName)
	}
	for _, bad := range []string{``, `{`, `[]`, `{"version":2}`, `{"version":1,"heaps":[{"name":""}]}`, `{"version":1,"ports":[{"cycles":1}]}`, `{"version":1,"time":"yesterday"}`} {
		os.WriteFile(filepath.Join(dir, FileName), []byte(bad), 0o600)
		if _, err := Load(dir); err == nil {
			t.Errorf("Load(%q): no error", bad)
		}
	}
}

func TestExpositionDamaged(t *testing.T) {
	build := BuildInfo{Version: "v9", Commit: "c0ffee", GoVersion: "go1.26.8"}
	now := time.Date(2026, 4, 10, 9, 0, 0, 0, time.UTC)
	for name, content := range map[string]*string{"missing": nil, "damaged": ptr(`{"version":1,"heaps":[`)} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if content != nil {
				os.WriteFile(filepath.Join(dir, FileName), []byte(*content), 0o600)
			}
			out := Exposition(dir, now, build)
			fams := parse(t, out)
			if v := labelMap(fams["heapguard_build_info"].GetMetric()[0]); v["commit"] != "c0ffee" {
				t.Errorf("build_info labels %v", v)
			}
			var metricsErr float64 = -1
			for _, m := range fams["heapguard_scrape_errors"].GetMetric() {
				if labelMap(m)["source"] == SourceMetrics {
					metricsErr = m.GetGauge().GetValue()
				}
			}
			if metricsErr != 1 {
				t.Errorf("scrape_errors{source=metrics} = %v, want 1\n%s", metricsErr, out)
			}
		})
	}
}

func TestExpositionFresh(t *testing.T) {
	dir := t.TempDir()
	s := full()
	s.Build = BuildInfo{Version: "old"}
	b, _ := Marshal(s)
	os.WriteFile(filepath.Join(dir, FileName), b, 0o600)
	out := Exposition(dir, s.Time.Add(42*time.Second), BuildInfo{Version: "new"})
	fams := parse(t, out)
	if v := labelMap(fams["heapguard_build_info"].GetMetric()[0])["version"]; v != "new" {
		t.Errorf("build_info version %q, want the serving binary's", v)
	}
	if v := fams["heapguard_snapshot_age_seconds"].GetMetric()[0].GetGauge().GetValue(); v != 42 {
		t.Errorf("age %v, want 42", v)
	}
	for _, m := range fams["heapguard_scrape_errors"].GetMetric() {
		if labelMap(m)["source"] == SourceMetrics && m.GetGauge().GetValue() != 0 {
			t.Error("a good snapshot counts as a scrape error")
		}
	}
	promtest.Check(t, out)
}

// big is a host under a bad incident: 500 ports, 40 heaps.
func big() Snapshot {
	s := full()
	s.Age = nil
	s.Heaps, s.Ports = nil, nil
	for i := range 40 {
		s.Heaps = append(s.Heaps, Heap{Name: fmt.Sprintf("heap%d-0x4100%08x", i, i), FreeRatio: 0.5, AllocatedBytes: 1 << 20,
			MaxBytes: 2 << 20, LowestFreeRatio: ptr(0.4), BytesPerSecond: 12.5, SecondsToExhaustion: ptr(3600.0)})
	}
	for i := range 500 {
		s.Ports = append(s.Ports, Port{Port: fmt.Sprintf("0x%x", 0x3000000+i), MAC: fmt.Sprintf("00:50:56:00:%02x:%02x", i/256, i%256),
			VM: fmt.Sprintf("VM %d \"quoted\"", i), Cycles: uint64(i * 7), Flapping: i%3 == 0})
	}
	return s
}

func BenchmarkExposition(b *testing.B) {
	dir := b.TempDir()
	data, err := Marshal(big())
	if err != nil {
		b.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, FileName), data, 0o600)
	now := time.Now()
	build := BuildInfo{Version: "v1", Commit: "c", GoVersion: "go1.26.8"}
	out := Exposition(dir, now, build)
	if fams := parse(b, out); len(fams["heapguard_port_flapping"].GetMetric()) != 500 {
		b.Fatal("benchmark exposition lost ports")
	}
	b.SetBytes(int64(len(out)))
	for b.Loop() {
		Exposition(dir, now, build)
	}
}

func FuzzLoad(f *testing.F) {
	good, _ := Marshal(full())
	f.Add(good)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"ports":[{"port":"0x1","vm":"a\"\\\n"}]}`))
	f.Add([]byte(`{"version":1,"heaps":[{"name":"h","free_ratio":1e308,"lowest_free_ratio":-1}]}`))
	f.Add([]byte(`{"version":1,"time":"0001-01-01T00:00:00Z","actions":[{"action":"","result":""}]}`))
	f.Add([]byte("\xff\xfe"))
	dir := f.TempDir()
	path := filepath.Join(dir, FileName)
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Load(dir)
		if err != nil {
			return
		}
		// Whatever loads encodes into an exposition that parses back.
		parse(t, encode(t, s))
		parse(t, Exposition(dir, time.Now(), BuildInfo{Version: "x"}))
	})
}

// libraryEncode encodes s's families with the Prometheus libraries'
// encoder (client_model + expfmt), the reference Encode must match.
func libraryEncode(t testing.TB, s Snapshot) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, f := range families(s) {
		mf := &dto.MetricFamily{Name: proto.String(f.name), Help: proto.String(f.help)}
		typ := dto.MetricType_GAUGE
		if f.typ == typeCounter {
			typ = dto.MetricType_COUNTER
		}
		mf.Type = typ.Enum()
		for _, s := range f.series {
			m := &dto.Metric{}
			for i := 0; i+1 < len(s.labels); i += 2 {
				m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(s.labels[i]), Value: proto.String(strings.ToValidUTF8(s.labels[i+1], "\uFFFD"))})
			}
			if typ == dto.MetricType_COUNTER {
				m.Counter = &dto.Counter{Value: proto.Float64(s.value)}
			} else {
				m.Gauge = &dto.Gauge{Value: proto.Float64(s.value)}
			}
			mf.Metric = append(mf.Metric, m)
		}
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// TestEncodeMatchesLibrary: the hand-written encoder writes what the
// Prometheus libraries' text encoder writes, hostile names, odd floats
// and all.
func TestEncodeMatchesLibrary(t *testing.T) {
	hostile := Snapshot{Build: BuildInfo{Version: "v\"1\\\n"}}
	for i, name := range hostileNames {
		hostile.Ports = append(hostile.Ports, Port{Port: fmt.Sprint(i), VM: name, Cycles: uint64(i) << 40})
		hostile.Heaps = append(hostile.Heaps, Heap{Name: name, FreeRatio: []float64{0.1, 1.0 / 3, 1e-9, 0.5}[i%4],
			AllocatedBytes: 1<<53 + 1, MaxBytes: -1, BytesPerSecond: -123.456e7})
	}
	nan := full()
	nan.Heaps[0].BytesPerSecond = math.NaN()
	nan.Heaps[1].BytesPerSecond = math.Inf(1)
	nan.Heaps[0].FreeRatio = math.Inf(-1)
	for name, s := range map[string]Snapshot{"full": full(), "empty": {}, "hostile": hostile, "nan": nan, "big": big()} {
		got, want := encode(t, s), libraryEncode(t, s)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: Encode differs from expfmt:\n%s\nwant\n%s", name, got, want)
		}
	}
}
