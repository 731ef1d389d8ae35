package deploy

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/heapguard/heapguard/internal/testtool"

	"github.com/heapguard/heapguard/esxsim"
	"github.com/heapguard/heapguard/internal/deploytest"
)

// systemPath is the PATH of the test's sessions without ESXi's tools.
const systemPath = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"

// esxRig is a rig whose sessions find esxsim's vmware, esxcli and vim-cmd
// first on PATH, answering for the scenario's host; extraBin, when not "",
// comes before them.
func esxRig(t *testing.T, scenario, extraBin string) *rig {
	t.Helper()
	sc, err := esxsim.Preset(scenario)
	if err != nil {
		t.Fatal(err)
	}
	h := esxsim.New(t, sc, esxsim.WithBinary(esxsim.BuildBinary(t)))
	path := h.Path("/bin") + ":" + systemPath
	if extraBin != "" {
		path = extraBin + ":" + path
	}
	return newRigOpts(t, []string{"ed25519"}, deploytest.Options{
		HostKeys: []string{"ed25519"},
		Env:      []string{"PATH=" + path, "ESXSIM_ROOT=" + h.Root()},
	})
}

// install is r.deploy with options.
func (r *rig) install(opts InstallOptions) (Result, error) {
	r.t.Helper()
	ctx := context.Background()
	c, err := Dial(ctx, r.target, r.cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	defer c.Close()
	opts.Dest = r.dest
	return Install(ctx, c, r.bin, opts)
}

func TestProbeESXi55Installs(t *testing.T) {
	r := esxRig(t, "seed-incident", "")
	res, err := r.deploy()
	if err != nil {
		t.Fatalf("deploy to a 5.5 host: %v", err)
	}
	if res.Action != Installed || r.installed() != r.bin.Sum() {
		t.Fatalf("result %+v, installed %q", res, r.installed())
	}
	p := res.Probe
	if p == nil {
		t.Fatal("no probe")
	}
	if !strings.HasPrefix(p.Version, "ESXi 5.5.0 build-") || p.EIORuntime != No || p.EIOBoot != No {
		t.Errorf("probe %+v: want ESXi 5.5.0, execInstalledOnly FALSE/FALSE", p)
	}
	if p.FreeBytes <= 0 {
		t.Errorf("free space %d: want the figure of the temp folder's file system", p.FreeBytes)
	}
	// No secureBoot.py on a 5.5 host: secure boot came with 6.5, so it is
	// off, not unknown.
	if p.SecureBoot != No || strings.Contains(strings.Join(res.Warnings, "\n"), "secure boot") {
		t.Errorf("secure boot %v, warnings %q: want disabled, unwarned, before 6.5", p.SecureBoot, res.Warnings)
	}
	lines := res.Lines()
	if len(lines) < 2 || !strings.Contains(lines[0], "ESXi 5.5.0 build-") || !strings.Contains(lines[0], "execInstalledOnly runtime FALSE boot FALSE") {
		t.Errorf("lines %q: want the probe line first", lines)
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, "installed") {
		t.Errorf("last line %q: want the install line", last)
	}
}

func TestProbeExecInstalledOnlyRefusedBeforeCopy(t *testing.T) {
	r := esxRig(t, "esx80-eio", "")
	res, err := r.deploy()
	if !errors.Is(err, ErrWillNotRun) {
		t.Fatalf("deploy to an execInstalledOnly host: %+v, %v; want ErrWillNotRun", res, err)
	}
	for _, want := range []string{"Operation not permitted", "deploy --vib", "make vib", "esxcli system settings kernel set -s execinstalledonly -v FALSE", "never changes it"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if res.Probe == nil || !strings.HasPrefix(res.Probe.Version, "ESXi 8.0") || res.Probe.EIORuntime != Yes {
		t.Errorf("probe %+v: want 8.0 with execInstalledOnly runtime TRUE", res.Probe)
	}
	// Not a byte: the folder was not even created.
	if _, err := os.Stat(r.dest); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("destination %s after a refusal: %v; want it absent", r.dest, err)
	}
}

func TestProbeESXi80WithoutExecInstalledOnlyInstalls(t *testing.T) {
	r := esxRig(t, "esx80", "")
	res, err := r.deploy()
	if err != nil || res.Action != Installed {
		t.Fatalf("deploy to 8.0 with execInstalledOnly FALSE: %+v, %v", res, err)
	}
	if !strings.HasPrefix(res.Probe.Version, "ESXi 8.0") || res.Probe.EIORuntime != No {
		t.Errorf("probe %+v", res.Probe)
	}
	// 8.0 has secure boot: without its script the answer is unknown.
	if res.Probe.SecureBoot != Unknown || !strings.Contains(strings.Join(res.Warnings, "\n"), "unknown secure boot: /usr/lib/vmware/secureboot/bin/secureBoot.py: command not found") {
		t.Errorf("secure boot %v, warnings %q: want unknown, said", res.Probe.SecureBoot, res.Warnings)
	}
}

// snapshot is every file under dir with its size, mode and inode.
func snapshot(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			out = append(out, p+" "+err.Error())
			return nil
		}
		out = append(out, strings.Join([]string{p, fi.Mode().String(), itoa(fi.Size()), itoa(int64(inode(t, p))), fi.ModTime().String()}, " "))
		return nil
	})
	slices.Sort(out)
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestProbeOnlyChangesNothing(t *testing.T) {
	r := esxRig(t, "esx80", "")
	// A fresh host: the folder is not created.
	res, err := r.install(InstallOptions{ProbeOnly: true})
	if err != nil || res.Action != Probed {
		t.Fatalf("probe-only: %+v, %v", res, err)
	}
	if _, err := os.Stat(r.dest); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("probe-only created %s: %v", r.dest, err)
	}
	if l := res.Lines(); !strings.Contains(l[len(l)-1], "probed  would install to "+filepath.Join(r.dest, BinaryName)) {
		t.Errorf("lines %q", l)
	}
	// An installed host with a stale partial copy and another binary to
	// send: all stays as it was.
	if _, err := r.deploy(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(r.dest, tempPrefix+"0123456789abcdef"+tempSuffix), []byte("partial"), 0o600)
	before := snapshot(t, filepath.Dir(r.dest))
	r.bin = r.binary("v2")
	if res, err = r.install(InstallOptions{ProbeOnly: true}); err != nil || res.Action != Probed {
		t.Fatalf("probe-only: %+v, %v", res, err)
	}
	if after := snapshot(t, filepath.Dir(r.dest)); !slices.Equal(before, after) {
		t.Errorf("probe-only changed the host:\nbefore %q\nafter  %q", before, after)
	}
}

func TestProbeMissingCommandsUnknownStillInstalls(t *testing.T) {
	r := newRigOpts(t, []string{"ed25519"}, deploytest.Options{HostKeys: []string{"ed25519"}, Env: []string{"PATH=" + systemPath}})
	res, err := r.deploy()
	if err != nil || res.Action != Installed {
		t.Fatalf("deploy with no ESXi tools: %+v, %v; an unknown must not refuse", res, err)
	}
	p := res.Probe
	if p.Version != "" || p.EIORuntime != Unknown || p.SecureBoot != Unknown || p.Lockdown != Unknown {
		t.Errorf("probe %+v: want unknowns", p)
	}
	line := p.Line(r.target)
	for _, want := range []string{"version unknown", "execInstalledOnly runtime unknown boot unknown", "secure boot unknown", "lockdown unknown"} {
		if !strings.Contains(line, want) {
			t.Errorf("probe line %q lacks %q", line, want)
		}
	}
	w := strings.Join(res.Warnings, "\n")
	for _, want := range []string{"unknown execInstalledOnly: esxcli: command not found", "unknown secure boot", "unknown lockdown: vim-cmd: command not found"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings %q lack %q", w, want)
		}
	}
}

// TestProbeNoSpaceRefused: a df that says 1 MB is free (the binary and the spare MB need more) stops the install
// before the folder is made.
func TestProbeNoSpaceRefused(t *testing.T) {
	fake := t.TempDir()
	df := "#!/bin/sh\necho 'Filesystem           1K-blocks      Used Available Use% Mounted on'\necho 'VMFS-5                 1048576   1047552      1024 100% /vmfs/volumes/datastore1'\n"
	if err := os.WriteFile(filepath.Join(fake, "df"), []byte(df), 0o755); err != nil {
		t.Fatal(err)
	}
	r := esxRig(t, "seed-incident", fake)
	res, err := r.deploy()
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "/vmfs/volumes/datastore1: 1 MB free") {
		t.Fatalf("deploy with 1 MB free: %v (probe %+v); want ErrNoSpace with the figure", err, res.Probe)
	}
	if _, err := os.Stat(r.dest); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("destination %s after a refusal: %v; want it absent", r.dest, err)
	}
}

// TestProbeLockdownNoted: a vim-cmd that answers `true` (esxsim's knows
// no -U) gives the lockdown note, and the install goes on.
func TestProbeLockdownNoted(t *testing.T) {
	fake := t.TempDir()
	if err := os.WriteFile(filepath.Join(fake, "vim-cmd"), []byte("#!/bin/sh\n[ \"$*\" = '-U dcui vimsvc/auth/lockdown_is_enabled' ] && echo true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := esxRig(t, "esx80", fake)
	res, err := r.deploy()
	if err != nil || res.Action != Installed {
		t.Fatalf("deploy under lockdown: %+v, %v", res, err)
	}
	if res.Probe.Lockdown != Yes || !strings.Contains(res.Probe.Line(r.target), "lockdown on") ||
		!strings.Contains(strings.Join(res.Warnings, "\n"), "lockdown mode is on") {
		t.Errorf("probe %+v, warnings %q: want lockdown on, noted", res.Probe, res.Warnings)
	}
}

func TestParseWord(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want Tri
	}{
		{"Enabled\n", Yes}, {"Disabled\n", No}, {"  enabled", Yes}, {"", Unknown},
		{"Traceback (most recent call last):\n", Unknown}, {"Not supported\n", Unknown},
	} {
		if got := parseWord(tc.out, "enabled", "disabled"); got != tc.want {
			t.Errorf("parseWord(%q) = %v, want %v", tc.out, got, tc.want)
		}
	}
}

func TestDecide(t *testing.T) {
	const size = 9 << 20
	for _, tc := range []struct {
		name     string
		p        Probe
		err      error
		warnings []string // substrings, in order
	}{
		{"all clear", Probe{EIORuntime: No, EIOBoot: No, SecureBoot: No, Lockdown: No, FreeBytes: 1 << 30}, nil, nil},
		{"runtime enforced", Probe{EIORuntime: Yes, EIOBoot: Yes, FreeBytes: 1 << 30}, ErrWillNotRun, nil},
		{"advanced option enforced", Probe{EIORuntime: Unknown, EIOAdvanced: Yes, FreeBytes: -1}, ErrWillNotRun, nil},
		{"boot only", Probe{EIORuntime: No, EIOBoot: Yes, FreeBytes: 1 << 30}, nil, []string{"until the next reboot", "not enforced now"}},
		{"secure boot", Probe{SecureBoot: Yes, FreeBytes: -1}, nil, []string{"local.sh does not run"}},
		{"lockdown", Probe{Lockdown: Yes, FreeBytes: -1}, nil, []string{"exception users"}},
		{"all unknown", Probe{FreeBytes: -1, Unknowns: []string{"execInstalledOnly: esxcli: command not found"}}, nil, []string{"unknown execInstalledOnly: esxcli: command not found (installing all the same)"}},
		{"no room", Probe{EIORuntime: No, FreeBytes: size, FreeOn: "/vmfs/volumes/ds"}, ErrNoSpace, nil},
		{"just room", Probe{EIORuntime: No, FreeBytes: size + SpareBytes}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := tc.p.Decide(size)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("Decide = %v, want %v", err, tc.err)
			}
			all := strings.Join(w, "\n")
			if len(tc.warnings) == 0 && len(w) > 0 {
				t.Errorf("warnings %q, want none", w)
			}
			for _, s := range tc.warnings {
				if !strings.Contains(all, s) {
					t.Errorf("warnings %q lack %q", w, s)
				}
			}
		})
	}
}

// dfSamples are `df -k DIR` outputs. Captured on Debian 12: busybox
// 1.35.0 (busybox-static), coreutils 9.1, and both with -P. Written from
// busybox's df.c format strings: a device name over 20 characters on a
// line of its own. Unverified (from memory, not captured): ESXi's df
// counting in bytes.
var dfSamples = []struct {
	name, out string
	avail     int64
	mount     string
}{
	{"busybox 1.35 captured", "Filesystem           1K-blocks      Used Available Use% Mounted on\n/dev/vda             264212084  23844804  71656460  25% /\n", 71656460 << 10, "/"},
	{"busybox 1.35 -P captured", "Filesystem           1024-blocks    Used Available Capacity Mounted on\n/dev/vda             264212084  23844808  71656456  25% /\n", 71656456 << 10, "/"},
	{"coreutils 9.1 captured", "Filesystem     1K-blocks     Used Available Use% Mounted on\n/dev/vda       264212084 23806544  71694720  25% /\n", 71694720 << 10, "/"},
	{"coreutils 9.1 -P captured", "Filesystem     1024-blocks     Used Available Capacity Mounted on\n/dev/vda         264212084 23806544  71694720      25% /\n", 71694720 << 10, "/"},
	{"busybox", "Filesystem           1K-blocks      Used Available Use% Mounted on\n/dev/sda1             20511356   9870304   9576092  51% /\n", 9576092 << 10, "/"},
	{"coreutils", "Filesystem     1K-blocks     Used Available Use% Mounted on\n/dev/nvme0n1p2 479079112 98765432 355906040  22% /home\n", 355906040 << 10, "/home"},
	{"busybox long device", "Filesystem           1K-blocks      Used Available Use% Mounted on\n/dev/disk/by-uuid/0123456789abcdef\n                      20511356   9870304   9576092  51% /vmfs/volumes/datastore1\n", 9576092 << 10, "/vmfs/volumes/datastore1"},
	{"posix", "Filesystem         1024-blocks      Used Available Capacity Mounted on\noverlay              102687672  52107012  45321452      54% /\n", 45321452 << 10, "/"},
	{"esxi bytes", "Filesystem         Bytes         Used    Available Use% Mounted on\nVMFS-5     1000936325120 562834989056 438101336064  56% /vmfs/volumes/datastore1\n", 438101336064, "/vmfs/volumes/datastore1"},
	{"mount with spaces", "Filesystem     1K-blocks  Used Available Use% Mounted on\ntmpfs              1024     0      1024   0% /tmp/heapguard dir\n", 1024 << 10, "/tmp/heapguard dir"},
}

func TestParseDF(t *testing.T) {
	for _, s := range dfSamples {
		row, err := ParseDF(s.out)
		if err != nil || row.Available != s.avail || row.MountedOn != s.mount {
			t.Errorf("%s: ParseDF = %+v, %v; want %d bytes on %q", s.name, row, err, s.avail, s.mount)
		}
	}
	for _, bad := range []string{
		"",
		"df: /nowhere: No such file or directory\n",
		"Filesystem      Size  Used Avail Use% Mounted on\n/dev/sda1        20G  9.5G  9.2G  51% /\n", // -h
		"Filesystem     1K-blocks     Used Available Use% Mounted on\n",
		"Filesystem     1K-blocks     Used Available Use% Mounted on\n/dev/sda1 10 5 -3 50% /\n",
		"Filesystem     1K-blocks     Used Available Use% Mounted on\n/dev/sda1 10 5 x 50% /\n",
		"Filesystem     1K-blocks     Used Available Use% Mounted on\n/dev/sda1 10 5\n",
		"Filesystem     1K-blocks     Used Available Use% Mounted on\n/dev/sda1 10 5 99999999999999999999 50% /\n",
	} {
		if row, err := ParseDF(bad); err == nil {
			t.Errorf("ParseDF(%q) = %+v, want an error", bad, row)
		}
	}
}

// TestParseDFRealTools parses what this machine's df and busybox df say
// of a folder and checks the figure against statfs.
func TestParseDFRealTools(t *testing.T) {
	dir := t.TempDir()
	for _, tool := range []struct{ pkg, name string }{{"coreutils", "df"}, {"busybox-static", "busybox"}} {
		t.Run(tool.name, func(t *testing.T) {
			argv := []string{testtool.Need(t, tool.pkg, tool.name), "-k", dir}
			if tool.name == "busybox" {
				argv = slices.Insert(argv, 1, "df")
			}
			out, err := exec.Command(argv[0], argv[1:]...).Output()
			if err != nil {
				t.Fatalf("%q: %v", argv, err)
			}
			var st syscall.Statfs_t
			if err := syscall.Statfs(dir, &st); err != nil {
				t.Fatal(err)
			}
			want := int64(st.Bavail) * st.Bsize
			row, err := ParseDF(string(out))
			// The file system is in use: allow 64 MiB of drift.
			if err != nil || row.Available < want-64<<20 || row.Available > want+64<<20 || !strings.HasPrefix(dir, row.MountedOn) {
				t.Errorf("%q said\n%s\nParseDF = %+v, %v; statfs says %d bytes available", argv, out, row, err, want)
			}
		})
	}
}

func FuzzParseDF(f *testing.F) {
	for _, s := range dfSamples {
		f.Add(s.out)
	}
	f.Add("Filesystem 1K-blocks Used Available Use% Mounted on\nx\n")
	f.Add("Filesystem Bytes Used Available Use% Mounted on\na 1 1 4611686018427387904 1% /\n")
	f.Fuzz(func(t *testing.T, out string) {
		row, err := ParseDF(out)
		if err != nil {
			return
		}
		if row.Available < 0 || row.Filesystem == "" || row.MountedOn == "" {
			t.Errorf("ParseDF(%q) = %+v", out, row)
		}
	})
}

func TestParseAdvancedInt(t *testing.T) {
	// esxcli's layout for an integer advanced option (unverified for
	// /User/execInstalledOnly).
	on := "   Path: /User/execInstalledOnly\n   Type: integer\n   Int Value: 1\n   Default Int Value: 1\n   Min Value: 0\n   Max Value: 1\n"
	for _, tc := range []struct {
		out  string
		want Tri
	}{
		{on, Yes},
		{strings.Replace(on, "Int Value: 1\n   Default", "Int Value: 0\n   Default", 1), No},
		{"", Unknown},
		{"   Int Value: x\n", Unknown},
		{"Error: Unknown option /User/execInstalledOnly\n", Unknown},
	} {
		if got := ParseAdvancedInt(tc.out); got != tc.want {
			t.Errorf("ParseAdvancedInt(%q) = %v, want %v", tc.out, got, tc.want)
		}
	}
}

// FuzzParseAnswers: the one-line answers (secure boot, lockdown) and the
// advanced option's listing give Yes, No or Unknown, never a panic.
func FuzzParseAnswers(f *testing.F) {
	for _, s := range []string{"Enabled\n", "false\n", "   Int Value: 1\n", "   Int Value: -0\n   Default Int Value: 1\n", "Int Value:\n", ":"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, out string) {
		for _, got := range []Tri{ParseAdvancedInt(out), parseWord(out, "enabled", "disabled"), parseWord(out, "true", "false")} {
			if got != Unknown && got != No && got != Yes {
				t.Errorf("%q gave %v", out, got)
			}
		}
		if ParseAdvancedInt(out) == Yes && !strings.Contains(strings.ToLower(out), "int value") {
			t.Errorf("ParseAdvancedInt(%q) = Yes without an Int Value line", out)
		}
	})
}

// A host that does not say it is ESXi gets no mode (its boot files mean
// something else there) and nothing copied; --mode none copies the binary
// alone.
func TestModeRefusedWhereNotESXi(t *testing.T) {
	r := newRigOpts(t, []string{"ed25519"}, deploytest.Options{HostKeys: []string{"ed25519"}, Env: []string{"PATH=" + systemPath}})
	r.dest = filepath.Join(t.TempDir(), "heapguard") // the rig's has a blank
	res, err := r.install(InstallOptions{Setup: &Setup{Mode: ModeCron}})
	if err == nil || !strings.Contains(err.Error(), "did not say it is ESXi") || res.Action != "" {
		t.Fatalf("--mode cron on a host that is not ESXi: %+v, %v", res, err)
	}
	if r.installed() != "" {
		t.Error("the binary was copied")
	}
	// --mode none copies the binary and touches nothing else.
	if res, err := r.install(InstallOptions{Setup: &Setup{Mode: ModeNone}}); err != nil || res.Action != Installed || r.installed() != r.bin.Sum() {
		t.Fatalf("--mode none on a host that is not ESXi: %+v, %v", res, err)
	}
}
