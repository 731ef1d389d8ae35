package remediate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/heapguard/heapguard/policy"
)

func getStateArgv(vmid string) []string { return []string{"vim-cmd", "vmsvc/power.getstate", vmid} }
func shutdownArgv(vmid string) []string { return []string{"vim-cmd", "vmsvc/power.shutdown", vmid} }
func powerOffArgv(vmid string) []string { return []string{"vim-cmd", "vmsvc/power.off", vmid} }

// checkVMID accepts only a decimal vmid: it is the one piece of data that
// reaches a command line, and a leading "-" must never read as an option.
func checkVMID(id string) error {
	if id == "" {
		return errors.New("no vmid")
	}
	if len(id) > 12 || strings.TrimLeft(id, "0123456789") != "" {
		return fmt.Errorf("bad vmid %q: want decimal digits", id)
	}
	return nil
}

// getState runs power.getstate and parses it.
func (s *session) getState(ctx context.Context, vmid string) (PowerState, error) {
	res, err := s.run(ctx, 0, getStateArgv(vmid)...)
	if err != nil {
		return "", fmt.Errorf("get power state of vmid %s: %w", vmid, err)
	}
	st, err := ParsePowerState(bytes.NewReader(res.Stdout))
	if err != nil {
		return "", fmt.Errorf("get power state of vmid %s: %w", vmid, err)
	}
	return st, nil
}

// powerOff powers a VM off: nothing when it is not running; else a
// graceful shutdown through VMware Tools, polled until the VM is off or
// ShutdownTimeout of host time has passed; a hard power-off when the
// shutdown fails (Tools not running, any other fault) or times out; and a
// final getstate that must say Powered off.
func (s *session) powerOff(ctx context.Context, a policy.Action) error {
	if err := checkVMID(a.VMID); err != nil {
		return fmt.Errorf("power off %q: %w", a.Target, err)
	}
	id := a.VMID
	st, err := s.getState(ctx, id)
	if err != nil {
		// Never act blind: an unknown vmid or a broken vim-cmd stops here.
		return err
	}
	if st != PoweredOn {
		s.note("vmid %s is %s already, nothing done", id, st)
		return nil
	}

	hard := false
	res, err := s.run(ctx, 0, shutdownArgv(id)...)
	switch {
	case err != nil && bytes.Contains(append(res.Stdout, res.Stderr...), []byte("ToolsUnavailable")):
		s.note("VMware Tools is not running: powering off hard at once")
		hard = true
	case err != nil:
		s.note("graceful shutdown failed (%v): powering off hard at once", err)
		hard = true
	}

	if !hard {
		timeout := orDefault(s.live.ShutdownTimeout, DefaultShutdownTimeout)
		poll := orDefault(s.live.PollInterval, DefaultPollInterval)
		deadline := s.clock.Now().Add(timeout)
		off := false
		for i := 0; !off; i++ {
			if !s.clock.Now().Before(deadline) || i >= maxPolls(timeout, poll) {
				s.note("still not off %s after the shutdown: powering off hard", timeout)
				break
			}
			if err := s.clock.Sleep(ctx, poll); err != nil {
				// The wait cannot go on (a paused simulated host): the
				// guest may still be shutting down, so no hard power-off.
				return fmt.Errorf("wait for the shutdown of vmid %s: %w", id, err)
			}
			// A failed poll is not fatal: the next one, or the final check, decides.
			if st, err := s.getState(ctx, id); err == nil && st == PoweredOff {
				off = true
			}
		}
		if off {
			s.note("vmid %s shut down gracefully", id)
			return nil
		}
		hard = true
	}

	// power.off can fail because the VM went off meanwhile
	// (InvalidPowerState); the final getstate is what counts.
	_, offErr := s.run(ctx, 0, powerOffArgv(id)...)
	st, err = s.getState(ctx, id)
	switch {
	case err != nil:
		if offErr != nil {
			return fmt.Errorf("power off vmid %s: %w; then %w", id, offErr, err)
		}
		return fmt.Errorf("power off vmid %s: cannot confirm: %w", id, err)
	case st != PoweredOff:
		if offErr != nil {
			return fmt.Errorf("power off vmid %s: still %s: %w", id, st, offErr)
		}
		return fmt.Errorf("power off vmid %s: still %s after power.off", id, st)
	}
	s.note("vmid %s powered off hard", id)
	return nil
}
