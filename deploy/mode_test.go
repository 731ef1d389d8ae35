package deploy

import (
	"errors"
	"strings"
	"testing"
)

const stockLocalSh = `#!/bin/sh

# local configuration options

# Note: modify at your own risk!

exit 0
`

func TestWithBlockPlacesReplacesRemoves(t *testing.T) {
	bin := "/vmfs/volumes/datastore1/heapguard/heapguard"
	cron := Setup{Mode: ModeCron}.Block(bin)
	withCron, err := WithBlock(stockLocalSh, cron)
	if err != nil {
		t.Fatal(err)
	}
	// Before exit 0, which would end the script before it.
	if i, j := strings.Index(withCron, blockBegin), strings.LastIndex(withCron, "exit 0"); i < 0 || i > j {
		t.Fatalf("block not before exit 0:\n%s", withCron)
	}
	if m, err := InstalledMode(withCron); err != nil || m != ModeCron {
		t.Fatalf("InstalledMode = %q, %v", m, err)
	}
	// Again: the same text (idempotent).
	if again, _ := WithBlock(withCron, cron); again != withCron {
		t.Errorf("second WithBlock changed the text:\n%s", again)
	}
	// Another mode replaces the block, in place.
	daemon := Setup{Mode: ModeDaemon}.Block(bin)
	withDaemon, _ := WithBlock(withCron, daemon)
	if strings.Count(withDaemon, blockBegin) != 1 || !strings.Contains(withDaemon, " run --config ") || strings.Contains(withDaemon, "crontabs") {
		t.Fatalf("mode change:\n%s", withDaemon)
	}
	// Removing gives back the stock script byte for byte.
	if back, _ := WithBlock(withDaemon, ""); back != stockLocalSh {
		t.Errorf("removed:\n%q\nwant\n%q", back, stockLocalSh)
	}
	// 4.x's rc.local has no exit 0: the block goes at the end; a last
	// line without its newline keeps it.
	rc := "#! /bin/ash\nexport PATH=/sbin:/bin"
	got, _ := WithBlock(rc, cron)
	if !strings.HasPrefix(got, rc+"\n"+blockBegin) {
		t.Errorf("appended to a script without exit 0:\n%q", got)
	}
	if back, _ := WithBlock(got, ""); back != rc+"\n" {
		t.Errorf("removed from rc.local: %q", back)
	}
}

// A damaged block (an end lost, two begins) is never guessed at: the
// admin may have edited it, and deploy could cut the script's own lines.
func TestWithBlockDamaged(t *testing.T) {
	block := Setup{Mode: ModeCron}.Block("/x/heapguard")
	whole, _ := WithBlock(stockLocalSh, block)
	noEnd := strings.Replace(whole, blockEnd+"\n", "", 1)
	twice := strings.Replace(whole, "exit 0", block+"exit 0", 1)
	endOnly := strings.Replace(whole, blockBegin, "# ", 1)
	for name, text := range map[string]string{"no end": noEnd, "two blocks": twice, "end only": endOnly} {
		if _, err := WithBlock(text, ""); !errors.Is(err, ErrBootScript) {
			t.Errorf("%s: WithBlock error %v, want ErrBootScript", name, err)
		}
		if _, err := InstalledMode(text); !errors.Is(err, ErrBootScript) {
			t.Errorf("%s: InstalledMode error %v, want ErrBootScript", name, err)
		}
	}
}

func TestWithoutLines(t *testing.T) {
	bin := "/vmfs/volumes/ds1/heapguard/heapguard"
	keep := Setup{Mode: ModeCron}.CronLine(bin)
	old := "*/10 * * * * " + bin + " check --config /vmfs/volumes/ds1/heapguard/heapguard.conf >/dev/null 2>&1"
	other := "*/5 * * * * /vmfs/volumes/ds1/heapguard/heapguard-old check"
	text := "#min hour day mon dow command\n1 * * * * /sbin/auto-backup.sh\n" + old + "\n" + keep + "\n" + other + "\n"
	got, removed := WithoutLines(text, bin, keep)
	want := "#min hour day mon dow command\n1 * * * * /sbin/auto-backup.sh\n" + keep + "\n" + other + "\n"
	if !removed || got != want {
		t.Errorf("WithoutLines:\n%s\nwant\n%s", got, want)
	}
	if again, removed := WithoutLines(got, bin, keep); removed || again != got {
		t.Errorf("second pass removed more: %v\n%s", removed, again)
	}
	if _, removed := WithoutLines(text, "/vmfs/volumes/ds1/heapguard", ""); removed {
		t.Error("a folder's name matched the lines of a file in it")
	}
	// Comments and other commands that only mention the binary stay.
	others := "#*/5 * * * * " + bin + " check\n0 3 * * * /opt/backup.sh " + bin + "\n# " + bin + "\n"
	if got, removed := WithoutLines(others, bin, ""); removed || got != others {
		t.Errorf("removed a comment or another command's line:\n%s", got)
	}
	// inetd.conf: the server path is the sixth field too.
	inetd := "9731 stream tcp nowait root " + bin + " " + bin + " serve --inetd\nssh stream tcp nowait root /usr/lib/vmware/openssh/bin/sshd sshd -i\n"
	if got, removed := WithoutLines(inetd, bin, ""); !removed || strings.Contains(got, "9731") || !strings.Contains(got, "sshd -i") {
		t.Errorf("inetd.conf after WithoutLines:\n%s", got)
	}
}

// The block goes before the first top-level exit, never inside an if or
// after an exit, where it would not run.
func TestWithBlockExitPlacement(t *testing.T) {
	block := Setup{Mode: ModeCron}.Block("/x/heapguard")
	for _, tc := range []struct{ name, text, wantBefore string }{
		{"exit inside an if", "#!/bin/sh\nif [ -f /x ]; then\n  exit 0\nfi\nexit 0\n", "exit 0\n"},
		{"two exits", "#!/bin/sh\nexit 0\necho never\nexit 0\n", "exit 0\necho never"},
		{"exit with a comment", "#!/bin/sh\nexit 0 # done\n", "exit 0 # done"},
		{"bare exit", "#!/bin/sh\nexit\n", "exit\n"},
	} {
		got, err := WithBlock(tc.text, block)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !strings.Contains(got, blockEnd+"\n"+tc.wantBefore) || strings.Contains(got, "  "+blockBegin) {
			t.Errorf("%s: block not right before %q:\n%s", tc.name, tc.wantBefore, got)
		}
	}
	// An existing block after an exit is not updated in place: it would
	// never run.
	dead := "#!/bin/sh\nexit 0\n" + block
	if _, err := WithBlock(dead, Setup{Mode: ModeDaemon}.Block("/x/heapguard")); !errors.Is(err, ErrBootScript) {
		t.Errorf("block after exit: %v, want ErrBootScript", err)
	}
}

func TestSetupValidate(t *testing.T) {
	good := "/vmfs/volumes/datastore1/heapguard"
	for _, tc := range []struct {
		name  string
		setup Setup
		dest  string
		ok    bool
	}{
		{"cron defaults", Setup{Mode: ModeCron}, good, true},
		{"schedule", Setup{Mode: ModeCron, Schedule: "0,30 */2 1-5 * 1-5"}, good, true},
		{"schedule 4 fields", Setup{Mode: ModeCron, Schedule: "* * * *"}, good, false},
		{"schedule injection", Setup{Mode: ModeCron, Schedule: "* * * * ;reboot"}, good, false},
		{"port", Setup{Mode: ModeInetd, Port: 70000}, good, false},
		{"arg", Setup{Mode: ModeDaemon, Args: []string{"--interval=30s"}}, good, true},
		{"arg with blank", Setup{Mode: ModeDaemon, Args: []string{"--log-level=info warn"}}, good, false},
		{"arg with $", Setup{Mode: ModeDaemon, Args: []string{"--x=$(reboot)"}}, good, false},
		{"dest with blank", Setup{Mode: ModeCron}, "/vmfs/volumes/datastore1 (1)/heapguard", false},
		{"dest with quote", Setup{Mode: ModeInetd}, "/vmfs/volumes/it's/heapguard", false},
		{"dest with % ", Setup{Mode: ModeCron}, "/vmfs/volumes/a%b/heapguard", false},
		{"none takes any dest", Setup{Mode: ModeNone}, "/vmfs/volumes/datastore1 (1)/heapguard", true},
		{"config line break", Setup{Mode: ModeCron, Config: []string{"power-off-allow a\nb"}}, good, false},
		{"mode", Setup{Mode: "systemd"}, good, false},
	} {
		err := tc.setup.Validate(tc.dest)
		if (err == nil) != tc.ok {
			t.Errorf("%s: Validate = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestBootScriptByVersion(t *testing.T) {
	for version, want := range map[string]string{
		"ESXi 4.1.0 build-260247":           bootScript4x,
		"ESXi 5.0.0 build-469512":           bootScript4x,
		"ESXi 5.1.0 build-799733":           bootScript51,
		"ESXi 7.0.3 build-21930508":         bootScript51,
		"ESXi 8.0.2 build-22380479":         bootScript51,
		"":                                  "",
		"ESXi x.y":                          "",
		"Workstation 17.5.0 build-22583795": "", // `vmware -v` on a desktop
		"ESX 4.1.0 build-260247":            "", // classic ESX, a service console
		"Server 2.0.2 build-203138":         "",
	} {
		if got := BootScript(version); got != want {
			t.Errorf("BootScript(%q) = %q, want %q", version, got, want)
		}
	}
}

// Whatever the boot script holds, WithBlock never panics, keeps every
// byte outside the block, and removing the block it put gives the text
// back.
func FuzzWithBlock(f *testing.F) {
	f.Add(stockLocalSh, "cron")
	f.Add("#! /bin/ash\nexport PATH=/sbin:/bin", "daemon")
	f.Add(blockBegin+"x\n"+blockEnd+"\nexit 0\n", "inetd")
	f.Add("exit 0\r\n"+blockEnd, "none")
	f.Fuzz(func(t *testing.T, text, mode string) {
		m, err := ParseMode(mode)
		if err != nil {
			m = ModeCron
		}
		block := ""
		if m != ModeNone {
			block = Setup{Mode: m}.Block("/vmfs/volumes/ds/heapguard/heapguard")
		}
		got, err := WithBlock(text, block)
		if err != nil {
			if !errors.Is(err, ErrBootScript) {
				t.Fatalf("error %v not ErrBootScript", err)
			}
			return
		}
		if im, err := InstalledMode(got); err != nil || im != Mode(strings.TrimSuffix(string(m), "none")) {
			t.Fatalf("InstalledMode after WithBlock(%s) = %q, %v\n%q", m, im, err, got)
		}
		if _, had, _ := findBlock(text); had >= 0 {
			return // a block was replaced: the original text is not recoverable
		}
		back, err := WithBlock(got, "")
		if err != nil {
			t.Fatal(err)
		}
		if back != text && back != text+"\n" {
			t.Fatalf("round trip:\n%q\ngave\n%q", text, back)
		}
	})
}
