package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"

	"github.com/heapguard/heapguard/agent"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

// agentFlags are the flags run and check share.
type agentFlags struct {
	config          string
	root            string
	stateDir        string
	dryRun          bool
	json            bool
	heaps           stringList
	watchHeaps      stringList
	powerOffAllow   stringList
	warnBelow       float64
	critBelow       float64
	clearAbove      float64
	holdPolls       int
	predict         time.Duration
	maxPowerOffs    int
	breakerAfter    int
	shutdownTimeout time.Duration
	commandTimeout  time.Duration
	flapCycles      int
	flapWindow      time.Duration
	interval        time.Duration
	year            int
	forDur          time.Duration
	logLevel        logLevel
	textfile        string
	syslog          syslogDest
	syslogFormat    syslogFormat
	replace         bool
	daemon          bool // run: --interval, --for and --replace exist
}

func addAgentFlags(fs *flag.FlagSet, daemon bool) *agentFlags {
	o := &agentFlags{daemon: daemon}
	def := policy.DefaultConfig()
	fs.StringVar(&o.config, "config", "", "read flags from `FILE` (lines 'name value'; flags on the command line win)")
	fs.StringVar(&o.root, "root", "/", "ESXi root `DIR`: prefix for host paths and host commands (a simulated host)")
	fs.StringVar(&o.stateDir, "state-dir", "", "`DIR` for the journal, budgets, lock and saved state (default: heapguard-state/HOSTNAME beside the binary)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "run the whole pipeline but change nothing: print and journal the plan")
	fs.Var(&o.heaps, "heaps", "sample only heaps matching `GLOB` (repeatable; default every heap)")
	fs.Var(&o.watchHeaps, "watch-heap", "`GLOB` of heaps whose depletion triggers remediation (repeatable; default netGPHeap)")
	fs.Var(&o.powerOffAllow, "power-off-allow", "case-insensitive `GLOB` of VM names that may be powered off (repeatable; default none): * and ? match any characters, [...] is a character class (DSVA[1] matches only DSVA1), \\ escapes (DSVA\\[1\\] matches the name DSVA[1]); a pattern matching every name, like '*', is warned about")
	fs.Float64Var(&o.warnBelow, "warn-below", def.WarnBelow, "WARNING below this `percent` free of max")
	fs.Float64Var(&o.critBelow, "crit-below", def.CritBelow, "CRITICAL below this `percent` free of max")
	fs.Float64Var(&o.clearAbove, "clear-above", def.ClearAbove, "back to OK only above this `percent`")
	fs.IntVar(&o.holdPolls, "hold-polls", def.HoldPolls, "polls a level change must hold for")
	fs.DurationVar(&o.predict, "predict", def.Predict, "CRITICAL when exhaustion is predicted within this `duration` (0: off)")
	fs.IntVar(&o.maxPowerOffs, "max-power-offs", remediate.DefaultMaxPowerOffs, "power-offs allowed per hour")
	fs.IntVar(&o.breakerAfter, "breaker-after", remediate.DefaultBreakerAfter, "stop acting after this many failed remediations in a row (until heapguard reset)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", remediate.DefaultShutdownTimeout, "graceful shutdown time before a hard power-off")
	fs.DurationVar(&o.commandTimeout, "command-timeout", remediate.DefaultCommandTimeout, "timeout of each host command")
	fs.IntVar(&o.flapCycles, "flap-cycles", 10, "a port flaps at this many down/up cycles ...")
	fs.DurationVar(&o.flapWindow, "flap-window", 5*time.Minute, "... within this much time, by the lines' own log times")
	fs.IntVar(&o.year, "year", 0, "year of 4.x syslog dates (default: from the log's modification time)")
	fs.BoolVar(&o.json, "json", false, "print JSON instead of text")
	fs.StringVar(&o.textfile, "textfile", "", "after each poll, write the Prometheus metrics to `DIR`/heapguard.prom (atomically, for node_exporter's textfile collector; docs/metrics.md); a failed write is logged and counted, never stops the agent")
	addSyslogFlags(fs, o)
	fs.Var(&o.logLevel, "log-level", "stderr log `level`: debug, info, warn or error (default info); decisions and actions are logged at every level, repeated identical lines are counted")
	if daemon {
		fs.DurationVar(&o.interval, "interval", agent.DefaultInterval, "host time between two heap samples")
		fs.DurationVar(&o.forDur, "for", 0, "stop after this much host time (0: until SIGTERM/SIGINT)")
		fs.BoolVar(&o.replace, "replace", false, "take over from the heapguard holding the host lock: send it SIGTERM (it finishes the action under way) and wait for it, up to 10 min (an upgrade's restart)")
	}
	return o
}

// applyConfig sets, from the --config file, every flag not given on the
// command line: flags win.
func applyConfig(fs *flag.FlagSet, path string) error {
	if path == "" {
		return nil
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, _ := strings.Cut(line, " ")
		name = strings.TrimPrefix(strings.TrimSpace(strings.TrimSuffix(name, "=")), "--")
		value = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(value), "="))
		value = strings.Trim(value, `"`)
		if name == "config" {
			return fmt.Errorf("config %s:%d: config files do not nest", path, n)
		}
		if fs.Lookup(name) == nil {
			return fmt.Errorf("config %s:%d: unknown setting %q", path, n, name)
		}
		if set[name] {
			continue
		}
		if err := fs.Set(name, value); err != nil {
			return fmt.Errorf("config %s:%d: %s %q: %w", path, n, name, redactURLs(value), valueError(fs.Lookup(name).Value, err))
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

func (o *agentFlags) options(logger *zap.Logger) (agent.Options, error) {
	// 0 must not quietly mean "the default" for a safety limit.
	if o.maxPowerOffs < 1 {
		return agent.Options{}, fmt.Errorf("--max-power-offs %d: want 1 or more (to power nothing off, leave --power-off-allow empty)", o.maxPowerOffs)
	}
	if o.breakerAfter < 1 {
		return agent.Options{}, fmt.Errorf("--breaker-after %d: want 1 or more", o.breakerAfter)
	}
	if err := o.checkDurations(); err != nil {
		return agent.Options{}, err
	}
	if err := o.checkSyslog(); err != nil {
		return agent.Options{}, err
	}
	cfg := policy.DefaultConfig()
	if len(o.watchHeaps) > 0 {
		cfg.WatchHeaps = splitList(o.watchHeaps)
	}
	cfg.PowerOffAllow = splitList(o.powerOffAllow)
	cfg.WarnBelow, cfg.CritBelow, cfg.ClearAbove = o.warnBelow, o.critBelow, o.clearAbove
	cfg.HoldPolls, cfg.Predict = o.holdPolls, o.predict
	stateDir := o.stateDir
	if stateDir == "" {
		var err error
		if stateDir, err = defaultStateDir(); err != nil {
			return agent.Options{}, err
		}
	}
	runner := host.Exec{Root: o.root}
	clock, err := host.ClockFromEnv(os.Getenv, o.root, runner)
	if err != nil {
		return agent.Options{}, err
	}
	return agent.Options{
		Root: o.root, StateDir: stateDir, Interval: o.interval, DryRun: o.dryRun,
		Heaps: splitList(o.heaps), Policy: cfg,
		Guards:     remediate.GuardLimits{MaxPowerOffs: o.maxPowerOffs, BreakerAfter: o.breakerAfter},
		FlapCycles: o.flapCycles, FlapWindow: o.flapWindow,
		ShutdownTimeout: o.shutdownTimeout, CommandTimeout: o.commandTimeout, Year: o.year,
		Textfile: o.textfile, Build: buildInfo(), Replace: o.replace,
		Logger: logger, Clock: clock, Runner: runner,
	}, nil
}

// checkDurations refuses durations that cannot mean anything: a negative
// wait or timeout, or an --interval of 0 (the agent would poll without
// pause). 0 keeps its documented meaning elsewhere (--for 0: until
// stopped, the timeouts: their defaults). policy.Validate checks --predict.
func (o *agentFlags) checkDurations() error {
	if o.daemon && o.interval <= 0 {
		return fmt.Errorf("--interval %s: want a positive duration like 10s", o.interval)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"for", o.forDur}, {"shutdown-timeout", o.shutdownTimeout},
		{"command-timeout", o.commandTimeout}, {"flap-window", o.flapWindow},
	} {
		if d.v < 0 {
			return fmt.Errorf("--%s %s: want 0 or a positive duration like 10m", d.name, d.v)
		}
	}
	return nil
}

// quoteAll writes patterns as a shell would take them back.
func quoteAll(patterns []string) string {
	q := make([]string, len(patterns))
	for i, p := range patterns {
		q[i] = "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
	}
	return strings.Join(q, ", ")
}

// splitList lets a repeatable flag also take a comma-separated list.
func splitList(l stringList) []string {
	var out []string
	for _, s := range l {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// loggerFor logs JSON when stderr is not a terminal (cron, inetd, a
// file) and readable lines when it is. Nothing is sampled away: the
// level filter keeps decisions and actions, and repeats are counted, not
// dropped (newLogger).
func loggerFor(e env, level zapcore.Level) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	if f, ok := e.stderr.(*os.File); ok {
		if term.IsTerminal(int(f.Fd())) {
			enc.EncodeLevel = zapcore.CapitalColorLevelEncoder
			return newLogger(zapcore.NewConsoleEncoder(enc), zapcore.Lock(f), level)
		}
		return newLogger(zapcore.NewJSONEncoder(enc), zapcore.Lock(f), level)
	}
	// Locked: the syslog sender logs from its own goroutine.
	return newLogger(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(e.stderr)), level)
}

// openWatcher prepares the agent; errors name what to do. The error is
// also returned, for a status line. done closes the watcher and writes
// what the logger holds back (the count of repeated lines).
func openWatcher(e env, name string, fs *flag.FlagSet, o *agentFlags) (w *agent.Watcher, done func(), code int, err error) {
	fail := func(code int, err error) (*agent.Watcher, func(), int, error) {
		fmt.Fprintf(e.stderr, "heapguard %s: %v\n", name, err)
		return nil, nil, code, err
	}
	if err := applyConfig(fs, o.config); err != nil {
		return fail(exitUnknown, err)
	}
	// The config names the VMs that may be powered off: one that others
	// can write lets them widen that list.
	if o.config != "" && !o.dryRun {
		if err := remediate.CheckPrivate(o.config); err != nil {
			return fail(exitUnknown, fmt.Errorf("config: %w", err))
		}
	}
	logger := loggerFor(e, zapcore.Level(o.logLevel))
	defer func() {
		if w == nil {
			logger.Sync()
		}
	}()
	opts, err := o.options(logger)
	if err != nil {
		return fail(exitUnknown, err)
	}
	// Started before the watcher opens: recovering steps a crash left open
	// writes journal entries too.
	observe, stopSyslog := openSyslog(o, logger)
	opts.JournalObserver = observe
	defer func() {
		if w == nil {
			stopSyslog()
		}
	}()
	if all := opts.Policy.AllowsAny(); len(all) > 0 {
		// Said plainly on stderr whatever --log-level, and in the log.
		fmt.Fprintf(e.stderr, "heapguard %s: warning: --power-off-allow %s matches every VM name: any VM on this host "+
			"whose port flaps while the heap runs out may be powered off; name the VMs meant instead (like 'DSVA*')\n",
			name, quoteAll(all))
		logger.Warn("--power-off-allow matches every VM name", zap.Strings("patterns", all))
	}
	w, err = agent.Open(opts)
	if errors.Is(err, remediate.ErrLocked) {
		return fail(exitUnknown, fmt.Errorf("refusing to start: %w", err))
	}
	if err != nil {
		return fail(exitCodeOf(err), err)
	}
	done = func() {
		w.Close()
		stopSyslog()
		logger.Sync() // a terminal cannot be synced: nothing to report
	}
	return w, done, exitOK, nil
}
