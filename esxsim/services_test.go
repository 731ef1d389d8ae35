package esxsim

import (
	"os"
	"strings"
	"testing"
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
