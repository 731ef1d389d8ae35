package esxsim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heapguard/heapguard/internal/vib"
)

func writeVIB(t *testing.T, version string) (vibPath, bundlePath string, b vib.Built) {
	t.Helper()
	b, err := vib.Build(vib.Spec{Binary: []byte("\x7fELF heapguard " + version), Version: version, Date: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	vibPath, bundlePath = filepath.Join(dir, b.VIBName), filepath.Join(dir, b.BundleName)
	if err := os.WriteFile(vibPath, b.VIB, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bundlePath, b.Bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	return vibPath, bundlePath, b
}

func withLevel(t *testing.T, name, level string, secureBoot bool) *Host {
	t.Helper()
	sc := preset(t, name)
	sc.AcceptanceLevel, sc.SecureBoot = level, secureBoot
	return New(t, sc)
}

func TestAcceptanceGet(t *testing.T) {
	for level, want := range map[string]string{"": "PartnerSupported\n", "CommunitySupported": "CommunitySupported\n", "VMwareAccepted": "VMwareAccepted\n"} {
		h := withLevel(t, "esx80", level, false)
		if out, errb, code := h.Call("esxcli", "software", "acceptance", "get"); out != want || code != 0 {
			t.Errorf("level %q: %q %q %d, want %q", level, out, errb, code, want)
		}
	}
	sc := preset(t, "esx80")
	sc.AcceptanceLevel = "Community"
	if err := sc.Validate(); err == nil {
		t.Error("acceptance_level Community accepted")
	}
}

// TestVIBInstallRefusedAtPartner: ESXi's default level refuses a community
// VIB with ESXi's words (lamw/ghettoVCB#307), and nothing is installed.
func TestVIBInstallRefusedAtPartner(t *testing.T) {
	h := withLevel(t, "esx80", "", false)
	p, _, b := writeVIB(t, "1.0.0-0")
	out, errb, code := h.Call("esxcli", "software", "vib", "install", "-v", p)
	want := " [AcceptanceConfigError]\n VIB " + b.ID + "'s acceptance level is community, which is not compliant with the ImageProfile acceptance level partner\n" +
		" To change the host acceptance level, use the 'esxcli software acceptance set' command.\n Please refer to the log file for more details.\n"
	if code != 1 || out != "" || errb != want {
		t.Errorf("install at PartnerSupported: %d\nstdout %q\nstderr %q\nwant %q", code, out, errb, want)
	}
	if _, err := os.Stat(h.Path("/" + vib.BinaryPath)); !os.IsNotExist(err) {
		t.Errorf("binary after a refusal: %v", err)
	}
	if len(h.State().VIBs) != 0 {
		t.Errorf("VIBs %+v after a refusal", h.State().VIBs)
	}
	if acts := h.Actions(); len(acts) != 1 || acts[0].Exit != 1 || !strings.Contains(acts[0].Result, "acceptance level partner") {
		t.Errorf("actions %+v", acts)
	}
}

func TestVIBInstallRefusedUnderSecureBoot(t *testing.T) {
	h := withLevel(t, "esx80", "CommunitySupported", true)
	p, _, _ := writeVIB(t, "1.0.0-0")
	_, errb, code := h.Call("esxcli", "software", "vib", "install", "-v", p)
	if code != 1 || !strings.Contains(errb, "Secure Boot enabled") {
		t.Errorf("install under secure boot: %d %q", code, errb)
	}
	if _, err := os.Stat(h.Path("/" + vib.BinaryPath)); !os.IsNotExist(err) {
		t.Errorf("binary after a refusal: %v", err)
	}
}

// TestVIBInstallListRemove: at CommunitySupported the payload lands in
// the root with its modes; list shows it; the same VIB again is skipped,
// another version replaces it; remove takes the files away.
func TestVIBInstallListRemove(t *testing.T) {
	h := withLevel(t, "esx80", "CommunitySupported", false)
	p, _, b := writeVIB(t, "1.0.0-0")
	out, errb, code := h.Call("esxcli", "software", "vib", "install", "-v", p)
	want := "Installation Result\n   Message: Operation finished successfully.\n   Reboot Required: false\n   VIBs Installed: " + b.ID + "\n   VIBs Removed:\n   VIBs Skipped:\n"
	if code != 0 || out != want {
		t.Fatalf("install: %d\n%q\n%q\nwant %q", code, out, errb, want)
	}
	for _, f := range []string{vib.BinaryPath, vib.InitPath} {
		fi, err := os.Stat(h.Path("/" + f))
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s after install: %v %v, want mode 0755", f, fi, err)
		}
	}
	if got, _ := os.ReadFile(h.Path("/" + vib.BinaryPath)); string(got) != "\x7fELF heapguard 1.0.0-0" {
		t.Errorf("installed binary %q", got)
	}
	list := mustCall(t, h, "esxcli", "software", "vib", "list")
	if !strings.HasPrefix(list, "Name       Version  Vendor     Acceptance Level    Install Date") ||
		!strings.Contains(list, "heapguard  1.0.0-0  heapguard  CommunitySupported  "+h.State().Now.Format("2006-01-02")+"\n") {
		t.Errorf("vib list:\n%s", list)
	}
	if out, _, code := h.Call("esxcli", "software", "vib", "install", "-v", p); code != 0 || !strings.Contains(out, "VIBs Skipped: "+b.ID) {
		t.Errorf("same VIB again: %d %q", code, out)
	}
	_, bundle2, b2 := writeVIB(t, "1.1.0-0")
	// The offline bundle, by -d, replaces the older version.
	out, errb, code = h.Call("esxcli", "software", "vib", "install", "-d", bundle2)
	if code != 0 || !strings.Contains(out, "VIBs Installed: "+b2.ID+"\n   VIBs Removed: "+b.ID+"\n") {
		t.Errorf("upgrade from the bundle: %d %q %q", code, out, errb)
	}
	if got, _ := os.ReadFile(h.Path("/" + vib.BinaryPath)); string(got) != "\x7fELF heapguard 1.1.0-0" {
		t.Errorf("binary after the upgrade %q", got)
	}
	out, _, code = h.Call("esxcli", "software", "vib", "remove", "-n", "heapguard")
	if code != 0 || out != "Removal Result\n   Message: Operation finished successfully.\n   Reboot Required: false\n   VIBs Installed:\n   VIBs Removed: "+b2.ID+"\n   VIBs Skipped:\n" {
		t.Errorf("remove: %d %q", code, out)
	}
	if _, err := os.Stat(h.Path("/" + vib.BinaryPath)); !os.IsNotExist(err) {
		t.Errorf("binary after remove: %v", err)
	}
	if _, errb, code := h.Call("esxcli", "software", "vib", "remove", "-n", "heapguard"); code != 1 || !strings.Contains(errb, "[NoMatchError]") {
		t.Errorf("remove again: %d %q", code, errb)
	}
}

func TestVIBInstallBadInput(t *testing.T) {
	h := withLevel(t, "esx80", "CommunitySupported", false)
	p, _, b := writeVIB(t, "1.0.0-0")
	bad := filepath.Join(t.TempDir(), "bad.vib")
	os.WriteFile(bad, b.VIB[:len(b.VIB)-3], 0o644)
	for _, args := range [][]string{
		{"-v", bad}, {"-v", filepath.Join(t.TempDir(), "missing.vib")}, {"-d", p}, {}, {"-v"}, {"-v", p, "-d", p}, {"--bogus", p},
	} {
		_, errb, code := h.Call("esxcli", append([]string{"software", "vib", "install"}, args...)...)
		if code != 1 || errb == "" {
			t.Errorf("install %q: %d %q", args, code, errb)
		}
	}
	if len(h.State().VIBs) != 0 {
		t.Errorf("VIBs %+v", h.State().VIBs)
	}
}
