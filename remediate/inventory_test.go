package remediate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/heapguard/heapguard/host"
)

const incidentVolume = "71641d44-1e032a47"

// incidentFS rebuilds the seed incident's datastore from the author's
// `find . -name '*.vmx' -exec grep -H MAC {} \;` output (run in /vmfs):
// one file per line, holding the grepped line, plus the datastore label
// symlink ESXi keeps next to the uuid folder.
func incidentFS(t testing.TB) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{
		"vmfs/volumes/datastore1": {Mode: fs.ModeSymlink, Data: []byte(incidentVolume)},
	}
	for _, l := range strings.Split(strings.TrimSpace(invFixture(t, "vmx-ethernet-grep-H-esxi4.txt")), "\n") {
		p, line, ok := strings.Cut(l, ":")
		if !ok {
			t.Fatalf("bad grep -H line %q", l)
		}
		m["vmfs"+p] = &fstest.MapFile{Data: []byte(line + "\n")}
	}
	return m
}

// Regression: the seed incident. The three flapping MACs lead to the three
// DSVA VMs, DSVA03's file being dsva03.vmx, each VM listed once although
// the datastore is reachable under two names.
func TestScanVMXIncident(t *testing.T) {
	got, err := ScanVMX(incidentFS(t))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]VMXRef{
		"00:50:56:84:5a:b1": {Name: "DSVA04", VMX: "/vmfs/volumes/71641d44-1e032a47/DSVA04/DSVA04.vmx", NIC: 2},
		"00:50:56:84:5a:b4": {Name: "DSVA03", VMX: "/vmfs/volumes/71641d44-1e032a47/DSVA03/dsva03.vmx", NIC: 2},
		"00:50:56:84:5a:ba": {Name: "DSVA01", VMX: "/vmfs/volumes/71641d44-1e032a47/DSVA01/DSVA01.vmx", NIC: 2},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ScanVMX (-want +got):\n%s", diff)
	}
}

func TestScanVMXConflictsAndUnreadable(t *testing.T) {
	vmx := func(name, present, mac string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte(fmt.Sprintf("displayName = %q\nethernet0.present = %q\nethernet0.generatedAddress = %q\n", name, present, mac))}
	}
	fsys := fstest.MapFS{
		"vmfs/volumes/v1/a/a.vmx":       vmx("A old copy", "FALSE", "00:50:56:00:00:01"),
		"vmfs/volumes/v1/b/b.vmx":       vmx("B", "TRUE", "00:50:56:00:00:01"),
		"vmfs/volumes/v1/c/c.vmx":       vmx("C", "TRUE", "00:50:56:00:00:01"),
		"vmfs/volumes/v1/c/c.vmx~":      vmx("lock", "TRUE", "00:50:56:00:00:09"),
		"vmfs/volumes/v1/c/c.vmxf":      vmx("team", "TRUE", "00:50:56:00:00:09"),
		"vmfs/volumes/v1/big/big.vmx":   {Data: []byte(strings.Repeat("#", maxVMXSize+1))},
		"vmfs/volumes/v1/loose.vmx":     vmx("loose", "TRUE", "00:50:56:00:00:08"),
		"vmfs/volumes/v1/link":          {Mode: fs.ModeSymlink, Data: []byte("b")},
		"vmfs/volumes/v1/d/linked.vmx":  {Mode: fs.ModeSymlink, Data: []byte("../b/b.vmx")},
		"vmfs/volumes/v2/e/E.vmx":       vmx("E", "TRUE", "00:50:56:00:00:02"),
		"vmfs/volumes/v2/e/E.vmx.lck/x": {},
		"vmfs/volumes/notadir":          {Data: []byte("x")},
	}
	got, err := ScanVMX(fsys)
	if !errors.Is(err, ErrVMXUnreadable) || !strings.Contains(err.Error(), "1 unreadable") || !strings.Contains(err.Error(), "/vmfs/volumes/v1/big/big.vmx") {
		t.Errorf("error = %v, want 1 unreadable naming big.vmx", err)
	}
	want := map[string]VMXRef{
		"00:50:56:00:00:01": {Name: "B", VMX: "/vmfs/volumes/v1/b/b.vmx", Present: true,
			Also: []string{"/vmfs/volumes/v1/a/a.vmx", "/vmfs/volumes/v1/c/c.vmx"}},
		"00:50:56:00:00:02": {Name: "E", VMX: "/vmfs/volumes/v2/e/E.vmx", Present: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ScanVMX (-want +got):\n%s", diff)
	}

	if _, err := ScanVMX(fstest.MapFS{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ScanVMX without vmfs/volumes: %v", err)
	}
}

// A unreadable file on a real file system is counted, not fatal.
func TestScanVMXPermission(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads everything")
	}
	root := t.TempDir()
	for _, vm := range []string{"ok", "locked"} {
		p := filepath.Join(root, "vmfs/volumes/v", vm, vm+".vmx")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(`ethernet0.generatedAddress = "00:50:56:00:00:0`+fmt.Sprint(len(vm))+`"`+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "vmfs/volumes/v/locked/locked.vmx"), 0); err != nil {
		t.Fatal(err)
	}
	got, err := ScanVMX(os.DirFS(root))
	if !errors.Is(err, ErrVMXUnreadable) || len(got) != 1 || got["00:50:56:00:00:02"].Name != "ok" {
		t.Errorf("ScanVMX = %v, %v", got, err)
	}
}

// incidentInventory joins the incident's datastore with a getallvms
// listing in vim-cmd's layout and a net-stats listing holding the log's
// ports (0x3000003/5/7) with their MACs.
func incidentInventory(t testing.TB) (fstest.MapFS, string, string) {
	fsys := incidentFS(t)
	fsys["vmfs/volumes/71641d44-1e032a47/stale/stale.vmx"] = &fstest.MapFile{Data: []byte("ethernet0.generatedAddress = \"00:50:56:84:5a:b1\"\nethernet1.generatedAddress = \"00:50:56:84:00:01\"\n")}
	getallvms := vimCmdTable([][]string{
		{"16", "DSVA01", "[datastore1] DSVA01/DSVA01.vmx", "otherLinux64Guest", "vmx-07", ""},
		{"32", "DSVA03", "[datastore1] DSVA03/dsva03.vmx", "otherLinux64Guest", "vmx-07", "Trend Micro DSVA"},
		{"48", "DSVA04", "[datastore1] DSVA04/DSVA04.vmx", "otherLinux64Guest", "vmx-07", ""},
		{"64", "gone", "[datastore1] gone/gone.vmx", "otherGuest", "vmx-07", ""},
	})
	netstats := "PortNum          Type SubType SwitchName       MACAddress         ClientName\n" +
		"50331651            5       9 vSwitch0         00:50:56:84:5a:b1  DSVA04.eth2\n" +
		"50331653            5       9 vSwitch0         00:50:56:84:5a:ba  DSVA01.eth2\n" +
		"50331655            5       9 vSwitch0         00:50:56:84:5a:b4  DSVA03.eth2\n"
	return fsys, getallvms, netstats
}

func TestNewInventory(t *testing.T) {
	fsys, getallvms, netstats := incidentInventory(t)
	rows, err := ParseGetAllVMs(strings.NewReader(getallvms))
	if err != nil {
		t.Fatal(err)
	}
	ports, err := ParseNetStats(strings.NewReader(netstats))
	if err != nil {
		t.Fatal(err)
	}
	inv := NewInventory(fsys, rows, ports)

	var names []string
	for _, vm := range inv.VMs {
		names = append(names, vm.ID+":"+vm.Name+":"+vm.VMX)
	}
	wantNames := []string{
		"16:DSVA01:/vmfs/volumes/71641d44-1e032a47/DSVA01/DSVA01.vmx",
		"32:DSVA03:/vmfs/volumes/71641d44-1e032a47/DSVA03/dsva03.vmx",
		"48:DSVA04:/vmfs/volumes/71641d44-1e032a47/DSVA04/DSVA04.vmx",
		"64:gone:",
		":stale:/vmfs/volumes/71641d44-1e032a47/stale/stale.vmx",
	}
	if diff := cmp.Diff(wantNames, names); diff != "" {
		t.Errorf("VMs (-want +got):\n%s", diff)
	}
	if len(inv.Notes) != 1 || !strings.Contains(inv.Notes[0], "vm 64 (gone)") {
		t.Errorf("notes = %q, want one about vm 64", inv.Notes)
	}

	// The log's MAC 00:50:56:84:5a:b4 leads to vmid 32. (The grep -H
	// excerpt has no ethernetN.present lines, so the NICs read as absent;
	// OwnerOf's rules are tested in owner_test.go.)
	c, ok := claimOf(inv, "00:50:56:84:5A:B4")
	want := Claim{VMID: "32", Name: "DSVA03", VMX: "/vmfs/volumes/71641d44-1e032a47/DSVA03/dsva03.vmx", NIC: 2, InUse: true}
	if diff := cmp.Diff(want, c); !ok || diff != "" {
		t.Errorf("claim (-want +got):\n%s", diff)
	}
	// A stale, unregistered copy claims DSVA04's MAC too: both are listed.
	m, _ := NormalizeMAC("00:50:56:84:5a:b1")
	if cs := inv.claims(m); len(cs) != 2 || cs[0].VMID != "48" || cs[1].VMX != "/vmfs/volumes/71641d44-1e032a47/stale/stale.vmx" {
		t.Errorf("claims of b1 = %+v", cs)
	}
	if c, ok := claimOf(inv, "00:50:56:84:00:01"); !ok || c.VMID != "" || c.Name != "stale" {
		t.Errorf("claim of an unregistered VM = %+v, %v", c, ok)
	}
	for _, mac := range []string{"00:50:56:ff:ff:ff", "junk"} {
		if inv.Declares(mac) {
			t.Errorf("Declares(%q)", mac)
		}
	}
}

// claimOf is the first claim of mac, registered VMs first.
func claimOf(inv Inventory, mac string) (Claim, bool) {
	m, ok := NormalizeMAC(mac)
	if !ok {
		return Claim{}, false
	}
	cs := inv.claims(m)
	if len(cs) == 0 {
		return Claim{}, false
	}
	if i := slices.IndexFunc(cs, func(c Claim) bool { return c.VMID != "" }); i >= 0 {
		return cs[i], true
	}
	return cs[0], true
}

// Two registered VMs with one MAC: the MAC cannot tell which to act on.
func TestInventoryAmbiguousMAC(t *testing.T) {
	fsys := fstest.MapFS{
		"vmfs/volumes/v/a/a.vmx": {Data: []byte("ethernet0.present = \"TRUE\"\nethernet0.generatedAddress = \"00:50:56:00:00:01\"\n")},
		"vmfs/volumes/v/b/b.vmx": {Data: []byte("ethernet0.present = \"TRUE\"\nethernet0.generatedAddress = \"00:50:56:00:00:01\"\n")},
	}
	rows := []VMRow{
		{ID: "1", Name: "a", Datastore: "v", Path: "a/a.vmx"},
		{ID: "2", Name: "b", Datastore: "v", Path: "b/b.vmx"},
	}
	inv := NewInventory(fsys, rows, nil)
	on := func(context.Context, string) (PowerState, error) { return PoweredOn, nil }
	o := inv.OwnerOf(context.Background(), 0x3000007, "00:50:56:00:00:01", PortLog{}, on)
	if o.Owner != nil || !o.Ambiguous || len(o.Claims) != 2 || o.Claims[1].VMX != "/vmfs/volumes/v/b/b.vmx" {
		t.Errorf("OwnerOf = %+v", o)
	}
}

// A getallvms path that matches two .vmx files only when case is folded
// names neither: the VM gets no .vmx, and neither file's MACs map to it.
// Fails if NewInventory takes the first of several case-folded matches.
func TestInventoryCaseFoldedPathAmbiguous(t *testing.T) {
	vmx := func(mac string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte("ethernet0.present = \"TRUE\"\nethernet0.generatedAddress = \"" + mac + "\"\n")}
	}
	fsys := fstest.MapFS{
		"vmfs/volumes/v/DSVA01/dsva01.vmx": vmx("00:50:56:00:00:01"),
		"vmfs/volumes/v/dsva01/DSVA01.vmx": vmx("00:50:56:00:00:02"),
	}
	rows := []VMRow{{ID: "7", Name: "DSVA01", Datastore: "v", Path: "Dsva01/Dsva01.vmx"}}
	inv := NewInventory(fsys, rows, nil)
	if len(inv.VMs) == 0 || inv.VMs[0].ID != "7" {
		t.Fatalf("VMs = %+v, want vm 7 first", inv.VMs)
	}
	if vm := inv.VMs[0]; vm.VMX != "" || len(vm.NICs) != 0 {
		t.Errorf("vm 7 got %q with %d NICs, want no .vmx", vm.VMX, len(vm.NICs))
	}
	if !slices.ContainsFunc(inv.Notes, func(n string) bool { return strings.Contains(n, "vm 7 (DSVA01)") }) {
		t.Errorf("notes = %q, want one about vm 7", inv.Notes)
	}
	for _, mac := range []string{"00:50:56:00:00:01", "00:50:56:00:00:02"} {
		if o, ok := claimOf(inv, mac); !ok || o.VMID != "" {
			t.Errorf("claim of %s = %+v, %v; want the unregistered file", mac, o, ok)
		}
	}
}

// invRunner answers argv with canned results. It checks the argv and
// timeouts LoadInventory uses; end-to-end runs use esxsim.
type invRunner struct {
	out  map[string]string
	fail map[string]error
	tmo  map[string]time.Duration
}

func (r *invRunner) Run(_ context.Context, timeout time.Duration, argv ...string) (host.Result, error) {
	key := strings.Join(argv, " ")
	if r.tmo == nil {
		r.tmo = map[string]time.Duration{}
	}
	r.tmo[key] = timeout
	if err, ok := r.fail[key]; ok {
		return host.Result{Argv: argv, ExitCode: -1}, &host.CommandError{Argv: argv, ExitCode: -1, Err: err}
	}
	return host.Result{Argv: argv, Stdout: []byte(r.out[key])}, nil
}

func writeFS(t *testing.T, root string, m fstest.MapFS) {
	t.Helper()
	for name, f := range m {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if f.Mode&fs.ModeSymlink != 0 {
			if err := os.Symlink(string(f.Data), p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLoadInventory(t *testing.T) {
	fsys, getallvms, netstats := incidentInventory(t)
	root := t.TempDir()
	writeFS(t, root, fsys)
	ctx := context.Background()

	r := &invRunner{out: map[string]string{"vim-cmd vmsvc/getallvms": getallvms, "net-stats -l": netstats}}
	inv, err := LoadInventory(ctx, r, root, 0)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := claimOf(inv, "00:50:56:84:5a:b4"); !ok || o.VMID != "32" || len(inv.Ports) == 0 {
		t.Errorf("claim = %+v, %v, ports %v", o, ok, inv.Ports)
	}
	if r.tmo["vim-cmd vmsvc/getallvms"] != GetAllVMsTimeout || r.tmo["net-stats -l"] != NetStatsTimeout {
		t.Errorf("timeouts %v", r.tmo)
	}

	// net-stats missing: noted, not fatal, ports unchecked.
	r = &invRunner{out: map[string]string{"vim-cmd vmsvc/getallvms": getallvms},
		fail: map[string]error{"net-stats -l": errors.New("exec: \"net-stats\": executable file not found in $PATH")}}
	inv, err = LoadInventory(ctx, r, root, 0)
	if err != nil || inv.Ports != nil || len(inv.Notes) == 0 || !strings.Contains(inv.Notes[0], "net-stats -l") {
		t.Errorf("without net-stats: err=%v ports=%v notes=%q", err, inv.Ports, inv.Notes)
	}
	if o, _ := claimOf(inv, "00:50:56:84:5a:b4"); o.VMID != "32" {
		t.Errorf("without net-stats claim = %+v", o)
	}

	// getallvms timing out (hostd hung): the .vmx-only inventory and the error.
	r = &invRunner{out: map[string]string{"net-stats -l": netstats},
		fail: map[string]error{"vim-cmd vmsvc/getallvms": fmt.Errorf("%w after 30s", host.ErrTimeout)}}
	inv, err = LoadInventory(ctx, r, root, 0)
	if !errors.Is(err, host.ErrTimeout) {
		t.Errorf("getallvms timeout: %v", err)
	}
	if o, ok := claimOf(inv, "00:50:56:84:5a:b4"); !ok || o.VMID != "" || o.Name != "DSVA03" {
		t.Errorf("vmx-only claim = %+v, %v", o, ok)
	}
}

// stallFS blocks every .vmx read until release is closed, as a datastore
// in all-paths-down does.
type stallFS struct {
	fs.FS
	release chan struct{}
	unblock func(t *testing.T) // releases the reads and waits for the stalled scans
}

// newStallFS returns a stallFS over fsys that is unblocked when the test
// ends, whatever happens, so later tests find no scan stalled.
func newStallFS(t *testing.T, fsys fs.FS) stallFS {
	s := stallFS{FS: fsys, release: make(chan struct{})}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(s.release) }) })
	s.unblock = func(t *testing.T) {
		t.Helper()
		once.Do(func() { close(s.release) })
		deadline := time.Now().Add(10 * time.Second)
		for stalledScans.Load() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%d scans still stalled 10 s after the release", stalledScans.Load())
			}
			time.Sleep(time.Millisecond)
		}
	}
	return s
}

func (s stallFS) Open(name string) (fs.File, error) {
	if strings.HasSuffix(name, ".vmx") {
		<-s.release
	}
	return s.FS.Open(name)
}

// A .vmx scan that stalls is given up on: the registered VMs come without
// MACs and an error, and no new scan starts until the stalled one is done.
func TestBoundedInventoryStall(t *testing.T) {
	fsys, getallvms, netstats := incidentInventory(t)
	rows, err := ParseGetAllVMs(strings.NewReader(getallvms))
	if err != nil {
		t.Fatal(err)
	}
	ports, err := ParseNetStats(strings.NewReader(netstats))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stall := newStallFS(t, fsys)

	inv, err := boundedInventory(ctx, stall, rows, ports, 50*time.Millisecond)
	if !errors.Is(err, ErrVMXStalled) {
		t.Fatalf("stalled scan: err %v", err)
	}
	if inv.Declares("00:50:56:84:5a:b4") || len(inv.VMs) != len(rows) || inv.VMs[1].ID != "32" {
		t.Errorf("stalled scan inventory: %+v", inv.VMs)
	}
	// The stalled read still holds: a scan of a healthy datastore is not
	// started either.
	if _, err := boundedInventory(ctx, fsys, rows, ports, time.Minute); !errors.Is(err, ErrVMXStalled) || !strings.Contains(err.Error(), "still blocked") {
		t.Errorf("second scan while the first is blocked: %v", err)
	}
	stall.unblock(t)
	inv, err = boundedInventory(ctx, fsys, rows, ports, time.Minute)
	if o, ok := claimOf(inv, "00:50:56:84:5a:b4"); err != nil || !ok || o.VMID != "32" {
		t.Errorf("after the datastore answered: %+v, %v, %v", o, ok, err)
	}

	// A context that ends gives up the same way.
	stall = newStallFS(t, fsys)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := boundedInventory(cctx, stall, rows, ports, time.Minute); !errors.Is(err, ErrVMXStalled) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	stall.unblock(t)
}

// Scans that do not stall may run at the same time (several watchers in
// one process).
func TestBoundedInventoryConcurrent(t *testing.T) {
	fsys, getallvms, _ := incidentInventory(t)
	rows, err := ParseGetAllVMs(strings.NewReader(getallvms))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			inv, err := boundedInventory(context.Background(), fsys, rows, nil, time.Minute)
			if o, ok := claimOf(inv, "00:50:56:84:5a:b4"); err != nil || !ok || o.VMID != "32" {
				t.Errorf("concurrent scan: %+v, %v, %v", o, ok, err)
			}
		})
	}
	wg.Wait()
}
