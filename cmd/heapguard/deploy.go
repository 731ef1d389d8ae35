package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/heapguard/heapguard/deploy"
)

// passwordEnv holds the SSH password when no terminal can ask for it; a
// flag value would show in ps and in shell history.
const passwordEnv = "HEAPGUARD_SSH_PASSWORD"

type deployOptions struct {
	hostsFile      string
	identities     stringList
	knownHosts     string
	acceptNew      bool
	legacy         bool
	passwordFile   string
	user           string
	dest           string
	binary         string
	connectTimeout time.Duration
	commandTimeout time.Duration
	copyTimeout    time.Duration
	probeOnly      bool
	parallel       int
	hostTimeout    time.Duration
	mode           string
	schedule       string
	port           int
	uninstall      bool
	status         bool
	vib            string
}

func init() {
	register(&command{
		name:       "deploy",
		summary:    "copy heapguard to ESXi hosts over SSH, verified",
		usage:      "[flags] [--hosts FILE] [USER@]HOST[:PORT]... [-- AGENT-FLAGS...]",
		keepDashes: true,
		help: `Copies a heapguard binary to each host over SSH (no ssh or scp program needed): it
refuses a file that is not a static linux/amd64 ELF built with the ESXi-safe runtime
(make build), sends it under a temporary name into --dest (created), reads it back
and compares its SHA-256 here, and only then makes it executable and renames it to
DEST/heapguard in one step. A dropped connection leaves nothing under that name;
a later run removes the partial copy once its time is up. When the host already has
the same binary nothing is sent.

Before copying, deploy probes each host over the same connection and prints what it
found on a line of its own: version and build (vmware -vl, else esxcli system version
get), execInstalledOnly at runtime and for boot (esxcli system settings kernel list),
secure boot (secureBoot.py -s), lockdown (vim-cmd), free space where the binary goes
(df -k). A host that does not answer a question gets "unknown" and a warning; that
alone never stops the install. A host where execInstalledOnly is enforced at runtime
is refused before anything is copied (a copied binary fails there with "Operation
not permitted"): install heapguard as a VIB (make vib, then deploy --vib FILE), or turn
the setting off yourself; deploy never changes it. A file system without room for
the binary is refused with the figure. execInstalledOnly set for boot only, secure
boot (the boot script does not run, so nothing copied survives a reboot) and lockdown
are warnings. --probe-only stops after the probe and changes nothing.

Up to --parallel hosts are done at once (8; 1 is one after another), each within
--host-timeout, connect to rename (a host over its time fails "timed out after D"
and its connection is closed). One failing does not stop the others. Per host, as
it finishes: its probe line and warnings, then a result line: host, installed /
unchanged / upgraded (or failed and why), the SHA-256's first 12 digits, the
installed path. With more than one host a table follows, the hosts in the order
given. Interrupted (Ctrl-C, SIGTERM), deploy starts no more hosts, lets those
running end or time out, and lists the rest as not started.

Hosts sharing a datastore may share --dest: each partial copy's name holds the time
by which its run is done with it, and a run removes only those whose time passed
(docs/deploy.md).

Without --dest the binary goes to /vmfs/volumes/DATASTORE/heapguard/, DATASTORE
being the first, in byte order, of the names in /vmfs/volumes that link to a folder
(datastore labels), leaving out BOOTBANK*, OSDATA*, LOCKER*, Hypervisor*.

--mode (cron by default) makes heapguard run there and keeps it running across reboots:
deploy writes heapguard.conf beside the binary from the flags after -- (every agent
command reads it: check, run, serve, status), then a marked block in the boot script
(/etc/rc.local.d/local.sh from 5.1, /etc/rc.local on 4.x and 5.0) that at each boot adds
root's crontab line for check and restarts crond (cron), starts run (daemon), or adds
serve --inetd's line to /etc/inetd.conf and reloads inetd (inetd). It runs the block
once now and saves the configuration with /sbin/auto-backup.sh; then heapguard doctor
runs on the host and its verdict is shown. Running deploy again changes nothing; a new
binary or other flags replace the daemon once it finished the action under way (its
state folder is kept); another mode takes the earlier one's lines out. --mode none
installs the binary alone (and takes out a block an earlier deploy added). With UEFI
secure boot on the boot script does not run: deploy warns, and the mode lasts until
the next reboot. --uninstall removes all deploy added except the state folder;
--status changes nothing and says what is installed.

Host keys are checked strictly against --known-hosts: an unknown host is refused
with its key's SHA256 fingerprint (check it on the host's console, then rerun with
--accept-new to add it); a key that differs from the known one is always refused.

Authentication, tried in order: the keys of the SSH agent (SSH_AUTH_SOCK), the key
files (-i, or ~/.ssh/id_ed25519, id_ecdsa, id_rsa; a passphrase is asked on the
terminal), then keyboard-interactive and password with one password taken from
--password-file, else $HEAPGUARD_SSH_PASSWORD, else asked on the terminal (never a
flag value). ESXi 5.1 to 6.5 accept passwords only through keyboard-interactive.

Examples:
  heapguard deploy --binary bin/heapguard esx01.lab.example
  heapguard deploy --binary bin/heapguard --accept-new --hosts esx-hosts.txt
  heapguard deploy --probe-only --hosts esx-hosts.txt
  heapguard deploy --binary bin/heapguard --hosts esx-hosts.txt -- --power-off-allow 'DSVA*'
  heapguard deploy --binary bin/heapguard --mode daemon esx01 -- --power-off-allow 'DSVA*' --interval 30s
  heapguard deploy --status --hosts esx-hosts.txt
  heapguard deploy --uninstall esx01
  heapguard deploy --binary bin/heapguard --dest /vmfs/volumes/ssd1/tools -i ~/.ssh/esx_ed25519 root@[fd00::12]:22

A hosts file has one [user@]host[:port] a line, IPv6 in brackets; # starts a
comment.

EXIT STATUS:
  0 every host done (with --probe-only: every host would be), 2 a host failed, was
  refused or was not started, 3 bad usage, an unreadable hosts file or a binary that
  cannot run on ESXi`,
		flags: func(fs *flag.FlagSet) any {
			o := &deployOptions{}
			fs.StringVar(&o.hostsFile, "hosts", "", "read hosts from `FILE`, one [user@]host[:port] a line")
			fs.Var(&o.identities, "i", "private key `FILE` (repeatable; default ~/.ssh/id_ed25519, id_ecdsa, id_rsa when present)")
			fs.StringVar(&o.knownHosts, "known-hosts", "", "known hosts `FILE` (default ~/.ssh/known_hosts)")
			fs.BoolVar(&o.acceptNew, "accept-new", false, "add the key of a host known hosts does not list (never one that changed)")
			fs.BoolVar(&o.legacy, "legacy-algorithms", false, "also offer the weak key exchanges, ciphers and host key types of ESXi 4.x/5.x (diffie-hellman-group1-sha1, aes128-cbc, 3des-cbc, ssh-rsa, ...)")
			fs.StringVar(&o.passwordFile, "password-file", "", "read the SSH password from the first line of `FILE`")
			fs.StringVar(&o.user, "user", "root", "user `NAME` for hosts that name none")
			fs.StringVar(&o.dest, "dest", "", "install into `DIR` on each host (default /vmfs/volumes/FIRST-DATASTORE/heapguard)")
			fs.StringVar(&o.binary, "binary", "", "the heapguard `FILE` to send (default this program)")
			fs.DurationVar(&o.connectTimeout, "connect-timeout", deploy.DefaultConnectTimeout, "give up connecting and logging in to a host after `D`")
			fs.DurationVar(&o.commandTimeout, "command-timeout", deploy.DefaultCommandTimeout, "stop each remote command after `D`")
			fs.BoolVar(&o.probeOnly, "probe-only", false, "probe each host, print what will and will not work there, and change nothing")
			fs.DurationVar(&o.copyTimeout, "copy-timeout", deploy.DefaultCopyTimeout, "stop sending or reading back the binary after `D`")
			fs.IntVar(&o.parallel, "parallel", deploy.DefaultParallel, "deploy to `N` hosts at once (1: one after another)")
			fs.DurationVar(&o.hostTimeout, "host-timeout", deploy.DefaultHostTimeout, "give up a host whose whole deploy, connect to rename, takes more than `D`")
			fs.StringVar(&o.mode, "mode", string(deploy.ModeCron), "how heapguard runs there, kept across reboots by a block in the boot script: `cron` (check every --schedule), daemon (run), inetd (serve --inetd on --port) or none (the binary only)")
			fs.StringVar(&o.schedule, "schedule", deploy.DefaultSchedule, "--mode cron: the crontab time `FIELDS`")
			fs.IntVar(&o.port, "port", deploy.DefaultServePort, "--mode inetd: the TCP `PORT` inetd answers with serve --inetd")
			fs.BoolVar(&o.uninstall, "uninstall", false, "remove what deploy added: the daemon stopped, the crontab and inetd.conf lines, the boot block, heapguard.conf and the binary (the state folder is kept)")
			fs.StringVar(&o.vib, "vib", "", "install heapguard as the VIB `FILE` (make vib) with esxcli software vib install, where the host's acceptance level allows CommunitySupported and secure boot is off (needed where execInstalledOnly is enforced); --mode does not apply")
			fs.BoolVar(&o.status, "status", false, "change nothing: say what is installed on each host (binary, mode, lines, heapguard status)")
			return o
		},
		run: runDeploy,
	})
}

func runDeploy(ctx context.Context, e env, opts any, args []string) int {
	o := opts.(*deployOptions)
	fail := func(format string, a ...any) int {
		fmt.Fprintf(e.stderr, "heapguard deploy: "+format+"\n", a...)
		return exitUnknown
	}
	hosts, passed := args, []string(nil)
	if i := slices.Index(args, "--"); i >= 0 {
		hosts, passed = args[:i], args[i+1:]
	}
	targets, err := deployTargets(o.hostsFile, hosts)
	if err != nil {
		return fail("%v", err)
	}
	mode, err := deploy.ParseMode(o.mode)
	if err != nil {
		return fail("--mode: %v", err)
	}
	if (o.uninstall || o.status || o.probeOnly) && len(passed) > 0 || o.uninstall && o.status {
		fmt.Fprintln(e.stderr, "heapguard deploy: --uninstall, --status and --probe-only go alone, without flags after --")
		return usageError
	}
	setup := &deploy.Setup{Mode: mode, Schedule: o.schedule, Port: o.port}
	if setup.Config, setup.Args, err = agentSetup(mode, passed); err != nil {
		fmt.Fprintf(e.stderr, "heapguard deploy: after --: %v\n", err)
		return usageError
	}
	if err := setup.Validate("/"); err != nil {
		fmt.Fprintf(e.stderr, "heapguard deploy: %v\n", err)
		return usageError
	}
	if len(targets) == 0 {
		fmt.Fprintln(e.stderr, "heapguard deploy: no host given")
		return usageError
	}
	if o.parallel < 1 {
		fmt.Fprintf(e.stderr, "heapguard deploy: --parallel %d: want 1 or more\n", o.parallel)
		return usageError
	}
	if o.connectTimeout <= 0 || o.commandTimeout <= 0 || o.copyTimeout <= 0 || o.hostTimeout <= 0 {
		fmt.Fprintln(e.stderr, "heapguard deploy: timeouts must be more than 0")
		return usageError
	}
	if o.dest != "" && !strings.HasPrefix(o.dest, "/") {
		return fail("--dest %q: want an absolute path on the host", o.dest)
	}
	if o.vib != "" && (o.uninstall || o.status || len(passed) > 0 || o.binary != "") {
		fmt.Fprintln(e.stderr, "heapguard deploy: --vib goes alone: not with --binary, --uninstall, --status or flags after --")
		return usageError
	}
	var vibFile deploy.VIBFile
	var bin deploy.Binary
	if o.vib != "" {
		// CheckVIB checks the binary inside as CheckBinary would.
		if vibFile, err = deploy.CheckVIB(o.vib); err != nil {
			return fail("%v", err)
		}
	} else {
		binPath := o.binary
		if binPath == "" {
			if binPath, err = os.Executable(); err != nil {
				return fail("find this program: %v (give --binary)", err)
			}
		}
		if bin, err = deploy.CheckBinary(binPath); err != nil {
			return fail("%v", err)
		}
	}
	home, _ := os.UserHomeDir()
	known := o.knownHosts
	if known == "" {
		if home == "" {
			return fail("no home folder for ~/.ssh/known_hosts: give --known-hosts")
		}
		known = filepath.Join(home, ".ssh", "known_hosts")
	}
	tty := terminal(e.stdin)
	auth, closeAuth, err := deployAuth(o, home, tty, e.stderr)
	if err != nil {
		return fail("%v", err)
	}
	defer closeAuth()
	cfg := &deploy.Config{
		User:             o.user,
		KnownHosts:       &deploy.KnownHosts{File: known, AcceptNew: o.acceptNew, Log: e.stderr},
		Auth:             auth,
		LegacyAlgorithms: o.legacy,
		ConnectTimeout:   o.connectTimeout,
		CommandTimeout:   o.commandTimeout,
		CopyTimeout:      o.copyTimeout,
	}
	fleet := deploy.Fleet{Parallel: o.parallel, HostTimeout: o.hostTimeout}
	// Deploy calls this from one goroutine, as each host finishes.
	install := deploy.InstallOptions{Dest: o.dest, ProbeOnly: o.probeOnly, Setup: setup, Uninstall: o.uninstall, Status: o.status}
	report := func(r deploy.Result) {
		for _, l := range r.Lines() {
			fmt.Fprintln(e.stdout, printable(l))
		}
	}
	var results []deploy.Result
	if o.vib != "" {
		install.Setup = nil
		results = deploy.DeployVIB(ctx, targets, cfg, vibFile, install, fleet, report)
	} else {
		results = deploy.Deploy(ctx, targets, cfg, bin, install, fleet, report)
	}
	if len(results) > 1 {
		fmt.Fprintln(e.stdout)
		deploy.WriteTable(printableWriter{e.stdout}, results)
	}
	failed, notStarted := deploy.Count(results)
	switch {
	case notStarted > 0:
		fmt.Fprintf(e.stderr, "heapguard deploy: stopped: %d of %d hosts failed, %d not started\n", failed, len(targets), notStarted)
		return exitCritical
	case failed > 0:
		fmt.Fprintf(e.stderr, "heapguard deploy: %d of %d hosts failed\n", failed, len(targets))
		return exitCritical
	}
	return exitOK
}

// deployTargets are the hosts of the file, then those of the arguments.
func deployTargets(hostsFile string, args []string) ([]deploy.Target, error) {
	var targets []deploy.Target
	if hostsFile != "" {
		f, err := os.Open(hostsFile)
		if err != nil {
			return nil, fmt.Errorf("hosts file: %w", err)
		}
		defer f.Close()
		if targets, err = deploy.ParseHosts(f); err != nil {
			return nil, fmt.Errorf("hosts file %s: %w", hostsFile, err)
		}
	}
	for _, a := range args {
		t, err := deploy.ParseTarget(a)
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
	}
	return targets, nil
}

// terminal is the file descriptor of stdin when it is a terminal, -1 if not.
func terminal(stdin io.Reader) int {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return int(f.Fd())
	}
	return -1
}

// deployAuth gathers the agent, the key files and the password source.
func deployAuth(o *deployOptions, home string, tty int, stderr io.Writer) (*deploy.Auth, func(), error) {
	auth := &deploy.Auth{}
	closeAuth := func() {}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		ag, conn, err := deploy.DialAgent(sock)
		if err != nil {
			fmt.Fprintf(stderr, "heapguard deploy: %v (going on without it)\n", err)
		} else {
			auth.Agent, closeAuth = ag, func() { conn.Close() }
		}
	}
	var passphrase func(string) ([]byte, error)
	if tty >= 0 {
		passphrase = func(path string) ([]byte, error) {
			fmt.Fprintf(stderr, "Passphrase for %s: ", path)
			defer fmt.Fprintln(stderr)
			return term.ReadPassword(tty)
		}
	}
	if len(o.identities) > 0 {
		for _, p := range o.identities {
			s, err := deploy.LoadKeyFile(p, passphrase)
			if err != nil {
				closeAuth()
				return nil, nil, err
			}
			auth.Signers = append(auth.Signers, s)
		}
	} else if home != "" {
		auth.Signers = deploy.DefaultKeys(filepath.Join(home, ".ssh"), auth.Agent != nil, passphrase, stderr)
	}
	switch {
	case o.passwordFile != "":
		pw, err := readPasswordFile(o.passwordFile)
		if err != nil {
			closeAuth()
			return nil, nil, err
		}
		auth.Password = func() (string, error) { return pw, nil }
	case os.Getenv(passwordEnv) != "":
		pw := os.Getenv(passwordEnv)
		auth.Password = func() (string, error) { return pw, nil }
	case tty >= 0:
		auth.Password = func() (string, error) {
			fmt.Fprint(stderr, "SSH password (for every host that asks): ")
			defer fmt.Fprintln(stderr)
			b, err := term.ReadPassword(tty)
			return string(b), err
		}
	}
	if auth.Agent == nil && len(auth.Signers) == 0 && auth.Password == nil {
		closeAuth()
		return nil, nil, errors.New("no way to log in: no SSH agent, no key file, no --password-file, no $" + passwordEnv + " and no terminal to ask a password on")
	}
	return auth, closeAuth, nil
}

// readPasswordFile reads the first line of path, without its line ending.
func readPasswordFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	defer f.Close()
	line, err := bufio.NewReader(io.LimitReader(f, 4096)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("password file %s: %w", path, err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("password file %s: first line empty", path)
	}
	return line, nil
}

// printable shows a line that holds what hosts said (their error output,
// mount points, datastore names) without its control characters: a host
// must not drive the admin's terminal with escape sequences.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || (r >= 0x20 && r != 0x7f && !(r >= 0x80 && r < 0xa0) && r != utf8.RuneError) {
			return r
		}
		return '?'
	}, s)
}

// printableWriter writes each line through printable, keeping newlines.
type printableWriter struct{ w io.Writer }

func (p printableWriter) Write(b []byte) (int, error) {
	lines := strings.SplitAfter(string(b), "\n")
	for _, l := range lines {
		body, nl := strings.CutSuffix(l, "\n")
		out := printable(body)
		if nl {
			out += "\n"
		}
		if _, err := io.WriteString(p.w, out); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}
