package esxsim

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/heapguard/heapguard/host"
)

// The services a persistence mode leans on: busybox's crond and inetd as
// real but harmless daemons (they record what they load and how they end
// in the action log instead of running anything), /sbin/auto-backup.sh
// saving the boot script to a simulated bootbank, and Boot, which gives
// the RAM files back as a reboot does.

const (
	// RealBusyboxPath is where a root keeps the real busybox that
	// /bin/busybox hands every applet but crond and inetd to, and that the
	// applet links (sh, cat, …) are.
	RealBusyboxPath = "/usr/lib/esxsim/busybox"
	// AutoBackupPath is ESXi's configuration save (KB 2001780: cron runs it
	// hourly, shutdown.sh runs backup.sh).
	AutoBackupPath = "/sbin/auto-backup.sh"
	// BootbankState is where auto-backup.sh saves files, each under its
	// own path. ESXi packs them in /bootbank/state.tgz; a folder is easier
	// to look at.
	BootbankState = "/bootbank/state"
	// CrondPidFile and InetdPidFile are where the daemons write their pid
	// (local.sh recipes: `kill $(cat /var/run/crond.pid)`).
	CrondPidFile = "/var/run/crond.pid"
	InetdPidFile = "/var/run/inetd.pid"
	// CrontabPath is root's crontab.
	CrontabPath = "/var/spool/cron/crontabs/root"
	// InetdConfPath is inetd's configuration.
	InetdConfPath = "/etc/inetd.conf"
)

// ServiceLifetime is how long a simulated daemon lives at most, so a test
// that forgets one cannot leak it for good. $ESXSIM_SERVICE_LIFETIME (a Go
// duration) shortens it, for the test of the lifetime itself.
const ServiceLifetime = 10 * time.Minute

// serviceLifetime is ServiceLifetime or the shorter one the environment asks for.
func serviceLifetime() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("ESXSIM_SERVICE_LIFETIME")); err == nil && d > 0 && d < ServiceLifetime {
		return d
	}
	return ServiceLifetime
}

// daemonReadyEnv names the file descriptor a daemon started in the
// background reports on once its pid file is written.
const daemonReadyEnv = "ESXSIM_DAEMON_READY_FD"

// busyboxApplets are the applets a root links to the real busybox: what
// ESXi's scripts and local.sh recipes use. One missing from the real
// busybox is skipped. Left out on purpose: what would change the machine a
// test runs on (hostname, reboot, mount, …), as the root runs as its root;
// date stays, for reading (date -s would set this machine's clock).
var busyboxApplets = []string{
	"sh", "ash", "cat", "mkdir", "mv", "cp", "chmod", "chown", "rm", "rmdir", "ls", "grep", "egrep", "fgrep",
	"sed", "awk", "df", "du", "ps", "sleep", "usleep", "printf", "echo", "test", "[", "[[", "head", "tail",
	"wc", "date", "kill", "killall", "pidof", "touch", "ln", "readlink", "realpath", "find", "sort", "uniq",
	"cut", "tr", "env", "setsid", "logger", "xargs", "basename", "dirname", "expr", "true", "false", "pwd",
	"md5sum", "sha1sum", "sha256sum", "stat", "tee", "mktemp", "gzip", "gunzip", "zcat", "tar", "od",
	"hexdump", "timeout", "uname", "id", "which", "vi", "less", "more", "sync", "cmp", "diff",
	"dd", "stty", "tty", "uptime", "nc", "wget", "chgrp", "mkfifo", "seq", "yes",
}

// machineApplets are the busybox applets /bin/busybox refuses: they
// would change the machine a test runs on, not the simulated host.
var machineApplets = []string{"hostname", "reboot", "poweroff", "halt", "init", "mount", "umount", "swapon", "swapoff",
	"ifconfig", "ifup", "ifdown", "ip", "route", "sysctl", "hwclock", "adjtimex", "rdate", "insmod", "rmmod", "modprobe",
	"mknod", "chroot", "pivot_root", "switch_root", "nsenter", "unshare", "setpriv"}

// nohupScript stands in for ESXi busybox's nohup, which Debian's
// busybox-static lacks: it ignores SIGHUP and runs the command.
const nohupScript = "#!/bin/sh\n# esxsim: nohup stand-in (the real busybox here has no nohup applet)\ntrap '' HUP\nexec \"$@\"\n"

// InstallBusybox gives root a busybox as ESXi has it: realBusybox (a
// static busybox) at RealBusyboxPath with the applets ESXi's scripts use
// hard-linked to it under /bin (one name also as /usr/bin/env), and
// /bin/busybox plus, where the version has it, VmwareBusyboxPath linked to
// the multi-call binary, which starts the simulated crond and inetd and
// hands every other applet to the real busybox. Files copied across file
// systems are copies.
func InstallBusybox(root, multiCall, realBusybox string) error {
	st, err := readState(root)
	if err != nil {
		return err
	}
	ver := st.Ver()
	real := host.Path(root, RealBusyboxPath)
	if err := linkOrCopy(realBusybox, real); err != nil {
		return fmt.Errorf("install busybox: %w", err)
	}
	have, err := appletList(realBusybox)
	if err != nil {
		return err
	}
	for _, a := range busyboxApplets {
		if !have[a] {
			continue
		}
		dst := host.Path(root, "/bin/"+a)
		if _, err := os.Lstat(dst); err == nil {
			continue // a simulated tool keeps its name
		}
		if err := linkOrCopy(real, dst); err != nil {
			return fmt.Errorf("install busybox applet %s: %w", a, err)
		}
	}
	if have["env"] {
		if err := linkOrCopy(real, host.Path(root, "/usr/bin/env")); err != nil {
			return fmt.Errorf("install busybox applet env: %w", err)
		}
	}
	if !have["nohup"] {
		if err := writeStock(root, "/bin/nohup.sh", nohupScript); err != nil {
			return err
		}
		if err := os.Rename(host.Path(root, "/bin/nohup.sh"), host.Path(root, "/bin/nohup")); err != nil {
			return err
		}
	}
	wrappers := []string{"/bin/busybox"}
	if ver.VmwareBusybox {
		wrappers = append(wrappers, VmwareBusyboxPath)
	}
	for _, w := range wrappers {
		if err := linkOrCopy(multiCall, host.Path(root, w)); err != nil {
			return fmt.Errorf("install %s: %w", w, err)
		}
	}
	return nil
}

// appletList asks a busybox which applets it has.
func appletList(busybox string) (map[string]bool, error) {
	cmd := exec.Command(busybox, "--list")
	cmd.WaitDelay = time.Second
	done := make(chan struct{})
	timer := time.AfterFunc(10*time.Second, func() {
		select {
		case <-done:
		default:
			if cmd.Process != nil {
				cmd.Process.Kill()
			}
		}
	})
	out, err := cmd.Output()
	close(done)
	timer.Stop()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", busybox, err)
	}
	have := map[string]bool{}
	for _, a := range strings.Fields(string(out)) {
		have[a] = true
	}
	return have, nil
}

// linkOrCopy hard-links src to dst (replacing dst), or copies it.
func linkOrCopy(src, dst string) error {
	if err := ensureDir(dst); err != nil {
		return err
	}
	os.Remove(dst)
	abs, err := filepath.Abs(src)
	if err != nil {
		return err
	}
	if os.Link(abs, dst) == nil {
		return nil
	}
	return copyFile(abs, dst)
}

// runBusybox is /bin/busybox and VmwareBusyboxPath: crond and inetd are
// simulated, the rest is the real busybox.
func runBusybox(c *call) int {
	args := c.args()
	if len(args) > 0 && args[0] == "crond" {
		st, ok := c.state()
		if !ok {
			return 1
		}
		if !st.Ver().BinCrond && !isVmwareBusybox(c.argv[0]) {
			// unverified: the wording; busybox says this for an applet it
			// was built without.
			fmt.Fprintln(c.stderr, "crond: applet not found")
			return 127
		}
		return runDaemon(c, crond)
	}
	if len(args) > 0 && args[0] == "inetd" {
		return runDaemon(c, inetd)
	}
	if len(args) > 0 && slices.Contains(machineApplets, args[0]) {
		fmt.Fprintf(c.stderr, "busybox: %s: refused in a simulated host (it would change the machine the test runs on)\n", args[0])
		return 1
	}
	real := host.Path(c.root, RealBusyboxPath)
	if _, err := os.Stat(real); err != nil {
		fmt.Fprintf(c.stderr, "busybox: no real busybox at %s (esxsim.InstallBusybox)\n", real)
		return 127
	}
	// argv[0] stays "…/busybox", so busybox takes args[0] as the applet.
	err := syscall.Exec(real, c.argv, os.Environ())
	fmt.Fprintf(c.stderr, "busybox: exec %s: %v\n", real, err)
	return 127
}

func isVmwareBusybox(argv0 string) bool {
	return strings.HasSuffix(filepath.ToSlash(argv0), VmwareBusyboxPath)
}

// service is a simulated daemon.
type service struct {
	name    string
	pidFile string
	// load reads what the daemon works from, for the action log.
	load func(root string) string
	// hupReloads: SIGHUP makes it read its configuration again (inetd);
	// otherwise SIGHUP ends it, as busybox crond has no handler for it.
	hupReloads bool
}

var (
	crond = service{name: "crond", pidFile: CrondPidFile, load: func(root string) string { return readOr(root, CrontabPath) }}
	inetd = service{name: "inetd", pidFile: InetdPidFile, load: inetdServices, hupReloads: true}
)

// readOr is the content of a host file, or what went wrong reading it.
func readOr(root, p string) string {
	b, err := os.ReadFile(host.Path(root, p))
	if err != nil {
		return "error: " + err.Error()
	}
	return string(b)
}

// inetdServices are the service lines of the root's inetd.conf.
func inetdServices(root string) string {
	b, err := os.ReadFile(host.Path(root, InetdConfPath))
	if err != nil {
		return "error: " + err.Error()
	}
	return InetdServiceLines(string(b))
}

// InetdServiceLines are an inetd.conf's service lines, trimmed, each with a
// newline: no comments, no blank lines.
func InetdServiceLines(conf string) string {
	var out strings.Builder
	for line := range strings.Lines(conf) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out.WriteString(line + "\n")
	}
	return out.String()
}

// runDaemon starts the service the way busybox does: in the background
// (a new session, its pid in the pid file, the caller returns once it is
// up), or in the foreground with -f.
func runDaemon(c *call, s service) int {
	if slices.Contains(c.args()[1:], "-f") {
		return serve(c, s)
	}
	exe := c.argv[0]
	if !strings.Contains(exe, "/") {
		p, err := exec.LookPath(exe)
		if err != nil {
			fmt.Fprintf(c.stderr, "%s: find own binary: %v\n", s.name, err)
			return 1
		}
		exe = p
	}
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: %v\n", s.name, err)
		return 1
	}
	defer r.Close()
	cmd := exec.Command(exe, s.name, "-f")
	cmd.Args[0] = c.argv[0]
	cmd.Env = append(os.Environ(), daemonReadyEnv+"=3")
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: start: %v\n", s.name, err)
		return 1
	}
	defer cmd.Process.Release()
	r.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(io.LimitReader(r, 64))
	if string(b) != "ok\n" {
		fmt.Fprintf(c.stderr, "%s: did not start (%q, %v)\n", s.name, b, err)
		return 1
	}
	return 0
}

// serve is the daemon itself: it writes its pid file, records that it
// started with what it loaded, and waits for a signal or its lifetime.
func serve(c *call, s service) int {
	pid := strconv.Itoa(os.Getpid())
	if err := writeFileAtomic(host.Path(c.root, s.pidFile), []byte(pid+"\n"), 0o644); err != nil {
		fmt.Fprintf(c.stderr, "%s: pid file: %v\n", s.name, err)
		return 1
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	record := func(result, detail string) {
		logServiceAction(c, s.name, result, detail)
	}
	record("started pid "+pid, s.load(c.root))
	if fd := os.Getenv(daemonReadyEnv); fd != "" {
		os.Unsetenv(daemonReadyEnv)
		if n, err := strconv.Atoi(fd); err == nil {
			f := os.NewFile(uintptr(n), "ready")
			f.WriteString("ok\n")
			f.Close()
		}
	}
	lifetime := serviceLifetime()
	life := time.NewTimer(lifetime)
	defer life.Stop()
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP && s.hupReloads {
				record("reloaded pid "+pid, s.load(c.root))
				continue
			}
			record("stopped pid "+pid+" by "+signalName(sig), "")
			return 0
		case <-life.C:
			record("stopped pid "+pid+" after its lifetime of "+lifetime.String(), "")
			return 0
		}
	}
}

func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return sig.String()
}

// logServiceAction appends a service's Action (Tool is the service name).
func logServiceAction(c *call, tool, result, detail string) {
	var now time.Time
	if err := view(c.root, func(st *State) error { now = st.Now; return nil }); err != nil {
		fmt.Fprintf(c.stderr, "%s: log action: %v\n", tool, err)
		return
	}
	if err := appendAction(c.root, Action{Time: now, Tool: tool, Argv: c.argv, Result: result, Detail: detail}); err != nil {
		fmt.Fprintf(c.stderr, "%s: %v\n", tool, err)
	}
}

// persistentFiles are the files of /etc a reboot keeps when auto-backup.sh
// saved them: the boot script (williamlam.com 2013: local.sh "is
// automatically backed up by ESXi every 1hr", or at once with
// /sbin/auto-backup.sh) and root's SSH keys. Root's crontab is rewritten
// at boot, which is why local.sh recipes re-add their line (33hops.com:
// "the crontab is not persistent").
// unverified: that authorized_keys is among them (known practice, no
// source found); whether ESXi keeps /etc/inetd.conf (taken: no, so a boot
// script must re-add an inetd line, as it must a cron line).
func persistentFiles(ver Version) []string {
	return []string{ver.BootScript(), "/etc/ssh/keys-root/authorized_keys"}
}

// runAutoBackup is /sbin/auto-backup.sh: it saves the persistent files to
// the simulated bootbank and records what it saved.
func runAutoBackup(c *call) int {
	st, ok := c.state()
	if !ok {
		return 1
	}
	var saved []string
	for _, p := range persistentFiles(st.Ver()) {
		b, err := os.ReadFile(host.Path(c.root, p))
		if errors.Is(err, os.ErrNotExist) {
			os.Remove(host.Path(c.root, BootbankState+p))
			continue
		}
		if err == nil {
			fi, _ := os.Stat(host.Path(c.root, p))
			err = writeFileAtomic(host.Path(c.root, BootbankState+p), b, fi.Mode().Perm())
		}
		if err != nil {
			fmt.Fprintf(c.stderr, "auto-backup.sh: save %s: %v\n", p, err)
			logServiceAction(c, "auto-backup.sh", "failed", err.Error())
			return 1
		}
		saved = append(saved, p)
	}
	// unverified: ESXi's wording.
	fmt.Fprintln(c.stdout, "Saving current state in /bootbank")
	logServiceAction(c, "auto-backup.sh", "saved", strings.Join(saved, "\n"))
	return 0
}

// Boot gives root's RAM files back as a reboot of the host does: the
// persistent files from the bootbank (stock, or none, where never saved),
// root's crontab and inetd.conf stock, /var/run and /tmp emptied. It
// records a "boot" Action. It starts nothing: whoever simulates the
// reboot starts crond, inetd and the boot script (deploytest.ESXi.Reboot).
func Boot(root string) error {
	st, err := readState(root)
	if err != nil {
		return err
	}
	ver := st.Ver()
	stock := stockFiles(ver)
	for _, p := range persistentFiles(ver) {
		b, err := os.ReadFile(host.Path(root, BootbankState+p))
		switch {
		case err == nil:
			fi, err := os.Stat(host.Path(root, BootbankState+p))
			if err != nil {
				return err
			}
			if err := ensureDir(host.Path(root, p)); err != nil {
				return err
			}
			if err := writeFileAtomic(host.Path(root, p), b, fi.Mode().Perm()); err != nil {
				return fmt.Errorf("boot: restore %s: %w", p, err)
			}
		case !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("boot: read saved %s: %w", p, err)
		case stock[p] != "":
			if err := writeStock(root, p, stock[p]); err != nil {
				return fmt.Errorf("boot: %s: %w", p, err)
			}
		default:
			if err := os.Remove(host.Path(root, p)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("boot: %w", err)
			}
		}
		delete(stock, p)
	}
	for p, body := range stock {
		if err := writeStock(root, p, body); err != nil {
			return fmt.Errorf("boot: %s: %w", p, err)
		}
	}
	for _, d := range []string{"/var/run", "/tmp"} {
		if err := emptyDir(host.Path(root, d)); err != nil {
			return fmt.Errorf("boot: empty %s: %w", d, err)
		}
	}
	return appendAction(root, Action{Time: st.Now, Tool: "boot", Argv: []string{"boot"}, Result: "rebooted"})
}

func emptyDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// writeFileAtomic writes b to p through a temp file and a rename.
func writeFileAtomic(p string, b []byte, mode os.FileMode) error {
	if err := ensureDir(p); err != nil {
		return err
	}
	tmp := p + ".esxsim-tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
