package remediate

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/heapguard/heapguard/host"
)

// What heapguard asks the host about itself: its version, its VMs, a
// kernel setting, whether an agent runs. Each is one argument vector with
// a timeout, parsed by the parsers of this package.

// HostVersion asks `esxcli system version get`, and `vmware -vl` where
// esxcli has no `system` namespace (4.x); source names the command that
// answered.
func HostVersion(ctx context.Context, runner host.Runner, timeout time.Duration) (v Version, source string, err error) {
	res, eerr := runner.Run(ctx, timeout, "esxcli", "system", "version", "get")
	if eerr == nil {
		if v, perr := ParseVersion(bytes.NewReader(res.Stdout)); perr == nil {
			return v, "esxcli system version get", nil
		} else {
			eerr = perr
		}
	}
	res, err = runner.Run(ctx, timeout, "vmware", "-vl")
	if err != nil {
		return Version{}, "", fmt.Errorf("esxcli and vmware -vl failed (%v; %w)", eerr, err)
	}
	if v, err = ParseVmwareV(bytes.NewReader(res.Stdout)); err != nil {
		return Version{}, "", err
	}
	return v, "vmware -vl", nil
}

// ListVMs runs `vim-cmd vmsvc/getallvms` (timeout 0: GetAllVMsTimeout).
// Output it cannot parse gives an error wrapping ErrBadOutput.
func ListVMs(ctx context.Context, runner host.Runner, timeout time.Duration) ([]VMRow, error) {
	res, err := runner.Run(ctx, orDefault(timeout, GetAllVMsTimeout), "vim-cmd", "vmsvc/getallvms")
	if err != nil {
		return nil, fmt.Errorf("vim-cmd vmsvc/getallvms failed: %w", err)
	}
	return ParseGetAllVMs(bytes.NewReader(res.Stdout))
}

// ReadKernelSetting runs `esxcli system settings kernel list -o NAME`.
func ReadKernelSetting(ctx context.Context, runner host.Runner, timeout time.Duration, name string) (KernelSetting, error) {
	res, err := runner.Run(ctx, timeout, "esxcli", "system", "settings", "kernel", "list", "-o", strings.ToLower(name))
	if err != nil {
		return KernelSetting{}, fmt.Errorf("read kernel setting %s: %w", name, err)
	}
	return ParseKernelSetting(bytes.NewReader(res.Stdout), name)
}

// AgentState is what an init script's status says of an agent.
type AgentState struct {
	// Known is false when the status could not be asked (no script, a
	// timeout): nothing may be concluded then.
	Known   bool
	Running bool
}

// AgentStatus runs "<init script> status": exit 0 is running, another
// exit status not running, no answer at all (timeout, no script) unknown,
// with the error.
func AgentStatus(ctx context.Context, runner host.Runner, layout host.Layout, agent string, timeout time.Duration) (AgentState, error) {
	script, err := initScript(layout, agent)
	if err != nil {
		return AgentState{}, err
	}
	res, err := runner.Run(ctx, timeout, statusArgv(script)...)
	switch {
	case err == nil:
		return AgentState{Known: true, Running: true}, nil
	case res.ExitCode > 0:
		return AgentState{Known: true}, nil
	}
	return AgentState{}, fmt.Errorf("%s status: %w", agent, err)
}

// KernelSetting is one row of `esxcli system settings kernel list`.
type KernelSetting struct {
	Name                string
	Configured, Runtime bool
	Default             string
}

// ErrNoSetting is wrapped when the output has no row for the setting.
var ErrNoSetting = errors.New("setting not listed")

// ParseKernelSetting reads the esxcli table (Name, Type, Configured,
// Runtime, Default, Description columns). Unverified: no real output was
// found; the column names follow esxcli's table layout.
func ParseKernelSetting(r io.Reader, name string) (KernelSetting, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	col := map[string]int{}
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "---") {
			continue
		}
		if len(col) == 0 && strings.EqualFold(f[0], "Name") {
			for i, h := range f {
				col[strings.ToLower(h)] = i
			}
			continue
		}
		if !strings.EqualFold(f[0], name) {
			continue
		}
		ci, ok1 := col["configured"]
		ri, ok2 := col["runtime"]
		if !ok1 || !ok2 || ci >= len(f) || ri >= len(f) {
			return KernelSetting{}, fmt.Errorf("parse kernel setting %s: no Configured/Runtime columns in %q", name, sc.Text())
		}
		ks := KernelSetting{Name: f[0], Configured: strings.EqualFold(f[ci], "true"), Runtime: strings.EqualFold(f[ri], "true")}
		if di, ok := col["default"]; ok && di < len(f) {
			ks.Default = f[di]
		}
		return ks, nil
	}
	if err := sc.Err(); err != nil {
		return KernelSetting{}, fmt.Errorf("parse kernel setting %s: %w", name, err)
	}
	return KernelSetting{}, fmt.Errorf("parse kernel setting %s: %w", name, ErrNoSetting)
}
