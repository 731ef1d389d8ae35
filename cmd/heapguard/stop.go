package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/remediate"
)

type stopOptions struct {
	root string
	wait time.Duration
}

func init() {
	register(&command{
		name:    "stop",
		summary: "stop the heapguard that holds the host lock (the daemon), and wait for it",
		noArgs:  true,
		usage:   "[--root DIR] [--wait D]",
		help: `Sends SIGTERM to the heapguard holding the host-wide lock in /var/run/heapguard (a run
daemon, or a check acting), which finishes the action under way and exits, and waits until
it has. The holder is signalled only when its flock is seen held while its pid file reads
the same twice: a pid left by a heapguard that is gone (and perhaps reused since) is never
signalled. Where the lock is a pid file (no flock on that file system) stop refuses.
deploy --uninstall and a change of --mode run it.

EXIT STATUS:
  0 stopped, or none was running
  2 the holder did not stop within --wait
  3 bad usage, or the holder cannot be named for certain`,
		flags: func(fs *flag.FlagSet) any {
			o := &stopOptions{}
			fs.StringVar(&o.root, "root", "/", "ESXi root `DIR` (a simulated host)")
			fs.DurationVar(&o.wait, "wait", 10*time.Minute, "how long to wait for it (an action under way may take 8m45s)")
			return o
		},
		run: runStop,
	})
}

func runStop(ctx context.Context, e env, opts any, args []string) int {
	o := opts.(*stopOptions)
	dir := host.Path(o.root, remediate.HostDir)
	pid, err := remediate.StopHolder(dir, remediate.StopOptions{Wait: o.wait})
	switch {
	case err == nil && pid == 0:
		fmt.Fprintln(e.stdout, "heapguard stop: none running")
		return exitOK
	case err == nil:
		fmt.Fprintf(e.stdout, "heapguard stop: pid %d stopped\n", pid)
		return exitOK
	case errors.Is(err, remediate.ErrHolderUnknown):
		fmt.Fprintf(e.stderr, "heapguard stop: %v\n", err)
		return exitUnknown
	}
	fmt.Fprintf(e.stderr, "heapguard stop: %v\n", err)
	return exitCritical
}
