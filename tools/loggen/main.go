// Command loggen writes synthetic vmkernel logs to stdout:
//
//	go run ./tools/loggen incident > messages
//	go run ./tools/loggen bench -lines 8000000 > vmkernel.log
//	go run ./tools/loggen bench -lines 8000000 -event-ratio 0.1 > vmkernel.log
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/heapguard/heapguard/internal/loggen"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprintln(stderr, "usage: loggen incident [-seed N] | bench [-lines N] [-seed N] [-ports N] [-event-ratio R]")
		return 2
	}
	fs := flag.NewFlagSet("loggen "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Uint64("seed", 1, "random seed")
	var err error
	switch args[0] {
	case "incident":
		if err = fs.Parse(args[1:]); err == nil {
			err = loggen.Incident(stdout, *seed)
		}
	case "bench":
		lines := fs.Int("lines", 8_000_000, "number of lines")
		ports := fs.Int("ports", 0, "flapping ports (0: default)")
		ratio := fs.Float64("event-ratio", 0, "share of port lines, 0 < r < 1 (0: the default noise, about 0.074)")
		if err = fs.Parse(args[1:]); err == nil {
			if *ratio < 0 || *ratio >= 1 {
				err = fmt.Errorf("-event-ratio %g: want 0 < r < 1, or 0 for the default", *ratio)
				break
			}
			err = loggen.Bench(stdout, *lines, loggen.BenchOptions{Seed: *seed, Ports: *ports, EventRatio: *ratio})
		}
	default:
		err = fmt.Errorf("unknown log %q (incident, bench)", args[0])
	}
	if errors.Is(err, flag.ErrHelp) {
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "loggen:", err)
		return 1
	}
	return 0
}
