package deploytest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/heapguard/heapguard/esxsim"
)

// client is an SSH client of a simulated host.
type client struct {
	t *testing.T
	c *ssh.Client
}

// startESXi starts a host of the scenario's ESXi version v and connects
// to it with a fresh key.
func startESXi(t *testing.T, v string) (*ESXi, *client) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	e := StartESXi(t, ESXiOptions{Version: v, SSH: Options{HostKeys: []string{"ed25519"}, Authorized: []ssh.PublicKey{signer.PublicKey()}}})
	c, err := ssh.Dial("tcp", e.Addr, &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(e.HostKeys["ed25519"]),
		Timeout:         10 * time.Second,
	})
	if err != nil {
		t.Fatalf("ssh to the simulated host: %v\n%s", err, e.Log())
	}
	t.Cleanup(func() { c.Close() })
	return e, &client{t: t, c: c}
}

// run runs cmd in a session with stdin, within 30 s.
func (c *client) run(cmd string, stdin io.Reader) (stdout, stderr string, exit int) {
	c.t.Helper()
	s, err := c.c.NewSession()
	if err != nil {
		c.t.Fatal(err)
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdin, s.Stdout, s.Stderr = stdin, &out, &errb
	done := make(chan error, 1)
	go func() { done <- s.Run(cmd) }()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		c.t.Fatalf("ssh %q did not end within 30 s", cmd)
	}
	var ee *ssh.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		exit = ee.ExitStatus()
	default:
		c.t.Fatalf("ssh %q: %v", cmd, err)
	}
	return out.String(), errb.String(), exit
}

// actions are the host's actions of one tool.
func actions(e *ESXi, tool string) []esxsim.Action {
	var as []esxsim.Action
	for _, a := range e.Host.Actions() {
		if a.Tool == tool {
			as = append(as, a)
		}
	}
	return as
}

// waitFor polls cond every 5 ms for at most 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestESXiSessionAnswersAsTheSimulatedHost(t *testing.T) {
	e, c := startESXi(t, "")
	want, _, code := e.Host.Call("vim-cmd", "vmsvc/getallvms")
	if code != 0 || want == "" {
		t.Fatalf("esxsim's own vim-cmd: exit %d, %q", code, want)
	}
	out, errOut, exit := c.run("vim-cmd vmsvc/getallvms", nil)
	if exit != 0 || out != want {
		t.Errorf("over ssh: exit %d, stderr %q, stdout\n%q\nwant\n%q", exit, errOut, out, want)
	}
	// The session is chrooted: / is the simulated root, PATH is ESXi's,
	// and the shell is busybox.
	out, errOut, _ = c.run(`echo "$PATH"; cat /etc/vmware/esxsim-version; readlink -f /vmfs/volumes/datastore1; ls /etc/rc.local.d; sh --help 2>&1 | head -1; df -k /vmfs/volumes/datastore1; /no/such/tool`, nil)
	v := e.Version
	for _, w := range []string{SessionPath + "\n", v.Full + " build-" + v.Build + "\n", "/vmfs/volumes/" + e.Host.State().Scenario.DatastoreUUID + "\n", "local.sh\n", "BusyBox v",
		"Filesystem           1K-blocks      Used Available Use% Mounted on\nvisorfs ", "% /\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("session output %q lacks %q", out, w)
		}
	}
	// busybox's wording, not bash's "command not found".
	if want := "/bin/sh: /no/such/tool: not found\n"; errOut != want {
		t.Errorf("stderr %q, want %q", errOut, want)
	}
}

func TestESXiSessionStreamsStdinAndPassesExitStatus(t *testing.T) {
	e, c := startESXi(t, "")
	body := bytes.Repeat([]byte("heapguard\x00\xff binary "), 100_000) // 1.8 MB
	if _, errOut, exit := c.run("cat > /tmp/x && chmod 755 /tmp/x", bytes.NewReader(body)); exit != 0 {
		t.Fatalf("cat > /tmp/x: exit %d, %s", exit, errOut)
	}
	got, err := os.ReadFile(e.Host.Path("/tmp/x"))
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("/tmp/x in the root: %d bytes, %v; want the %d streamed", len(got), err, len(body))
	}
	if out, _, _ := c.run("wc -c < /tmp/x", nil); strings.TrimSpace(out) != strconv.Itoa(len(body)) {
		t.Errorf("wc -c inside: %q", out)
	}
	if _, _, exit := c.run("exit 3", nil); exit != 3 {
		t.Errorf("exit 3 over ssh: %d", exit)
	}
	if _, errOut, exit := c.run("no-such-command", nil); exit != 127 || !strings.Contains(errOut, "not found") {
		t.Errorf("unknown command: exit %d, %q; want 127, not found", exit, errOut)
	}
	if r := e.Run("test -f /tmp/x && exit 4"); r.Exit != 4 {
		t.Errorf("Run: exit %d, want 4", r.Exit)
	}
}

// crondRestart is the local.sh recipe's restart of crond with the given
// busybox.
func crondRestart(busybox string) string {
	return "kill $(cat /var/run/crond.pid) && echo '*/1 * * * * /heapguard check' >> /var/spool/cron/crontabs/root && " + busybox + " crond"
}

func TestESXiCrondRestartPerVersion(t *testing.T) {
	for _, c := range []struct {
		version     string
		vmware, bin bool // which busybox starts crond
	}{
		{"4.1", false, true},
		{"5.5", true, true},
		{"6.7", true, true},
		{"7.0", true, false},
		{"8.0", true, false},
	} {
		t.Run(c.version, func(t *testing.T) {
			t.Parallel()
			e, cl := startESXi(t, c.version)
			if got := actions(e, "crond"); len(got) != 1 || !strings.HasPrefix(got[0].Result, "started pid ") || got[0].Detail != readFile(t, e.Host.Path(esxsim.CrontabPath)) {
				t.Fatalf("crond at start: %+v; want started once with the stock crontab", got)
			}
			if pids := e.Pids("crond"); len(pids) != 1 {
				t.Fatalf("crond processes %v, want 1: %+v", pids, e.Procs())
			}
			try := func(busybox string, works bool) {
				t.Helper()
				before := len(actions(e, "crond"))
				_, errOut, exit := cl.run(crondRestart(busybox), nil)
				// The old crond ends on its own time after the kill, maybe
				// after the new one has started, as on a real host.
				if !works {
					if exit == 0 || !strings.Contains(errOut, "crond: applet not found") {
						t.Errorf("%s crond: exit %d, %q; want a failure", busybox, exit, errOut)
					}
					waitFor(t, "the old crond's end", func() bool { return len(e.Pids("crond")) == 0 })
					if as := actions(e, "crond")[before:]; len(as) != 1 || !strings.HasSuffix(as[0].Result, " by SIGTERM") {
						t.Errorf("%s crond: actions %+v; want only the old one's stop", busybox, as)
					}
					return
				}
				if exit != 0 {
					t.Fatalf("%s crond: exit %d, %s", busybox, exit, errOut)
				}
				var as []esxsim.Action
				waitFor(t, "crond's stop and start", func() bool { as = actions(e, "crond")[before:]; return len(as) >= 2 })
				var stopped, started int
				for _, a := range as {
					switch {
					case strings.HasPrefix(a.Result, "stopped pid ") && strings.HasSuffix(a.Result, " by SIGTERM"):
						stopped++
					case strings.HasPrefix(a.Result, "started pid ") && strings.Contains(a.Detail, "*/1 * * * * /heapguard check\n"):
						started++
					}
				}
				if len(as) != 2 || stopped != 1 || started != 1 {
					t.Errorf("%s crond: actions %+v; want a stop by SIGTERM and a start with the new line", busybox, as)
				}
				waitFor(t, "one crond", func() bool { return len(e.Pids("crond")) == 1 })
				pids := e.Pids("crond")
				if pf := readFile(t, e.Host.Path(esxsim.CrondPidFile)); pf != strconv.Itoa(pids[0])+"\n" {
					t.Errorf("%s crond: process %v, pid file %q", busybox, pids, pf)
				}
			}
			if c.vmware {
				try(esxsim.VmwareBusyboxPath, true)
			} else if _, _, exit := cl.run("test -e "+esxsim.VmwareBusyboxPath, nil); exit == 0 {
				t.Errorf("%s exists on %s", esxsim.VmwareBusyboxPath, c.version)
			}
			try("/bin/busybox", c.bin)
		})
	}
}

func TestESXiInetdReloadsOnHUP(t *testing.T) {
	e, c := startESXi(t, "6.7")
	line := "heapguard stream tcp nowait root /vmfs/volumes/datastore1/heapguard/heapguard heapguard serve --inetd"
	if _, errOut, exit := c.run("echo '"+line+"' >> /etc/inetd.conf && kill -HUP $(cat /var/run/inetd.pid)", nil); exit != 0 {
		t.Fatalf("HUP inetd: exit %d, %s", exit, errOut)
	}
	var as []esxsim.Action
	waitFor(t, "inetd's reload in the action log", func() bool { as = actions(e, "inetd"); return len(as) == 2 })
	if !strings.HasPrefix(as[0].Result, "started pid ") || strings.Contains(as[0].Detail, "heapguard") || !strings.Contains(as[0].Detail, "authd") {
		t.Errorf("inetd start %+v: want the stock services", as[0])
	}
	if !strings.HasPrefix(as[1].Result, "reloaded pid ") || !strings.HasSuffix(as[1].Detail, line+"\n") || strings.Contains(as[1].Detail, "#") {
		t.Errorf("inetd reload %+v: want the service lines with the new one last, no comments", as[1])
	}
	if len(e.Pids("inetd")) != 1 {
		t.Errorf("inetd processes after HUP: %+v", e.Procs())
	}
}

func TestESXiRebootReplaysTheSavedBootScript(t *testing.T) {
	for _, v := range []string{"5.0", "5.5", "8.0"} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			e, c := startESXi(t, v)
			script := e.Version.BootScript()
			stock := readFile(t, e.Host.Path(script))
			// The recipe: a line in the boot script before its exit 0,
			// run once now, saved.
			// The sleep stands for a daemon started in the background
			// that keeps the script's output open: Reboot must not wait
			// for it.
			edit := `sed -i 's|^exit 0$|touch /tmp/booted; sleep 999 \& echo "*/5 * * * * /heapguard check" >> /var/spool/cron/crontabs/root\nexit 0|' ` + script
			if !strings.Contains(stock, "\nexit 0\n") { // 4.x/5.0's rc.local
				edit = "echo 'touch /tmp/booted; sleep 999 & echo \"*/5 * * * * /heapguard check\" >> /var/spool/cron/crontabs/root' >> " + script
			}
			if _, errOut, exit := c.run(edit+" && "+esxsim.AutoBackupPath, nil); exit != 0 {
				t.Fatalf("edit and save: exit %d, %s", exit, errOut)
			}
			edited := readFile(t, e.Host.Path(script))
			if !strings.Contains(edited, "touch /tmp/booted; sleep 999 & echo") {
				t.Fatalf("boot script after the edit:\n%s", edited)
			}
			if as := actions(e, "auto-backup.sh"); len(as) != 1 || as[0].Result != "saved" || !strings.Contains(as[0].Detail, script) {
				t.Errorf("auto-backup.sh actions %+v", as)
			}
			// The RAM files change meanwhile; a reboot forgets that.
			if r := e.Run("echo '* * * * * /lost' >> /var/spool/cron/crontabs/root; echo 'lost stream tcp nowait root /lost lost' >> /etc/inetd.conf; echo gone > /tmp/gone"); r.Exit != 0 {
				t.Fatal(r)
			}
			oldCrond := e.Pids("crond")
			sleeper, _, _ := c.run("sleep 1000 > /dev/null 2>&1 & echo $!", nil)
			if len(e.Pids("sleep")) != 1 {
				t.Fatalf("sleep %q not running: %+v", sleeper, e.Procs())
			}
			r := e.Reboot()
			if r.Exit != 0 {
				t.Errorf("boot script: %+v", r)
			}
			if got := readFile(t, e.Host.Path(script)); got != edited {
				t.Errorf("boot script after reboot:\n%s\nwant the saved\n%s", got, edited)
			}
			if _, err := os.Stat(e.Host.Path("/tmp/booted")); err != nil {
				t.Errorf("the boot script's marker: %v", err)
			}
			if _, err := os.Stat(e.Host.Path("/tmp/gone")); err == nil {
				t.Error("/tmp kept a file across the reboot")
			}
			crontab := readFile(t, e.Host.Path(esxsim.CrontabPath))
			if strings.Contains(crontab, "/lost") || strings.Count(crontab, "/heapguard check") != 1 || !strings.Contains(crontab, "auto-backup.sh") {
				t.Errorf("crontab after reboot:\n%s\nwant the stock one plus the boot script's line", crontab)
			}
			if strings.Contains(readFile(t, e.Host.Path(esxsim.InetdConfPath)), "/lost") {
				t.Error("inetd.conf kept its unsaved line across the reboot")
			}
			// The boot script's background child may not have exec'd
			// sleep yet when the script ends.
			waitFor(t, "the boot script's sleep 999", func() bool { return len(e.Pids("999")) == 1 })
			if len(e.Pids("1000")) != 0 {
				t.Errorf("after the reboot: %+v; want the boot script's sleep 999, not the session's sleep 1000", e.Procs())
			}
			newCrond := e.Pids("crond")
			if len(newCrond) != 1 || slices.Equal(newCrond, oldCrond) || len(e.Pids("inetd")) != 1 {
				t.Errorf("crond %v (before %v), inetd %v after reboot", newCrond, oldCrond, e.Pids("inetd"))
			}
			if as := actions(e, "boot"); len(as) != 1 {
				t.Errorf("boot actions %+v", as)
			}
		})
	}
}

func TestESXiRebootWithoutBackupLosesTheEdit(t *testing.T) {
	e, c := startESXi(t, "")
	script := e.Version.BootScript()
	stock := readFile(t, e.Host.Path(script))
	if _, errOut, exit := c.run("echo 'touch /tmp/booted' >> "+script, nil); exit != 0 {
		t.Fatal(errOut)
	}
	e.Reboot()
	if got := readFile(t, e.Host.Path(script)); got != stock {
		t.Errorf("boot script after a reboot without auto-backup.sh:\n%s\nwant the stock one", got)
	}
	if _, err := os.Stat(e.Host.Path("/tmp/booted")); err == nil {
		t.Error("the unsaved line ran at boot")
	}
}

// TestESXiCleanupKillsEverything starts processes in a host inside a
// subtest and checks, once the subtest has ended, that none is left.
func TestESXiCleanupKillsEverything(t *testing.T) {
	var root string
	var pids []int
	t.Run("host", func(t *testing.T) {
		e, c := startESXi(t, "")
		root = e.Root()
		c.run("sleep 1000 > /dev/null 2>&1 &", nil)
		if r := e.Run("setsid sleep 999 > /dev/null 2>&1 < /dev/null &"); r.Exit != 0 {
			t.Fatal(r)
		}
		waitFor(t, "two sleeps", func() bool { return len(e.Pids("sleep")) == 2 })
		for _, p := range e.Procs() {
			pids = append(pids, p.PID)
		}
		if len(pids) < 4 { // crond, inetd, two sleeps
			t.Fatalf("processes %+v", e.Procs())
		}
	})
	if ps := procsIn(root); len(ps) != 0 {
		t.Errorf("processes left in %s after the test: %+v", root, ps)
	}
	for _, pid := range pids {
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err == nil && len(b) > 0 {
			t.Errorf("pid %d still runs: %q", pid, b)
		}
	}
}

func TestESXiStartIsFast(t *testing.T) {
	esxsim.BuildBinary(t)
	start := time.Now()
	h := esxsim.New(t, esxsim.Incident(), esxsim.WithBinary(esxsim.BuildBinary(t)))
	layout := time.Since(start)
	_ = h
	start = time.Now()
	startESXi(t, "")
	total := time.Since(start)
	t.Logf("esxsim.New %s, StartESXi with ssh dial %s", layout, total)
	// Generous for a loaded 2-core machine; typical figures are logged.
	if total-layout > 3*time.Second {
		t.Errorf("StartESXi took %s beyond esxsim.New's %s", total-layout, layout)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestESXiProc checks the opt-in procfs: /proc/self/exe answers inside,
// df still finds the root, no mount shows in this machine's table, and
// the processes are still found and killed.
func TestESXiProc(t *testing.T) {
	var root string
	t.Run("host", func(t *testing.T) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		signer, _ := ssh.NewSignerFromKey(priv)
		e := StartESXi(t, ESXiOptions{Proc: true, SSH: Options{HostKeys: []string{"ed25519"}, Authorized: []ssh.PublicKey{signer.PublicKey()}}})
		root = e.Root()
		sc, err := ssh.Dial("tcp", e.Addr, &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: ssh.FixedHostKey(e.HostKeys["ed25519"]), Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		c := &client{t: t, c: sc}
		// readlink runs inside the shell (a busybox applet that does not
		// fork): its /proc/self is the shell's.
		out, errOut, exit := c.run("readlink /proc/self/exe; df -k /vmfs/volumes/datastore1; sleep 1000 > /dev/null 2>&1 &", nil)
		if exit != 0 || !strings.HasPrefix(out, "/bin/sh\nFilesystem ") || !strings.HasSuffix(out, "% /\n") {
			t.Errorf("with /proc: exit %d, %q, %q", exit, out, errOut)
		}
		if r := e.Run("readlink /proc/self/exe"); r.Stdout != "/bin/sh\n" {
			t.Errorf("Run with /proc: %+v", r)
		}
		waitFor(t, "the session's sleep", func() bool { return len(e.Pids("1000")) == 1 })
		if m, _ := os.ReadFile("/proc/self/mounts"); strings.Contains(string(m), root) {
			t.Errorf("this machine's mount table shows the root:\n%s", m)
		}
		if r := e.Reboot(); r.Exit != 0 || len(e.Pids("1000")) != 0 || len(e.Pids("crond")) != 1 {
			t.Errorf("reboot with /proc: %+v, processes %+v", r, e.Procs())
		}
	})
	if ps := procsIn(root); len(ps) != 0 {
		t.Errorf("processes left in %s after the test: %+v", root, ps)
	}
}
