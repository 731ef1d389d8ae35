package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/remediate"
)

type resetOptions struct{ stateDir, root string }

func init() {
	register(&command{
		name:    "reset",
		summary: "close the circuit breaker after failed remediations were looked into",
		noArgs:  true,
		usage:   "[--state-dir DIR] [--root DIR]",
		help: `After --breaker-after failed remediations in a row heapguard stops acting and only reports.
Once a person has looked at the journal and the host, reset lets it act again: it closes the
breaker and clears the failure streak, in the state folder and in the host-wide record every
instance on the host shares. Budgets (power-offs per hour, agent restart cooldowns) are not
reset; reset says what is left of them.

EXIT STATUS:
  0 reset, 3 the state could not be read or written`,
		flags: func(fs *flag.FlagSet) any {
			o := &resetOptions{}
			fs.StringVar(&o.stateDir, "state-dir", "", "`DIR` of the guards (default: heapguard-state/HOSTNAME beside the binary)")
			fs.StringVar(&o.root, "root", "/", "`DIR` the host's files are under (a simulated host's folder)")
			return o
		},
		run: func(ctx context.Context, e env, opts any, args []string) int {
			o := opts.(*resetOptions)
			dir := o.stateDir
			if dir == "" {
				var err error
				if dir, err = defaultStateDir(); err != nil {
					fmt.Fprintf(e.stderr, "heapguard reset: %v\n", err)
					return exitUnknown
				}
			}
			// A running daemon keeps the guards in memory and would write its
			// open breaker back: reset only while no instance acts, on this
			// state folder or anywhere on the host.
			hostDir := host.Path(o.root, remediate.HostDir)
			var locks []*remediate.Lock
			defer func() {
				for _, l := range locks {
					l.Release()
				}
			}()
			if _, err := os.Stat(hostDir); errors.Is(err, os.ErrNotExist) {
				hostDir = "" // nothing has acted on this host since it booted
			}
			// reset writes the guards: like run and check, it refuses a state
			// folder that others can write.
			unsafe := remediate.CheckStateDir(dir)
			if hostDir != "" {
				unsafe = errors.Join(unsafe, remediate.CheckPrivate(hostDir, filepath.Join(hostDir, remediate.GuardsFile)))
			}
			if unsafe != nil {
				fmt.Fprintf(e.stderr, "heapguard reset: %v\n", unsafe)
				return exitUnknown
			}
			for _, d := range []string{hostDir, dir} {
				if d == "" {
					continue
				}
				l, err := remediate.AcquireLock(d)
				if err != nil {
					fmt.Fprintf(e.stderr, "heapguard reset: %v (stop the running heapguard first)\n", err)
					return exitUnknown
				}
				locks = append(locks, l)
			}
			clock, err := host.ClockFromEnv(os.Getenv, o.root, host.Exec{Root: o.root})
			var g *remediate.Guards
			if err == nil {
				g, err = remediate.OpenHostGuards(dir, hostDir, remediate.GuardLimits{})
			}
			if err == nil {
				now := clock.Now()
				before := g.Status(now)
				if err = g.Reset(now); err == nil {
					writeReset(e.stdout, dir, before)
				}
			}
			if err != nil {
				fmt.Fprintf(e.stderr, "heapguard reset: %v\n", err)
				return exitUnknown
			}
			return exitOK
		},
	})
}

// writeReset says what reset cleared and what it left as it was.
func writeReset(w io.Writer, dir string, before remediate.GuardStatus) {
	if before.BreakerOpen {
		fmt.Fprintf(w, "circuit breaker closed (%s); it had opened after %d failed remediations, the last: %s\n", dir, before.FailureStreak, before.LastFailure)
	} else {
		fmt.Fprintf(w, "circuit breaker was not open (%s); failure streak %d cleared\n", dir, before.FailureStreak)
	}
	left := max(before.MaxPowerOffs-before.PowerOffsInWindow, 0)
	line := fmt.Sprintf("kept: power-off budget %d of %d left", left, before.MaxPowerOffs)
	if left == 0 {
		line += ", next at " + before.NextPowerOffAt.UTC().Format(time.RFC3339)
	}
	for _, agent := range slices.Sorted(maps.Keys(before.CooldownUntil)) {
		line += fmt.Sprintf("; %s restart cooling down until %s", agent, before.CooldownUntil[agent].UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(w, line)
}
