package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/heapguard/heapguard/remediate"
)

type resetOptions struct{ stateDir string }

func init() {
	register(&command{
		name:    "reset",
		summary: "close the circuit breaker after failed remediations were looked into",
		usage:   "[--state-dir DIR]",
		help: `After --breaker-after failed remediations in a row heapguard stops acting and only reports.
Once a person has looked at the journal and the host, reset lets it act again. Budgets (power-offs
per hour, agent restart cooldowns) are not reset.

EXIT STATUS:
  0 reset, 3 the state could not be read or written`,
		flags: func(fs *flag.FlagSet) any {
			o := &resetOptions{}
			fs.StringVar(&o.stateDir, "state-dir", "", "`DIR` of the guards (default: heapguard-state/HOSTNAME beside the binary)")
			return o
		},
		run: func(ctx context.Context, e env, opts any, args []string) int {
			o := opts.(*resetOptions)
			if len(args) > 0 {
				return usageError
			}
			dir := o.stateDir
			if dir == "" {
				var err error
				if dir, err = defaultStateDir(); err != nil {
					fmt.Fprintf(e.stderr, "heapguard reset: %v\n", err)
					return exitUnknown
				}
			}
			// A running daemon keeps the guards in memory and would write its
			// open breaker back: reset only while no instance holds the lock.
			lock, err := remediate.AcquireLock(dir)
			if err != nil {
				fmt.Fprintf(e.stderr, "heapguard reset: %v (stop the running heapguard first)\n", err)
				return exitUnknown
			}
			defer lock.Release()
			g, err := remediate.OpenGuards(dir, remediate.GuardLimits{})
			if err == nil {
				err = g.Reset()
			}
			if err != nil {
				fmt.Fprintf(e.stderr, "heapguard reset: %v\n", err)
				return exitUnknown
			}
			fmt.Fprintf(e.stdout, "circuit breaker closed (%s)\n", dir)
			return exitOK
		},
	})
}
