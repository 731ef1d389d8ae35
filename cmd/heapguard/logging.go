package main

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// logLevel is the --log-level flag: the four levels heapguard logs at.
type logLevel zapcore.Level

func (l *logLevel) String() string { return zapcore.Level(*l).String() }

func (l *logLevel) Set(s string) error {
	var z zapcore.Level
	if err := z.Set(s); err != nil || s == "" || z < zapcore.DebugLevel || z > zapcore.ErrorLevel {
		return fmt.Errorf("want debug, info, warn or error")
	}
	*l = logLevel(z)
	return nil
}

func (l *logLevel) Get() any { return zapcore.Level(*l) }

// alwaysLogged names the log entries no --log-level hides: the agent's
// decisions and actions (what an admin reads the log for, and what a
// journal that could not be written leaves as the only trace) and the
// start and stop lines that frame them. The agent logs them at info; the
// filter lets them through by message rather than the agent logging them
// at error, which would make every decision read as a failure in a log
// collector. TestLogLevelKeepsDecisions runs a real check at --log-level
// error, so a renamed message fails there.
func alwaysLogged(ent zapcore.Entry) bool {
	if ent.Level < zapcore.InfoLevel {
		return false
	}
	switch ent.Message {
	case "decision", "action", "watching", "stopped":
		return true
	}
	return false
}

// repeatSpan is how long identical entries are folded into one summary
// before the entry is written in full again: a warning that repeats every
// poll still shows once a minute with its count.
const repeatSpan = time.Minute

// newLogger builds the logger of run and check: entries below level are
// dropped, except those alwaysLogged keeps, and repeated identical entries
// are counted (newDedupCore). Sync writes the last count.
func newLogger(enc zapcore.Encoder, out zapcore.WriteSyncer, level zapcore.Level) *zap.Logger {
	// The output core takes every level: the filter above it decides.
	write := zapcore.NewCore(enc, out, zapcore.DebugLevel)
	return zap.New(newLevelCore(newDedupCore(write, repeatSpan, alwaysLogged), level, alwaysLogged))
}

// levelCore drops entries below level unless keep says otherwise. zap's
// own level check happens before the message is known, so the core says
// it is enabled from info up (where kept entries live) and decides per
// entry in Check.
type levelCore struct {
	zapcore.Core
	level zapcore.Level
	keep  func(zapcore.Entry) bool
}

func newLevelCore(c zapcore.Core, level zapcore.Level, keep func(zapcore.Entry) bool) zapcore.Core {
	return &levelCore{Core: c, level: level, keep: keep}
}

func (c *levelCore) Enabled(l zapcore.Level) bool {
	return c.level.Enabled(l) || l >= zapcore.InfoLevel
}

func (c *levelCore) With(fields []zapcore.Field) zapcore.Core {
	return &levelCore{Core: c.Core.With(fields), level: c.level, keep: c.keep}
}

func (c *levelCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.level.Enabled(ent.Level) || c.keep(ent) {
		return c.Core.Check(ent, ce)
	}
	return ce
}

// dedupCore writes the first of a run of identical entries (same level,
// logger, message and fields, times aside) and holds back the repeats;
// when a different entry arrives, the run is repeatSpan old, or the logger
// is synced, it writes one summary: the last repeat, with its fields (so
// its times), its message marked "(repeated N more times)" and a
// "repeated" field. Entries exempt (decisions, actions) are never folded.
//
// zap's own sampler (zapcore.NewSamplerWithOptions) was the first choice,
// but it keys on the message alone, so netGPHeap maxed and vmfs3 maxed
// would count as one, and it only drops: its hook could count the dropped
// entries but nothing would write the count at the end of a burst or at
// shutdown. This core adds exactly that.
type dedupCore struct {
	zapcore.Core
	// ctx are the fields added by With: part of the key.
	ctx    []zapcore.Field
	span   time.Duration
	exempt func(zapcore.Entry) bool
	st     *dedupState // shared by every core With derives
}

type dedupState struct {
	mu    sync.Mutex
	key   string
	first time.Time // time of the entry written in full
	n     int       // repeats held back since
	last  zapcore.Entry
	// lastFields are the last repeat's fields; out wrote the first entry
	// and writes the summary (it carries that logger's context).
	lastFields []zapcore.Field
	out        zapcore.Core
}

func newDedupCore(c zapcore.Core, span time.Duration, exempt func(zapcore.Entry) bool) zapcore.Core {
	return &dedupCore{Core: c, span: span, exempt: exempt, st: &dedupState{}}
}

func (c *dedupCore) With(fields []zapcore.Field) zapcore.Core {
	return &dedupCore{Core: c.Core.With(fields), ctx: append(append([]zapcore.Field(nil), c.ctx...), fields...),
		span: c.span, exempt: c.exempt, st: c.st}
}

func (c *dedupCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}

func (c *dedupCore) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	st := c.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if c.exempt(ent) {
		err := st.flush()
		st.key = ""
		return errors.Join(err, c.Core.Write(ent, fields))
	}
	key := c.key(ent, fields)
	if key == st.key && ent.Time.Sub(st.first) < c.span {
		st.n++
		st.last, st.lastFields = ent, append([]zapcore.Field(nil), fields...)
		return nil
	}
	err := st.flush()
	st.key, st.first, st.out = key, ent.Time, c.Core
	return errors.Join(err, c.Core.Write(ent, fields))
}

func (c *dedupCore) Sync() error {
	c.st.mu.Lock()
	err := c.st.flush()
	c.st.mu.Unlock()
	return errors.Join(err, c.Core.Sync())
}

// flush writes the summary of the repeats held back, if any.
func (st *dedupState) flush() error {
	if st.n == 0 {
		return nil
	}
	ent := st.last
	times := "times"
	if st.n == 1 {
		times = "time"
	}
	ent.Message = fmt.Sprintf("%s (repeated %d more %s)", ent.Message, st.n, times)
	fields := append(st.lastFields, zap.Int("repeated", st.n))
	st.n, st.lastFields = 0, nil
	return st.out.Write(ent, fields)
}

// key identifies an entry for folding: level, logger, message and every
// field but times (a log line's own time differs from line to line).
func (c *dedupCore) key(ent zapcore.Entry, fields []zapcore.Field) string {
	enc := zapcore.NewMapObjectEncoder()
	for _, fs := range [][]zapcore.Field{c.ctx, fields} {
		for _, f := range fs {
			if f.Type == zapcore.TimeType || f.Type == zapcore.TimeFullType {
				continue
			}
			f.AddTo(enc)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\x00%s\x00%s\x00%v", ent.Level, ent.LoggerName, ent.Message, enc.Fields)
	return b.String()
}
