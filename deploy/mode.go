package deploy

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// Mode is how heapguard runs on the host once installed, kept across
// reboots by a marked block in the host's boot script.
type Mode string

const (
	// ModeCron: root's crontab runs `heapguard check` on Schedule.
	ModeCron Mode = "cron"
	// ModeDaemon: `heapguard run` stays resident.
	ModeDaemon Mode = "daemon"
	// ModeInetd: inetd answers Port with `heapguard serve --inetd`.
	ModeInetd Mode = "inetd"
	// ModeNone: the binary and nothing else.
	ModeNone Mode = "none"
)

// ParseMode reads a --mode value.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeCron, ModeDaemon, ModeInetd, ModeNone:
		return m, nil
	}
	return "", fmt.Errorf("mode %q: want cron, daemon, inetd or none", s)
}

// Defaults of Setup.
const (
	DefaultSchedule  = "*/5 * * * *"
	DefaultServePort = 9731
	// ConfigName is the flags file beside the binary that every mode's
	// command reads (--config), written from the flags after --.
	ConfigName = "heapguard.conf"
)

// Host paths the boot block and the edits rely on. Sources in
// docs/deploy.md ("Paths on the host").
const (
	bootScript51   = "/etc/rc.local.d/local.sh" // 5.1 and later (KB 2043564)
	bootScript4x   = "/etc/rc.local"            // 4.x and 5.0 (KB 2043564)
	rootCrontab    = "/var/spool/cron/crontabs/root"
	crondPIDFile   = "/var/run/crond.pid"
	inetdConf      = "/etc/inetd.conf"
	inetdPIDFile   = "/var/run/inetd.pid"
	autoBackup     = "/sbin/auto-backup.sh"
	busyboxVMware  = "/usr/lib/vmware/busybox/bin/busybox" // crond from 7.0.2 on
	busyboxClassic = "/bin/busybox"
)

// Setup is what a mode installs besides the binary.
type Setup struct {
	Mode Mode
	// Schedule is the crontab time fields of ModeCron ("" is
	// DefaultSchedule).
	Schedule string
	// Port is ModeInetd's TCP port (0 is DefaultServePort).
	Port int
	// Config are the lines of heapguard.conf ("name value"), settings
	// every command reads; Args are the mode command's own flags (run's
	// --interval, serve's --allow-remote), put on its command line.
	Config []string
	Args   []string
}

func (s Setup) schedule() string {
	if s.Schedule == "" {
		return DefaultSchedule
	}
	return s.Schedule
}

func (s Setup) port() int {
	if s.Port == 0 {
		return DefaultServePort
	}
	return s.Port
}

// cronField is one crontab time field as busybox crond reads it.
var cronField = regexp.MustCompile(`^(\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?(,(\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?)*$`)

// safeArg is what a mode's extra argument may hold: inetd.conf and the
// crontab take no quoting, so only characters no shell, crond or inetd
// treats specially.
var safeArg = regexp.MustCompile(`^[A-Za-z0-9_.,:/=@+-]+$`)

// Validate checks the setup for dest, the folder the binary goes to.
func (s Setup) Validate(dest string) error {
	if _, err := ParseMode(string(s.Mode)); err != nil {
		return err
	}
	if f := strings.Fields(s.schedule()); len(f) != 5 {
		return fmt.Errorf("schedule %q: want the 5 crontab time fields", s.schedule())
	} else {
		for _, x := range f {
			if !cronField.MatchString(x) {
				return fmt.Errorf("schedule %q: field %q is not a crontab time field", s.schedule(), x)
			}
		}
	}
	if p := s.port(); p < 1 || p > 65535 {
		return fmt.Errorf("port %d: want 1 to 65535", p)
	}
	for _, l := range s.Config {
		if strings.ContainsAny(l, "\x00\r\n") {
			return fmt.Errorf("setting %q: holds a line break", l)
		}
	}
	for _, a := range s.Args {
		if !safeArg.MatchString(a) {
			return fmt.Errorf("argument %q: only letters, digits and _ . , : / = @ + - can go on the mode's command line; put the setting in the config (before --)", a)
		}
	}
	if s.Mode == ModeNone {
		return nil
	}
	// The block names the binary inside the crontab (a shell line, where
	// crond also treats % specially) and inetd.conf (split on blanks, no
	// quoting): only characters none of them treats specially.
	if !safeArg.MatchString(dest) {
		return fmt.Errorf("--mode %s: the folder %q holds characters the crontab or inetd.conf cannot carry (blanks, quotes, %%, $, ;, brackets...): give --dest with only letters, digits and _ . , : / = @ + - (the datastore's UUID path: /vmfs/volumes/UUID/heapguard)", s.Mode, dest)
	}
	return checkRemotePath(dest)
}

// IsESXi says whether the probe's version line ("ESXi 5.5.0 build-…")
// names ESXi, as `vmware -vl` and esxcli name it; VMware Workstation, ESX
// (with its service console) and anything unknown are not.
func IsESXi(version string) bool {
	_, _, ok := parseRelease(version)
	return ok
}

// BootScript is the boot script of version ("ESXi 5.5.0 build-…"):
// /etc/rc.local on 4.x and 5.0, /etc/rc.local.d/local.sh from 5.1 on; ""
// for a version that is not ESXi's.
func BootScript(version string) string {
	major, minor, ok := parseRelease(version)
	switch {
	case !ok:
		return ""
	case major < 5 || major == 5 && minor == 0:
		return bootScript4x
	}
	return bootScript51
}

func parseRelease(version string) (major, minor int, ok bool) {
	f := strings.Fields(version)
	if len(f) < 2 || f[0] != "ESXi" {
		return 0, 0, false
	}
	parts := strings.SplitN(f[1], ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	var err1, err2 error
	major, err1 = strconv.Atoi(parts[0])
	minor, err2 = strconv.Atoi(parts[1])
	return major, minor, err1 == nil && err2 == nil
}

// Block markers. The mode is read back from the begin line.
const (
	blockBegin = "# BEGIN heapguard deploy, mode "
	blockEnd   = "# END heapguard deploy"
)

// commandLine is the mode's command: the binary, its subcommand, --config
// and the extra arguments, each a shell word that needs no quoting
// (Validate).
func (s Setup) commandLine(bin string) string {
	sub := map[Mode]string{ModeCron: "check", ModeDaemon: "run", ModeInetd: "serve --inetd"}[s.Mode]
	words := []string{bin, sub, "--config", path.Join(path.Dir(bin), ConfigName)}
	return strings.Join(append(words, s.Args...), " ")
}

// CronLine is the crontab line of ModeCron for the binary at bin.
func (s Setup) CronLine(bin string) string {
	return s.schedule() + " " + s.commandLine(bin) + " >/dev/null 2>&1"
}

// InetdLine is the inetd.conf line of ModeInetd (service as a port
// number: busybox inetd takes one without /etc/services). argv[0] is the
// binary's path: heapguard finds its state folder beside itself by it
// where /proc/self/exe cannot be read.
func (s Setup) InetdLine(bin string) string {
	return fmt.Sprintf("%d stream tcp nowait root %s %s serve --inetd --config %s%s",
		s.port(), bin, bin, path.Join(path.Dir(bin), ConfigName), strings.TrimRight(" "+strings.Join(s.Args, " "), " "))
}

// Block is the boot script's marked block for the binary at bin: shell
// text made of fixed lines and of the crontab or inetd line in single
// quotes (its parts are checked by Validate). Run at boot, and once by
// deploy, it adds the line only when it is missing and only then restarts
// crond or reloads inetd, so running it again changes nothing; the daemon
// block starts `run`, which refuses to start while one runs.
func (s Setup) Block(bin string) string {
	var b strings.Builder
	b.WriteString(blockBegin + string(s.Mode) + ": heapguard deploy --uninstall removes it\n")
	switch s.Mode {
	case ModeCron:
		fmt.Fprintf(&b, "hg_line=%s\n", shellQuote(s.CronLine(bin)))
		fmt.Fprintf(&b, "if ! grep -qxF \"$hg_line\" %[1]s; then\n  printf '%%s\\n' \"$hg_line\" >> %[1]s\n", rootCrontab)
		fmt.Fprintf(&b, "  kill $(cat %s) 2>/dev/null\n", crondPIDFile)
		fmt.Fprintf(&b, "  if [ -x %[1]s ]; then %[1]s crond; else %[2]s crond; fi\nfi\n", busyboxVMware, busyboxClassic)
	case ModeDaemon:
		fmt.Fprintf(&b, "%s </dev/null >/dev/null 2>&1 &\n", s.commandLine(bin))
	case ModeInetd:
		fmt.Fprintf(&b, "hg_line=%s\n", shellQuote(s.InetdLine(bin)))
		fmt.Fprintf(&b, "if ! grep -qxF \"$hg_line\" %[1]s; then\n  printf '%%s\\n' \"$hg_line\" >> %[1]s\n", inetdConf)
		fmt.Fprintf(&b, "  kill -HUP $(cat %s) 2>/dev/null\nfi\n", inetdPIDFile)
	}
	b.WriteString(blockEnd + "\n")
	return b.String()
}

// shellQuote makes s one shell word in single quotes.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// ErrBootScript: the boot script's heapguard block is damaged (a begin
// without its end, or two blocks); deploy does not guess.
var ErrBootScript = errors.New("boot script's heapguard block is damaged")

// InstalledMode is the mode of the block in the boot script text, ""
// when there is none.
func InstalledMode(text string) (Mode, error) {
	begin, _, err := findBlock(text)
	if err != nil || begin < 0 {
		return "", err
	}
	line, _, _ := strings.Cut(text[begin+len(blockBegin):], "\n")
	m, _, _ := strings.Cut(line, ":")
	return Mode(m), nil
}

// findBlock gives the byte offsets of the block's first line and of the
// end of its last line (-1, -1: no block).
func findBlock(text string) (begin, end int, err error) {
	begin, end = -1, -1
	off := 0
	for _, line := range strings.SplitAfter(text, "\n") {
		trimmed := strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(trimmed, blockBegin):
			if begin >= 0 {
				return -1, -1, fmt.Errorf("%w: a second begin line at byte %d", ErrBootScript, off)
			}
			begin = off
		case trimmed == blockEnd:
			if begin < 0 || end >= 0 {
				return -1, -1, fmt.Errorf("%w: an end line at byte %d without its begin", ErrBootScript, off)
			}
			end = off + len(line)
		}
		off += len(line)
	}
	if begin >= 0 && end < 0 {
		return -1, -1, fmt.Errorf("%w: a begin line at byte %d without its end", ErrBootScript, begin)
	}
	return begin, end, nil
}

// WithBlock is the boot script text with block in place of the one there
// (block "" removes it). A new block goes before the script's first exit
// at the top level (an unindented `exit` or `exit 0`: local.sh ends with
// one, and what follows it never runs), or at the end. Everything outside
// the block is kept byte for byte.
func WithBlock(text, block string) (string, error) {
	begin, end, err := findBlock(text)
	if err != nil {
		return "", err
	}
	if begin >= 0 {
		if block != "" && exitBefore(text[:begin]) {
			return "", fmt.Errorf("%w: it follows an exit, so it never runs", ErrBootScript)
		}
		return text[:begin] + block + text[end:], nil
	}
	if block == "" {
		return text, nil
	}
	at := len(text)
	off := 0
	for _, line := range strings.SplitAfter(text, "\n") {
		if topLevelExit.MatchString(strings.TrimRight(line, "\r\n")) {
			at = off
			break
		}
		off += len(line)
	}
	if at == len(text) && text != "" && !strings.HasSuffix(text, "\n") {
		block = "\n" + block
	}
	return text[:at] + block + text[at:], nil
}

// topLevelExit is an unindented exit with status 0 (or none), perhaps a
// comment after it.
var topLevelExit = regexp.MustCompile(`^exit( +0)? *(#.*)?$`)

// exitBefore says whether text holds a top-level exit.
func exitBefore(text string) bool {
	for _, line := range strings.Split(text, "\n") {
		if topLevelExit.MatchString(strings.TrimRight(line, "\r")) {
			return true
		}
	}
	return false
}

// WithoutLines is text without the lines whose command is the binary at
// bin (the sixth field: a crontab line's command after its five time
// fields, an inetd.conf line's server path), except keep (the line the
// current mode wants; "" keeps none). Comments and other commands' lines
// stay. It says whether it removed any.
func WithoutLines(text, bin, keep string) (string, bool) {
	var b strings.Builder
	removed := false
	for _, line := range strings.SplitAfter(text, "\n") {
		body := strings.TrimRight(line, "\r\n")
		if body != keep && runs(body, bin) {
			removed = true
			continue
		}
		b.WriteString(line)
	}
	return b.String(), removed
}

// runs: line is not a comment and its sixth field is bin.
func runs(line, bin string) bool {
	f := strings.Fields(line)
	return len(f) >= 6 && !strings.HasPrefix(f[0], "#") && f[5] == bin
}
