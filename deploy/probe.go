package deploy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/heapguard/heapguard/remediate"
)

// Before copying, Install asks the host what decides whether a copied
// binary can run and survive: its version, execInstalledOnly, secure boot,
// lockdown and the free space where the binary goes. Each question is a
// fixed command; one the host does not have (exit 127) or cannot answer
// leaves that answer unknown, which is said but never refuses the install.

// Probe commands. Sources for their output formats are in docs/deploy.md.
const (
	scriptVmwareVersion script = "vmware -vl"
	scriptEsxcliVersion script = "esxcli system version get"
	scriptKernelEIO     script = "esxcli system settings kernel list -o execinstalledonly"
	scriptAdvancedEIO   script = "esxcli system settings advanced list -o /User/execInstalledOnly"
	scriptSecureBoot    script = "/usr/lib/vmware/secureboot/bin/secureBoot.py -s"
	scriptLockdown      script = "vim-cmd -U dcui vimsvc/auth/lockdown_is_enabled"
	// df of the folder, or of its nearest existing parent (the folder is
	// created only after the probe).
	scriptFreeSpace script = `d=%[1]s; while [ ! -d "$d" ] && [ "$d" != / ]; do d=${d%%/*}; [ -n "$d" ] || d=/; done; exec df -k "$d"`
)

// exitNotFound is the shell's status for a command it cannot find.
const exitNotFound = 127

var errNotFound = errors.New("command not found")

// Probed is the action of --probe-only: the host was asked, not changed.
const Probed Action = "probed"

// Errors of the probe's decision, wrapped with the reason.
var (
	// ErrWillNotRun: the host would refuse to run a copied binary.
	ErrWillNotRun = errors.New("heapguard would not run on this host")
	// ErrNoSpace: the destination's file system lacks room for the binary.
	ErrNoSpace = errors.New("not enough free space")
)

// SpareBytes is room asked for beyond the binary's size.
const SpareBytes = 1 << 20

// Tri is a yes/no answer the host may not have given.
type Tri int8

const (
	Unknown Tri = iota
	No
	Yes
)

func triOf(b bool) Tri {
	if b {
		return Yes
	}
	return No
}

// Probe is what the host said.
type Probe struct {
	Version string // "ESXi 6.5.0 build-7388607"; "" unknown
	// execInstalledOnly: the kernel setting's Runtime and Configured
	// (boot) columns, and the /User/execInstalledOnly advanced option.
	EIORuntime, EIOBoot, EIOAdvanced Tri
	SecureBoot                       Tri
	Lockdown                         Tri
	FreeBytes                        int64  // -1 unknown
	FreeOn                           string // the file system's mount point
	// Acceptance is the host's acceptance level, asked for a VIB install
	// only ("" not asked or unknown).
	Acceptance string
	// Unknowns says, for each answer that stayed unknown, why.
	Unknowns []string
}

// ProbeHost asks the host, each command with the command timeout; dest is
// the folder the binary will go to. It never fails: an answer it cannot
// get stays Unknown, with the reason in Unknowns.
func ProbeHost(ctx context.Context, c *Client, dest string) Probe {
	p := Probe{FreeBytes: -1}
	unknown := func(what string, err error) { p.Unknowns = append(p.Unknowns, fmt.Sprintf("%s: %v", what, err)) }

	var v remediate.Version
	if out, err := c.probeOutput(ctx, scriptVmwareVersion); err == nil {
		if pv, perr := remediate.ParseVmwareV(bytes.NewReader(out)); perr == nil {
			v, p.Version = pv, versionLine(pv)
		}
	}
	if p.Version == "" {
		out, err := c.probeOutput(ctx, scriptEsxcliVersion)
		if err == nil {
			var pv remediate.Version
			if pv, err = remediate.ParseVersion(bytes.NewReader(out)); err == nil {
				v, p.Version = pv, versionLine(pv)
			}
		}
		if err != nil {
			unknown("version", err)
		}
	}

	if out, err := c.probeOutput(ctx, scriptKernelEIO); err != nil {
		unknown("execInstalledOnly", err)
	} else if ks, err := remediate.ParseKernelSetting(bytes.NewReader(out), "execInstalledOnly"); err != nil {
		unknown("execInstalledOnly", err)
	} else {
		p.EIORuntime, p.EIOBoot = triOf(ks.Runtime), triOf(ks.Configured)
	}
	if out, err := c.probeOutput(ctx, scriptAdvancedEIO); err == nil {
		// Only a clear answer counts; this option is not on every version.
		p.EIOAdvanced = ParseAdvancedInt(string(out))
	}

	out, err := c.probeOutput(ctx, scriptSecureBoot)
	switch {
	case err != nil && errors.Is(err, errNotFound) && v.Major > 0 && (v.Major < 6 || v.Major == 6 && v.Minor < 5):
		// ESXi supports UEFI secure boot from 6.5 on, where the script
		// appeared: an older host boots without it.
		p.SecureBoot = No
	case err != nil:
		unknown("secure boot", err)
	default:
		if p.SecureBoot = parseWord(string(out), "enabled", "disabled"); p.SecureBoot == Unknown {
			unknown("secure boot", fmt.Errorf("unrecognised answer %q", clip(out)))
		}
	}

	if out, err := c.probeOutput(ctx, scriptLockdown); err != nil {
		unknown("lockdown", err)
	} else if p.Lockdown = parseWord(string(out), "true", "false"); p.Lockdown == Unknown {
		unknown("lockdown", fmt.Errorf("unrecognised answer %q", clip(out)))
	}

	if out, err := c.probeOutput(ctx, scriptFreeSpace, dest); err != nil {
		unknown("free space", err)
	} else if fs, err := ParseDF(string(out)); err != nil {
		unknown("free space", err)
	} else {
		p.FreeBytes, p.FreeOn = fs.Available, fs.MountedOn
	}
	return p
}

// probeOutput runs s and returns its output (at most 64 KiB). A command
// the host does not have is said so.
func (c *Client) probeOutput(ctx context.Context, s script, paths ...string) ([]byte, error) {
	var out bytes.Buffer
	err := c.pipeScript(ctx, c.cfg.commandTimeout(), s, nil, &limitedBuffer{b: &out, n: 64 << 10}, paths...)
	var re *RemoteError
	if errors.As(err, &re) && re.Status == exitNotFound {
		name, _, _ := strings.Cut(string(s), " ")
		return nil, fmt.Errorf("%s: %w", name, errNotFound)
	}
	return out.Bytes(), err
}

func versionLine(v remediate.Version) string {
	s := strings.TrimSpace(strings.TrimPrefix(v.Product, "VMware "))
	if s == "" {
		s = "ESXi"
	}
	s += " " + v.Version
	if v.Build != "" {
		s += " build-" + v.Build
	}
	return s
}

// parseWord is Yes when the output's first word is yes, No when it is no
// (case aside), else Unknown.
func parseWord(out, yes, no string) Tri {
	f := strings.Fields(out)
	switch {
	case len(f) == 0:
		return Unknown
	case strings.EqualFold(f[0], yes):
		return Yes
	case strings.EqualFold(f[0], no):
		return No
	}
	return Unknown
}

// ParseAdvancedInt reads the "Int Value:" line of `esxcli system settings
// advanced list -o OPTION` (unverified for /User/execInstalledOnly: the
// format is esxcli's for integer options): 0 is No, any other number Yes,
// no such line Unknown.
func ParseAdvancedInt(out string) Tri {
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "Int Value") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return Unknown
		}
		return triOf(n != 0)
	}
	return Unknown
}

func clip(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return s
}

// DFRow is the file system line of `df -k DIR`.
type DFRow struct {
	Filesystem string
	Available  int64 // bytes
	MountedOn  string
}

// ParseDF reads `df -k DIR` (coreutils' and busybox's "1K-blocks", POSIX's
// "1024-blocks", and ESXi's "Bytes" header) and returns its last file
// system line. busybox puts a device name longer than 20 characters on a
// line of its own; the numbers follow on the next. Sizes in other units
// (df -h) are an error.
func ParseDF(out string) (DFRow, error) {
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 4096), 64<<10)
	unit, availCol := int64(0), -1
	var row DFRow
	found := false
	pending := ""
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if unit == 0 {
			if len(f) < 4 || !strings.EqualFold(f[0], "Filesystem") {
				return DFRow{}, fmt.Errorf("parse df: no header in %q", clip([]byte(sc.Text())))
			}
			switch strings.ToLower(f[1]) {
			case "1k-blocks", "1024-blocks":
				unit = 1024
			case "bytes":
				unit = 1
			default:
				return DFRow{}, fmt.Errorf("parse df: sizes in %q, want 1K-blocks", f[1])
			}
			for i, h := range f {
				if strings.EqualFold(h, "Available") || strings.EqualFold(h, "Avail") {
					availCol = i
				}
			}
			if availCol < 2 {
				return DFRow{}, fmt.Errorf("parse df: no Available column in %q", clip([]byte(sc.Text())))
			}
			continue
		}
		if pending != "" {
			f = append([]string{pending}, f...)
			pending = ""
		} else if len(f) == 1 {
			pending = f[0] // busybox: a long device name alone
			continue
		}
		// Filesystem, size, used, available, use%, mount point (which may
		// hold spaces).
		if len(f) < availCol+3 {
			return DFRow{}, fmt.Errorf("parse df: short line %q", clip([]byte(sc.Text())))
		}
		n, err := strconv.ParseInt(f[availCol], 10, 64)
		if err != nil || n < 0 || n > (1<<62)/unit {
			return DFRow{}, fmt.Errorf("parse df: available %q is not a size", f[availCol])
		}
		if !strings.HasSuffix(f[availCol+1], "%") && f[availCol+1] != "-" {
			return DFRow{}, fmt.Errorf("parse df: %q where Use%% should be", f[availCol+1])
		}
		row = DFRow{Filesystem: f[0], Available: n * unit, MountedOn: strings.Join(f[availCol+2:], " ")}
		found = true
	}
	if err := sc.Err(); err != nil {
		return DFRow{}, fmt.Errorf("parse df: %w", err)
	}
	if !found {
		return DFRow{}, errors.New("parse df: no file system line")
	}
	return row, nil
}

// Decide says whether to install a binary of size bytes on this host:
// an error (ErrWillNotRun, ErrNoSpace) to stop before any byte is sent,
// else warnings on what will not work. An unknown answer never stops it.
func (p *Probe) Decide(size int64) (warnings []string, err error) {
	if p.EIORuntime == Yes || p.EIOAdvanced == Yes {
		return nil, fmt.Errorf("%w: execInstalledOnly is enforced at runtime, so a binary copied by hand fails with "+
			"\"Operation not permitted\"; nothing was copied. Two ways out: install heapguard as a VIB (make vib, then "+
			"deploy --vib bin/heapguard-VERSION.vib: the host's acceptance level must allow CommunitySupported "+
			"and secure boot be off), or turn the setting off yourself, knowing what it protects against "+
			"(esxcli system settings kernel set -s execinstalledonly -v FALSE, then reboot; or the runtime option "+
			"/User/execInstalledOnly): deploy never changes it", ErrWillNotRun)
	}
	if need := size + SpareBytes; p.FreeBytes >= 0 && p.FreeBytes < need {
		return nil, fmt.Errorf("%w on %s: %s free, the binary needs %s", ErrNoSpace, p.FreeOn, humanBytes(p.FreeBytes), humanBytes(need))
	}
	if p.EIOBoot == Yes {
		warnings = append(warnings, "execInstalledOnly is configured TRUE for boot but not enforced now: heapguard runs until the next reboot, then fails with \"Operation not permitted\" (install it as a VIB)")
	}
	if p.SecureBoot == Yes {
		warnings = append(warnings, "secure boot is on: /etc/rc.local.d/local.sh does not run at boot, so no persistence mode survives a reboot; only a VIB does")
	}
	if p.Lockdown == Yes {
		warnings = append(warnings, "lockdown mode is on: SSH works only for its exception users (as this one is)")
	}
	for _, u := range p.Unknowns {
		warnings = append(warnings, "unknown "+u+" (installing all the same)")
	}
	return warnings, nil
}

// Line is the probe as deploy prints it before the host's result.
func (p *Probe) Line(t Target) string {
	v := p.Version
	if v == "" {
		v = "version unknown"
	}
	eio := "execInstalledOnly runtime " + tri(p.EIORuntime, "TRUE", "FALSE") + " boot " + tri(p.EIOBoot, "TRUE", "FALSE")
	if p.EIOAdvanced != Unknown {
		eio += " advanced " + tri(p.EIOAdvanced, "1", "0")
	}
	free := "free space unknown"
	if p.FreeBytes >= 0 {
		free = fmt.Sprintf("%s free %s", p.FreeOn, humanBytes(p.FreeBytes))
	}
	line := fmt.Sprintf("%s  %s  %s  secure boot %s  lockdown %s  %s", t, v, eio,
		tri(p.SecureBoot, "enabled", "disabled"), tri(p.Lockdown, "on", "off"), free)
	if p.Acceptance != "" {
		line += "  acceptance " + p.Acceptance
	}
	return line
}

func tri(t Tri, yes, no string) string {
	switch t {
	case Yes:
		return yes
	case No:
		return no
	}
	return "unknown"
}

func humanBytes(n int64) string {
	const k = 1024
	switch {
	case n >= k*k*k:
		return fmt.Sprintf("%d GB", n/(k*k*k))
	case n >= k*k:
		return fmt.Sprintf("%d MB", n/(k*k))
	case n >= k:
		return fmt.Sprintf("%d KB", n/k)
	}
	return fmt.Sprintf("%d bytes", n)
}

// Lines are what deploy prints for a host: the probe, its warnings, then
// the result (for --probe-only, where the binary would go).
func (r Result) Lines() []string {
	var lines []string
	if r.Probe != nil {
		lines = append(lines, r.Probe.Line(r.Target))
	}
	for _, w := range r.Warnings {
		lines = append(lines, fmt.Sprintf("%s  warning  %s", r.Target, w))
	}
	if r.Err == nil && r.Action == Probed {
		return append(lines, fmt.Sprintf("%s  probed  would install to %s (nothing changed)", r.Target, r.Path))
	}
	for _, f := range r.Found {
		lines = append(lines, fmt.Sprintf("%s  found  %s", r.Target, f))
	}
	for _, ch := range r.Changes {
		lines = append(lines, fmt.Sprintf("%s  done  %s", r.Target, ch))
	}
	if r.Doctor != "" {
		verdict := "ok"
		if r.DoctorStatus != 0 {
			verdict = fmt.Sprintf("exit %d", r.DoctorStatus)
		}
		lines = append(lines, fmt.Sprintf("%s  doctor  %s: %s", r.Target, verdict, r.Doctor))
	}
	return append(lines, r.Line())
}
