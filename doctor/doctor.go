package doctor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/heapguard/heapguard/collector"
	"github.com/heapguard/heapguard/heap"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

// Finding is one line of `heapguard doctor`: OK, WARNING or CRITICAL
// (printed OK / WARN / FAIL) with its reason.
type Finding struct {
	Check  string       `json:"check"`
	Level  policy.Level `json:"level"`
	Detail string       `json:"detail"`
}

// Options say what to examine.
type Options struct {
	Root     string
	StateDir string
	Runner   host.Runner
	// SelfExe is run as a child process for the runtime self-test
	// (`SelfExe version`); empty skips that part.
	SelfExe string
	Timeout time.Duration
	// Guards are the limits the budgets are judged against (the
	// --max-power-offs and --breaker-after of run and check).
	Guards remediate.GuardLimits
	// Clock is the host's clock, which the budgets' times are in.
	Clock host.Clock
}

// Result says whether heapguard can do its job on this host.
type Result struct {
	Findings []Finding    `json:"findings"`
	Status   policy.Level `json:"status"`
}

func (d *Result) add(check string, l policy.Level, format string, args ...any) {
	d.Findings = append(d.Findings, Finding{Check: check, Level: l, Detail: fmt.Sprintf(format, args...)})
	d.Status = max(d.Status, l)
}

// Run runs every check; none stops the others.
func Run(ctx context.Context, opt Options) *Result {
	if opt.Runner == nil {
		opt.Runner = host.Exec{Root: opt.Root}
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 15 * time.Second
	}
	if opt.Clock == nil {
		opt.Clock = host.SystemClock{}
	}
	d := &Result{Findings: []Finding{}}
	layout := host.DetectLayout(opt.Root)
	major := d.version(ctx, opt)
	d.log(opt, layout)
	d.heaps(ctx, opt)
	d.vimCmd(ctx, opt)
	d.ports(ctx, opt)
	d.initScripts(opt, layout)
	d.stateDir(opt)
	d.locks(opt)
	d.guards(opt)
	d.execInstalledOnly(ctx, opt, major)
	d.runtime(ctx, opt)
	return d
}

func (d *Result) version(ctx context.Context, opt Options) int {
	v, source, err := remediate.HostVersion(ctx, opt.Runner, opt.Timeout)
	if err != nil {
		d.add("version", policy.Warn, "cannot tell the ESXi version: %v", err)
		return 0
	}
	d.add("version", policy.OK, "%s %s build %s (%s)", v.Product, v.Version, v.Build, source)
	return v.Major
}

// log checks that the vmkernel log is there, readable, and in a format
// the parser knows (judged on its last lines).
func (d *Result) log(opt Options, layout host.Layout) {
	p := host.Path(opt.Root, layout.LogPath)
	f, err := os.Open(p)
	if err != nil {
		d.add("log", policy.Crit, "cannot read %s: %v", layout.LogPath, collector.PathCause(err))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		d.add("log", policy.Crit, "%s is not a regular file", layout.LogPath)
		return
	}
	const tailBytes = 64 << 10
	if fi.Size() > tailBytes {
		f.Seek(fi.Size()-tailBytes, io.SeekStart)
	}
	formats := map[collector.Format]int{}
	var lines, unparsed int
	parser := collector.NewParser(0, fi.ModTime())
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines++
		ev, err := parser.Parse(sc.Bytes())
		if err != nil {
			unparsed++
			continue
		}
		if ev.Format != collector.FormatUnknown {
			formats[ev.Format]++
		}
	}
	best, n := collector.FormatUnknown, 0
	for f, c := range formats {
		if c > n {
			best, n = f, c
		}
	}
	switch {
	case lines == 0:
		d.add("log", policy.Warn, "%s is empty; format not known yet", layout.LogPath)
	case n == 0:
		d.add("log", policy.Crit, "%s: none of its last %d lines is in a known vmkernel format", layout.LogPath, lines)
	case unparsed*2 > lines:
		d.add("log", policy.Warn, "%s (%s): %d of the last %d lines unparsed", layout.LogPath, best, unparsed, lines)
	default:
		d.add("log", policy.OK, "%s, format %s, %d of the last %d lines parsed", layout.LogPath, best, lines-unparsed, lines)
	}
}

func (d *Result) heaps(ctx context.Context, opt Options) {
	entries, err := heap.List(ctx, opt.Runner)
	if err != nil {
		d.add("heaps", policy.Crit, "vsish cannot list /system/heaps/: %v", err)
		return
	}
	var names []string
	var netGP *heap.Entry
	for i, e := range entries {
		names = append(names, e.Base)
		if e.Base == "netGPHeap" {
			netGP = &entries[i]
		}
	}
	if netGP == nil {
		d.add("heaps", policy.Warn, "%d heaps listed, no netGPHeap among them: %s", len(entries), strings.Join(names, ", "))
		return
	}
	s, err := heap.Read(ctx, opt.Runner, *netGP)
	if err != nil {
		d.add("heaps", policy.Crit, "%d heaps listed; %s unreadable: %v", len(entries), netGP.Full, err)
		return
	}
	pct, _, ok := s.FreeOfMax()
	if !ok {
		d.add("heaps", policy.Warn, "%d heaps listed; %s has no free-of-max figures", len(entries), netGP.Full)
		return
	}
	d.add("heaps", policy.OK, "%d heaps listed (%s); %s %.1f%% free of max", len(entries), strings.Join(names, ", "), netGP.Full, pct)
}

func (d *Result) vimCmd(ctx context.Context, opt Options) {
	rows, err := remediate.ListVMs(ctx, opt.Runner, opt.Timeout)
	switch {
	case errors.Is(err, remediate.ErrBadOutput):
		d.add("vim-cmd", policy.Warn, "vim-cmd vmsvc/getallvms answered, but: %v", err)
		return
	case err != nil:
		d.add("vim-cmd", policy.Crit, "%v (VMs cannot be powered off)", err)
		return
	}
	d.add("vim-cmd", policy.OK, "vim-cmd vmsvc/getallvms lists %d VMs", len(rows))
}

// ports says whether the host gives the live port list that confirms a
// flapping port's owner before any power-off (remediate.Inventory.OwnerOf).
func (d *Result) ports(ctx context.Context, opt Options) {
	ports, err := remediate.LoadPorts(ctx, opt.Runner, opt.Timeout)
	switch {
	case errors.Is(err, remediate.ErrNoPortList):
		d.add("ports", policy.Warn, "no live port list (%v): a flapping port's VM is powered off only when it is the one registered, powered-on VM declaring the MAC on a present NIC", err)
		d.vmknics(ctx, opt)
		return
	case ports == nil:
		d.add("ports", policy.Warn, "%v: while it fails, no flapping port is confirmed and nothing is powered off", err)
		return
	}
	vm := 0
	for _, p := range ports {
		if p.Type == 5 {
			vm++
		}
	}
	if err != nil {
		d.add("ports", policy.Warn, "net-stats -l lists %d ports (%d of VMs), but: %v", len(ports), vm, err)
		return
	}
	d.add("ports", policy.OK, "net-stats -l lists %d ports (%d of VMs): a flapping port's owner is confirmed live before any power-off", len(ports), vm)
}

// vmknics says whether heapguard knows the host's VMkernel NICs, which on
// a host without a port list are all that tells a vmknic's flapping port
// from a VM's.
func (d *Result) vmknics(ctx context.Context, opt Options) {
	nics, err := remediate.LoadVmknics(ctx, opt.Runner, opt.Timeout)
	if err != nil {
		d.add("vmknics", policy.Warn, "%v: without the VMkernel NICs' MACs no VM is powered off for a flapping port by its MAC alone", err)
		return
	}
	names := make([]string, len(nics))
	for i, n := range nics {
		names[i] = n.Name + " " + n.MAC
	}
	d.add("vmknics", policy.OK, "esxcfg-vmknic -l lists %d VMkernel NICs (%s): a flapping port with one of their MACs is the host's, never a VM's", len(nics), strings.Join(names, ", "))
}

func (d *Result) initScripts(opt Options, layout host.Layout) {
	for _, s := range []struct{ agent, path string }{{"vpxa", layout.VpxaInit}, {"hostd", layout.HostdInit}} {
		if s.path == "" {
			d.add("init "+s.agent, policy.Warn, "no %s init script found", s.agent)
			continue
		}
		fi, err := os.Stat(host.Path(opt.Root, s.path))
		switch {
		case err != nil:
			l := policy.Warn
			if s.agent == "vpxa" {
				l = policy.Crit // heapguard restarts vpxa through it
			}
			d.add("init "+s.agent, l, "%s: %v", s.path, collector.PathCause(err))
		case fi.Mode()&0o111 == 0:
			d.add("init "+s.agent, policy.Crit, "%s is not executable", s.path)
		default:
			d.add("init "+s.agent, policy.OK, "%s", s.path)
		}
	}
}

// volatileDirs are emptied at boot on ESXi (they live on the ramdisk).
var volatileDirs = []string{"/tmp", "/var/run", "/var/tmp", "/etc", "/var/spool"}

// locks says which lock the state folder gets, and where every acting
// instance takes the host-wide lock.
func (d *Result) locks(opt Options) {
	hostDir := host.Path(opt.Root, remediate.HostDir)
	hostLock := remediate.HostDir + " (created by the first acting run)"
	if _, err := os.Stat(hostDir); err == nil {
		kind, err := remediate.LockKind(hostDir)
		if err != nil {
			d.add("lock", policy.Crit, "host lock %s: %v", remediate.HostDir, collector.PathCause(err))
			return
		}
		hostLock = remediate.HostDir + " (" + kind + ")"
	}
	if opt.StateDir == "" {
		d.add("lock", policy.OK, "host-wide lock %s", hostLock)
		return
	}
	kind, err := remediate.LockKind(opt.StateDir)
	// Who acts now, if anyone, read from the lock files as status does.
	var holders string
	for _, l := range []struct{ name, dir string }{{"state folder", opt.StateDir}, {"host", hostDir}} {
		if h, err := remediate.PeekLock(l.dir); err == nil && h.Held {
			holders += fmt.Sprintf("; %s lock %s", l.name, h)
		}
	}
	switch {
	case err != nil:
		d.add("lock", policy.Crit, "the state folder cannot be locked: %v (use a local --state-dir)", collector.PathCause(err))
	case kind != "flock":
		d.add("lock", policy.Warn, "state folder: %s; host-wide: %s%s", kind, hostLock, holders)
	default:
		d.add("lock", policy.OK, "state folder: flock; host-wide: %s%s", hostLock, holders)
	}
}

// guards shows what the budgets and the breaker allow now, as `heapguard
// status` does: a state folder whose budget is spent or whose breaker is
// open is one where heapguard will not act, however fit the host.
func (d *Result) guards(opt Options) {
	if opt.StateDir == "" {
		return
	}
	now := opt.Clock.Now()
	gs, err := remediate.ReadGuardStatus(opt.StateDir, host.Path(opt.Root, remediate.HostDir), opt.Guards, now)
	if err != nil {
		d.add("budgets", policy.Crit, "%v: heapguard will not act until it is fixed", err)
		return
	}
	window := opt.Guards.PowerOffWindow
	if window <= 0 {
		window = remediate.DefaultPowerOffWindow
	}
	in := "in the last " + window.String()
	if window == time.Hour {
		in = "in the last hour"
	}
	level := policy.OK
	text := fmt.Sprintf("%d of %d power-offs left %s (%d spent)", gs.PowerOffsLeft(), gs.MaxPowerOffs, in, gs.PowerOffsInWindow)
	if gs.PowerOffsLeft() == 0 {
		level = policy.Warn
		text += ", next allowed at " + gs.NextPowerOffAt.UTC().Format(time.RFC3339)
	}
	if until, ok := gs.CooldownUntil[policy.Agent]; ok {
		text += fmt.Sprintf("; %s restart cooling down until %s", policy.Agent, until.UTC().Format(time.RFC3339))
	} else {
		text += fmt.Sprintf("; %s restart allowed", policy.Agent)
	}
	d.add("budgets", level, "%s", text)
	after := opt.Guards.BreakerAfter
	if after <= 0 {
		after = remediate.DefaultBreakerAfter
	}
	if gs.BreakerOpen {
		d.add("breaker", policy.Crit, "open since %s after %d failed remediations in a row (last: %s): heapguard will not act until heapguard reset",
			gs.BreakerSince.UTC().Format(time.RFC3339), gs.FailureStreak, gs.LastFailure)
		return
	}
	d.add("breaker", policy.OK, "closed, %d failed remediations in a row (opens at %d)", gs.FailureStreak, after)
}

// private says whether the state folder, its files and the host's lock
// folder are writable by heapguard's user alone: run and check refuse
// them otherwise.
func (d *Result) private(opt Options) {
	hostDir := host.Path(opt.Root, remediate.HostDir)
	err := errors.Join(remediate.CheckStateDir(opt.StateDir),
		remediate.CheckPrivate(hostDir, filepath.Join(hostDir, remediate.GuardsFile)))
	if err != nil {
		d.add("permissions", policy.Crit, "%s; run and check refuse to start until it is fixed", strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	d.add("permissions", policy.OK, "%s and its files are writable by heapguard's user alone", opt.StateDir)
}

func (d *Result) stateDir(opt Options) {
	dir := opt.StateDir
	if dir == "" {
		d.add("state", policy.Warn, "no state folder given")
		return
	}
	if err := remediate.CreateStateDir(dir); err != nil {
		d.add("state", policy.Crit, "cannot create %s: %v", dir, collector.PathCause(err))
		return
	}
	d.private(opt)
	probe := filepath.Join(dir, ".doctor-probe")
	f, err := os.OpenFile(probe, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err == nil {
		_, err = f.Write([]byte("ok\n"))
		err = errors.Join(err, f.Sync(), f.Close())
		os.Remove(probe)
	}
	if err != nil {
		d.add("state", policy.Crit, "%s is not writable: %v (the journal could not be kept, so nothing would be done)", dir, collector.PathCause(err))
		return
	}
	var fs syscall.Statfs_t
	free := "free space unknown"
	level := policy.OK
	if err := syscall.Statfs(dir, &fs); err == nil {
		bytesFree := fs.Bavail * uint64(fs.Bsize)
		free = fmt.Sprintf("%d MiB free", bytesFree>>20)
		if bytesFree < 16<<20 {
			level = policy.Warn
			free += " (under 16 MiB)"
		}
	}
	abs, _ := filepath.Abs(dir)
	hostPath := abs
	if !host.IsRealRoot(opt.Root) {
		rootAbs, _ := filepath.Abs(opt.Root)
		if rel, err := filepath.Rel(rootAbs, abs); err == nil && !strings.HasPrefix(rel, "..") {
			hostPath = "/" + rel
		}
	}
	for _, v := range volatileDirs {
		if hostPath == v || strings.HasPrefix(hostPath, v+"/") {
			d.add("state", policy.Warn, "%s is writable, %s, but under %s, which ESXi empties at boot: budgets and the journal would be lost; use a datastore folder", dir, free, v)
			return
		}
	}
	d.add("state", level, "%s is writable, %s", dir, free)
}

// execInstalledOnly: on ESXi 8 a binary not installed from a VIB is
// refused with "Operation not permitted" when this is enforced.
func (d *Result) execInstalledOnly(ctx context.Context, opt Options, major int) {
	s, err := remediate.ReadKernelSetting(ctx, opt.Runner, opt.Timeout, "execInstalledOnly")
	if _, noAnswer := errors.AsType[*host.CommandError](err); noAnswer && major != 0 && major < 8 {
		d.add("execInstalledOnly", policy.OK, "not enforced (ESXi %d has no such setting in force by default)", major)
		return
	}
	if err != nil {
		d.add("execInstalledOnly", policy.Warn, "cannot read the setting: %v", err)
		return
	}
	switch {
	case s.Runtime:
		d.add("execInstalledOnly", policy.Crit, "enforced: ESXi runs only binaries installed from a VIB, so a copied heapguard "+
			"fails with 'Operation not permitted'; install heapguard from a VIB (or, knowing the risk, set "+
			"VMkernel.Boot.execInstalledOnly to FALSE and reboot)")
	case s.Configured:
		d.add("execInstalledOnly", policy.Warn, "configured TRUE, not yet in force: after the next reboot a copied heapguard will not run; install it from a VIB")
	default:
		d.add("execInstalledOnly", policy.OK, "not enforced")
	}
}

// runtime proves on this kernel what the runtime needs: a timer fires
// (timers go through the netpoller, which dies on ESXi without the
// patched runtime) and a child process runs and is reaped.
func (d *Result) runtime(ctx context.Context, opt Options) {
	start := time.Now()
	t := time.NewTimer(20 * time.Millisecond)
	select {
	case <-t.C:
	case <-time.After(5 * time.Second):
		d.add("runtime", policy.Crit, "a 20ms timer did not fire within 5s")
		return
	}
	timer := time.Since(start)
	if opt.SelfExe == "" {
		d.add("runtime", policy.OK, "timer fired after %s", timer.Round(time.Millisecond))
		return
	}
	// Any exit status proves the point: the child ran and was reaped.
	res, err := host.Exec{}.Run(ctx, opt.Timeout, opt.SelfExe, "version")
	if res.ExitCode < 0 {
		d.add("runtime", policy.Crit, "timer fired after %s, but a child process did not run to its end: %v", timer.Round(time.Millisecond), err)
		return
	}
	level, kind := policy.OK, "ESXi-safe runtime (patched netpoller, tools/rtpatch)"
	if patched, err := PatchedRuntime(opt.SelfExe); err == nil && !patched {
		// It runs here, but this kernel has epoll_pwait; ESXi has not.
		level, kind = policy.Warn, "stock Go runtime: this binary would die on ESXi (no epoll_pwait); build it with make build"
	}
	d.add("runtime", level, "%s; timer fired after %s; child process ran and was reaped in %s (exit status %d)", kind,
		timer.Round(time.Millisecond), res.Duration.Round(time.Millisecond), res.ExitCode)
}

// PatchedRuntime reports whether the binary exe was built with the
// ESXi-safe runtime of tools/rtpatch (it carries patchMarker).
func PatchedRuntime(exe string) (bool, error) {
	b, err := os.ReadFile(exe)
	if err != nil {
		return false, err
	}
	return bytes.Contains(b, []byte("\x00"+patchMarker+"\x00")), nil
}

// patchMarker is a function name tools/rtpatch adds to the runtime; its
// name survives stripping (it is in the pclntab's table of function
// names, between NULs, which is what PatchedRuntime looks for: the same
// words inside a string literal or a message do not count). It is joined
// at run time so that this very string does not put it into a stock
// build's binary.
var patchMarker = strings.Join([]string{"runtime", "esxiEpollWait"}, ".")

// WriteText prints one line per check.
func (d *Result) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, f := range d.Findings {
		fmt.Fprintf(bw, "%-4s  %-18s %s\n", levelWord(f.Level), f.Check, f.Detail)
	}
	fmt.Fprintf(bw, "doctor: %s\n", d.Status)
	return bw.Flush()
}

func levelWord(l policy.Level) string {
	switch l {
	case policy.OK:
		return "OK"
	case policy.Warn:
		return "WARN"
	}
	return "FAIL"
}
