package deploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
)

// Remote commands of the modes, besides the block itself (Setup.Block).
const (
	scriptRestartCrond script = "kill $(cat " + crondPIDFile + ") 2>/dev/null; if [ -x " + busyboxVMware + " ]; then exec " +
		busyboxVMware + " crond; else exec " + busyboxClassic + " crond; fi"
	// No inetd running (no pid file) has nothing to reload.
	scriptReloadInetd script = "if [ -f " + inetdPIDFile + " ]; then kill -HUP $(cat " + inetdPIDFile + "); fi"
	scriptAutoBackup  script = "exec " + autoBackup
	scriptIsFile      script = "[ -f %[1]s ]"
	scriptExists      script = "[ -e %[1]s ] || [ -L %[1]s ]"
	// heapguard's own commands on the host.
	// stop waits less than stopTimeout, so its own answer comes back.
	scriptStop        script = "exec %[1]s stop --wait 9m"
	scriptDoctor      script = "exec %[1]s doctor 2>&1"
	scriptDoctorState script = "exec %[1]s doctor --state-dir %[2]s 2>&1"
	scriptStatus      script = "exec %[1]s status --config %[2]s 2>&1"
	scriptStatusBare  script = "exec %[1]s status 2>&1"
	scriptStatusJSON  script = "exec %[1]s status --config %[2]s --json"
	scriptChmod       script = "chmod 0644 %[1]s"
	scriptCopyInto    script = "cat %[1]s > %[2]s"
)

// Timeouts of heapguard's own commands on the host: stop waits for an
// action under way (up to 8m45s with every default timeout reached).
const (
	stopTimeout   = 10 * time.Minute
	backupTimeout = 2 * time.Minute
)

// blockRunTimeout bounds one run of the boot block: crond or inetd
// restarted, or the daemon put in the background.
const blockRunTimeout = 30 * time.Second

// Uninstalled is the action of --uninstall; Reported the action of
// --status.
const (
	Uninstalled Action = "uninstalled"
	Reported    Action = "status"
)

// readRemote is the text of the file at p on the host (at most 1 MiB);
// exists is false when there is none.
func readRemote(ctx context.Context, c *Client, p string) (text string, exists bool, err error) {
	var out bytes.Buffer
	lb := &limitedBuffer{b: &out, n: 1 << 20}
	err = c.pipeScript(ctx, c.cfg.commandTimeout(), scriptReadIfFile, nil, lb, p)
	var re *RemoteError
	switch {
	case errors.As(err, &re) && re.Status == exitAbsent:
		return "", false, nil
	case errors.As(err, &re) && re.Status == exitNotRegular:
		return "", false, fmt.Errorf("%s is not a file", p)
	case err != nil:
		return "", false, fmt.Errorf("read %s: %w", p, err)
	case out.Len() >= lb.n:
		return "", false, fmt.Errorf("read %s: larger than %d bytes", p, lb.n)
	}
	return out.String(), true, nil
}

// How writeRemote puts a file in place.
type writeHow int

const (
	// writeReplace: a temporary file beside it, read back and compared,
	// 0644, renamed over it in one step (files on the datastore).
	writeReplace writeHow = iota
	// writeInPlace: a temporary file in /tmp, read back and compared,
	// then copied into the file, which keeps its inode, mode and marks
	// (ESXi's /etc files, which auto-backup.sh saves by their mark), and
	// the file read back again. No partial copy is left in /etc or in the
	// crontab folder, where a boot or crond would read it.
	writeInPlace
)

// writeRemote writes data to the file at p on the host; it returns nil
// only when the file holds exactly data.
func writeRemote(ctx context.Context, c *Client, p string, data []byte, how writeHow) error {
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	dir := path.Dir(p)
	if how == writeInPlace {
		dir = "/tmp"
	}
	tmp := path.Join(dir, partName(partDeadline(ctx, c.cfg, c.cfg.clock()), c.Target.Host, randomHex()))
	done := false
	defer func() {
		if !done || how == writeInPlace {
			c.runScript(context.WithoutCancel(ctx), min(c.cfg.commandTimeout(), removeGrace), scriptRemove, tmp)
		}
	}()
	if err := sendReader(ctx, c, bytes.NewReader(data), hexSum, int64(len(data)), tmp); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if how == writeInPlace {
		if err := c.runScript(ctx, c.cfg.commandTimeout(), scriptCopyInto, tmp, p); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		got, n, err := c.readSum(ctx, scriptCat, p)
		if err != nil {
			return fmt.Errorf("read back %s: %w", p, err)
		}
		if got != hexSum || n != int64(len(data)) {
			return fmt.Errorf("read back %s: %d bytes with sha256 %s, wrote %d bytes with sha256 %s", p, n, got, len(data), hexSum)
		}
		done = true
		return nil
	}
	if err := c.runScript(ctx, c.cfg.commandTimeout(), scriptChmod, tmp); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := c.runScript(ctx, c.cfg.commandTimeout(), scriptMove, tmp, p); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, p, err)
	}
	done = true
	return nil
}

// runBlock runs the boot block (built only by Setup.Block, from fixed
// lines and checked parts) in a shell on the host, as the boot does.
func (c *Client) runBlock(ctx context.Context, block string) error {
	return c.run(ctx, blockRunTimeout, block, nil, nil)
}

// configText is heapguard.conf for setup.
func configText(setup Setup) string {
	var b strings.Builder
	b.WriteString("# Written by heapguard deploy from the flags after --; the next deploy rewrites it.\n")
	for _, l := range setup.Config {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// findBootScript is the boot script of the probed version, or, when the
// version is unknown, the one the host has.
func findBootScript(ctx context.Context, c *Client, probe *Probe) (string, error) {
	if probe != nil {
		if p := BootScript(probe.Version); p != "" {
			return p, nil
		}
	}
	for _, p := range []string{bootScript51, bootScript4x} {
		err := c.runScript(ctx, c.cfg.commandTimeout(), scriptIsFile, p)
		var re *RemoteError
		if err == nil {
			return p, nil
		}
		if !errors.As(err, &re) {
			return "", fmt.Errorf("look for the boot script: %w", err)
		}
	}
	return "", fmt.Errorf("%w (%s or %s)", errNoBootScript, bootScript51, bootScript4x)
}

var errNoBootScript = errors.New("no boot script on the host")

// persist applies setup after the binary is in place at res.Path. The
// order makes a run cut short safe to repeat: first what stops or removes
// (the daemon of an earlier mode, the lines the mode does not want), then
// heapguard.conf and the boot block (saved with auto-backup.sh at once),
// then the block run once now. A pending marker beside the binary,
// written before the first change and removed once the daemon is
// confirmed, makes the next run replace a daemon that a failed run left on
// the old binary or configuration. binChanged says the binary was
// installed or upgraded.
func persist(ctx context.Context, c *Client, res *Result, setup Setup, binChanged bool) error {
	bin := res.Path
	dir := path.Dir(bin)
	confPath := path.Join(dir, ConfigName)
	if res.Probe == nil || !IsESXi(res.Probe.Version) {
		if setup.Mode == ModeNone {
			return nil // the binary only: no boot file of this host is touched
		}
		// Boot files are edited only on a host known to be ESXi: on
		// another system they mean something else.
		return fmt.Errorf("--mode %s: the host did not say it is ESXi (vmware -vl, esxcli system version get), so its boot script and crontab are left alone; the binary is in place (--mode none installs only that)", setup.Mode)
	}
	bootPath, err := findBootScript(ctx, c, res.Probe)
	if err != nil {
		return err
	}
	res.BootScript = bootPath
	res.Mode = setup.Mode
	note := func(s string) { res.Changes = append(res.Changes, s) }
	if setup.Mode == ModeInetd {
		if err := checkInetd(ctx, c); err != nil {
			return err
		}
	}

	// Read everything first, decide, then change.
	wantConf := ""
	confChanged := false
	if setup.Mode != ModeNone {
		wantConf = configText(setup)
		had, _, err := readRemote(ctx, c, confPath)
		if err != nil {
			return err
		}
		confChanged = had != wantConf
	}
	boot, exists, err := readRemote(ctx, c, bootPath)
	if err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("boot script %s not found", bootPath)
	}
	prev, err := InstalledMode(boot)
	if err != nil {
		return fmt.Errorf("%s: %w: fix it by hand", bootPath, err)
	}
	block := ""
	if setup.Mode != ModeNone {
		block = setup.Block(bin)
	}
	newBoot, err := WithBlock(boot, block)
	if err != nil {
		return fmt.Errorf("%s: %w", bootPath, err)
	}
	bootChanged := newBoot != boot
	pendingPath := path.Join(dir, pendingName)
	pending, err := remoteExists(ctx, c, pendingPath)
	if err != nil {
		return err
	}
	if binChanged || confChanged || bootChanged {
		if err := writeRemote(ctx, c, pendingPath, []byte("heapguard deploy under way: the next deploy replaces the daemon\n"), writeReplace); err != nil {
			return err
		}
		pending = true
	}

	// What stops or removes first: if it fails, the block still says so,
	// and the next run tries again.
	if prev == ModeDaemon && setup.Mode != ModeDaemon {
		if err := c.runScript(ctx, stopTimeout, scriptStop, bin); err != nil {
			return fmt.Errorf("stop the daemon: %w", err)
		}
		note("stopped the daemon")
	}
	if err := dropLines(ctx, c, bin, setup, note); err != nil {
		return err
	}

	if confChanged {
		if err := writeRemote(ctx, c, confPath, []byte(wantConf), writeReplace); err != nil {
			return err
		}
		note("wrote " + confPath)
	}
	if bootChanged {
		// In place: ESXi saves the /etc files it marks (sticky bit), and
		// a new file renamed over the old one would lose the mark.
		if err := writeRemote(ctx, c, bootPath, []byte(newBoot), writeInPlace); err != nil {
			return err
		}
		switch {
		case prev == "":
			note(fmt.Sprintf("added the %s block to %s", setup.Mode, bootPath))
		case block == "":
			note(fmt.Sprintf("removed the %s block from %s", prev, bootPath))
		default:
			note(fmt.Sprintf("updated the block in %s (was %s)", bootPath, prev))
		}
	}
	if bootChanged || pending {
		if err := c.runScript(ctx, backupTimeout, scriptAutoBackup); err != nil {
			return fmt.Errorf("save the configuration with %s (the block is gone after a reboot until it runs): %w", autoBackup, err)
		}
		note("saved with " + autoBackup)
	}

	switch setup.Mode {
	case ModeCron, ModeInetd:
		if err := c.runBlock(ctx, block); err != nil {
			return fmt.Errorf("run the boot block now: %w", err)
		}
	case ModeDaemon:
		if err := startDaemon(ctx, c, res, setup, pending); err != nil {
			return err
		}
	}
	if pending {
		if err := c.runScript(ctx, c.cfg.commandTimeout(), scriptRemove, pendingPath); err != nil {
			return fmt.Errorf("remove %s: %w", pendingPath, err)
		}
	}
	return nil
}

// pendingName, beside the binary, marks a deploy that changed something
// and has not yet confirmed the daemon.
const pendingName = ".heapguard-deploy-pending"

// startDaemon runs the daemon block: with replace (a change of binary,
// configuration or block, now or in a run that did not finish), `run
// --replace`, which takes over from the daemon running once it finished
// the action under way. It then waits for a daemon to hold the host lock:
// with replace, another than the one that held it before.
func startDaemon(ctx context.Context, c *Client, res *Result, setup Setup, replace bool) error {
	bin := res.Path
	conf := path.Join(path.Dir(bin), ConfigName)
	before, err := hostLockHolder(ctx, c, bin, conf)
	if err != nil {
		return err
	}
	start := setup
	if replace {
		start.Args = append(append([]string(nil), setup.Args...), "--replace")
	}
	if err := c.runBlock(ctx, start.Block(bin)); err != nil {
		return fmt.Errorf("start the daemon: %w", err)
	}
	if replace {
		res.Changes = append(res.Changes, "started the daemon (replacing the one running, if any)")
	}
	deadline := time.Now().Add(daemonWait)
	for {
		pid, err := hostLockHolder(ctx, c, bin, conf)
		if err != nil {
			return err
		}
		switch {
		case pid > 0 && (!replace || pid != before):
			res.Found = append(res.Found, fmt.Sprintf("the daemon runs (pid %d holds the host lock)", pid))
			return nil
		case time.Now().After(deadline) && pid > 0:
			// The one replaced is finishing an action (up to 8m45s); the
			// new one takes over when it exits.
			res.Warnings = append(res.Warnings, fmt.Sprintf("pid %d still holds the host lock after %v: the new daemon takes over once it has finished the action under way (deploy --status shows the holder)", pid, daemonWait))
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("the daemon did not start within %v (the host lock is free): run %s run --config %s on the host to see why", daemonWait, bin, conf)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// daemonWait bounds how long deploy waits for a daemon it started to hold
// the host lock.
const daemonWait = 15 * time.Second

// hostLockHolder is the pid holding the host lock as heapguard status on
// the host says it, 0 when it is free.
func hostLockHolder(ctx context.Context, c *Client, bin, conf string) (int, error) {
	var out bytes.Buffer
	err := c.pipeScript(ctx, c.cfg.commandTimeout(), scriptStatusJSON, nil, &limitedBuffer{b: &out, n: 1 << 20}, bin, conf)
	var re *RemoteError
	if err != nil && !errors.As(err, &re) {
		return 0, fmt.Errorf("ask heapguard status who holds the host lock: %w", err)
	}
	var st struct {
		Locks []struct {
			Lock string `json:"lock"`
			Held bool   `json:"held"`
			PID  int    `json:"pid"`
		} `json:"locks"`
	}
	if err := json.Unmarshal(out.Bytes(), &st); err != nil {
		return 0, fmt.Errorf("heapguard status --json on the host: %w", err)
	}
	for _, l := range st.Locks {
		if l.Lock == "host" && l.Held {
			return l.PID, nil
		}
	}
	return 0, nil
}

// checkInetd refuses a host without /etc/inetd.conf.
func checkInetd(ctx context.Context, c *Client) error {
	ok, err := remoteExists(ctx, c, inetdConf)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("--mode inetd: the host has no %s: use --mode daemon (serve --listen, docs/esxi.md)", inetdConf)
	}
	return nil
}

// remoteExists says whether anything is at p on the host.
func remoteExists(ctx context.Context, c *Client, p string) (bool, error) {
	err := c.runScript(ctx, c.cfg.commandTimeout(), scriptExists, p)
	var re *RemoteError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &re) && re.Status == 1:
		return false, nil
	}
	return false, fmt.Errorf("look for %s: %w", p, err)
}

// dropLines removes the crontab and inetd.conf lines naming the binary
// that the mode does not want (an earlier mode's, or one with other
// flags), then restarts crond or reloads inetd so they forget them.
func dropLines(ctx context.Context, c *Client, bin string, setup Setup, note func(string)) error {
	files := []struct {
		path, keep string
		reload     script
		what       string
	}{
		{rootCrontab, keepIf(setup.Mode == ModeCron, setup.CronLine(bin)), scriptRestartCrond, "restarted crond"},
		{inetdConf, keepIf(setup.Mode == ModeInetd, setup.InetdLine(bin)), scriptReloadInetd, "reloaded inetd"},
	}
	for _, f := range files {
		text, exists, err := readRemote(ctx, c, f.path)
		if err != nil {
			return err
		}
		if !exists {
			continue
		}
		kept, removed := WithoutLines(text, bin, f.keep)
		if !removed {
			continue
		}
		if err := writeRemote(ctx, c, f.path, []byte(kept), writeInPlace); err != nil {
			return err
		}
		if err := c.runScript(ctx, c.cfg.commandTimeout(), f.reload); err != nil {
			return fmt.Errorf("%s after editing %s: %w", f.what, f.path, err)
		}
		note(fmt.Sprintf("removed heapguard's old line from %s, %s", f.path, f.what))
	}
	return nil
}

func keepIf(ok bool, line string) string {
	if ok {
		return line
	}
	return ""
}

// runDoctor runs heapguard doctor on the host, on the state folder the
// setup names if it does, and keeps its verdict.
func runDoctor(ctx context.Context, c *Client, res *Result, setup Setup) {
	s, paths := scriptDoctor, []string{res.Path}
	for _, l := range setup.Config {
		if dir, ok := strings.CutPrefix(l, "state-dir "); ok && checkRemotePath(dir) == nil {
			s, paths = scriptDoctorState, []string{res.Path, dir}
		}
	}
	var out bytes.Buffer
	err := c.pipeScript(ctx, c.cfg.commandTimeout(), s, nil, &limitedBuffer{b: &out, n: 64 << 10}, paths...)
	res.Doctor = doctorVerdict(out.String())
	var re *RemoteError
	switch {
	case err == nil:
	case errors.As(err, &re):
		res.DoctorStatus = re.Status
	default:
		res.DoctorStatus = -1
		res.Doctor = err.Error()
	}
}

// doctorVerdict is the last non-empty line of doctor's output: its
// verdict.
func doctorVerdict(out string) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if s := strings.TrimSpace(lines[i]); s != "" {
			return s
		}
	}
	return "(no output)"
}

// sendReader copies size bytes of r with SHA-256 sum to tmp and reads
// them back: nil only when the host holds exactly those bytes.
func sendReader(ctx context.Context, c *Client, r io.Reader, sum string, size int64, tmp string) error {
	if err := c.pipeScript(ctx, c.cfg.copyTimeout(), scriptCatTo, r, nil, tmp); err != nil {
		return fmt.Errorf("send to %s: %w", tmp, err)
	}
	got, n, err := c.readSum(ctx, scriptCat, tmp)
	if err != nil {
		return fmt.Errorf("read back %s: %w", tmp, err)
	}
	if got != sum || n != size {
		return fmt.Errorf("read back %s: %d bytes with sha256 %s, sent %d bytes with sha256 %s", tmp, n, got, size, sum)
	}
	return nil
}

// resolveDest is opts' folder and the binary's path in it.
func resolveDest(ctx context.Context, c *Client, opts InstallOptions) (string, error) {
	dest := opts.Dest
	if dest == "" {
		var err error
		if dest, err = DefaultDest(ctx, c, opts.Volumes); err != nil {
			return "", err
		}
	}
	final := path.Join(path.Clean(dest), BinaryName)
	return final, checkRemotePath(final)
}

// Uninstall removes what Install put on the host: the daemon stopped, the
// crontab and inetd.conf lines (crond restarted, inetd reloaded), the boot
// block (saved with auto-backup.sh), heapguard.conf and the binary. The
// state folder (journal, budgets) is kept: it is the record of what
// heapguard did.
func Uninstall(ctx context.Context, c *Client, opts InstallOptions) (Result, error) {
	res := Result{Target: c.Target, Action: Uninstalled}
	final, err := resolveDest(ctx, c, opts)
	if err != nil {
		return res, err
	}
	res.Path = final
	probe := ProbeHost(ctx, c, path.Dir(final))
	res.Probe = &probe
	if err := persist(ctx, c, &res, Setup{Mode: ModeNone}, false); err != nil {
		return res, err
	}
	for _, p := range []string{path.Join(path.Dir(final), ConfigName), final} {
		err := c.runScript(ctx, c.cfg.commandTimeout(), scriptExists, p)
		var re *RemoteError
		if errors.As(err, &re) && re.Status == 1 {
			continue
		}
		if err != nil {
			return res, fmt.Errorf("look for %s: %w", p, err)
		}
		if err := c.runScript(ctx, c.cfg.commandTimeout(), scriptRemove, p); err != nil {
			return res, fmt.Errorf("remove %s: %w", p, err)
		}
		res.Changes = append(res.Changes, "removed "+p)
	}
	res.Mode = ""
	return res, nil
}

// InstalledStatus says what is installed, changing nothing: the binary's
// SHA-256, the boot block's mode, whether the crontab or inetd.conf has
// its line, and heapguard status's first line.
func InstalledStatus(ctx context.Context, c *Client, opts InstallOptions) (Result, error) {
	res := Result{Target: c.Target, Action: Reported}
	final, err := resolveDest(ctx, c, opts)
	if err != nil {
		return res, err
	}
	res.Path = final
	found := func(f string, a ...any) { res.Found = append(res.Found, fmt.Sprintf(f, a...)) }
	if res.SHA256, err = remoteSum(ctx, c, final); err != nil {
		return res, err
	}
	if res.SHA256 == "" {
		found("no binary at %s", final)
	}
	probe := ProbeHost(ctx, c, path.Dir(final))
	res.Probe = &probe
	bootPath, err := findBootScript(ctx, c, &probe)
	if err != nil {
		return res, err
	}
	res.BootScript = bootPath
	if boot, _, err := readRemote(ctx, c, bootPath); err != nil {
		return res, err
	} else if res.Mode, err = InstalledMode(boot); err != nil {
		found("%s: %v", bootPath, err)
	}
	if res.Mode == "" {
		found("no heapguard block in %s", bootPath)
	} else {
		found("mode %s (block in %s)", res.Mode, bootPath)
	}
	for _, f := range []string{rootCrontab, inetdConf} {
		text, exists, err := readRemote(ctx, c, f)
		if err != nil {
			return res, err
		}
		if _, has := WithoutLines(text, final, ""); exists && has {
			found("%s has heapguard's line", f)
		}
	}
	if res.SHA256 != "" {
		conf := path.Join(path.Dir(final), ConfigName)
		s, paths := scriptStatus, []string{final, conf}
		if ok, err := remoteExists(ctx, c, conf); err != nil {
			return res, err
		} else if !ok {
			s, paths = scriptStatusBare, []string{final}
		}
		var out bytes.Buffer
		err := c.pipeScript(ctx, c.cfg.commandTimeout(), s, nil, &limitedBuffer{b: &out, n: 64 << 10}, paths...)
		var re *RemoteError
		if err != nil && !errors.As(err, &re) {
			return res, err
		}
		first, _, _ := strings.Cut(out.String(), "\n")
		found("heapguard status: %s", strings.TrimSpace(first))
	}
	return res, nil
}
