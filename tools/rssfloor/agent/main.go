// Command agent is the daemon's loop (agent.Watcher.Run) with `heapguard
// run`'s defaults and a plain zap logger: the daemon as a program of its
// own, without the other commands (deploy's SSH client, serve, the
// reports) that bin/heapguard carries.
//
//	agent ROOT STATE-DIR
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/heapguard/heapguard/agent"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
	"github.com/heapguard/heapguard/tools/rssfloor"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: agent ROOT STATE-DIR")
		os.Exit(2)
	}
	rssfloor.Tune()
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
}

func run(root, state string) error {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(os.Stderr), zapcore.InfoLevel))
	runner := host.Exec{Root: root}
	clock, err := host.ClockFromEnv(os.Getenv, root, runner)
	if err != nil {
		return err
	}
	w, err := agent.Open(agent.Options{
		Root: root, StateDir: state, Interval: agent.DefaultInterval, Policy: policy.DefaultConfig(),
		Guards:     remediate.GuardLimits{MaxPowerOffs: remediate.DefaultMaxPowerOffs, BreakerAfter: remediate.DefaultBreakerAfter},
		FlapCycles: 10, FlapWindow: 5 * time.Minute,
		ShutdownTimeout: remediate.DefaultShutdownTimeout, CommandTimeout: remediate.DefaultCommandTimeout,
		Logger: log, Clock: clock, Runner: runner,
	})
	if err != nil {
		return err
	}
	defer w.Close()
	return w.Run(context.Background(), 0, func(agent.Result) {})
}
