package esxsim

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heapguard/heapguard/internal/testtool"
)

func TestBootScriptPerVersion(t *testing.T) {
	for _, c := range []struct{ version, script, absent string }{
		{"4.1", "/etc/rc.local", "/etc/rc.local.d/local.sh"},
		{"5.0", "/etc/rc.local", "/etc/rc.local.d/local.sh"},
		{"5.5", "/etc/rc.local.d/local.sh", "/etc/rc.local"},
		{"8.0", "/etc/rc.local.d/local.sh", "/etc/rc.local"},
	} {
		h := New(t, Incident(), WithVersion(c.version))
		v := h.State().Ver()
		if v.BootScript() != c.script {
			t.Errorf("%s: BootScript %q, want %q", c.version, v.BootScript(), c.script)
		}
		if fi, err := os.Stat(h.Path(c.script)); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: %s: %v; want it laid out, executable", c.version, c.script, err)
		}
		if _, err := os.Stat(h.Path(c.absent)); err == nil {
			t.Errorf("%s: %s laid out", c.version, c.absent)
		}
	}
}

func TestCrondBusyboxPerVersion(t *testing.T) {
	want := map[string]string{"4.1": "/bin/busybox", "5.0": "/bin/busybox", "5.5": "/bin/busybox", "6.7": "/bin/busybox",
		"7.0": VmwareBusyboxPath, "8.0": VmwareBusyboxPath, "9.0": VmwareBusyboxPath}
	for name, path := range want {
		v, err := LookupVersion(name)
		if err != nil {
			t.Fatal(err)
		}
		if v.CrondBusybox() != path {
			t.Errorf("%s: crond's busybox %q, want %q", name, v.CrondBusybox(), path)
		}
	}
}

// TestAutoBackupThenBoot runs auto-backup.sh in-process (no chroot): the
// saved boot script comes back at boot, the RAM files do not.
func TestAutoBackupThenBoot(t *testing.T) {
	h := New(t, Incident())
	h.InstallBinary(os.Args[0])
	script := h.State().Ver().BootScript()
	stock := func(p string) string { return stockFiles(h.State().Ver())[p] }
	appendTo := func(p, line string) {
		t.Helper()
		f, err := os.OpenFile(h.Path(p), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(line + "\n")
		f.Close()
	}
	read := func(p string) string {
		t.Helper()
		b, err := os.ReadFile(h.Path(p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	// Never saved: a boot gives the stock script back.
	appendTo(script, "echo unsaved")
	if err := Boot(h.Root()); err != nil {
		t.Fatal(err)
	}
	if got := read(script); got != stock(script) {
		t.Errorf("boot script after a boot without a save:\n%s", got)
	}

	appendTo(script, "echo saved")
	out, errOut, code := h.Call("auto-backup.sh")
	if code != 0 || out != "Saving current state in /bootbank\n" {
		t.Fatalf("auto-backup.sh: exit %d, %q, %q", code, out, errOut)
	}
	saved := read(script)
	appendTo(script, "echo after the save")
	appendTo(CrontabPath, "* * * * * /lost")
	appendTo(InetdConfPath, "lost stream tcp nowait root /lost lost")
	for _, p := range []string{CrondPidFile, "/tmp/x"} {
		if err := os.WriteFile(h.Path(p), []byte("1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := Boot(h.Root()); err != nil {
		t.Fatal(err)
	}
	if got := read(script); got != saved || !strings.HasSuffix(got, "echo saved\n") {
		t.Errorf("boot script after boot:\n%s\nwant the saved\n%s", got, saved)
	}
	if fi, err := os.Stat(h.Path(script)); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("boot script mode after boot: %v %v", fi.Mode(), err)
	}
	for _, p := range []string{CrontabPath, InetdConfPath} {
		if got := read(p); got != stock(p) {
			t.Errorf("%s after boot:\n%s\nwant stock", p, got)
		}
	}
	for _, p := range []string{CrondPidFile, "/tmp/x"} {
		if _, err := os.Stat(h.Path(p)); err == nil {
			t.Errorf("%s survived the boot", p)
		}
	}
	if fi, err := os.Stat(h.Path("/tmp")); err != nil || fi.Mode().Perm()|fi.Mode()&os.ModeSticky != 0o777|os.ModeSticky {
		t.Errorf("/tmp after boot: %v %v", fi.Mode(), err)
	}
	var tools []string
	for _, a := range h.Actions() {
		tools = append(tools, a.Tool+" "+a.Result)
	}
	if got := strings.Join(tools, ", "); got != "boot rebooted, auto-backup.sh saved, boot rebooted" {
		t.Errorf("actions: %s", got)
	}
}

func TestInetdServiceLines(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"# only a comment\n\n   \n", ""},
		{inetdConf(versions[2]), "ssh      stream  tcp     nowait  root    /usr/lib/vmware/openssh/bin/sshd        sshd ++swap,group=host/vim/vimuser/terminal/ssh -i\n" +
			"ssh      stream  tcp6    nowait  root    /usr/lib/vmware/openssh/bin/sshd        sshd ++swap,group=host/vim/vimuser/terminal/ssh -i\n" +
			"authd    stream  tcp     nowait  root    /sbin/authd     authd\n" +
			"authd    stream  tcp6    nowait  root    /sbin/authd     authd\n"},
		{"  a b c  \r\n#x\nlast without newline", "a b c\nlast without newline\n"},
	} {
		if got := InetdServiceLines(c.in); got != c.want {
			t.Errorf("InetdServiceLines(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzInetdServiceLines(f *testing.F) {
	f.Add(inetdConf(versions[0]))
	f.Add(inetdConf(versions[2]))
	f.Add("a\n#b\n\n c \r\n")
	f.Fuzz(func(t *testing.T, conf string) {
		got := InetdServiceLines(conf)
		for line := range strings.Lines(got) {
			if !strings.HasSuffix(line, "\n") || strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") || !strings.Contains(conf, strings.TrimSuffix(line, "\n")) {
				t.Fatalf("line %q of %q from %q", line, got, conf)
			}
		}
	})
}

// busyboxHost is a host with busybox installed, this test binary as its
// multi-call binary; it skips without a static busybox (fails under CI).
func busyboxHost(t *testing.T, version string) *Host {
	t.Helper()
	bb := testtool.Need(t, "busybox-static", "/bin/busybox")
	h := New(t, Incident(), WithVersion(version))
	h.InstallBinary(os.Args[0])
	if err := InstallBusybox(h.Root(), os.Args[0], bb); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestDaemonEndsAfterItsLifetime starts crond and inetd in the background
// (no chroot) with a short lifetime and waits for both to record their end.
func TestDaemonEndsAfterItsLifetime(t *testing.T) {
	h := busyboxHost(t, "8.0")
	t.Cleanup(func() {
		// Should the lifetime not work, end the daemons (theirs only: a
		// pid whose command line names this root).
		for _, f := range []string{CrondPidFile, InetdPidFile} {
			b, _ := os.ReadFile(h.Path(f))
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				continue
			}
			if cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); strings.Contains(string(cmdline), h.Root()) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	for _, argv := range [][]string{{VmwareBusyboxPath, "crond"}, {"/bin/busybox", "inetd"}} {
		cmd := exec.Command(h.Path(argv[0]), argv[1:]...)
		cmd.Env = append(os.Environ(), "ESXSIM_SERVICE_LIFETIME=300ms")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%q: %v, %s", argv, err, out)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ends []string
		for _, a := range h.Actions() {
			if strings.HasSuffix(a.Result, " after its lifetime of 300ms") {
				ends = append(ends, a.Tool)
			}
		}
		slices.Sort(ends)
		if slices.Equal(ends, []string{"crond", "inetd"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemons' ends %q after 10 s; actions %+v", ends, h.Actions())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBusyboxHandsOtherAppletsToTheRealOne(t *testing.T) {
	h := busyboxHost(t, "5.5")
	out, err := exec.Command(h.Path("/bin/busybox"), "echo", "hello").CombinedOutput()
	if err != nil || string(out) != "hello\n" {
		t.Errorf("busybox echo: %v, %q", err, out)
	}
	// What could change the machine the test runs on is refused: checked
	// with mount's harmless form (it lists), so that a missing guard
	// changes nothing.
	out, err = exec.Command(h.Path("/bin/busybox"), "mount").CombinedOutput()
	if err == nil || string(out) != "busybox: mount: refused in a simulated host (it would change the machine the test runs on)\n" {
		t.Errorf("busybox mount: %v, %q", err, out)
	}
	if _, err := os.Stat(h.Path("/bin/hostname")); err == nil {
		t.Error("/bin/hostname is linked")
	}
	// Without the real busybox, a clear error.
	os.Remove(h.Path(RealBusyboxPath))
	out, err = exec.Command(h.Path("/bin/busybox"), "echo", "hello").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no real busybox at") {
		t.Errorf("busybox echo without the real one: %v, %q", err, out)
	}
}
