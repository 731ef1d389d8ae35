package agent

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
	"github.com/heapguard/heapguard/remediate"
)

// Finding is one line of `heapguard doctor`: OK, WARNING or CRITICAL
// (printed OK / WARN / FAIL) with its reason.
type Finding struct {
	Check  string `json:"check"`
	Level  Level  `json:"level"`
	Detail string `json:"detail"`
}

// DoctorOptions say what to examine.
type DoctorOptions struct {
	Root     string
	StateDir string
	Runner   host.Runner
	// SelfExe is run as a child process for the runtime self-test
	// (`SelfExe version`); empty skips that part.
	SelfExe string
	Timeout time.Duration
}

// Doctor reports whether heapguard can do its job on this host.
type Doctor struct {
	Findings []Finding `json:"findings"`
	Status   Level     `json:"status"`
}

func (d *Doctor) add(check string, l Level, format string, args ...any) {
	d.Findings = append(d.Findings, Finding{Check: check, Level: l, Detail: fmt.Sprintf(format, args...)})
	d.Status = max(d.Status, l)
}

// RunDoctor runs every check; none stops the others.
func RunDoctor(ctx context.Context, opt DoctorOptions) *Doctor {
	if opt.Runner == nil {
		opt.Runner = host.Exec{Root: opt.Root}
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 15 * time.Second
	}
	d := &Doctor{Findings: []Finding{}}
	layout := host.DetectLayout(opt.Root)
	major := d.version(ctx, opt)
	d.log(opt, layout)
	d.heaps(ctx, opt)
	d.vimCmd(ctx, opt)
	d.ports(ctx, opt)
	d.initScripts(opt, layout)
	d.stateDir(opt)
	d.execInstalledOnly(ctx, opt, major)
	d.runtime(ctx, opt)
	return d
}

func (d *Doctor) version(ctx context.Context, opt DoctorOptions) int {
	if res, err := opt.Runner.Run(ctx, opt.Timeout, "esxcli", "system", "version", "get"); err == nil {
		if v, err := remediate.ParseVersion(bytes.NewReader(res.Stdout)); err == nil {
			d.add("version", OK, "%s %s build %s (esxcli system version get)", v.Product, v.Version, v.Build)
			return v.Major
		}
	}
	// ESXi 4.x has no `esxcli system`; `vmware -vl` answers everywhere.
	res, err := opt.Runner.Run(ctx, opt.Timeout, "vmware", "-vl")
	if err != nil {
		d.add("version", Warn, "cannot tell the ESXi version: esxcli and vmware -vl failed (%v)", err)
		return 0
	}
	v, err := remediate.ParseVmwareV(bytes.NewReader(res.Stdout))
	if err != nil {
		d.add("version", Warn, "cannot tell the ESXi version: %v", err)
		return 0
	}
	d.add("version", OK, "%s %s build %s (vmware -vl)", v.Product, v.Version, v.Build)
	return v.Major
}

// log checks that the vmkernel log is there, readable, and in a format
// the parser knows (judged on its last lines).
func (d *Doctor) log(opt DoctorOptions, layout host.Layout) {
	p := host.Path(opt.Root, layout.LogPath)
	f, err := os.Open(p)
	if err != nil {
		d.add("log", Crit, "cannot read %s: %v", layout.LogPath, pathCause(err))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		d.add("log", Crit, "%s is not a regular file", layout.LogPath)
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
		d.add("log", Warn, "%s is empty; format not known yet", layout.LogPath)
	case n == 0:
		d.add("log", Crit, "%s: none of its last %d lines is in a known vmkernel format", layout.LogPath, lines)
	case unparsed*2 > lines:
		d.add("log", Warn, "%s (%s): %d of the last %d lines unparsed", layout.LogPath, best, unparsed, lines)
	default:
		d.add("log", OK, "%s, format %s, %d of the last %d lines parsed", layout.LogPath, best, lines-unparsed, lines)
	}
}

func (d *Doctor) heaps(ctx context.Context, opt DoctorOptions) {
	entries, err := heap.List(ctx, opt.Runner)
	if err != nil {
		d.add("heaps", Crit, "vsish cannot list /system/heaps/: %v", err)
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
		d.add("heaps", Warn, "%d heaps listed, no netGPHeap among them: %s", len(entries), strings.Join(names, ", "))
		return
	}
	s, err := heap.Read(ctx, opt.Runner, *netGP)
	if err != nil {
		d.add("heaps", Crit, "%d heaps listed; %s unreadable: %v", len(entries), netGP.Full, err)
		return
	}
	pct, _, ok := s.FreeOfMax()
	if !ok {
		d.add("heaps", Warn, "%d heaps listed; %s has no free-of-max figures", len(entries), netGP.Full)
		return
	}
	d.add("heaps", OK, "%d heaps listed (%s); %s %.1f%% free of max", len(entries), strings.Join(names, ", "), netGP.Full, pct)
}

func (d *Doctor) vimCmd(ctx context.Context, opt DoctorOptions) {
	res, err := opt.Runner.Run(ctx, opt.Timeout, "vim-cmd", "vmsvc/getallvms")
	if err != nil {
		d.add("vim-cmd", Crit, "vim-cmd vmsvc/getallvms failed: %v (VMs cannot be powered off)", err)
		return
	}
	rows, err := remediate.ParseGetAllVMs(bytes.NewReader(res.Stdout))
	if err != nil {
		d.add("vim-cmd", Warn, "vim-cmd vmsvc/getallvms answered, but: %v", err)
		return
	}
	d.add("vim-cmd", OK, "vim-cmd vmsvc/getallvms lists %d VMs", len(rows))
}

// ports says whether the host gives the live port list that confirms a
// flapping port's owner before any power-off (remediate.Inventory.OwnerOf).
func (d *Doctor) ports(ctx context.Context, opt DoctorOptions) {
	ports, err := remediate.LoadPorts(ctx, opt.Runner, opt.Timeout)
	if ports == nil {
		d.add("ports", Warn, "no live port list (%v): a flapping port's VM is powered off only when it is the one registered, powered-on VM declaring the MAC on a present NIC", err)
		return
	}
	vm := 0
	for _, p := range ports {
		if p.Type == 5 {
			vm++
		}
	}
	if err != nil {
		d.add("ports", Warn, "net-stats -l lists %d ports (%d of VMs), but: %v", len(ports), vm, err)
		return
	}
	d.add("ports", OK, "net-stats -l lists %d ports (%d of VMs): a flapping port's owner is confirmed live before any power-off", len(ports), vm)
}

func (d *Doctor) initScripts(opt DoctorOptions, layout host.Layout) {
	for _, s := range []struct{ agent, path string }{{"vpxa", layout.VpxaInit}, {"hostd", layout.HostdInit}} {
		if s.path == "" {
			d.add("init "+s.agent, Warn, "no %s init script found", s.agent)
			continue
		}
		fi, err := os.Stat(host.Path(opt.Root, s.path))
		switch {
		case err != nil:
			l := Warn
			if s.agent == "vpxa" {
				l = Crit // heapguard restarts vpxa through it
			}
			d.add("init "+s.agent, l, "%s: %v", s.path, pathCause(err))
		case fi.Mode()&0o111 == 0:
			d.add("init "+s.agent, Crit, "%s is not executable", s.path)
		default:
			d.add("init "+s.agent, OK, "%s", s.path)
		}
	}
}

// volatileDirs are emptied at boot on ESXi (they live on the ramdisk).
var volatileDirs = []string{"/tmp", "/var/run", "/var/tmp", "/etc", "/var/spool"}

func (d *Doctor) stateDir(opt DoctorOptions) {
	dir := opt.StateDir
	if dir == "" {
		d.add("state", Warn, "no state folder given")
		return
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		d.add("state", Crit, "cannot create %s: %v", dir, pathCause(err))
		return
	}
	probe := filepath.Join(dir, ".doctor-probe")
	f, err := os.OpenFile(probe, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err == nil {
		_, err = f.Write([]byte("ok\n"))
		err = errors.Join(err, f.Sync(), f.Close())
		os.Remove(probe)
	}
	if err != nil {
		d.add("state", Crit, "%s is not writable: %v (the journal could not be kept, so nothing would be done)", dir, pathCause(err))
		return
	}
	var fs syscall.Statfs_t
	free := "free space unknown"
	level := OK
	if err := syscall.Statfs(dir, &fs); err == nil {
		bytesFree := fs.Bavail * uint64(fs.Bsize)
		free = fmt.Sprintf("%d MiB free", bytesFree>>20)
		if bytesFree < 16<<20 {
			level = Warn
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
			d.add("state", Warn, "%s is writable, %s, but under %s, which ESXi empties at boot: budgets and the journal would be lost; use a datastore folder", dir, free, v)
			return
		}
	}
	d.add("state", level, "%s is writable, %s", dir, free)
}

// execInstalledOnly: on ESXi 8 a binary not installed from a VIB is
// refused with "Operation not permitted" when this is enforced.
func (d *Doctor) execInstalledOnly(ctx context.Context, opt DoctorOptions, major int) {
	res, err := opt.Runner.Run(ctx, opt.Timeout, "esxcli", "system", "settings", "kernel", "list", "-o", "execinstalledonly")
	if err != nil {
		if major != 0 && major < 8 {
			d.add("execInstalledOnly", OK, "not enforced (ESXi %d has no such setting in force by default)", major)
		} else {
			d.add("execInstalledOnly", Warn, "cannot read the setting: %v", err)
		}
		return
	}
	s, err := ParseKernelSetting(bytes.NewReader(res.Stdout), "execInstalledOnly")
	if err != nil {
		d.add("execInstalledOnly", Warn, "cannot read the setting: %v", err)
		return
	}
	switch {
	case s.Runtime:
		d.add("execInstalledOnly", Crit, "enforced: ESXi runs only binaries installed from a VIB, so a copied heapguard "+
			"fails with 'Operation not permitted'; install heapguard from a VIB (or, knowing the risk, set "+
			"VMkernel.Boot.execInstalledOnly to FALSE and reboot)")
	case s.Configured:
		d.add("execInstalledOnly", Warn, "configured TRUE, not yet in force: after the next reboot a copied heapguard will not run; install it from a VIB")
	default:
		d.add("execInstalledOnly", OK, "not enforced")
	}
}

// runtime proves on this kernel what the runtime needs: a timer fires
// (timers go through the netpoller, which dies on ESXi without the
// patched runtime) and a child process runs and is reaped.
func (d *Doctor) runtime(ctx context.Context, opt DoctorOptions) {
	start := time.Now()
	t := time.NewTimer(20 * time.Millisecond)
	select {
	case <-t.C:
	case <-time.After(5 * time.Second):
		d.add("runtime", Crit, "a 20ms timer did not fire within 5s")
		return
	}
	timer := time.Since(start)
	if opt.SelfExe == "" {
		d.add("runtime", OK, "timer fired after %s", timer.Round(time.Millisecond))
		return
	}
	// Any exit status proves the point: the child ran and was reaped.
	res, err := host.Exec{}.Run(ctx, opt.Timeout, opt.SelfExe, "version")
	if res.ExitCode < 0 {
		d.add("runtime", Crit, "timer fired after %s, but a child process did not run to its end: %v", timer.Round(time.Millisecond), err)
		return
	}
	level, kind := OK, "ESXi-safe runtime (patched netpoller, tools/rtpatch)"
	if b, err := os.ReadFile(opt.SelfExe); err == nil && !bytes.Contains(b, []byte(patchMarker)) {
		// It runs here, but this kernel has epoll_pwait; ESXi has not.
		level, kind = Warn, "stock Go runtime: this binary would die on ESXi (no epoll_pwait); build it with make build"
	}
	d.add("runtime", level, "%s; timer fired after %s; child process ran and was reaped in %s (exit status %d)", kind,
		timer.Round(time.Millisecond), res.Duration.Round(time.Millisecond), res.ExitCode)
}

// patchMarker is a function name tools/rtpatch adds to the runtime; its
// name survives stripping (it is in the pclntab), so it tells a shipped
// build from a stock one. It is joined at run time so that this very
// string does not put the marker into a stock build's binary.
var patchMarker = strings.Join([]string{"runtime", "esxiEpollWait"}, ".")

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

// WriteText prints one line per check.
func (d *Doctor) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	for _, f := range d.Findings {
		ew.printf("%-4s  %-18s %s\n", levelWord(f.Level), f.Check, f.Detail)
	}
	ew.printf("doctor: %s\n", d.Status)
	return ew.err
}

func levelWord(l Level) string {
	switch l {
	case OK:
		return "OK"
	case Warn:
		return "WARN"
	}
	return "FAIL"
}
