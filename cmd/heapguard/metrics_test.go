package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/internal/promtest"
	"github.com/heapguard/heapguard/metrics"
)

// series is one exposition flattened: "name{l1=v1,…}" (labels sorted, as
// %v prints a map) to its value.
type series map[string]float64

func readProm(t *testing.T, path string) (series, []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parseProm(t, b), b
}

func parseProm(t *testing.T, b []byte) series {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, b)
	}
	out := series{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			v := m.GetGauge().GetValue()
			if f.GetType() == dto.MetricType_COUNTER {
				v = m.GetCounter().GetValue()
			}
			out[name+fmtLabels(l)] = v
		}
	}
	return out
}

func fmtLabels(l map[string]string) string {
	b, _ := json.Marshal(l) // sorted keys, quoted values
	return string(b)
}

// find returns the series of family name whose labels include want.
func (s series) find(name string, want map[string]string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range s {
		fam, labels, _ := strings.Cut(k, "{")
		if fam != name {
			continue
		}
		var l map[string]string
		json.Unmarshal([]byte("{"+labels), &l)
		ok := true
		for wk, wv := range want {
			if l[wk] != wv {
				ok = false
			}
		}
		if ok {
			out[k] = v
		}
	}
	return out
}

// TestCheckTextfile runs check --dry-run --textfile on the seed incident
// near its end: the textfile shows the heap nearly exhausted, the three
// flapping appliances' ports, the power-offs a dry run would make, and
// says it is a dry run. A second check and a check in a new process (a
// restart reading the saved state) never take a counter back.
func TestCheckTextfile(t *testing.T) {
	t.Setenv(host.TestClockEnv, "sim")
	h := simHost(t, "seed-incident")
	h.Advance(110 * time.Minute)
	state, textDir := t.TempDir(), t.TempDir()
	args := []string{"check", "--dry-run", "--root", h.Root(), "--state-dir", state, "--textfile", textDir,
		"--power-off-allow", "DSVA*", "--hold-polls", "1"}
	code, out, stderr := runCLI(t, args...)
	if code != exitCritical {
		t.Fatalf("exit %d, want 2; stdout %s stderr %s", code, out, stderr)
	}
	prom := filepath.Join(textDir, metrics.TextfileName)
	first, raw := readProm(t, prom)
	if fi, err := os.Stat(prom); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("textfile mode: %v %v, want 0644", fi.Mode(), err)
	}
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	for k := range first {
		if fam, _, _ := strings.Cut(k, "{"); !bytes.Contains(doc, []byte("| `"+fam+"` |")) {
			t.Errorf("%s is written but not in docs/metrics.md", fam)
		}
	}

	heaps := first.find("heapguard_heap_free_ratio", nil)
	var gp float64 = -1
	var gpName string
	for k, v := range heaps {
		if _, l, _ := strings.Cut(k, `"heap":"`); strings.HasPrefix(l, "netGPHeap-0x") {
			gp, gpName = v, strings.TrimSuffix(l, `"}`)
		}
	}
	if gp < 0 || gp >= 0.10 {
		t.Errorf("netGPHeap free ratio %v, want one below 0.10; heaps %v", gp, heaps)
	}
	// vsish's lowest-ever figure is carried through: at most the current one.
	lowest := first.find("heapguard_heap_lowest_free_ratio", map[string]string{"heap": gpName})
	if len(lowest) != 1 || sum(lowest) > gp || sum(lowest) <= 0 {
		t.Errorf("netGPHeap lowest free ratio %v, want one in (0, %v]", lowest, gp)
	}
	for _, fam := range []string{"heapguard_heap_allocated_bytes", "heapguard_heap_max_bytes"} {
		if v := first.find(fam, map[string]string{"heap": gpName}); len(v) != 1 || sum(v) <= 0 {
			t.Errorf("%s of %s: %v, want one positive value", fam, gpName, v)
		}
	}
	for _, vm := range []string{"DSVA01", "DSVA03", "DSVA04"} {
		fl := first.find("heapguard_port_flapping", map[string]string{"vm": vm})
		cy := first.find("heapguard_port_flap_cycles_total", map[string]string{"vm": vm})
		if len(fl) != 1 || len(cy) != 1 {
			t.Errorf("%s: flapping %v cycles %v, want one series each", vm, fl, cy)
			continue
		}
		for _, v := range fl {
			if v != 1 {
				t.Errorf("%s flapping %v, want 1", vm, v)
			}
		}
		for _, v := range cy {
			if v <= 0 {
				t.Errorf("%s cycles %v, want > 0", vm, v)
			}
		}
	}
	if n := len(first.find("heapguard_port_flapping", map[string]string{"vm": "vcenter01"})); n != 0 {
		t.Errorf("vcenter01 has %d flapping series: it does not cycle", n)
	}
	if v := first.find("heapguard_actions_total", map[string]string{"action": "power_off", "result": "dry_run"}); len(v) != 1 || sum(v) != 3 {
		t.Errorf("power_off dry_run actions %v, want 3", v)
	}
	if v := first.find("heapguard_dry_run", nil); sum(v) != 1 {
		t.Errorf("dry_run gauge %v, want 1", v)
	}
	sim := float64(h.State().Now.Unix())
	if v := sum(first.find("heapguard_last_check_timestamp_seconds", nil)); v < sim-60 || v > sim+60 {
		t.Errorf("last check %v, want the simulated host's time %v", v, sim)
	}
	// A dry run's snapshot lives beside its own state, never as the live one.
	if _, err := os.Stat(filepath.Join(state, metrics.DryRunFileName)); err != nil {
		t.Errorf("no dry-run snapshot: %v", err)
	}
	if _, err := os.Stat(filepath.Join(state, metrics.FileName)); err == nil {
		t.Error("a dry run wrote the live metrics.json")
	}

	// A scraper that opened the file before the next check still reads it
	// whole: the file is replaced, never rewritten in place.
	reader, err := os.Open(prom)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	h.Advance(2 * time.Minute)
	if code, _, stderr := runCLI(t, args...); code == exitUnknown {
		t.Fatalf("second check: exit %d: %s", code, stderr)
	}
	second, raw2 := readProm(t, prom)
	if old, err := io.ReadAll(reader); err != nil || !bytes.Equal(old, raw) {
		t.Errorf("a reader of the old textfile saw it change (%v): written in place, not replaced", err)
	}
	if bytes.Equal(raw2, raw) {
		t.Error("the second check did not rewrite the textfile")
	}
	if leftovers, _ := filepath.Glob(filepath.Join(textDir, "*")); len(leftovers) != 1 {
		t.Errorf("textfile folder holds %v, want heapguard.prom alone", leftovers)
	}
	noCounterBack(t, "second check", first, second)
	// The second sample makes a trend: the heap leaks.
	if v := second.find("heapguard_heap_trend_bytes_per_second", map[string]string{"heap": gpName}); len(v) != 1 || sum(v) <= 0 {
		t.Errorf("second check: trend of %s: %v, want one positive value", gpName, v)
	}

	// A restart: a new process reading the saved state.
	h.Advance(2 * time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, heapguardBin(t), args...)
	if b, err := cmd.CombinedOutput(); err != nil && cmd.ProcessState.ExitCode() == exitUnknown {
		t.Fatalf("check in a new process: %v\n%s", err, b)
	}
	third, _ := readProm(t, prom)
	noCounterBack(t, "new process", second, third)
	// Three samples predict when the heap runs out.
	if v := third.find("heapguard_heap_time_to_exhaustion_seconds", map[string]string{"heap": gpName}); len(v) != 1 || sum(v) <= 0 {
		t.Errorf("third check: time to exhaustion of %s: %v, want one positive value", gpName, v)
	}
	promtest.Check(t, raw) // last: it skips when promtool is missing
}

func sum(m map[string]float64) float64 {
	var s float64
	for _, v := range m {
		s += v
	}
	return s
}

// noCounterBack fails when a counter series of before is lower, or gone,
// in after.
func noCounterBack(t *testing.T, when string, before, after series) {
	t.Helper()
	n := 0
	for k, v := range before {
		fam, _, _ := strings.Cut(k, "{")
		if !strings.HasSuffix(fam, "_total") {
			continue
		}
		n++
		w, ok := after[k]
		if !ok || w < v {
			t.Errorf("%s: %s went from %v to %v (present %t)", when, k, v, w, ok)
		}
	}
	if n < 4 {
		t.Errorf("%s: only %d counter series to compare", when, n)
	}
}

// TestCheckTextfileUnwritable: a textfile folder that cannot be written
// is logged and counted, and the live check still powers the VMs off.
func TestCheckTextfileUnwritable(t *testing.T) {
	t.Setenv(host.TestClockEnv, "step") // guest shutdowns pass in simulated time
	h := simHost(t, "seed-incident")
	h.Advance(110 * time.Minute)
	state := t.TempDir()
	missing := filepath.Join(t.TempDir(), "no-such-folder")
	code, out, stderr := runCLI(t, "check", "--root", h.Root(), "--state-dir", state, "--textfile", missing,
		"--power-off-allow", "DSVA*", "--hold-polls", "1", "--log-level", "warn")
	if code != exitCritical || strings.Contains(out, "textfile") {
		t.Fatalf("exit %d (want 2, as without --textfile), stdout %s, stderr %s", code, out, stderr)
	}
	if !strings.Contains(stderr, "metrics textfile not written") || !strings.Contains(stderr, "no-such-folder") {
		t.Errorf("the failed write is not logged with its path: %s", stderr)
	}
	poweredOff := 0
	for _, e := range readJournal(t, state) {
		if e.Action == "power_off" && e.Result == "ok" {
			poweredOff++
		}
	}
	if poweredOff != 3 {
		t.Errorf("%d VMs powered off, want 3: the textfile must not stop acting", poweredOff)
	}
	s, err := metrics.Load(state)
	if err != nil {
		t.Fatal(err)
	}
	if s.TextfileErrors != 1 || s.DryRun {
		t.Errorf("live snapshot: textfile errors %d (want 1), dry run %t", s.TextfileErrors, s.DryRun)
	}
	var powerOffs uint64
	for _, a := range s.Actions {
		if a.Action == "power_off" && a.Result == "ok" {
			powerOffs = a.Count
		}
	}
	if powerOffs != 3 {
		t.Errorf("snapshot actions %+v, want power_off ok 3", s.Actions)
	}
	// The failures add up across checks, and what serve answers counts them.
	h.Advance(time.Minute)
	if code, out, stderr := runCLI(t, "check", "--root", h.Root(), "--state-dir", state, "--textfile", missing, "--log-level", "warn"); code == exitUnknown {
		t.Fatalf("second check: exit %d: %s %s", code, out, stderr)
	}
	exp := parseProm(t, metrics.Exposition(state, h.State().Now, buildInfo()))
	if v := exp.find("heapguard_textfile_write_errors_total", nil); sum(v) != 2 {
		t.Errorf("served textfile errors %v, want 2", v)
	}
}

// TestRunTextfile: run writes the metrics after each poll, as check does.
func TestRunTextfile(t *testing.T) {
	t.Setenv(host.TestClockEnv, "step")
	h := simHost(t, "seed-incident")
	h.Advance(100 * time.Minute)
	state, textDir := t.TempDir(), t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stderr strings.Builder
	code := run(ctx, []string{"run", "--dry-run", "--root", h.Root(), "--state-dir", state, "--textfile", textDir,
		"--interval", "30s", "--for", "3m"}, strings.NewReader(""), io.Discard, &stderr)
	if code != exitOK {
		t.Fatalf("run: exit %d; stderr:\n%s", code, stderr.String())
	}
	prom, raw := readProm(t, filepath.Join(textDir, metrics.TextfileName))
	if v := prom.find("heapguard_dry_run", nil); sum(v) != 1 {
		t.Errorf("dry_run %v, want 1", v)
	}
	// Polls over minutes: the trend predicts exhaustion.
	if v := prom.find("heapguard_heap_time_to_exhaustion_seconds", nil); len(v) == 0 {
		t.Errorf("no prediction after three polls:\n%s", raw)
	}
	s, err := metrics.LoadFile(filepath.Join(state, metrics.DryRunFileName))
	if err != nil {
		t.Fatal(err)
	}
	if lc := prom.find("heapguard_last_check_timestamp_seconds", nil); sum(lc) != float64(s.Time.UnixNano())/1e9 {
		t.Errorf("textfile and snapshot disagree on the last check: %v and %v", lc, s.Time)
	}
	// serve's answer from the dry runs' snapshot says dry run; the live
	// one is missing, a scrape error.
	served := parseProm(t, metrics.ExpositionFile(filepath.Join(state, metrics.DryRunFileName), s.Time, buildInfo()))
	if v := served.find("heapguard_dry_run", nil); sum(v) != 1 {
		t.Errorf("served dry-run snapshot: dry_run %v", v)
	}
	live := parseProm(t, metrics.Exposition(state, s.Time, buildInfo()))
	if v := live.find("heapguard_scrape_errors", map[string]string{"source": "metrics"}); sum(v) != 1 {
		t.Errorf("served live snapshot of a dry-run-only state folder: scrape error %v, want 1", v)
	}
	promtest.Check(t, raw) // last: it skips when promtool is missing
}
