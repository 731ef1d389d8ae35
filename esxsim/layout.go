package esxsim

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/heapguard/heapguard/host"
)

// InitOptions change how Init lays out a root.
type InitOptions struct {
	Version string // overrides the scenario's ESXi version
	Seed    *int64 // overrides the scenario's seed
	// Binary is the multi-call binary to link as bin/* and the init
	// scripts. Empty: a script that says no binary is installed.
	Binary string
	// Force lays out over a root that already holds a simulated host.
	Force bool
}

// toolNames are the names the multi-call binary answers to under bin/.
var binTools = []string{"vsish", "vim-cmd", "net-stats", "esxcfg-vmknic", "esxcli", "vmware"}

// Init lays out an ESXi root in dir for the scenario.
func Init(root string, sc Scenario, o InitOptions) error {
	if host.IsRealRoot(root) {
		return errors.New("refusing to lay out a simulated host over /")
	}
	if _, err := os.Stat(host.Path(root, StatePath)); err == nil && !o.Force {
		return fmt.Errorf("%s already holds a simulated host (use --force)", root)
	}
	verName := sc.Version
	if o.Version != "" {
		verName = o.Version
	}
	ver, err := LookupVersion(verName)
	if err != nil {
		return err
	}
	seed := sc.Seed
	if o.Seed != nil {
		seed = *o.Seed
	}
	sc.defaults()
	if err := sc.Validate(); err != nil {
		return err
	}
	st, err := newState(sc, ver, seed)
	if err != nil {
		return err
	}
	for _, d := range []string{"bin", "etc/init.d", "etc/vmware", "var/log", "var/core", "var/spool/cron/crontabs",
		"var/lib/esxsim", "var/run", "tmp", "vmfs/volumes/" + sc.DatastoreUUID} {
		if err := os.MkdirAll(host.Path(root, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(host.Path(root, "tmp"), 0o777|os.ModeSticky); err != nil {
		return err
	}
	// ESXi names each datastore by a symlink to its uuid folder.
	link := host.Path(root, "vmfs/volumes/"+sc.Datastore)
	os.Remove(link)
	if err := os.Symlink(sc.DatastoreUUID, link); err != nil {
		return fmt.Errorf("datastore link: %w", err)
	}
	for i := range st.VMs {
		vm := &st.VMs[i]
		p := vmxPath(root, st, vm)
		if err := ensureDir(p); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(RenderVmx(ver, *vm)), 0o644); err != nil {
			return err
		}
	}
	files := stockFiles(ver)
	files["/etc/vmware/esxsim-version"] = ver.Full + " build-" + ver.Build + "\n"
	for p, body := range files {
		if err := writeStock(root, p, body); err != nil {
			return err
		}
	}
	for _, p := range []string{ver.LogPath(), ver.WarningLogPath(), ActionsPath} {
		if p == "" {
			continue
		}
		if err := os.WriteFile(host.Path(root, p), nil, 0o644); err != nil {
			return err
		}
	}
	if err := os.WriteFile(host.Path(root, lockPath), nil, 0o644); err != nil {
		return err
	}
	// A few lines before the start, so the log is not empty.
	s, err := newSim(root, st)
	if err != nil {
		return err
	}
	if st.Scenario.Noise.PerMinute > 0 {
		for i := 5; i > 0; i-- {
			s.noise(st.Now.Add(-time.Duration(i)*37*time.Second + time.Duration(s.r.IntN(1000))*time.Millisecond))
		}
		st.NextNoise = s.nextNoise(st.Now)
	}
	if err := s.flush(); err != nil {
		return err
	}
	if err := writeState(root, st); err != nil {
		return err
	}
	if err := publishClock(root, st.Now, 0); err != nil {
		return err
	}
	return InstallBinary(root, o.Binary)
}

// stockFiles are the files of /etc and /var a boot gives (host path to
// content): the boot script, root's crontab, inetd.conf.
func stockFiles(ver Version) map[string]string {
	files := map[string]string{
		"/var/spool/cron/crontabs/root": crontab(ver),
		"/etc/inetd.conf":               inetdConf(ver),
	}
	if ver.BootScript() == "/etc/rc.local" {
		files["/etc/rc.local"] = rcLocal4x
	} else {
		files[ver.BootScript()] = localSh(ver)
	}
	return files
}

// writeStock writes a stock file, scripts executable.
func writeStock(root, p, body string) error {
	hp := host.Path(root, p)
	if err := ensureDir(hp); err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if strings.HasSuffix(p, ".sh") || strings.HasSuffix(p, "rc.local") {
		mode = 0o755
	}
	if err := os.WriteFile(hp, []byte(body), mode); err != nil {
		return err
	}
	// WriteFile keeps the mode of a file that exists.
	return os.Chmod(hp, mode)
}

// toolPaths are the host paths the multi-call binary is installed at.
func toolPaths(root string) []string {
	var ps []string
	for _, t := range binTools {
		ps = append(ps, "/bin/"+t)
	}
	// The simulator's own command, for heapguard's stepped test clock
	// (host.SimStepClock runs `esxsim advance` from the host's PATH).
	ps = append(ps, "/bin/esxsim", AutoBackupPath)
	st, err := readState(root)
	v := versions[2]
	if err == nil {
		v = st.Ver()
	}
	ps = append(ps, v.VpxaInit(), v.HostdInit())
	return ps
}

// InstallBinary makes bin/* and the init scripts of root point at the
// multi-call binary bin (hard links, or copies where linking fails). With bin
// empty they become a script that says none is installed.
func InstallBinary(root, bin string) error {
	for _, p := range toolPaths(root) {
		dst := host.Path(root, p)
		if err := ensureDir(dst); err != nil {
			return fmt.Errorf("install %s: %w", p, err)
		}
		os.Remove(dst)
		if bin == "" {
			body := "#!/bin/sh\necho \"esxsim: no multi-call binary installed at $0 (esxsim init, or Host.InstallBinary in tests)\" >&2\nexit 127\n"
			if err := os.WriteFile(dst, []byte(body), 0o755); err != nil {
				return fmt.Errorf("install %s: %w", p, err)
			}
			continue
		}
		abs, err := filepath.Abs(bin)
		if err != nil {
			return fmt.Errorf("install %s: %w", p, err)
		}
		if os.Link(abs, dst) == nil {
			continue
		}
		if err := copyFile(abs, dst); err != nil {
			return fmt.Errorf("install %s: %w", p, err)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// vmxGuestOS maps the API guest id (vim-cmd's "Guest OS" column) to the
// .vmx guestOS key.
var vmxGuestOS = map[string]string{
	"other26xLinux64Guest":  "other26xlinux-64",
	"otherLinux64Guest":     "otherlinux-64",
	"rhel6_64Guest":         "rhel6-64",
	"rhel7_64Guest":         "rhel7-64",
	"centos64Guest":         "centos-64",
	"ubuntu64Guest":         "ubuntu-64",
	"debian10_64Guest":      "debian10-64",
	"windows7Server64Guest": "windows7srv-64",
	"windows8Server64Guest": "windows8srv-64",
	"windows9Server64Guest": "windows9srv-64",
	"winNetStandardGuest":   "winnetstandard",
}

// RenderVmx writes a VM's .vmx the way ESXi does (key = "value", sorted
// as hostd writes a fresh file). The ethernet lines follow
// vmx-ethernet.txt / vmx-ethernet-2.txt; "vpx" and "generated" NICs carry
// ethernetN.generatedAddress, "static" ones ethernetN.address; an absent
// NIC keeps its lines with ethernetN.present = "FALSE".
// unverified: a real static-address .vmx was not captured, nor a real one
// with ethernetN.present = "FALSE".
func RenderVmx(v Version, vm VM) string {
	guest, ok := vmxGuestOS[vm.GuestOS]
	if !ok {
		guest = strings.ToLower(strings.TrimSuffix(vm.GuestOS, "Guest"))
	}
	disk := strings.TrimSuffix(filepath.Base(vm.Vmx), ".vmx") + ".vmdk"
	var b strings.Builder
	kv := func(k, val string) { fmt.Fprintf(&b, "%s = %q\n", k, val) }
	kv(".encoding", "UTF-8")
	kv("config.version", "8")
	kv("virtualHW.version", fmt.Sprint(vm.HWVersion))
	kv("nvram", strings.TrimSuffix(filepath.Base(vm.Vmx), ".vmx")+".nvram")
	kv("pciBridge0.present", "TRUE")
	kv("svga.present", "TRUE")
	kv("displayName", vm.Name)
	kv("guestOS", guest)
	kv("memSize", fmt.Sprint(vm.MemoryMB))
	kv("numvcpus", fmt.Sprint(vm.NumCPUs))
	if vm.Annotation != "" {
		kv("annotation", vm.Annotation)
	}
	kv("scsi0.virtualDev", "lsilogic")
	kv("scsi0.present", "TRUE")
	kv("scsi0:0.deviceType", "scsi-hardDisk")
	kv("scsi0:0.fileName", disk)
	kv("scsi0:0.present", "TRUE")
	for _, n := range vm.NICs {
		e := fmt.Sprintf("ethernet%d.", n.Index)
		kv(e+"virtualDev", n.VirtualDev)
		kv(e+"networkName", n.Network)
		kv(e+"addressType", n.AddressType)
		if n.AddressType == "static" {
			kv(e+"address", n.MAC)
		} else {
			kv(e+"generatedAddress", n.MAC)
		}
		kv(e+"pciSlotNumber", fmt.Sprint(160+32*n.Index))
		present := "TRUE"
		if n.Absent {
			present = "FALSE"
		}
		kv(e+"present", present)
	}
	if vm.ToolsInstalled != ToolsNotInstalled {
		kv("tools.syncTime", "FALSE")
		kv("toolScripts.afterPowerOn", "TRUE")
		kv("toolScripts.beforePowerOff", "TRUE")
	}
	kv("uuid.bios", fmt.Sprintf("42 04 %02x %02x 5a 3c 1e 77-8b 2d 41 9e %02x 0c %02x %02x", vm.ID, len(vm.Name), vm.HWVersion, vm.ID*7%256, vm.ID*13%256))
	kv("vc.uuid", fmt.Sprintf("5004%04x-3c1e-778b-2d41-9e%010x", vm.ID, vm.ID*7919))
	return b.String()
}

// localSh is ESXi's stock /etc/rc.local.d/local.sh (5.x and later; the
// UEFI secure boot note is from 7.0 on). unverified: wording from public
// copies of the file, not from a host.
func localSh(v Version) string {
	note := ""
	if v.Init == InitShort || v.Name == "7.0" {
		note = "\n# Note: This script will not be run when UEFI secure boot is enabled.\n"
	}
	return `#!/bin/sh

# local configuration options

# Note: modify at your own risk!  If you do/use anything in this
# script that is not part of a stable API (relying on files to be in
# specific places, specific tools, specific output, etc) there is a
# possibility you will end up with a broken system after patching or
# upgrading.  Changes are not supported unless under direction of
# VMware support.
` + note + `
exit 0
`
}

// rcLocal4x is ESXi 4.x's /etc/rc.local, also laid out for 5.0.
// unverified: from public copies of 4.x's; 5.0's was not seen.
const rcLocal4x = `#! /bin/ash
export PATH=/sbin:/bin

log() {
   echo "${1}"
   /bin/busybox logger init "${1}"
}

# execute all service retgistered in ${rcdir} ($1 or /etc/rc.local.d)
if [ -d "${1:-/etc/rc.local.d}" ] ; then
   for filename in $(find "${1:-/etc/rc.local.d}" | /bin/busybox sort) ; do
      if [ -f "${filename}" ] && [ -x "${filename}" ]; then
         log "running ${filename}"
         "${filename}"
      fi
   done
fi
`

// crontab is the root crontab ESXi ships. unverified: from public copies.
func crontab(v Version) string {
	if v.Init == InitOpt4x {
		return "#syntax : minute hour day month dayofweek command\n" +
			"01 01 * * * /sbin/tmpwatch.sh\n" +
			"01 * * * * /sbin/auto-backup.sh #first minute of every hour (run every hour)\n"
	}
	s := "#min hour day mon dow command\n" +
		"1    1    *   *   *   /sbin/tmpwatch.py\n" +
		"1    *    *   *   *   /sbin/auto-backup.sh\n" +
		"0    *    *   *   *   /usr/lib/vmware/vmksummary/log-heartbeat.py\n" +
		"*/5  *    *   *   *   /bin/hostd-probe.sh ++group=host/vim/vimuser/hostd-probe/stats/sh\n" +
		"00   1    *   *   *   localcli storage core device purge\n"
	if v.Init == InitShort || v.Name == "7.0" {
		s += "*/10 *    *   *   *   /bin/crx-cli gc\n"
	}
	return s
}

// inetdConf is ESXi's /etc/inetd.conf (ssh and authd). unverified: from
// public copies.
func inetdConf(v Version) string {
	if v.Init == InitOpt4x {
		return "# Internet server configuration database\n" +
			"#ssh      stream  tcp     nowait  root    /sbin/dropbearmulti     dropbear ++min=0,swap,group=shell -i -K60\n" +
			"authd     stream  tcp     nowait  root    /sbin/authd     authd\n"
	}
	return "# Internet server configuration database\n" +
		"ssh      stream  tcp     nowait  root    /usr/lib/vmware/openssh/bin/sshd        sshd ++swap,group=host/vim/vimuser/terminal/ssh -i\n" +
		"ssh      stream  tcp6    nowait  root    /usr/lib/vmware/openssh/bin/sshd        sshd ++swap,group=host/vim/vimuser/terminal/ssh -i\n" +
		"authd    stream  tcp     nowait  root    /sbin/authd     authd\n" +
		"authd    stream  tcp6    nowait  root    /sbin/authd     authd\n"
}
