package deploy

import (
	"context"
	"os"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/heapguard/heapguard/esxsim"
	"github.com/heapguard/heapguard/internal/deploytest"
)

// esxiRig is a simulated ESXi host reached over real SSH, every session
// chrooted in its root with busybox as the shell (deploytest.StartESXi):
// the binary deploy sends runs there as it would on the host.
type esxiRig struct {
	t      *testing.T
	e      *deploytest.ESXi
	cfg    *Config
	target Target
}

func newESXiRig(t *testing.T, version string) *esxiRig {
	t.Helper()
	_, user := newUserKey(t)
	e := deploytest.StartESXi(t, deploytest.ESXiOptions{Version: version,
		SSH: deploytest.Options{HostKeys: []string{"ed25519"}, Authorized: []ssh.PublicKey{user.PublicKey()}}})
	known := path.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(known, []byte(e.KnownHostsLine("ed25519")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	target, err := ParseTarget(e.Addr)
	if err != nil {
		t.Fatal(err)
	}
	return &esxiRig{t: t, e: e, target: target, cfg: &Config{
		User: "root", KnownHosts: &KnownHosts{File: known}, Auth: &Auth{Signers: []ssh.Signer{user}},
		ConnectTimeout: 10 * time.Second, CommandTimeout: 20 * time.Second, CopyTimeout: 30 * time.Second,
	}}
}

// heapguardBinary is a real heapguard, as make build makes it.
func heapguardBinary(t *testing.T, version string) Binary {
	t.Helper()
	b, err := CheckBinary(deploytest.BuildHeapguard(t, version))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// do runs one host's deploy with opts (the default destination).
func (r *esxiRig) do(bin Binary, opts InstallOptions) Result {
	r.t.Helper()
	res := deployOne(context.Background(), r.target, r.cfg, bin, opts)
	for _, l := range res.Lines() {
		r.t.Log(l)
	}
	return res
}

func (r *esxiRig) install(bin Binary, setup Setup) Result {
	r.t.Helper()
	res := r.do(bin, InstallOptions{Setup: &setup})
	if res.Err != nil {
		r.t.Fatalf("deploy --mode %s: %v\n%s", setup.Mode, res.Err, r.e.Log())
	}
	return res
}

// file is a file of the host's root, "" when absent.
func (r *esxiRig) file(p string) string {
	b, err := os.ReadFile(r.e.Host.Path(p))
	if err != nil && !os.IsNotExist(err) {
		r.t.Fatal(err)
	}
	return string(b)
}

// actions are the host's recorded actions of tool whose result starts
// with prefix.
func (r *esxiRig) actions(tool, prefix string) []esxsim.Action {
	var out []esxsim.Action
	for _, a := range r.e.Host.Actions() {
		if a.Tool == tool && strings.HasPrefix(a.Result, prefix) {
			out = append(out, a)
		}
	}
	return out
}

// reboot reboots the host and checks its boot script ran cleanly.
func (r *esxiRig) reboot() {
	r.t.Helper()
	if res := r.e.Reboot(); res.Exit != 0 {
		r.t.Fatalf("reboot: %+v", res)
	}
}

const hgBin = "/vmfs/volumes/datastore1/heapguard/heapguard"

// The cron mode, on each boot script and crond path: 4.1 (/etc/rc.local,
// /bin/busybox crond), 5.5 and 7.0 (local.sh; 7.0 has no crond in
// /bin/busybox) and 8.0. Installed, run again (nothing changes), rebooted (the
// line is back), upgraded, asked for its status and removed.
func TestModeCronOnESXi(t *testing.T) {
	v1, v2 := heapguardBinary(t, "v1"), heapguardBinary(t, "v2")
	for _, version := range []string{"4.1", "5.5", "7.0", "8.0"} {
		t.Run(version, func(t *testing.T) {
			r := newESXiRig(t, version)
			boot := BootScript("ESXi " + r.e.Version.Full)
			stockBoot, stockCron := r.file(boot), r.file(rootCrontab)
			setup := Setup{Mode: ModeCron, Config: []string{"power-off-allow DSVA*"}}
			line := setup.CronLine(hgBin)

			res := r.install(v1, setup)
			if res.Action != Installed || res.Mode != ModeCron || res.BootScript != boot {
				t.Fatalf("result %+v", res)
			}
			if got := r.file(rootCrontab); got != stockCron+line+"\n" {
				t.Fatalf("crontab:\n%s\nwant the stock one and\n%s", got, line)
			}
			if got := r.file(path.Dir(hgBin) + "/" + ConfigName); !strings.HasSuffix(got, "\npower-off-allow DSVA*\n") {
				t.Errorf("heapguard.conf:\n%s", got)
			}
			if m, err := InstalledMode(r.file(boot)); err != nil || m != ModeCron {
				t.Fatalf("%s: mode %q, %v:\n%s", boot, m, err, r.file(boot))
			}
			started := r.actions("crond", "started")
			if len(started) == 0 || !strings.Contains(started[len(started)-1].Detail, line) {
				t.Fatalf("crond was not restarted with the line: %+v", started)
			}
			if len(r.actions("auto-backup.sh", "")) == 0 || !strings.Contains(r.file(esxsim.BootbankState+boot), blockBegin) {
				t.Errorf("the boot script was not saved by auto-backup.sh: %q", r.file(esxsim.BootbankState+boot))
			}
			if res.Doctor == "" || res.DoctorStatus < 0 {
				t.Errorf("doctor did not run on the host: %q, status %d", res.Doctor, res.DoctorStatus)
			}

			// Again: nothing changes, crond is left alone.
			crondStarts, bootText := len(r.actions("crond", "started")), r.file(boot)
			res = r.install(v1, setup)
			if res.Action != Unchanged || len(res.Changes) != 0 || r.file(boot) != bootText || r.file(rootCrontab) != stockCron+line+"\n" {
				t.Fatalf("second deploy changed something: %+v", res)
			}
			if n := len(r.actions("crond", "started")); n != crondStarts {
				t.Errorf("second deploy restarted crond (%d starts, were %d)", n, crondStarts)
			}

			// A reboot rewrites the crontab; the boot script adds the line
			// back, once, and crond loads it.
			r.reboot()
			if got := r.file(rootCrontab); got != stockCron+line+"\n" {
				t.Fatalf("crontab after a reboot:\n%s", got)
			}
			started = r.actions("crond", "started")
			if !strings.Contains(started[len(started)-1].Detail, line) {
				t.Errorf("crond after the reboot loaded:\n%s", started[len(started)-1].Detail)
			}

			// Upgrade: the binary only; the line stays as it is.
			if res = r.install(v2, setup); res.Action != Upgraded || r.file(rootCrontab) != stockCron+line+"\n" {
				t.Fatalf("upgrade: %+v\ncrontab:\n%s", res, r.file(rootCrontab))
			}
			// Other flags: the old line goes, the new one comes.
			setup2 := Setup{Mode: ModeCron, Schedule: "*/2 * * * *"}
			r.install(v2, setup2)
			if got := r.file(rootCrontab); got != stockCron+setup2.CronLine(hgBin)+"\n" {
				t.Fatalf("crontab after a schedule change:\n%s", got)
			}

			st := r.do(v2, InstallOptions{Status: true})
			if st.Err != nil || st.Mode != ModeCron || !slices.Contains(st.Found, rootCrontab+" has heapguard's line") {
				t.Fatalf("status: %+v", st)
			}

			un := r.do(v2, InstallOptions{Uninstall: true})
			if un.Err != nil {
				t.Fatalf("uninstall: %v", un.Err)
			}
			if r.file(boot) != stockBoot || r.file(rootCrontab) != stockCron || r.file(hgBin) != "" || r.file(path.Dir(hgBin)+"/"+ConfigName) != "" {
				t.Fatalf("uninstall left something: boot script\n%s\ncrontab\n%s", r.file(boot), r.file(rootCrontab))
			}
			r.reboot()
			if got := r.file(rootCrontab); got != stockCron {
				t.Fatalf("crontab after uninstall and reboot:\n%s", got)
			}
		})
	}
}

// daemonPid waits (up to 20 s) for exactly one heapguard run inside the
// root other than not, and returns its pid.
func (r *esxiRig) daemonPid(not int) int {
	r.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var pids []int
		for _, p := range r.e.Procs() {
			if len(p.Argv) > 1 && p.Argv[0] == hgBin && p.Argv[1] == "run" {
				pids = append(pids, p.PID)
			}
		}
		if len(pids) == 1 && pids[0] != not {
			return pids[0]
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("heapguard run processes %v after 20 s: want one, not %d", pids, not)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *esxiRig) daemonsRunning() int {
	n := 0
	for _, p := range r.e.Procs() {
		if len(p.Argv) > 1 && p.Argv[0] == hgBin && p.Argv[1] == "run" {
			n++
		}
	}
	return n
}

// The daemon mode: started once, left alone by a deploy that changes
// nothing, replaced by an upgrade with its state folder kept, started
// again by the boot script, stopped when the mode changes.
func TestModeDaemonOnESXi(t *testing.T) {
	v1, v2 := heapguardBinary(t, "v1"), heapguardBinary(t, "v2")
	r := newESXiRig(t, "7.0")
	state := "/vmfs/volumes/datastore1/heapguard/state"
	setup := Setup{Mode: ModeDaemon, Config: []string{"state-dir " + state}, Args: []string{"--interval=1h"}}
	// The default state folder is unusable: doctor must check the one
	// given after --.
	if err := os.MkdirAll(r.e.Host.Path(path.Dir(hgBin)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.e.Host.Path(path.Dir(hgBin)+"/heapguard-state"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if res := r.install(v1, setup); res.DoctorStatus != 0 {
		t.Errorf("doctor on the daemon's state folder: exit %d, %q", res.DoctorStatus, res.Doctor)
	}
	pid := r.daemonPid(0)
	journal := r.e.Host.Path(state + "/journal.jsonl")
	if _, err := os.Stat(journal); err != nil {
		t.Fatalf("the daemon's journal: %v", err)
	}

	if res := r.install(v1, setup); res.Action != Unchanged || len(res.Changes) != 0 {
		t.Fatalf("second deploy: %+v", res)
	}
	if got := r.daemonPid(0); got != pid {
		t.Fatalf("second deploy restarted the daemon: pid %d, was %d", got, pid)
	}

	before, _ := os.ReadFile(journal)
	if res := r.install(v2, setup); res.Action != Upgraded {
		t.Fatalf("upgrade: %+v", res)
	}
	newPid := r.daemonPid(pid)
	if after, _ := os.ReadFile(journal); !strings.HasPrefix(string(after), string(before)) {
		t.Errorf("the journal lost entries over the upgrade:\nbefore\n%s\nafter\n%s", before, after)
	}

	r.reboot()
	r.daemonPid(newPid)

	r.install(v2, Setup{Mode: ModeCron, Config: setup.Config})
	if n := r.daemonsRunning(); n != 0 {
		t.Fatalf("%d daemons still run after the switch to cron", n)
	}
	if !strings.Contains(r.file(rootCrontab), hgBin+" check ") {
		t.Fatalf("no cron line after the switch:\n%s", r.file(rootCrontab))
	}
	r.reboot()
	if n := r.daemonsRunning(); n != 0 {
		t.Fatalf("%d daemons started by the boot script after the switch to cron", n)
	}
}

// The inetd mode: the line added and inetd reloaded once; a reboot adds
// it back; uninstall takes it out and reloads inetd.
func TestModeInetdOnESXi(t *testing.T) {
	v1 := heapguardBinary(t, "v1")
	r := newESXiRig(t, "5.5")
	stock := r.file(inetdConf)
	setup := Setup{Mode: ModeInetd, Port: 9740, Args: []string{"--allow-remote"}}
	line := setup.InetdLine(hgBin)
	if want := "9740 stream tcp nowait root " + hgBin + " " + hgBin + " serve --inetd --config /vmfs/volumes/datastore1/heapguard/heapguard.conf --allow-remote"; line != want {
		t.Fatalf("inetd line %q, want %q", line, want)
	}
	r.install(v1, setup)
	if got := r.file(inetdConf); got != stock+line+"\n" {
		t.Fatalf("inetd.conf:\n%s", got)
	}
	reloads := r.actions("inetd", "reloaded")
	if len(reloads) != 1 || !strings.Contains(reloads[0].Detail, line) {
		t.Fatalf("inetd reloads %+v: want one, with the line", reloads)
	}
	// What inetd runs for a connection, with its argv, answers (a pipe is
	// a local caller); /metrics needs the state folder found beside the
	// binary, where the chroot has no /proc/self/exe.
	f := strings.Fields(line)
	answer := r.e.Run(`printf 'GET /metrics HTTP/1.1\r\nHost: esx\r\n\r\n' | exec -a ` + f[6] + " " + strings.Join(f[5:6], "") + " " + strings.Join(f[7:], " "))
	if !strings.HasPrefix(answer.Stdout, "HTTP/1.1 200 OK\r\n") || !strings.Contains(answer.Stdout, "heapguard_") {
		t.Fatalf("serve --inetd as inetd runs it: exit %d\n%.600s\n%s", answer.Exit, answer.Stdout, answer.Stderr)
	}
	r.install(v1, setup)
	if n := len(r.actions("inetd", "reloaded")); n != 1 {
		t.Errorf("a second deploy reloaded inetd (%d reloads)", n)
	}
	r.reboot()
	if got := r.file(inetdConf); got != stock+line+"\n" {
		t.Fatalf("inetd.conf after a reboot:\n%s", got)
	}
	if un := r.do(v1, InstallOptions{Uninstall: true}); un.Err != nil {
		t.Fatalf("uninstall: %v", un.Err)
	}
	if got := r.file(inetdConf); got != stock {
		t.Fatalf("inetd.conf after uninstall:\n%s", got)
	}
	reloads = r.actions("inetd", "reloaded")
	if last := reloads[len(reloads)-1]; strings.Contains(last.Detail, hgBin) {
		t.Errorf("inetd's last reload still had heapguard's line:\n%s", last.Detail)
	}
}

// A host without inetd is refused --mode inetd before anything is
// written: no heapguard.conf, no block.
func TestModeInetdWithoutInetd(t *testing.T) {
	r := newESXiRig(t, "7.0")
	if err := os.Remove(r.e.Host.Path(inetdConf)); err != nil {
		t.Fatal(err)
	}
	boot := BootScript("ESXi " + r.e.Version.Full)
	stock := r.file(boot)
	res := r.do(heapguardBinary(t, "v1"), InstallOptions{Setup: &Setup{Mode: ModeInetd}})
	if res.Err == nil || !strings.Contains(res.Err.Error(), "has no /etc/inetd.conf") {
		t.Fatalf("--mode inetd without inetd: %v", res.Err)
	}
	if r.file(boot) != stock || r.file(path.Dir(hgBin)+"/"+ConfigName) != "" || r.file(hgBin) != "" {
		t.Errorf("something was written before the refusal:\n%s", r.file(boot))
	}
}

// A daemon that cannot start (its state folder is a file) is a failed
// deploy saying so, not an "installed" line over nothing running.
func TestModeDaemonThatCannotStart(t *testing.T) {
	r := newESXiRig(t, "7.0")
	bad := path.Dir(hgBin) + "/not-a-folder"
	if err := os.MkdirAll(r.e.Host.Path(path.Dir(hgBin)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.e.Host.Path(bad), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res := r.do(heapguardBinary(t, "v1"), InstallOptions{Setup: &Setup{Mode: ModeDaemon, Config: []string{"state-dir " + bad}}})
	if res.Err == nil || !strings.Contains(res.Err.Error(), "the daemon did not start") {
		t.Fatalf("deploy of a daemon that cannot start: %v", res.Err)
	}
	if n := r.daemonsRunning(); n != 0 {
		t.Errorf("%d daemons run", n)
	}
}
