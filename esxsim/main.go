package esxsim

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Main is the entry point of the multi-call binary: as vsish, vim-cmd,
// net-stats, esxcli, vmware or an init script (by filepath.Base(args[0]))
// it answers like ESXi; otherwise it is `esxsim <command>`.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		args = []string{"esxsim"}
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	if IsToolName(args[0]) {
		return runTool(args, stdin, stdout, stderr)
	}
	return esxsimMain(args[1:], stdout, stderr)
}

const esxsimUsage = `Usage: esxsim <command> [flags]

A simulated VMware ESXi host for tests and demos.

Commands:
  init        lay out a simulated ESXi root
  run         advance the scenario in real time x speed
  advance     advance the simulated clock at once
  step-clock  step the simulated clock back or forward, as NTP would
  status      print the VMs, heaps, agents and clock
  vm-support  write a vm-support bundle (.tgz) of the simulated host
  scenarios   list the embedded scenarios

Examples:
  esxsim init --root /tmp/esx --scenario seed-incident --version 5.5
  PATH=/tmp/esx/bin:$PATH vim-cmd vmsvc/getallvms
  esxsim run --root /tmp/esx --speed 120 --for 2h
  esxsim step-clock --root /tmp/esx --by -1h
  esxsim status --root /tmp/esx
  esxsim vm-support --root /tmp/esx --out /tmp/esx01.tgz

EXIT STATUS
  0 success, 1 failure, 2 usage error.
`

func esxsimMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, esxsimUsage)
		return 2
	}
	var err error
	switch args[0] {
	case "init":
		err = cmdInit(args[1:], stdout, stderr)
	case "run":
		err = cmdRun(args[1:], stdout, stderr)
	case "advance":
		err = cmdAdvance(args[1:], stdout, stderr)
	case "step-clock":
		err = cmdStepClock(args[1:], stdout, stderr)
	case "status":
		err = cmdStatus(args[1:], stdout, stderr)
	case "vm-support":
		err = cmdVMSupport(args[1:], stdout, stderr)
	case "scenarios":
		for _, n := range PresetNames() {
			sc, _ := Preset(n)
			fmt.Fprintf(stdout, "%-14s %s\n", n, sc.Description)
		}
	case "help", "-h", "--help":
		fmt.Fprint(stdout, esxsimUsage)
	default:
		fmt.Fprintf(stderr, "esxsim: unknown command %q\n\n%s", args[0], esxsimUsage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp), errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "esxsim %s: %v\n", args[0], err)
		return 1
	}
}

func newFlags(name string, stderr io.Writer, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("esxsim "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: esxsim %s %s\n\nFlags:\n", name, usage)
		fs.PrintDefaults()
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string, root *string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 || *root == "" {
		fs.Usage()
		return errUsage
	}
	return nil
}

func cmdInit(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("init", stderr, "--root DIR [--scenario NAME|FILE] [--version V] [--seed N] [--force]")
	root := fs.String("root", "", "folder to lay the simulated ESXi root out in (required)")
	scen := fs.String("scenario", "seed-incident", "preset name ("+strings.Join(PresetNames(), ", ")+") or scenario JSON file")
	ver := fs.String("version", "", "ESXi version ("+strings.Join(VersionNames(), ", ")+"); default: the scenario's")
	seed := fs.Int64("seed", 0, "random seed; default: the scenario's")
	bin := fs.String("binary", "", "multi-call binary to link as bin/*; default: this program")
	force := fs.Bool("force", false, "lay out over an existing simulated host")
	if err := parse(fs, args, root); err != nil {
		return err
	}
	sc, err := LoadScenario(*scen)
	if err != nil {
		return err
	}
	o := InitOptions{Version: *ver, Force: *force, Binary: *bin}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "seed" {
			o.Seed = seed
		}
	})
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find own binary: %w", err)
		}
		o.Binary = exe
	}
	if err := Init(*root, sc, o); err != nil {
		return err
	}
	st, err := LoadState(*root)
	if err != nil {
		return err
	}
	v := st.Ver()
	fmt.Fprintf(stdout, "esxsim: %s laid out in %s (ESXi %s build-%s, seed %d, clock %s)\n",
		sc.Name, *root, v.Full, v.Build, st.Seed, st.Now.Format(time.RFC3339))
	return nil
}

func cmdRun(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", stderr, "--root DIR [--speed X] [--for D]")
	root := fs.String("root", "", "simulated root (required)")
	speed := fs.Float64("speed", 1, "simulated seconds per wall second")
	dur := fs.Duration("for", 0, "stop after this much simulated time (0: until interrupted)")
	if err := parse(fs, args, root); err != nil {
		return err
	}
	// SIGTERM too: a killed run must still pause the published clock and
	// clear its mark in the state, or readers would see time running on.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, *root, RunOptions{Speed: *speed, For: *dur}); err != nil {
		return err
	}
	st, err := LoadState(*root)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "esxsim: stopped at %s\n", st.Now.Format(time.RFC3339))
	return nil
}

func cmdAdvance(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("advance", stderr, "--root DIR --by D")
	root := fs.String("root", "", "simulated root (required)")
	by := fs.Duration("by", 0, "simulated time to advance by (required, > 0)")
	if err := parse(fs, args, root); err != nil {
		return err
	}
	if *by <= 0 {
		fs.Usage()
		return errUsage
	}
	if err := Advance(*root, *by); err != nil {
		return err
	}
	return printClock(stdout, *root)
}

// printClock says where a root's simulated clock stands.
func printClock(stdout io.Writer, root string) error {
	st, err := LoadState(root)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "esxsim: clock at %s\n", st.Now.Format(time.RFC3339))
	return nil
}

func cmdStepClock(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("step-clock", stderr, "--root DIR --by D")
	root := fs.String("root", "", "simulated root (required)")
	by := fs.Duration("by", 0, "how far to step the clock; negative steps it back (required, not 0)")
	if err := parse(fs, args, root); err != nil {
		return err
	}
	if *by == 0 {
		fs.Usage()
		return errUsage
	}
	if err := StepSimClock(*root, *by); err != nil {
		return err
	}
	return printClock(stdout, *root)
}

func cmdVMSupport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("vm-support", stderr, "--root DIR --out FILE.tgz [--fragment BYTES]")
	root := fs.String("root", "", "simulated root (required)")
	out := fs.String("out", "", "bundle `FILE` to write (required)")
	frag := fs.Int64("fragment", DefaultFragment, "split files larger than `BYTES` into .FRAG-NNNNN pieces, as vm-support does; -1 never")
	if err := parse(fs, args, root); err != nil {
		return err
	}
	if *out == "" {
		fs.Usage()
		return errUsage
	}
	if *frag == 0 {
		*frag = -1
	}
	// Written aside and renamed: a half-written bundle never has the name.
	tmp := *out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	err = VMSupport(*root, f, VMSupportOptions{Fragment: *frag})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, *out)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return nil
}

func cmdStatus(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", stderr, "--root DIR")
	root := fs.String("root", "", "simulated root (required)")
	if err := parse(fs, args, root); err != nil {
		return err
	}
	st, err := LoadState(*root)
	if err != nil {
		return err
	}
	RenderStatus(stdout, st)
	return nil
}

// Advance moves a root's simulated clock forward by d at once, writing
// the log lines and state changes that happen meanwhile.
func Advance(root string, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("advance by %s: negative", d)
	}
	// The clock is published under the lock, so that concurrent changes of
	// the time publish in the order they happen.
	return update(root, func(st *State) error {
		if err := advanceState(root, st, st.Now.Add(d)); err != nil {
			return err
		}
		return publishClock(root, st.Now, 0)
	})
}

func advanceState(root string, st *State, to time.Time) error {
	s, err := newSim(root, st)
	if err != nil {
		return err
	}
	if err := s.advance(to); err != nil {
		return err
	}
	return s.flush()
}

// StepSimClock steps a root's simulated clock by d (back when negative), as
// an NTP step would: everything scheduled (flaps, noise, leaks, guest
// shutdowns) moves with it, so it keeps its pace in the new time and
// nothing happens for the skipped or repeated stretch. The uptime does not
// change. A running `esxsim run` follows the step.
func StepSimClock(root string, d time.Duration) error {
	return update(root, func(st *State) error {
		shift := func(t *time.Time) {
			if !t.IsZero() {
				*t = t.Add(d)
			}
		}
		shift(&st.Now)
		shift(&st.Boot)
		shift(&st.NextNoise)
		shift(&st.NextDrift)
		for i := range st.Flappers {
			shift(&st.Flappers[i].Next)
		}
		for i := range st.VMs {
			if vm := &st.VMs[i]; vm.ShutdownAt != nil {
				at := vm.ShutdownAt.Add(d)
				vm.ShutdownAt = &at
			}
		}
		if st.Run != nil {
			shift(&st.Run.Start)
			return publishRunClock(root, st.Run)
		}
		return publishClock(root, st.Now, 0)
	})
}

// RunOptions tune Run.
type RunOptions struct {
	Speed float64       // simulated seconds per wall second (default 1)
	For   time.Duration // simulated time to run for (0: until ctx ends)
	// Tick is the wall time between state updates (default 50ms).
	Tick time.Duration
	// wall is the machine's clock (time.Now); tests replace it.
	wall func() time.Time
}

// Run advances the root's scenario in real time × Speed until ctx ends or
// For has passed, publishing the clock for the program under test.
// Commands run meanwhile see the state as of the last tick.
func Run(ctx context.Context, root string, o RunOptions) error {
	if o.Speed <= 0 {
		o.Speed = 1
	}
	if o.Tick <= 0 {
		o.Tick = 50 * time.Millisecond
	}
	if o.wall == nil {
		o.wall = time.Now
	}
	wall := o.wall()
	err := update(root, func(st *State) error {
		st.Run = &RunInfo{PID: os.Getpid(), Speed: o.Speed, Since: wall.UTC(), Start: st.Now}
		return publishRunClock(root, st.Run)
	})
	if err != nil {
		return err
	}
	// One update covers at most maxChunk of simulated time, and a tick of
	// wall time passes between the end of one update and the next: a run
	// that fell behind (a loaded machine) catches up a piece at a time,
	// and commands get the lock in between instead of waiting for the
	// whole backlog.
	maxChunk := max(4*time.Duration(float64(o.Tick)*o.Speed), time.Minute)
	t := time.NewTimer(o.Tick)
	defer t.Stop()
	var runErr error
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-t.C:
		}
		err := update(root, func(st *State) error {
			if st.Run == nil {
				return errors.New("run: the state lost its run mark")
			}
			// The run's start is read each time: a clock step moves it.
			start := st.Run.Start
			target := start.Add(time.Duration(float64(o.wall().Sub(wall)) * o.Speed))
			finish := o.For > 0 && !target.Before(start.Add(o.For))
			if finish {
				target = start.Add(o.For)
			}
			behind := target.Sub(st.Now) > maxChunk
			if behind {
				target = st.Now.Add(maxChunk)
			}
			done = done || finish && !behind
			return advanceState(root, st, target)
		})
		if err != nil {
			runErr = err
			break
		}
		t.Reset(o.Tick)
	}
	err = update(root, func(st *State) error { st.Run = nil; return publishClock(root, st.Now, 0) })
	if runErr == nil {
		runErr = err
	}
	return runErr
}

// toolPath is where a tool lives under root (for in-process calls).
func toolPath(root, name string) string {
	switch name {
	case "vpxa", "hostd":
		return filepath.Join(root, "etc/init.d", name)
	case "vmware-vpxa":
		return filepath.Join(root, "etc/opt/init.d", name)
	}
	return filepath.Join(root, "bin", name)
}
