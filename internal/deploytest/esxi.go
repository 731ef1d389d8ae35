package deploytest

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heapguard/heapguard/esxsim"
)

// ESXi is a simulated ESXi host reachable over SSH: a real sshd on loopback
// whose every session runs chrooted in an esxsim root, as
// `/usr/sbin/chroot ROOT /bin/sh -c "$SSH_ORIGINAL_COMMAND"`, with a
// static busybox as the shell and its applets, esxsim's vim-cmd, esxcli,
// vsish, init scripts, and real but harmless crond and inetd processes
// (esxsim/services.go). Everything runs as root.
//
// What differs from ESXi: /proc is a folder holding only a mounts file
// (the root as one file system, "visorfs"), so busybox df answers with
// the real figures of the test's file system in busybox's format, and ps
// shows nothing (use pid files), unless ESXiOptions.Proc. Sessions run as
// this machine's root, in its network and (without Proc) host name
// namespaces: a command that changes the machine changes it, so busybox's
// applets that would (hostname, reboot, mount, …) are refused. The shell
// is Debian's busybox (1.35 when written), not VMware's build; sshd is the
// machine's OpenSSH.
type ESXi struct {
	*Server              // the sshd: Addr, Port, HostKeys, KnownHostsLine, Log
	Host    *esxsim.Host // the simulated host: Root, Path, Actions, State, …
	Version esxsim.Version

	tb   testing.TB
	root string // Host.Root() with symlinks resolved: what /proc/PID/root shows
	// enter is the argument vector that runs the rest of a command line
	// inside the root.
	enter []string
}

// ESXiOptions shape a simulated host.
type ESXiOptions struct {
	// Scenario is the host's scenario; nil: esxsim.Incident() (ESXi 5.5).
	Scenario *esxsim.Scenario
	// Version overrides the scenario's ESXi version ("4.1", "6.7", "8.0", …).
	Version string
	// SSH shapes the sshd (host keys, authorized keys, extra config and
	// environment). Its Env comes after the session's PATH and HOME, so it
	// can override them.
	SSH Options
	// MultiCall is the esxsim multi-call binary; "": esxsim.BuildBinary.
	MultiCall string
	// Proc gives every session and Run a real procfs at /proc, in a mount
	// namespace of its own (util-linux's unshare; the root is bind-mounted
	// on itself so that busybox df finds it in the mount table), for a
	// program that needs /proc/self/exe (Go's os.Executable). Its processes
	// list every process of the machine, other tests' too. A session has
	// its own host name namespace too. Without Proc,
	// /proc holds only a mounts file. Whether ESXi has a procfs with
	// /proc/self/exe is unverified.
	Proc bool
}

// procLauncher runs inside a new mount namespace: $0 is the root, "$@" the
// command to run inside it.
const procLauncher = `mount --bind "$0" "$0" && mount -t proc proc "$0/proc" && exec chroot "$0" "$@"`

// SessionPath is the PATH of a session and of Run, as on ESXi.
const SessionPath = "/bin:/sbin:/usr/bin:/usr/sbin"

// RunTimeout bounds Run and the boot script of Reboot.
const RunTimeout = 30 * time.Second

// StartESXi lays out a simulated host (esxsim.New), gives it busybox and
// /dev's null, zero, random and urandom, starts crond and inetd in it as a
// boot does, and starts sshd. It needs root (chroot, mknod): it skips the
// test when not root, and fails it when CI=true. When the test ends every
// process inside the root is killed, after sshd has stopped.
func StartESXi(t testing.TB, o ESXiOptions) *ESXi {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("StartESXi needs root (chroot, mknod); CI runs the tests as root")
		}
		t.Skip("StartESXi needs root (chroot, mknod)")
	}
	chroot := tool(t, "chroot", "/usr/sbin/chroot", "coreutils")
	var unshare string
	if o.Proc {
		unshare = tool(t, "unshare", "/usr/bin/unshare", "util-linux")
		tool(t, "mount", "/usr/bin/mount", "mount")
	}
	busybox := staticBusybox(t)
	multi := o.MultiCall
	if multi == "" {
		multi = esxsim.BuildBinary(t)
	}
	sc := esxsim.Incident()
	if o.Scenario != nil {
		sc = *o.Scenario
	}
	opts := []esxsim.Option{esxsim.WithBinary(multi)}
	if o.Version != "" {
		opts = append(opts, esxsim.WithVersion(o.Version))
	}
	h := esxsim.New(t, sc, opts...)
	root, err := filepath.EvalSymlinks(h.Root())
	if err != nil {
		t.Fatal(err)
	}
	// The root goes into sshd's ForceCommand line as it is.
	if !regexp.MustCompile(`^/[A-Za-z0-9/._-]+$`).MatchString(root) {
		t.Fatalf("simulated root %q: want only letters, digits and /._- in it", root)
	}
	if err := esxsim.InstallBusybox(root, multi, busybox); err != nil {
		t.Fatal(err)
	}
	if err := makeDev(root); err != nil {
		t.Fatalf("simulated host's /dev (needs root and a file system that allows device nodes): %v", err)
	}
	for p, body := range map[string]string{
		"/etc/passwd": "root:x:0:0:Administrator:/:/bin/sh\n",
		"/etc/group":  "root:x:0:root\n",
		// No procfs: a session would see every process of the machine,
		// other tests' daemons too. busybox df needs only the mount table,
		// and the root is one file system.
		"/proc/mounts": "visorfs / visorfs rw 0 0\n",
	} {
		if err := os.MkdirAll(filepath.Dir(h.Path(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(h.Path(p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e := &ESXi{Host: h, Version: h.State().Ver(), tb: t, root: root, enter: []string{chroot, root}}
	if o.Proc {
		// The private propagation keeps the mounts out of this machine's
		// namespace; they go when the namespace's last process ends.
		e.enter = []string{unshare, "--mount", "--uts", "--propagation", "private", "/bin/sh", "-c", procLauncher, root}
	}
	// Registered before sshd's: it runs after sshd has stopped, so no
	// session can start a process behind it.
	t.Cleanup(func() { e.KillAll() })
	e.startServices()
	ssh := o.SSH
	ssh.Env = append([]string{"PATH=" + SessionPath, "HOME=/"}, ssh.Env...)
	force := chroot + " " + root
	if o.Proc {
		force = fmt.Sprintf("%s --mount --uts --propagation private /bin/sh -c '%s' %s", unshare, procLauncher, root)
	}
	ssh.Config = fmt.Sprintf("ForceCommand exec %s /bin/sh -c \"$SSH_ORIGINAL_COMMAND\"\n", force) + ssh.Config
	e.Server = Start(t, ssh)
	return e
}

// Root is the simulated root (symlinks resolved).
func (e *ESXi) Root() string { return e.root }

// RunResult is how a command inside the root ended.
type RunResult struct {
	Stdout, Stderr string
	Exit           int
}

// Run runs a shell script inside the root, as root with PATH=SessionPath
// and HOME=/, not over SSH, within RunTimeout; it fails the test when the
// script cannot start or does not end in time.
func (e *ESXi) Run(script string) RunResult {
	e.tb.Helper()
	return e.RunArgv(RunTimeout, "/bin/sh", "-c", script)
}

// RunArgv runs an argument vector inside the root within timeout (see Run).
// The script's standard output and error are files, so a background child
// that keeps them open does not hold RunArgv up.
func (e *ESXi) RunArgv(timeout time.Duration, argv ...string) RunResult {
	e.tb.Helper()
	res, err := e.runArgv(timeout, argv...)
	if err != nil {
		e.tb.Fatalf("simulated host: %v", err)
	}
	return res
}

func (e *ESXi) runArgv(timeout time.Duration, argv ...string) (RunResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "esxi-run-")
	if err != nil {
		return RunResult{}, err
	}
	defer os.RemoveAll(dir)
	stdout, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		return RunResult{}, err
	}
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		return RunResult{}, err
	}
	defer stderr.Close()
	cmd := exec.CommandContext(ctx, e.enter[0], append(slices.Clone(e.enter[1:]), argv...)...)
	cmd.Env = []string{"PATH=" + SessionPath, "HOME=/"}
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err = cmd.Run()
	var res RunResult
	out, _ := os.ReadFile(stdout.Name())
	errOut, _ := os.ReadFile(stderr.Name())
	res.Stdout, res.Stderr = string(out), string(errOut)
	if ctx.Err() != nil {
		return res, fmt.Errorf("%q did not end within %s (stdout %q, stderr %q)", argv, timeout, res.Stdout, res.Stderr)
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		res.Exit = exit.ExitCode()
	default:
		return res, fmt.Errorf("run %q: %w (stderr %q)", argv, err, res.Stderr)
	}
	return res, nil
}

// startServices starts crond and inetd as a boot does, each with the
// busybox that starts it on this version.
// unverified: whether 6.5 and later still run inetd (taken: yes, as
// esxsim lays out an inetd.conf for every version).
func (e *ESXi) startServices() {
	e.tb.Helper()
	for _, argv := range [][]string{{e.Version.CrondBusybox(), "crond"}, {"/bin/busybox", "inetd"}} {
		if r := e.RunArgv(RunTimeout, argv...); r.Exit != 0 {
			e.tb.Fatalf("simulated boot: %q: exit %d, %s", argv, r.Exit, r.Stderr)
		}
	}
}

// Reboot simulates a reboot: every process inside the root is killed, the
// RAM files come back as a boot gives them (esxsim.Boot: the boot script
// as auto-backup.sh last saved it, else stock; root's crontab and
// inetd.conf stock; /var/run and /tmp empty), crond and inetd start, and
// the boot script runs inside the root (/etc/rc.local.d/local.sh, or
// /etc/rc.local on 4.x and 5.0), whose result it returns.
func (e *ESXi) Reboot() RunResult {
	e.tb.Helper()
	if left := e.kill(); len(left) > 0 {
		e.tb.Fatalf("simulated reboot: processes outlived SIGKILL: %v", left)
	}
	if err := esxsim.Boot(e.root); err != nil {
		e.tb.Fatalf("simulated reboot: %v", err)
	}
	e.startServices()
	return e.RunArgv(RunTimeout, "/bin/sh", e.Version.BootScript())
}

// Proc is a process running inside the root.
type Proc struct {
	PID  int
	Argv []string
}

// Procs lists the processes running inside the root (those whose
// /proc/PID/root is it).
func (e *ESXi) Procs() []Proc { return procsIn(e.root) }

// Pids are the pids of the processes inside the root whose argv contains
// word (e.g. "crond", "heapguard").
func (e *ESXi) Pids(word string) []int {
	var pids []int
	for _, p := range e.Procs() {
		if slices.Contains(p.Argv, word) || len(p.Argv) > 0 && filepath.Base(p.Argv[0]) == word {
			pids = append(pids, p.PID)
		}
	}
	return pids
}

// KillAll kills every process inside the root with SIGKILL; it fails the
// test when some are still there after 5 s.
func (e *ESXi) KillAll() {
	e.tb.Helper()
	if left := e.kill(); len(left) > 0 {
		e.tb.Errorf("simulated host: processes outlived SIGKILL: %v", left)
	}
}

var killMu sync.Mutex

// kill SIGKILLs the root's processes until none is left or 5 s have
// passed, and returns those left.
func (e *ESXi) kill() []Proc {
	killMu.Lock()
	defer killMu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ps := procsIn(e.root)
		if len(ps) == 0 || time.Now().After(deadline) {
			return ps
		}
		for _, p := range ps {
			syscall.Kill(p.PID, syscall.SIGKILL)
		}
		time.Sleep(5 * time.Millisecond) // a SIGKILLed process takes a moment to go
	}
}

// procsIn lists the processes whose root directory is root. Zombies have
// none and are left out.
func procsIn(root string) []Proc {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var ps []Proc
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		dir := "/proc/" + ent.Name()
		if r, err := os.Readlink(dir + "/root"); err != nil || r != root {
			continue
		}
		cmdline, _ := os.ReadFile(dir + "/cmdline")
		ps = append(ps, Proc{PID: pid, Argv: strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")})
	}
	return ps
}

// makeDev creates the device nodes ESXi scripts write to or read from.
func makeDev(root string) error {
	if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
		return err
	}
	for _, d := range []struct {
		name         string
		major, minor int
	}{{"null", 1, 3}, {"zero", 1, 5}, {"random", 1, 8}, {"urandom", 1, 9}} {
		p := filepath.Join(root, "dev", d.name)
		os.Remove(p)
		if err := syscall.Mknod(p, syscall.S_IFCHR|0o666, d.major<<8|d.minor); err != nil {
			return fmt.Errorf("mknod %s: %w", p, err)
		}
		// mknod's mode goes through the umask.
		if err := os.Chmod(p, 0o666); err != nil {
			return err
		}
	}
	return nil
}

// tool finds a command the harness needs: it skips the test when it is
// missing, but fails it when CI=true.
func tool(t testing.TB, name, path, pkg string) string {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found: CI must install %s (.ci/run)", name, pkg)
	}
	t.Skipf("%s not found (apt-get install %s)", name, pkg)
	return ""
}

var busyboxCopy struct {
	once sync.Once
	path string
	err  error
}

// staticBusybox is a copy of this machine's static busybox (Debian's
// busybox-static) in a temp folder of its own, made once per test
// process: roots hard-link it, and nothing written inside a root can
// reach the system's file.
func staticBusybox(t testing.TB) string {
	t.Helper()
	src := tool(t, "busybox", "/bin/busybox", "busybox-static")
	if f, err := elf.Open(src); err == nil {
		dynamic := slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP })
		f.Close()
		if dynamic {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is dynamically linked: CI must install busybox-static (.ci/run)", src)
			}
			t.Skipf("%s is dynamically linked, no use in a chroot (apt-get install busybox-static)", src)
		}
	}
	busyboxCopy.once.Do(func() {
		dir, err := os.MkdirTemp("", "deploytest-busybox-")
		if err != nil {
			busyboxCopy.err = err
			return
		}
		busyboxCopy.path = filepath.Join(dir, "busybox")
		busyboxCopy.err = copyExecutable(src, busyboxCopy.path)
	})
	if busyboxCopy.err != nil {
		t.Fatalf("copy busybox: %v", busyboxCopy.err)
	}
	return busyboxCopy.path
}

func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
