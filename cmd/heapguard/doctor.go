package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/heapguard/heapguard/doctor"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/remediate"
)

type doctorOptions struct {
	root         string
	stateDir     string
	json         bool
	maxPowerOffs int
	breakerAfter int
}

func init() {
	register(&command{
		name:    "doctor",
		summary: "check that heapguard can work on this host",
		noArgs:  true,
		usage:   "[--root DIR] [--state-dir DIR] [--max-power-offs N] [--breaker-after N] [--json]",
		help: `Checks, each OK / WARN / FAIL with its reason: the ESXi version and build, the vmkernel
log heapguard will read and its format, whether vsish lists the heaps (and netGPHeap's free
space), whether vim-cmd works, the vpxa and hostd init scripts, the state folder (writable,
free space, not on a folder ESXi empties at boot), whether it, its files and /var/run/heapguard
are writable by heapguard's user alone (run and check refuse them otherwise), its locks and who
holds them, the power-off
budget and vpxa restart cooldown left and the circuit breaker (as heapguard status shows them:
a spent budget warns, an open breaker fails), whether execInstalledOnly is enforced (ESXi 8:
then the binary must be installed from a VIB), and a self-test of the runtime (a timer fires, a
child process runs and is reaped: what a stock Go binary cannot do on ESXi).

EXIT STATUS:
  0 all OK, 1 a warning, 2 a failure (heapguard cannot do its job here), 3 bad usage`,
		flags: func(fs *flag.FlagSet) any {
			o := &doctorOptions{}
			fs.StringVar(&o.root, "root", "/", "ESXi root `DIR` (a simulated host)")
			fs.StringVar(&o.stateDir, "state-dir", "", "state `DIR` to check (default: heapguard-state/HOSTNAME beside the binary)")
			fs.BoolVar(&o.json, "json", false, "print JSON")
			fs.IntVar(&o.maxPowerOffs, "max-power-offs", remediate.DefaultMaxPowerOffs, "power-offs allowed per hour, as given to run and check")
			fs.IntVar(&o.breakerAfter, "breaker-after", remediate.DefaultBreakerAfter, "failed remediations that open the breaker, as given to run and check")
			return o
		},
		run: runDoctor,
	})
}

func runDoctor(ctx context.Context, e env, opts any, args []string) int {
	o := opts.(*doctorOptions)
	exe, _ := executablePath()
	stateDir := o.stateDir
	if stateDir == "" {
		var err error
		if stateDir, err = defaultStateDir(); err != nil {
			fmt.Fprintf(e.stderr, "heapguard doctor: %v\n", err) // and the state check warns
		}
	}
	if o.maxPowerOffs < 1 || o.breakerAfter < 1 {
		fmt.Fprintln(e.stderr, "heapguard doctor: --max-power-offs and --breaker-after want 1 or more")
		return usageError
	}
	clock, err := host.ClockFromEnv(os.Getenv, o.root, host.Exec{Root: o.root})
	if err != nil {
		fmt.Fprintf(e.stderr, "heapguard doctor: %v\n", err)
		return exitUnknown
	}
	d := doctor.Run(ctx, doctor.Options{Root: o.root, StateDir: stateDir, SelfExe: exe, Clock: clock,
		Guards: remediate.GuardLimits{MaxPowerOffs: o.maxPowerOffs, BreakerAfter: o.breakerAfter}})
	if o.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(d)
	} else {
		err = d.WriteText(e.stdout)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "heapguard doctor: %v\n", err)
		return exitUnknown
	}
	return d.Status.ExitCode()
}
