package deploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/heapguard/heapguard/internal/vib"
)

// deploy --vib: heapguard installed as a CommunitySupported VIB with
// esxcli, which is what a host enforcing execInstalledOnly lets run. The
// VIB is unsigned, so the host's acceptance level must be
// CommunitySupported, which only the administrator sets (deploy never
// changes it, nor passes --no-sig-check or --force), and secure boot must
// be off. Sources for esxcli's words: esxsim/testdata/SOURCES.md.

// VIB scripts.
const (
	scriptAcceptanceGet script = "esxcli software acceptance get"
	// esxcli's answer, errors included, is reported as it is.
	scriptVIBInstall script = "esxcli software vib install -v %[1]s 2>&1"
)

// Actions of InstallVIB.
const (
	VIBInstalled Action = "installed VIB" // no heapguard VIB was there
	VIBUnchanged Action = "VIB unchanged" // esxcli skipped it: the same VIB was there
	VIBUpgraded  Action = "upgraded VIB"  // it replaced another heapguard VIB
)

// Errors of InstallVIB's decision (before anything is sent) and of esxcli.
var (
	// ErrAcceptanceLevel: the host's acceptance level is above
	// CommunitySupported.
	ErrAcceptanceLevel = errors.New("the host's acceptance level refuses a CommunitySupported VIB")
	// ErrSecureBoot: with secure boot on, ESXi takes no CommunitySupported VIB.
	ErrSecureBoot = errors.New("secure boot is on: ESXi takes no CommunitySupported VIB")
	// ErrVIBNotInstalled: esxcli failed, or did not say it installed the VIB.
	ErrVIBNotInstalled = errors.New("VIB not installed")
)

// CommunitySupported is the level a host needs for heapguard's VIB.
const CommunitySupported = "CommunitySupported"

// acceptanceLevels, from the most trusted.
var acceptanceLevels = []string{"VMwareCertified", "VMwareAccepted", "PartnerSupported", CommunitySupported}

// ParseAcceptance reads `esxcli software acceptance get`: one of the four
// levels alone on its line; anything else is an error.
func ParseAcceptance(out string) (string, error) {
	f := strings.Fields(out)
	if len(f) == 1 {
		for _, l := range acceptanceLevels {
			if f[0] == l {
				return l, nil
			}
		}
	}
	return "", fmt.Errorf("unrecognised acceptance level %q", clip([]byte(out)))
}

// VIBFile is a checked local VIB ready to send.
type VIBFile struct {
	Path    string
	Size    int64
	SHA256  [sha256.Size]byte
	ID      string // heapguard_bootbank_heapguard_1.2.3-0
	Version string
	// BinarySum is the SHA-256 (hex) of the heapguard binary inside.
	BinarySum string
}

// Sum is the SHA-256 in hex.
func (v VIBFile) Sum() string { return hex.EncodeToString(v.SHA256[:]) }

// CheckVIB refuses anything but a heapguard VIB as make vib builds it: an
// ar archive whose descriptor, payload sizes and checksums agree
// (internal/vib), CommunitySupported, holding a heapguard binary that
// CheckBinary accepts.
func CheckVIB(p string) (VIBFile, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return VIBFile{}, fmt.Errorf("read VIB: %w", err)
	}
	v, err := vib.Read(data)
	if err != nil {
		return VIBFile{}, fmt.Errorf("VIB %s: %w", p, err)
	}
	d := v.Descriptor
	if d.Name != vib.Name || d.AcceptanceLevel != vib.Acceptance {
		return VIBFile{}, fmt.Errorf("VIB %s: %s at acceptance level %s, want heapguard's CommunitySupported VIB (make vib)", p, d.ID(), d.AcceptanceLevel)
	}
	var bin []byte
	found := false
	for _, f := range v.Files {
		if f.Path == vib.BinaryPath {
			bin, found = f.Data, true
		}
	}
	if !found {
		return VIBFile{}, fmt.Errorf("VIB %s: no %s in its payload", p, vib.BinaryPath)
	}
	if err := checkBinaryBytes(bin); err != nil {
		return VIBFile{}, fmt.Errorf("VIB %s: %w", p, err)
	}
	binSum := sha256.Sum256(bin)
	return VIBFile{Path: p, Size: int64(len(data)), SHA256: sha256.Sum256(data), ID: d.ID(), Version: d.Version,
		BinarySum: hex.EncodeToString(binSum[:])}, nil
}

// checkBinaryBytes is CheckBinary for bytes in memory.
func checkBinaryBytes(b []byte) error {
	f, err := os.CreateTemp("", "heapguard-vib-bin-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, werr := f.Write(b)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return werr
	}
	_, err = CheckBinary(f.Name())
	return err
}

// DecideVIB says whether to install a VIB of size bytes on this host,
// whose acceptance level is level ("" unknown): an error to stop before
// any byte is sent, else warnings. execInstalledOnly does not matter: a
// binary installed from a VIB may run.
func (p *Probe) DecideVIB(level string, size int64) (warnings []string, err error) {
	if p.SecureBoot == Yes {
		return nil, fmt.Errorf("%w: nothing was sent. An unsigned VIB needs the acceptance level CommunitySupported, "+
			"which ESXi does not allow with secure boot. Ways out: a partner-signed heapguard VIB, or watching the host "+
			"from outside", ErrSecureBoot)
	}
	if level != "" && level != CommunitySupported {
		return nil, fmt.Errorf("%w: it is %s; nothing was sent. heapguard's VIB is unsigned (CommunitySupported): "+
			"lower the level yourself if you accept what it means for the host's support and security "+
			"(esxcli software acceptance set --level=CommunitySupported); deploy never changes it", ErrAcceptanceLevel, level)
	}
	// The VIB is sent next to where the binary would go, then removed.
	if need := size + SpareBytes; p.FreeBytes >= 0 && p.FreeBytes < need {
		return nil, fmt.Errorf("%w on %s: %s free, the VIB needs %s", ErrNoSpace, p.FreeOn, humanBytes(p.FreeBytes), humanBytes(need))
	}
	if p.Lockdown == Yes {
		warnings = append(warnings, "lockdown mode is on: SSH works only for its exception users (as this one is)")
	}
	for _, u := range p.Unknowns {
		if !strings.HasPrefix(u, "execInstalledOnly") {
			warnings = append(warnings, "unknown "+u+" (installing all the same)")
		}
	}
	return warnings, nil
}

// VIBResult is what `esxcli software vib install` reported.
type VIBResult struct {
	Message                     string
	RebootRequired              bool
	Installed, Removed, Skipped []string
}

// ParseVIBResult reads esxcli's "Installation Result" block.
func ParseVIBResult(out string) (VIBResult, error) {
	var r VIBResult
	seen := false
	fields := 0
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "Installation Result" {
			seen = true
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !seen || !ok {
			continue
		}
		v = strings.TrimSpace(v)
		list := func() []string {
			var ids []string
			for _, id := range strings.Split(v, ",") {
				if id = strings.TrimSpace(id); id != "" {
					ids = append(ids, id)
				}
			}
			return ids
		}
		switch k {
		case "Message":
			r.Message = v
		case "Reboot Required":
			r.RebootRequired = v == "true"
		case "VIBs Installed":
			r.Installed = list()
		case "VIBs Removed":
			r.Removed = list()
		case "VIBs Skipped":
			r.Skipped = list()
		default:
			continue
		}
		fields++
	}
	if !seen || fields < 5 {
		return VIBResult{}, fmt.Errorf("no installation result in %q", clip([]byte(out)))
	}
	return r, nil
}

// InstallVIB installs v on the host with esxcli. First the host is
// probed (ProbeHost, and its acceptance level): where esxcli would refuse
// a CommunitySupported VIB (the level above it, secure boot on) it stops
// and says why and the way out, before sending anything. Otherwise the VIB
// is sent under a partial copy's name to the destination folder (opts.Dest,
// or DefaultDest's), read back and compared, installed with `esxcli
// software vib install -v` within the copy timeout, and removed.
// res.Path is where the binary is then installed.
func InstallVIB(ctx context.Context, c *Client, v VIBFile, opts InstallOptions) (Result, error) {
	res := Result{Target: c.Target, Path: "/" + vib.BinaryPath}
	dest := opts.Dest
	if dest == "" {
		var err error
		if dest, err = DefaultDest(ctx, c, opts.Volumes); err != nil {
			return res, err
		}
	}
	dest = path.Clean(dest)
	if err := checkRemotePath(dest); err != nil {
		return res, err
	}

	probe := ProbeHost(ctx, c, dest)
	res.Probe = &probe
	level := ""
	if out, err := c.probeOutput(ctx, scriptAcceptanceGet); err != nil {
		probe.Unknowns = append(probe.Unknowns, fmt.Sprintf("acceptance level: %v", err))
	} else if level, err = ParseAcceptance(string(out)); err != nil {
		probe.Unknowns = append(probe.Unknowns, fmt.Sprintf("acceptance level: %v", err))
	}
	probe.Acceptance = level
	warnings, err := probe.DecideVIB(level, v.Size)
	res.Warnings = warnings
	if err != nil {
		return res, err
	}
	if opts.ProbeOnly {
		res.Action = Probed
		return res, nil
	}

	if err := c.runScript(ctx, c.cfg.commandTimeout(), scriptMkdir, dest); err != nil {
		return res, fmt.Errorf("create %s: %w", dest, err)
	}
	now := c.cfg.clock()
	if err := removeStaleParts(ctx, c, dest, now); err != nil {
		return res, err
	}
	tmp := path.Join(dest, partName(vibPartDeadline(ctx, c.cfg, now), c.Target.Host, randomHex()))
	defer func() {
		// esxcli keeps its own copy: the sent one goes in every case.
		c.runScript(context.WithoutCancel(ctx), min(c.cfg.commandTimeout(), removeGrace), scriptRemove, tmp)
	}()
	if err := send(ctx, c, Binary{Path: v.Path, Size: v.Size, SHA256: v.SHA256}, tmp); err != nil {
		return res, err
	}
	var out bytes.Buffer
	err = c.pipeScript(ctx, c.cfg.copyTimeout(), scriptVIBInstall, nil, &limitedBuffer{b: &out, n: 64 << 10}, tmp)
	said := oneLine(out.String())
	var re *RemoteError
	switch {
	case errors.As(err, &re):
		return res, fmt.Errorf("%w: esxcli software vib install exited %d: %s", ErrVIBNotInstalled, re.Status, said)
	case err != nil:
		return res, fmt.Errorf("%w: esxcli software vib install: %v", ErrVIBNotInstalled, err)
	}
	r, err := ParseVIBResult(out.String())
	if err != nil {
		return res, fmt.Errorf("%w: esxcli software vib install: %v", ErrVIBNotInstalled, err)
	}
	has := func(ids []string) bool {
		for _, id := range ids {
			if id == v.ID {
				return true
			}
		}
		return false
	}
	switch {
	case has(r.Skipped):
		res.Action = VIBUnchanged
	case has(r.Installed) && len(r.Removed) > 0:
		res.Action = VIBUpgraded
	case has(r.Installed):
		res.Action = VIBInstalled
	default:
		return res, fmt.Errorf("%w: esxcli did not name %s as installed or skipped: %s", ErrVIBNotInstalled, v.ID, said)
	}
	// The binary esxcli put in place is read back: a VIB skipped because
	// one with the same ID is there may hold another build.
	installed := c.cfg.vibRoot + res.Path
	sum, err := remoteSum(ctx, c, installed)
	switch {
	case err != nil:
		return res, fmt.Errorf("%w: esxcli said %s; reading %s back: %v", ErrVIBNotInstalled, res.Action, installed, err)
	case sum == "":
		return res, fmt.Errorf("%w: esxcli said %s, but there is no %s", ErrVIBNotInstalled, res.Action, installed)
	case sum != v.BinarySum && res.Action == VIBUnchanged:
		return res, fmt.Errorf("%w: esxcli skipped %s because a VIB with that ID is installed, and it holds another binary "+
			"(sha256 %.12s, this VIB's is %.12s): give the new build its own version (commit or tag it, then make vib), "+
			"or remove the installed one first (esxcli software vib remove -n heapguard)", ErrVIBNotInstalled, v.ID, sum, v.BinarySum)
	case sum != v.BinarySum:
		return res, fmt.Errorf("%w: esxcli said %s, but %s has sha256 %.12s, this VIB's binary %.12s", ErrVIBNotInstalled, res.Action, installed, sum, v.BinarySum)
	}
	res.SHA256 = sum
	if r.RebootRequired {
		res.Warnings = append(res.Warnings, "esxcli says a reboot is required: "+r.Message)
	}
	return res, nil
}

// vibPartDeadline is partDeadline with esxcli's install time added: the
// copy stays until esxcli has read it.
func vibPartDeadline(ctx context.Context, cfg *Config, now time.Time) time.Time {
	d := now.Add(3*cfg.copyTimeout() + 2*cfg.commandTimeout() + removeGrace)
	if dl, ok := ctx.Deadline(); ok && dl.Before(d) {
		d = dl.Add(removeGrace)
	}
	return d
}

// oneLine is the host's answer on one line: its lines joined with " / ",
// control characters dropped, at most 1000 bytes.
func oneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return -1
			}
			return r
		}, strings.TrimSpace(l))
		if l != "" {
			parts = append(parts, l)
		}
	}
	j := strings.Join(parts, " / ")
	if len(j) > 1000 {
		j = j[:1000] + "…"
	}
	return j
}

// DeployVIB is Deploy with InstallVIB: v installed on the targets, up to
// fleet.Parallel at once, each within fleet.HostTimeout, results handed to
// report as each host finishes and returned in the targets' order.
func DeployVIB(ctx context.Context, targets []Target, cfg *Config, v VIBFile, opts InstallOptions, fleet Fleet, report func(Result)) []Result {
	if fleet.do == nil {
		fleet.do = func(ctx context.Context, t Target) Result { return deployVIBOne(ctx, t, cfg, v, opts) }
	}
	return Deploy(ctx, targets, cfg, Binary{}, opts, fleet, report)
}

// deployVIBOne is deployOne with InstallVIB.
func deployVIBOne(ctx context.Context, t Target, cfg *Config, v VIBFile, opts InstallOptions) Result {
	return onHost(ctx, t, cfg, func(c *Client) (Result, error) { return InstallVIB(ctx, c, v, opts) })
}
