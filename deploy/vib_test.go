package deploy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heapguard/heapguard/esxsim"
	"github.com/heapguard/heapguard/internal/deploytest"
	"github.com/heapguard/heapguard/internal/vib"
)

// vibRig is esxRig with the scenario changed by edit, and the host
// handle kept.
func vibRig(t *testing.T, scenario string, edit func(*esxsim.Scenario)) (*rig, *esxsim.Host) {
	t.Helper()
	sc, err := esxsim.Preset(scenario)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(&sc)
	}
	h := esxsim.New(t, sc, esxsim.WithBinary(esxsim.BuildBinary(t)))
	r := newRigOpts(t, []string{"ed25519"}, deploytest.Options{
		HostKeys: []string{"ed25519"},
		Env:      []string{"PATH=" + h.Path("/bin") + ":" + systemPath, "ESXSIM_ROOT=" + h.Root()},
	})
	r.cfg.vibRoot = h.Root()
	return r, h
}

func community(sc *esxsim.Scenario) { sc.AcceptanceLevel = CommunitySupported }

// writeVIB builds a heapguard VIB of an ESXi-ready ELF carrying payload.
func writeVIB(t *testing.T, version, payload string) (VIBFile, []byte) {
	t.Helper()
	bin := deploytest.ELF{Marker: true, Payload: payload + strings.Repeat("y", 200<<10)}.Bytes()
	b, err := vib.Build(vib.Spec{Binary: bin, Version: version, Date: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), b.VIBName)
	if err := os.WriteFile(p, b.VIB, 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := CheckVIB(p)
	if err != nil {
		t.Fatal(err)
	}
	return v, bin
}

func (r *rig) installVIB(v VIBFile, opts InstallOptions) (Result, error) {
	r.t.Helper()
	ctx := context.Background()
	c, err := Dial(ctx, r.target, r.cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	defer c.Close()
	opts.Dest = r.dest
	return InstallVIB(ctx, c, v, opts)
}

// TestVIBRefusedAtPartnerSupported: ESXi's default level refuses an
// unsigned VIB; deploy says so and how to lower it, before sending a byte.
func TestVIBRefusedAtPartnerSupported(t *testing.T) {
	r, h := vibRig(t, "esx80-eio", nil)
	v, _ := writeVIB(t, "1.0.0-0", "v1")
	res, err := r.installVIB(v, InstallOptions{})
	if !errors.Is(err, ErrAcceptanceLevel) {
		t.Fatalf("InstallVIB at PartnerSupported: %+v, %v; want ErrAcceptanceLevel", res, err)
	}
	for _, want := range []string{"it is PartnerSupported", "esxcli software acceptance set --level=CommunitySupported", "never changes it", "nothing was sent"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if res.Probe == nil || res.Probe.Acceptance != "PartnerSupported" || !strings.Contains(res.Probe.Line(r.target), "acceptance PartnerSupported") {
		t.Errorf("probe %+v", res.Probe)
	}
	if _, err := os.Stat(r.dest); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("destination %s after a refusal: %v; want it absent", r.dest, err)
	}
	if len(h.State().VIBs) != 0 {
		t.Errorf("VIBs installed: %+v", h.State().VIBs)
	}
}

// TestVIBInstallsWhereExecInstalledOnly: on 8.0 with execInstalledOnly
// enforced and the level lowered, the VIB is installed by esxcli, the
// binary lands at /opt/heapguard/bin/heapguard, the sent copy is gone; the
// same VIB again is unchanged, a new one an upgrade.
func TestVIBInstallsWhereExecInstalledOnly(t *testing.T) {
	r, h := vibRig(t, "esx80-eio", community)
	v, bin := writeVIB(t, "1.0.0-0", "v1")
	res, err := r.installVIB(v, InstallOptions{})
	if err != nil || res.Action != VIBInstalled || res.SHA256 != v.BinarySum || res.Path != "/opt/heapguard/bin/heapguard" {
		t.Fatalf("InstallVIB: %+v, %v", res, err)
	}
	if res.Probe.EIORuntime != Yes {
		t.Errorf("probe %+v: want execInstalledOnly on (the binary copy would be refused)", res.Probe)
	}
	got, err := os.ReadFile(h.Path("/opt/heapguard/bin/heapguard"))
	if err != nil || string(got) != string(bin) {
		t.Errorf("installed binary: %d bytes, %v; want the VIB's %d", len(got), err, len(bin))
	}
	if fi, err := os.Stat(h.Path("/etc/init.d/heapguard")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("init script: %v %v", fi, err)
	}
	if p := r.partials(); len(p) != 0 {
		t.Errorf("copies left in %s: %q", r.dest, p)
	}
	if vs := h.State().VIBs; len(vs) != 1 || vs[0].ID != "heapguard_bootbank_heapguard_1.0.0-0" {
		t.Errorf("host VIBs %+v", vs)
	}
	// esxcli was asked plainly: no --force, no --no-sig-check.
	acts := h.Actions()
	if len(acts) != 1 || len(acts[0].Argv) != 6 || strings.Join(acts[0].Argv[1:5], " ") != "software vib install -v" ||
		!strings.HasPrefix(acts[0].Argv[5], r.dest+"/.heapguard.") {
		t.Errorf("esxcli calls %+v", acts)
	}
	if l := res.Line(); !strings.Contains(l, "installed VIB  sha256:"+v.BinarySum[:12]+"  /opt/heapguard/bin/heapguard") {
		t.Errorf("line %q", l)
	}

	if res, err = r.installVIB(v, InstallOptions{}); err != nil || res.Action != VIBUnchanged {
		t.Errorf("the same VIB again: %+v, %v", res, err)
	}
	// Another build under the same version: esxcli skips it, deploy says
	// the host kept the other binary.
	same, _ := writeVIB(t, "1.0.0-0", "v1 rebuilt")
	if res, err = r.installVIB(same, InstallOptions{}); !errors.Is(err, ErrVIBNotInstalled) || !strings.Contains(err.Error(), "give the new build its own version") {
		t.Errorf("another build, same version: %+v, %v", res, err)
	}
	v2, bin2 := writeVIB(t, "1.1.0-0", "v2")
	if res, err = r.installVIB(v2, InstallOptions{}); err != nil || res.Action != VIBUpgraded {
		t.Errorf("a newer VIB: %+v, %v", res, err)
	}
	if got, _ := os.ReadFile(h.Path("/opt/heapguard/bin/heapguard")); string(got) != string(bin2) {
		t.Error("the upgrade did not replace the binary")
	}
	if p := r.partials(); len(p) != 0 {
		t.Errorf("copies left in %s: %q", r.dest, p)
	}
}

// TestVIBRefusedByEsxcliReported: secure boot the probe could not see
// (no secureBoot.py here): esxcli refuses, deploy reports its words and
// leaves no copy behind.
func TestVIBRefusedByEsxcliReported(t *testing.T) {
	r, h := vibRig(t, "esx80", func(sc *esxsim.Scenario) { community(sc); sc.SecureBoot = true })
	v, _ := writeVIB(t, "1.0.0-0", "v1")
	res, err := r.installVIB(v, InstallOptions{})
	if !errors.Is(err, ErrVIBNotInstalled) || !strings.Contains(err.Error(), "exited 1: [AcceptanceConfigError] / Secure Boot enabled") {
		t.Fatalf("InstallVIB under secure boot: %+v, %v", res, err)
	}
	if p := r.partials(); len(p) != 0 {
		t.Errorf("copies left in %s: %q", r.dest, p)
	}
	if _, err := os.Stat(h.Path("/opt/heapguard/bin/heapguard")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("binary installed: %v", err)
	}
}

func TestVIBProbeOnlyChangesNothing(t *testing.T) {
	r, h := vibRig(t, "esx80-eio", community)
	v, _ := writeVIB(t, "1.0.0-0", "v1")
	res, err := r.installVIB(v, InstallOptions{ProbeOnly: true})
	if err != nil || res.Action != Probed {
		t.Fatalf("probe-only: %+v, %v", res, err)
	}
	if l := res.Lines(); !strings.Contains(l[len(l)-1], "probed  would install to /opt/heapguard/bin/heapguard (nothing changed)") {
		t.Errorf("lines %q", l)
	}
	if _, err := os.Stat(r.dest); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("probe-only created %s: %v", r.dest, err)
	}
	if len(h.State().VIBs) != 0 {
		t.Errorf("VIBs %+v", h.State().VIBs)
	}
}

func TestDecideVIB(t *testing.T) {
	const size = 4 << 20
	for _, tc := range []struct {
		name     string
		p        Probe
		level    string
		err      error
		warnings []string
	}{
		{"community", Probe{SecureBoot: No, FreeBytes: 1 << 30, EIORuntime: Yes}, CommunitySupported, nil, nil},
		{"partner", Probe{SecureBoot: No, FreeBytes: 1 << 30}, "PartnerSupported", ErrAcceptanceLevel, nil},
		{"certified", Probe{FreeBytes: -1}, "VMwareCertified", ErrAcceptanceLevel, nil},
		{"secure boot", Probe{SecureBoot: Yes, FreeBytes: 1 << 30}, CommunitySupported, ErrSecureBoot, nil},
		{"no room", Probe{FreeBytes: size, FreeOn: "/vmfs/volumes/ds"}, CommunitySupported, ErrNoSpace, nil},
		{"level unknown", Probe{FreeBytes: -1, Unknowns: []string{"acceptance level: esxcli: command not found", "execInstalledOnly: x"}}, "", nil,
			[]string{"unknown acceptance level: esxcli: command not found (installing all the same)"}},
		{"lockdown", Probe{Lockdown: Yes, FreeBytes: -1}, CommunitySupported, nil, []string{"exception users"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := tc.p.DecideVIB(tc.level, size)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("DecideVIB = %v, want %v", err, tc.err)
			}
			if len(w) != len(tc.warnings) {
				t.Errorf("warnings %q, want %q", w, tc.warnings)
			}
			for i, s := range tc.warnings {
				if i < len(w) && !strings.Contains(w[i], s) {
					t.Errorf("warning %q lacks %q", w[i], s)
				}
			}
		})
	}
	_, err := (&Probe{SecureBoot: Yes, FreeBytes: -1}).DecideVIB(CommunitySupported, size)
	if err == nil || !strings.Contains(err.Error(), "partner-signed") {
		t.Errorf("secure boot: %v", err)
	}
}

func TestParseAcceptance(t *testing.T) {
	for in, want := range map[string]string{
		"PartnerSupported\n": "PartnerSupported", "CommunitySupported\n": "CommunitySupported", "VMwareAccepted": "VMwareAccepted",
		"": "", "partnersupported\n": "", "Error: Unknown command or namespace software acceptance get\n": "", "PartnerSupported extra\n": "",
	} {
		got, err := ParseAcceptance(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("ParseAcceptance(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// esxcli's result blocks (esxsim/testdata/SOURCES.md, esxcli software).
const (
	resultInstalled = "Installation Result\n   Message: Operation finished successfully.\n   Reboot Required: false\n   VIBs Installed: VMWare_bootbank_esx-vmdkops-service_0.8.1-0.0.1\n   VIBs Removed: \n   VIBs Skipped: \n"
	resultReboot    = "Installation Result\n   Message: The update completed successfully, but the system needs to be rebooted for the changes to be effective.\n   Reboot Required: true\n   VIBs Installed: LIFANG_bootbank_hardware-watchdog_0.1-0.1.263547\n   VIBs Removed:\n   VIBs Skipped:\n"
)

func TestParseVIBResult(t *testing.T) {
	r, err := ParseVIBResult(resultInstalled)
	if err != nil || r.Message != "Operation finished successfully." || r.RebootRequired ||
		len(r.Installed) != 1 || r.Installed[0] != "VMWare_bootbank_esx-vmdkops-service_0.8.1-0.0.1" || r.Removed != nil || r.Skipped != nil {
		t.Errorf("installed: %+v, %v", r, err)
	}
	r, err = ParseVIBResult(resultReboot)
	if err != nil || !r.RebootRequired || r.Installed[0] != "LIFANG_bootbank_hardware-watchdog_0.1-0.1.263547" {
		t.Errorf("reboot: %+v, %v", r, err)
	}
	r, err = ParseVIBResult("Installation Result\n   Message: x\n   Reboot Required: false\n   VIBs Installed:\n   VIBs Removed: a_b_c_1, d_e_f_2\n   VIBs Skipped: g\n")
	if err != nil || len(r.Removed) != 2 || r.Removed[1] != "d_e_f_2" || r.Skipped[0] != "g" {
		t.Errorf("lists: %+v, %v", r, err)
	}
	for _, bad := range []string{"", " [AcceptanceConfigError]\n VIB x's acceptance level is community\n", "Message: x\nVIBs Installed: y\n", "Installation Result\n   Message: x\n"} {
		if r, err := ParseVIBResult(bad); err == nil {
			t.Errorf("ParseVIBResult(%q) = %+v, want an error", bad, r)
		}
	}
}

func FuzzParseVIBResult(f *testing.F) {
	f.Add(resultInstalled)
	f.Add(resultReboot)
	f.Add("PartnerSupported\n")
	f.Fuzz(func(t *testing.T, out string) {
		r, err := ParseVIBResult(out)
		if err == nil && !strings.Contains(out, "Installation Result") {
			t.Errorf("a result without its title: %+v", r)
		}
		for _, id := range append(append(r.Installed, r.Removed...), r.Skipped...) {
			if id == "" || strings.ContainsAny(id, ",\n") {
				t.Errorf("id %q", id)
			}
		}
		if l, err := ParseAcceptance(out); err == nil && !strings.Contains(out, l) {
			t.Errorf("ParseAcceptance(%q) = %q", out, l)
		}
	})
}

func TestCheckVIB(t *testing.T) {
	v, _ := writeVIB(t, "1.0.0-0", "v1")
	if v.ID != "heapguard_bootbank_heapguard_1.0.0-0" || v.Version != "1.0.0-0" || v.Size <= 0 || len(v.BinarySum) != 64 {
		t.Errorf("CheckVIB = %+v", v)
	}
	dir := t.TempDir()
	stock, err := vib.Build(vib.Spec{Binary: deploytest.ELF{Payload: "stock"}.Bytes(), Version: "1.0.0-0", Date: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"stock.vib": stock.VIB,
		"cut.vib":   stock.VIB[:100],
		"elf.vib":   deploytest.ELF{Marker: true}.Bytes(),
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o644)
		if _, err := CheckVIB(p); err == nil {
			t.Errorf("CheckVIB(%s) accepted it", name)
		}
	}
	if _, err := CheckVIB(filepath.Join(dir, "stock.vib")); !errors.Is(err, ErrNotESXiBinary) {
		t.Errorf("CheckVIB of a stock-runtime VIB: %v, want ErrNotESXiBinary", err)
	}
}

// TestDeployVIBFleet: DeployVIB runs InstallVIB per target and reports
// each, a refusal included.
func TestDeployVIBFleet(t *testing.T) {
	r, h := vibRig(t, "esx80-eio", community)
	v, _ := writeVIB(t, "1.0.0-0", "v1")
	var reported []Result
	bad := Target{Host: "127.0.0.1", Port: 1}
	results := DeployVIB(context.Background(), []Target{r.target, bad}, r.cfg, v, InstallOptions{Dest: r.dest}, Fleet{Parallel: 2},
		func(res Result) { reported = append(reported, res) })
	if len(results) != 2 || len(reported) != 2 {
		t.Fatalf("results %+v, reported %d", results, len(reported))
	}
	if results[0].Err != nil || results[0].Action != VIBInstalled || len(h.State().VIBs) != 1 {
		t.Errorf("first host: %+v", results[0])
	}
	if results[1].Err == nil || !strings.Contains(results[1].Line(), "failed") {
		t.Errorf("unreachable host: %+v", results[1])
	}
}
