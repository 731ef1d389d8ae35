package remediate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/heapguard/heapguard/host"
)

// Timeouts of the inventory commands. vim-cmd goes through hostd, which is
// slow on a host in trouble; net-stats answers from the kernel.
const (
	GetAllVMsTimeout = 30 * time.Second
	NetStatsTimeout  = 10 * time.Second
	// VMXScanTimeout bounds reading the .vmx files: a datastore in
	// all-paths-down can block a read for minutes, no read can be
	// interrupted, and the agent must go on polling meanwhile.
	VMXScanTimeout = 20 * time.Second
)

// maxVMXSize bounds what is read of one .vmx file (real ones are a few KB).
const maxVMXSize = 1 << 20

var (
	// ErrVMXUnreadable is wrapped by ScanVMX's error when some .vmx files
	// or folders could not be read; the rest were scanned.
	ErrVMXUnreadable = errors.New("some .vmx files unreadable")
	// ErrVMXStalled: the .vmx files could not be read in time (a datastore
	// not answering); the inventory has no MACs.
	ErrVMXStalled = errors.New("reading the .vmx files stalled")
)

// VMXRef says which .vmx file holds a MAC.
type VMXRef struct {
	// Name is the VM's displayName, else its folder name.
	Name string `json:"name"`
	// VMX is the file's host path ("/vmfs/volumes/71641d44-1e032a47/DSVA03/dsva03.vmx");
	// its case need not match the display name.
	VMX     string `json:"vmx"`
	NIC     int    `json:"nic"`
	Present bool   `json:"present"`
	// Also lists other .vmx files with the same MAC (a copied VM, a stale
	// file): a MAC with Also set must not be trusted blindly.
	Also []string `json:"also,omitempty"`
}

// vmxFile is one scanned .vmx file.
type vmxFile struct {
	hostPath string // "/vmfs/volumes/<volume>/<folder>/<file>.vmx"
	volume   string
	rel      string // "<folder>/<file>.vmx"
	name     string // displayName, else folder
	vmx      VMX
}

// ScanVMX reads every vmfs/volumes/*/*/*.vmx of fsys, an fs.FS rooted at
// the host's root (os.DirFS(root) in production), and maps each MAC
// (generated and static, normalised) to its VM. On ESXi every datastore is
// both a folder named by its uuid and a symlink named by its label
// (datastore1 -> 5f0c...); entries that are symlinks are skipped so a VM is
// seen once. When two files claim one MAC, a present NIC wins over an
// absent one, else the first in path order; the others are listed in Also.
//
// Unreadable files and folders are skipped: the map of the rest comes
// with an error wrapping ErrVMXUnreadable that counts and names them.
// Without vmfs/volumes at all the error wraps fs.ErrNotExist.
func ScanVMX(fsys fs.FS) (map[string]VMXRef, error) {
	files, err := scanVMXFiles(fsys)
	return refsByMAC(files), err
}

func refsByMAC(files []vmxFile) map[string]VMXRef {
	out := map[string]VMXRef{}
	for _, f := range files {
		for _, n := range f.vmx.NICs {
			for _, mac := range n.MACs() {
				ref := VMXRef{Name: f.name, VMX: f.hostPath, NIC: n.Index, Present: n.Present}
				old, dup := out[mac]
				switch {
				case !dup:
					out[mac] = ref
				case old.VMX == ref.VMX:
				case ref.Present && !old.Present:
					ref.Also = append(old.Also, old.VMX)
					out[mac] = ref
				default:
					old.Also = append(old.Also, ref.VMX)
					out[mac] = old
				}
			}
		}
	}
	return out
}

func scanVMXFiles(fsys fs.FS) ([]vmxFile, error) {
	const volumes = "vmfs/volumes"
	vols, err := fs.ReadDir(fsys, volumes)
	if err != nil {
		return nil, fmt.Errorf("scan vmx files: %w", err)
	}
	var (
		files []vmxFile
		bad   []string
	)
	for _, vol := range vols {
		if !isRealDir(vol) {
			continue
		}
		volDir := volumes + "/" + vol.Name()
		vms, err := fs.ReadDir(fsys, volDir)
		if err != nil {
			bad = append(bad, "/"+volDir+": "+err.Error())
			continue
		}
		for _, vm := range vms {
			if !isRealDir(vm) {
				continue
			}
			vmDir := volDir + "/" + vm.Name()
			entries, err := fs.ReadDir(fsys, vmDir)
			if err != nil {
				bad = append(bad, "/"+vmDir+": "+err.Error())
				continue
			}
			for _, e := range entries {
				if !strings.HasSuffix(e.Name(), ".vmx") || !e.Type().IsRegular() {
					continue
				}
				p := vmDir + "/" + e.Name()
				v, err := readVMX(fsys, p)
				if err != nil {
					bad = append(bad, "/"+p+": "+err.Error())
					continue
				}
				name := v.DisplayName
				if name == "" {
					name = vm.Name()
				}
				files = append(files, vmxFile{hostPath: "/" + p, volume: vol.Name(), rel: vm.Name() + "/" + e.Name(), name: name, vmx: v})
			}
		}
	}
	if len(bad) > 0 {
		return files, fmt.Errorf("scan vmx files: %d unreadable (%s): %w", len(bad), strings.Join(bad, "; "), ErrVMXUnreadable)
	}
	return files, nil
}

func isRealDir(e fs.DirEntry) bool {
	return e.IsDir() && e.Type()&fs.ModeSymlink == 0
}

func readVMX(fsys fs.FS, name string) (VMX, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return VMX{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxVMXSize+1))
	if err != nil {
		return VMX{}, err
	}
	if len(b) > maxVMXSize {
		return VMX{}, fmt.Errorf("larger than %d bytes", maxVMXSize)
	}
	return ParseVMX(bytes.NewReader(b))
}

// InventoryVM is one VM known to the host: registered (from getallvms)
// and/or found as a .vmx file.
type InventoryVM struct {
	// ID is the vmid; "" for a .vmx on a datastore that is not registered
	// (it cannot be running, and vim-cmd cannot address it).
	ID   string `json:"id,omitempty"`
	Name string `json:"name"`
	// VMX is the host path of the .vmx file; "" when it was not found.
	VMX string `json:"vmx,omitempty"`
	// File is getallvms' File column ("[datastore1] VM1/VM1.vmx").
	File string `json:"file,omitempty"`
	NICs []NIC  `json:"nics,omitempty"`
}

// Inventory joins getallvms, the .vmx files and net-stats. Build it with
// NewInventory or LoadInventory.
type Inventory struct {
	VMs []InventoryVM `json:"vms"`
	// Ports is nil when net-stats was not available. PortsErr is why,
	// when the host has net-stats and it failed: then no flapping port
	// can be confirmed (OwnerOf).
	Ports    []NetPort `json:"ports,omitempty"`
	PortsErr error     `json:"-"`
	// Vmknics are the host's VMkernel NICs (esxcfg-vmknic -l), read only
	// when the host has no port list; nil when unknown (not read, or
	// VmknicsErr), and then no port is given to a VM by its MAC alone.
	Vmknics    []Vmknic `json:"vmknics,omitempty"`
	VmknicsErr error    `json:"-"`
	// Notes are non-fatal problems met while building it.
	Notes []string `json:"notes,omitempty"`

	byPort map[uint32]NetPort
}

// NewInventory scans fsys (rooted at the host root) for .vmx files and
// joins them with the getallvms rows (by datastore and path; the label
// "datastore1" is resolved through its symlink to the uuid folder) and,
// when ports is not nil, with net-stats. Problems that leave the rest
// usable (unreadable files, VMs whose .vmx was not found) become Notes.
func NewInventory(fsys fs.FS, rows []VMRow, ports []NetPort) Inventory {
	inv := Inventory{Ports: ports}
	files, err := scanVMXFiles(fsys)
	if err != nil {
		inv.Notes = append(inv.Notes, err.Error())
	}
	byHostPath := map[string]int{}
	byFoldedPath := map[string][]int{}
	for i, f := range files {
		byHostPath[f.hostPath] = i
		k := strings.ToLower(f.hostPath)
		byFoldedPath[k] = append(byFoldedPath[k], i)
	}
	used := make([]bool, len(files))
	for _, r := range rows {
		vm := InventoryVM{ID: r.ID, Name: r.Name, File: r.File()}
		if r.Datastore == "" {
			inv.Notes = append(inv.Notes, fmt.Sprintf("vm %s (%s): no datastore in %q, .vmx not located", r.ID, r.Name, r.File()))
			inv.VMs = append(inv.VMs, vm)
			continue
		}
		hostPath := "/vmfs/volumes/" + resolveVolume(fsys, r.Datastore) + "/" + r.Path
		i, ok := byHostPath[hostPath]
		if !ok {
			if c := byFoldedPath[strings.ToLower(hostPath)]; len(c) == 1 {
				i, ok = c[0], true
			}
		}
		switch {
		case ok:
			used[i] = true
			vm.VMX, vm.NICs = files[i].hostPath, files[i].vmx.NICs
		default:
			// Not found by the scan (a datastore reached only through its
			// label, say): read it through the label's path.
			p := path.Join("vmfs/volumes", r.Datastore, r.Path)
			v, err := readVMX(fsys, p)
			if err != nil {
				inv.Notes = append(inv.Notes, fmt.Sprintf("vm %s (%s): read %s: %v", r.ID, r.Name, "/"+p, err))
				break
			}
			vm.VMX, vm.NICs = "/"+p, v.NICs
		}
		inv.VMs = append(inv.VMs, vm)
	}
	for i, f := range files {
		if !used[i] {
			inv.VMs = append(inv.VMs, InventoryVM{Name: f.name, VMX: f.hostPath, NICs: f.vmx.NICs})
		}
	}
	inv.index()
	return inv
}

// resolveVolume maps a datastore label to its volume folder through the
// label's symlink; a label that is no symlink (or an fs without links) is
// its own folder.
func resolveVolume(fsys fs.FS, ds string) string {
	target, err := fs.ReadLink(fsys, "vmfs/volumes/"+ds)
	if err != nil || target == "" {
		return ds
	}
	return path.Base(strings.TrimSuffix(target, "/"))
}

// index builds the port map.
func (inv *Inventory) index() {
	inv.byPort = map[uint32]NetPort{}
	for _, p := range inv.Ports {
		inv.byPort[p.PortNum] = p
	}
}

// Declares reports whether any .vmx file of the inventory declares mac
// (any case or separator), on any NIC, in use or not.
func (inv *Inventory) Declares(mac string) bool {
	m, ok := NormalizeMAC(mac)
	return ok && len(inv.claims(m)) > 0
}

// LoadInventory runs `vim-cmd vmsvc/getallvms` and `net-stats -l` (and,
// on a host without net-stats, `esxcfg-vmknic -l`) and joins them with the
// .vmx files under root ("" or "/" for the real host).
// Each command gets timeout (0: GetAllVMsTimeout and NetStatsTimeout). A
// failing or missing net-stats is noted, not fatal (see PortsErr). When
// getallvms fails, the inventory of the .vmx files alone (no vmids, so
// nothing can be powered off) comes with the error, and so do unknown
// VMkernel NICs (see Inventory.Vmknics). When the .vmx files
// cannot be read within VMXScanTimeout, the registered VMs alone (no
// MACs, so nothing maps to a VM) come with an error wrapping ErrVMXStalled.
func LoadInventory(ctx context.Context, runner host.Runner, root string, timeout time.Duration) (Inventory, error) {
	fsys := os.DirFS(host.Path(root, "/"))
	var notes []string
	ports, perr := LoadPorts(ctx, runner, timeout)
	if perr != nil {
		notes = append(notes, perr.Error())
	}
	var (
		vmknics []Vmknic
		verr    error
	)
	if errors.Is(perr, ErrNoPortList) {
		// Without a port list a MAC is all that ties a port to a VM, and
		// the host's own VMkernel NICs have MACs too.
		if vmknics, verr = LoadVmknics(ctx, runner, timeout); verr != nil {
			notes = append(notes, verr.Error())
		}
	}
	rows, gerr := ListVMs(ctx, runner, timeout)
	inv, serr := boundedInventory(ctx, fsys, rows, ports, VMXScanTimeout)
	inv.Notes = append(notes, inv.Notes...)
	inv.PortsErr = portsFailed(ports, perr)
	inv.Vmknics, inv.VmknicsErr = vmknics, verr
	if gerr != nil {
		gerr = fmt.Errorf("getallvms: %w", gerr)
	}
	// Unknown vmknics leave the inventory incomplete, so that a caller
	// keeping it asks again soon rather than confirming nothing for long;
	// not on a host without esxcfg-vmknic, which asking again would only
	// load whole every 30 s (VmknicsErr still says why nothing is
	// confirmed by MAC alone).
	retry := verr
	if errors.Is(verr, ErrNoVmknicList) {
		retry = nil
	}
	if err := errors.Join(gerr, serr, retry); err != nil {
		return inv, fmt.Errorf("load inventory: %w", err)
	}
	return inv, nil
}

// ErrNoPortList is wrapped by LoadPorts' error when the host has no
// net-stats at all (not found, or exit 127): a version without a port
// list, where OwnerOf falls back to the claims alone.
var ErrNoPortList = errors.New("no net-stats on this host")

// LoadPorts runs `net-stats -l` (timeout 0: NetStatsTimeout). Nil ports
// mean no port list; the error says why, wrapping ErrNoPortList when the
// host has no net-stats. Rows it cannot parse are left out and named in
// the error.
func LoadPorts(ctx context.Context, runner host.Runner, timeout time.Duration) ([]NetPort, error) {
	res, err := runner.Run(ctx, orDefault(timeout, NetStatsTimeout), "net-stats", "-l")
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) || res.ExitCode == 127 {
			return nil, fmt.Errorf("net-stats -l: %w: %w", ErrNoPortList, err)
		}
		return nil, fmt.Errorf("net-stats -l: %w (ports not cross-checked)", err)
	}
	ports, err := ParseNetStats(bytes.NewReader(res.Stdout))
	if ports == nil {
		ports = []NetPort{}
	}
	return ports, err
}

// portsFailed is the error to keep in PortsErr: a port list that should
// have come and did not.
func portsFailed(ports []NetPort, err error) error {
	if ports != nil || errors.Is(err, ErrNoPortList) {
		return nil
	}
	return err
}

// WithPorts returns a copy of the inventory with a newer port list and
// the error LoadPorts gave, so the .vmx files need not be read again for a
// fresh net-stats.
func (inv Inventory) WithPorts(ports []NetPort, err error) Inventory {
	inv.Ports = ports
	inv.PortsErr = portsFailed(ports, err)
	inv.index()
	return inv
}

// stalledScans counts .vmx scans given up on that are still blocked in a
// read. While one is, no other starts: stalled reads must not pile up.
var stalledScans atomic.Int32

// Where a scan is, for handing it over between boundedInventory and the
// scanning goroutine exactly once.
const (
	scanRunning int32 = iota
	scanDone
	scanAbandoned
)

// boundedInventory is NewInventory given up on after timeout (or when ctx
// ends): then the inventory holds the registered VMs without their .vmx
// files, so no MAC maps to a VM, and the error wraps ErrVMXStalled. The
// abandoned scan finishes in the background.
func boundedInventory(ctx context.Context, fsys fs.FS, rows []VMRow, ports []NetPort, timeout time.Duration) (Inventory, error) {
	if n := stalledScans.Load(); n > 0 {
		return registeredOnly(rows, ports), fmt.Errorf("scan vmx files: %d earlier scan(s) still blocked: %w", n, ErrVMXStalled)
	}
	var state atomic.Int32
	done := make(chan Inventory, 1)
	go func() {
		done <- NewInventory(fsys, rows, ports)
		if !state.CompareAndSwap(scanRunning, scanDone) {
			stalledScans.Add(-1) // abandoned: it no longer blocks
		}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	var why error
	select {
	case inv := <-done:
		return inv, nil
	case <-t.C:
		why = fmt.Errorf("scan vmx files: no answer in %v: %w", timeout, ErrVMXStalled)
	case <-ctx.Done():
		why = fmt.Errorf("scan vmx files: %w: %w", ErrVMXStalled, ctx.Err())
	}
	stalledScans.Add(1) // before the scan can see it abandoned and take it back
	if !state.CompareAndSwap(scanRunning, scanAbandoned) {
		stalledScans.Add(-1)
		return <-done, nil // it finished just now
	}
	return registeredOnly(rows, ports), why
}

// registeredOnly is the inventory of the getallvms rows and net-stats
// without any .vmx file.
func registeredOnly(rows []VMRow, ports []NetPort) Inventory {
	inv := Inventory{Ports: ports}
	for _, r := range rows {
		inv.VMs = append(inv.VMs, InventoryVM{ID: r.ID, Name: r.Name, File: r.File()})
	}
	inv.Notes = append(inv.Notes, ".vmx files not read: MACs not mapped to VMs")
	inv.index()
	return inv
}
