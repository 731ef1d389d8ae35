package deploy

import (
	"context"
	"fmt"
)

// Deploy installs bin on each target in turn and hands each result to
// report as soon as it is known; a host that fails does not stop the
// others. It returns how many failed.
func Deploy(ctx context.Context, targets []Target, cfg *Config, bin Binary, opts InstallOptions, report func(Result)) int {
	failed := 0
	for _, t := range targets {
		r := deployOne(ctx, t, cfg, bin, opts)
		if r.Err != nil {
			failed++
		}
		report(r)
	}
	return failed
}

func deployOne(ctx context.Context, t Target, cfg *Config, bin Binary, opts InstallOptions) Result {
	t = cfg.withUser(t)
	c, err := Dial(ctx, t, cfg)
	if err != nil {
		return Result{Target: t, Err: err}
	}
	defer c.Close()
	r, err := Install(ctx, c, bin, opts)
	r.Target, r.Err = c.Target, err
	return r
}

// Line is the result as deploy prints it: host, action, the first 12 hex
// digits of the installed binary's SHA-256, and where it is (or the
// error).
func (r Result) Line() string {
	if r.Err != nil {
		return fmt.Sprintf("%s  failed  %v", r.Target, r.Err)
	}
	return fmt.Sprintf("%s  %s  sha256:%.12s  %s", r.Target, r.Action, r.SHA256, r.Path)
}
