package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/heapguard/heapguard/host"
)

// logClock gives zap entries the time of a host.ManualClock, so the tests
// step time instead of sleeping.
type logClock struct{ *host.ManualClock }

func (c logClock) NewTicker(d time.Duration) *time.Ticker { return time.NewTicker(d) }

// observed is run and check's logger writing into an observer.
func observed(level zapcore.Level) (*zap.Logger, *observer.ObservedLogs, *host.ManualClock) {
	core, logs := observer.New(zapcore.DebugLevel)
	clock := host.NewManualClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	l := zap.New(newLevelCore(newDedupCore(core, repeatSpan, alwaysLogged), level, alwaysLogged), zap.WithClock(logClock{clock}))
	return l, logs, clock
}

func messages(logs *observer.ObservedLogs) []string {
	var out []string
	for _, e := range logs.All() {
		out = append(out, e.Level.String()+" "+e.Message)
	}
	return out
}

// TestLogLevel: --log-level drops what is below it, but never a decision
// or an action (nor the start and stop lines around them).
func TestLogLevel(t *testing.T) {
	for _, tc := range []struct {
		level string
		want  []string
	}{
		{"debug", []string{"info watching", "debug poll details", "info heap sampled", "info decision", "warn heap unreadable", "info action", "error poll", "info stopped"}},
		{"info", []string{"info watching", "info heap sampled", "info decision", "warn heap unreadable", "info action", "error poll", "info stopped"}},
		{"warn", []string{"info watching", "info decision", "warn heap unreadable", "info action", "error poll", "info stopped"}},
		{"error", []string{"info watching", "info decision", "info action", "error poll", "info stopped"}},
	} {
		t.Run(tc.level, func(t *testing.T) {
			var lv logLevel
			if err := lv.Set(tc.level); err != nil {
				t.Fatal(err)
			}
			l, logs, _ := observed(zapcore.Level(lv))
			l.Info("watching")
			l.Debug("poll details")
			l.Info("heap sampled")
			l.Info("decision", zap.String("status", "CRITICAL"))
			l.Warn("heap unreadable")
			l.Info("action", zap.String("action", "power_off"))
			l.Error("poll")
			l.Info("stopped")
			if got := messages(logs); !slices.Equal(got, tc.want) {
				t.Errorf("--log-level %s wrote\n%q\nwant\n%q", tc.level, got, tc.want)
			}
		})
	}
	var lv logLevel
	for _, bad := range []string{"", "verbose", "fatal", "panic", "dpanic"} {
		if err := lv.Set(bad); err == nil || !strings.Contains(err.Error(), "want debug, info, warn or error") {
			t.Errorf("--log-level %q: err %v", bad, err)
		}
	}
}

// TestRepeatsCounted: identical warnings are written once, then one line
// says how many more there were; times in the fields do not make lines
// different; a different line, the span's end or Sync writes the count.
func TestRepeatsCounted(t *testing.T) {
	l, logs, clock := observed(zapcore.InfoLevel)
	logTime := time.Date(2012, 7, 26, 1, 26, 46, 0, time.UTC)
	for i := range 34 {
		l.Warn("heap at its maximum size", zap.String("heap", "netGPHeap"), zap.Time("log_time", logTime.Add(time.Duration(i)*time.Millisecond)))
	}
	l.Warn("heap at its maximum size", zap.String("heap", "vmfs3"), zap.Time("log_time", logTime))
	l.Info("decision")
	l.Info("decision") // never folded
	want := []string{
		"warn heap at its maximum size",
		"warn heap at its maximum size (repeated 33 more times)",
		"warn heap at its maximum size",
		"info decision",
		"info decision",
	}
	if got := messages(logs); !slices.Equal(got, want) {
		t.Fatalf("wrote\n%q\nwant\n%q", got, want)
	}
	summary := logs.All()[1].ContextMap()
	if summary["repeated"] != int64(33) || summary["heap"] != "netGPHeap" || !summary["log_time"].(time.Time).Equal(logTime.Add(33*time.Millisecond)) {
		t.Errorf("summary fields %v, want repeated 33, heap netGPHeap and the last line's log_time", summary)
	}
	if first := logs.All()[0].ContextMap(); !first["log_time"].(time.Time).Equal(logTime) {
		t.Errorf("first line's fields %v, want its own log_time", first)
	}

	// A warning that repeats every poll shows once a minute with its count.
	logs.TakeAll()
	for range 8 {
		l.Warn("vpxa status unknown", zap.Error(fmt.Errorf("vim-cmd timed out")))
		clock.Advance(10 * time.Second)
	}
	want = []string{"warn vpxa status unknown", "warn vpxa status unknown (repeated 5 more times)", "warn vpxa status unknown"}
	if got := messages(logs); !slices.Equal(got, want) {
		t.Errorf("a warning every 10s for 80s wrote\n%q\nwant\n%q", got, want)
	}
	// The count held back is not lost at shutdown.
	logs.TakeAll()
	l.Sync()
	want = []string{"warn vpxa status unknown (repeated 1 more time)"}
	if got := messages(logs); !slices.Equal(got, want) {
		t.Errorf("Sync wrote %q, want %q", got, want)
	}
	logs.TakeAll()
	l.Sync()
	if got := messages(logs); len(got) != 0 {
		t.Errorf("a second Sync wrote %q", got)
	}

	// Loggers With different context fields are different lines.
	a, b := l.With(zap.String("port", "0x3000005")), l.With(zap.String("port", "0x3000007"))
	a.Warn("flapping port not confirmed live")
	b.Warn("flapping port not confirmed live")
	a.Warn("flapping port not confirmed live")
	a.Warn("flapping port not confirmed live")
	l.Sync()
	var ports []string
	for _, e := range logs.TakeAll() {
		ports = append(ports, fmt.Sprint(e.ContextMap()["port"], " ", e.Message))
	}
	want = []string{"0x3000005 flapping port not confirmed live", "0x3000007 flapping port not confirmed live",
		"0x3000005 flapping port not confirmed live", "0x3000005 flapping port not confirmed live (repeated 1 more time)"}
	if !slices.Equal(ports, want) {
		t.Errorf("wrote\n%q\nwant\n%q", ports, want)
	}
}
