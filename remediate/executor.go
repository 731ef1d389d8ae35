package remediate

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
)

// Executor carries out one Action. It never decides whether to; the
// caller (Apply) has checked the guards and journaled the start.
type Executor interface {
	Execute(ctx context.Context, a policy.Action) Outcome
}

var (
	_ Executor = (*Live)(nil)
	_ Executor = (*DryRun)(nil)
)

// Defaults of Live.
const (
	DefaultCommandTimeout  = 30 * time.Second
	DefaultShutdownTimeout = 120 * time.Second
	DefaultPollInterval    = 5 * time.Second
	DefaultAgentWait       = 30 * time.Second
	DefaultVerifyInterval  = 10 * time.Second
	// defaultOutputCap bounds an Outcome's Output (and so a journal line).
	defaultOutputCap = 16 << 10
	// perStreamCap bounds what one command's stdout or stderr adds to it.
	perStreamCap = 2 << 10
)

// Live carries out actions on the host through a host.Runner. Every
// command is an argument vector (VMs are named by vmid, never by their
// display name) run with a timeout; every command, its exit status and its
// output (capped) go into the Outcome.
type Live struct {
	Runner host.Runner
	Layout host.Layout
	// Clock is host time, for waiting between polls.
	Clock host.Clock
	// Timeout bounds each command (DefaultCommandTimeout when zero).
	Timeout time.Duration
	// AgentTimeout bounds one init script restart, stop or start call
	// (DefaultAgentCommandTimeout when zero).
	AgentTimeout time.Duration
	// ShutdownTimeout is how long (host time) a graceful shutdown may take
	// before the VM is powered off hard.
	ShutdownTimeout time.Duration
	// PollInterval is the host time between two power-state polls, and
	// between two agent status checks.
	PollInterval time.Duration
	// AgentWait is how long (host time) an agent may take to report
	// running after its restart.
	AgentWait time.Duration
	// VerifyInterval is the host time between the two heap reads of a verification.
	VerifyInterval time.Duration
	// HeapCheck reads the percent free of maximum of the heap being
	// watched; ActVerify fails when it is nil.
	HeapCheck func(ctx context.Context) (percentFree float64, err error)
	// OutputCap bounds an Outcome's Output in bytes.
	OutputCap int
}

func (l *Live) timeout() time.Duration { return orDefault(l.Timeout, DefaultCommandTimeout) }

// PlanTime is how long, in host time, the steps of a plan can take.
type PlanTime struct{ PowerOffs, Restart, Verify time.Duration }

func (p PlanTime) Total() time.Duration { return p.PowerOffs + p.Restart + p.Verify }

// WorstPlanTime bounds what Apply takes over a plan of power-offs, one
// vpxa restart and a verification on l, when every host command runs to
// its timeout and a heap read (HeapCheck) takes heapRead. The power-offs
// run side by side, so one counts: a getstate, the shutdown, the wait
// (ShutdownTimeout, then at most one poll and one getstate more),
// power.off and a last getstate. The restart: its init script calls (two
// on 4.x), then the wait for vpxa to run (AgentWait, one poll, one
// status). The verification: that wait, two heap reads, the pause between.
func (l *Live) WorstPlanTime(heapRead time.Duration) PlanTime {
	cmd, poll := l.timeout(), orDefault(l.PollInterval, DefaultPollInterval)
	agentUp := orDefault(l.AgentWait, DefaultAgentWait) + poll + cmd
	calls := time.Duration(len(restartArgvs(l.Layout.VpxaInit)))
	return PlanTime{
		PowerOffs: orDefault(l.ShutdownTimeout, DefaultShutdownTimeout) + poll + 5*cmd,
		Restart:   calls*orDefault(l.AgentTimeout, DefaultAgentCommandTimeout) + agentUp,
		Verify:    agentUp + 2*heapRead + orDefault(l.VerifyInterval, DefaultVerifyInterval),
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Execute runs a. It returns when the action is over, bounded by the
// commands' timeouts and the configured waits; the caller passes a
// context that is not cancelled by a shutdown signal if the action must
// finish (see Apply).
func (l *Live) Execute(ctx context.Context, a policy.Action) Outcome {
	clock := l.Clock
	if clock == nil {
		clock = host.SystemClock{}
	}
	s := &session{live: l, clock: clock, max: l.OutputCap}
	if s.max <= 0 {
		s.max = defaultOutputCap
	}
	start := clock.Now()
	var err error
	switch a.Kind {
	case policy.ActAlert:
		s.note("alert only, nothing run")
	case policy.ActPowerOff:
		err = s.powerOff(ctx, a)
	case policy.ActRestartAgent:
		err = s.restartAgent(ctx, a)
	case policy.ActVerify:
		err = s.verify(ctx, a)
	default:
		err = fmt.Errorf("unknown action %q", a.Kind)
	}
	o := Outcome{Action: a, Result: ResultOK, Output: s.out.String(), Elapsed: clock.Now().Sub(start), Mutated: s.mutated}
	if err != nil {
		o.Result, o.Err = ResultFailed, err.Error()
	}
	return o
}

// session is one action's run: it keeps the transcript.
type session struct {
	live  *Live
	clock host.Clock
	out   strings.Builder
	max   int
	cut   bool
	// mutated: a command that changes the host was run.
	mutated bool
}

// run runs one command and adds it to the transcript:
//
//	$ vim-cmd vmsvc/power.getstate 12
//	Retrieved runtime info
//	Powered on
//	[exit 0, 12ms]
func (s *session) run(ctx context.Context, timeout time.Duration, argv ...string) (host.Result, error) {
	if timeout <= 0 {
		timeout = s.live.timeout()
	}
	if s.live.Runner == nil {
		s.write(fmt.Sprintf("$ %s\n[not run: no command runner configured]\n", FormatArgv(argv)))
		return host.Result{Argv: argv, ExitCode: -1}, errors.New("no command runner configured")
	}
	if mutating(argv) {
		s.mutated = true
	}
	res, err := s.live.Runner.Run(ctx, timeout, argv...)
	var b strings.Builder
	fmt.Fprintf(&b, "$ %s\n", FormatArgv(argv))
	for _, stream := range [][]byte{res.Stdout, res.Stderr} {
		if len(stream) == 0 {
			continue
		}
		text := string(stream)
		if len(text) > perStreamCap {
			text = text[:perStreamCap] + fmt.Sprintf("… [%d bytes cut]", len(stream)-perStreamCap)
		}
		b.WriteString(strings.TrimRight(text, "\n"))
		b.WriteByte('\n')
	}
	status := "exit " + strconv.Itoa(res.ExitCode)
	if err != nil {
		var ce *host.CommandError
		switch {
		case errors.As(err, &ce) && ce.Err != nil:
			status = fmt.Sprintf("%s: %v", status, ce.Err)
		case !errors.As(err, &ce):
			status = fmt.Sprintf("%s: %v", status, err)
		}
	}
	fmt.Fprintf(&b, "[%s, %s]\n", status, res.Duration.Round(time.Millisecond))
	s.write(b.String())
	return res, err
}

// mutating reports whether argv changes the host: a VM power operation or
// an init script's restart, stop or start.
func mutating(argv []string) bool {
	if len(argv) < 2 {
		return false
	}
	if argv[0] == "vim-cmd" {
		return argv[1] == "vmsvc/power.shutdown" || argv[1] == "vmsvc/power.off"
	}
	switch argv[1] {
	case "restart", "stop", "start":
		return true
	}
	return false
}

func (s *session) note(format string, args ...any) {
	s.write("# " + fmt.Sprintf(format, args...) + "\n")
}

func (s *session) write(text string) {
	if s.cut {
		return
	}
	if room := s.max - s.out.Len(); len(text) > room {
		if room > 0 {
			s.out.WriteString(text[:room])
		}
		s.out.WriteString("\n[output cut]\n")
		s.cut = true
		return
	}
	s.out.WriteString(text)
}

// FormatArgv renders an argument vector for people: arguments that a
// shell would split or interpret are quoted. It is never run.
func FormatArgv(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
		}) {
			a = strconv.Quote(a)
		}
		parts[i] = a
	}
	return strings.Join(parts, " ")
}

// DryRun never runs anything: it says which commands Live would run.
type DryRun struct {
	Layout          host.Layout
	ShutdownTimeout time.Duration
	PollInterval    time.Duration
	AgentWait       time.Duration
	VerifyInterval  time.Duration
}

func (*DryRun) dryRun() {}

// Execute returns ResultDryRun with the exact argument vectors Live would run.
func (d *DryRun) Execute(_ context.Context, a policy.Action) Outcome {
	var b strings.Builder
	cmd := func(argv []string, when string) {
		fmt.Fprintf(&b, "would run: %s", FormatArgv(argv))
		if when != "" {
			fmt.Fprintf(&b, "  (%s)", when)
		}
		b.WriteByte('\n')
	}
	var err error
	switch a.Kind {
	case policy.ActAlert:
		b.WriteString("alert only, nothing would run\n")
	case policy.ActPowerOff:
		if err = checkVMID(a.VMID); err != nil {
			break
		}
		st := orDefault(d.ShutdownTimeout, DefaultShutdownTimeout)
		cmd(getStateArgv(a.VMID), "nothing more when already powered off")
		cmd(shutdownArgv(a.VMID), "graceful, needs VMware Tools")
		cmd(getStateArgv(a.VMID), fmt.Sprintf("every %s until Powered off, for up to %s", orDefault(d.PollInterval, DefaultPollInterval), st))
		cmd(powerOffArgv(a.VMID), fmt.Sprintf("at once if the shutdown fails, or after %s", st))
		cmd(getStateArgv(a.VMID), "must say Powered off")
	case policy.ActRestartAgent:
		var script string
		if script, err = initScript(d.Layout, a.Target); err != nil {
			break
		}
		for _, argv := range restartArgvs(script) {
			cmd(argv, "")
		}
		cmd(statusArgv(script), fmt.Sprintf("until it exits 0, for up to %s", orDefault(d.AgentWait, DefaultAgentWait)))
	case policy.ActVerify:
		script, serr := initScript(d.Layout, verifyAgent(a))
		if serr != nil {
			err = serr
			break
		}
		cmd(statusArgv(script), "must exit 0")
		if a.AgentOnly {
			b.WriteString("would not read the heap: it could not be read when the plan was made\n")
			break
		}
		fmt.Fprintf(&b, "would read the heap twice, %s apart: recovered when not below %s\n",
			orDefault(d.VerifyInterval, DefaultVerifyInterval), heapFloor(a))
	default:
		err = fmt.Errorf("unknown action %q", a.Kind)
	}
	o := Outcome{Action: a, Result: ResultDryRun, Output: b.String()}
	if err != nil {
		// The live run would fail the same way before running anything.
		o.Result, o.Err = ResultFailed, err.Error()
	}
	return o
}
