package esxsim

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// LogFormat is the shape of a vmkernel log line.
type LogFormat int

const (
	// LogSyslog4x: "Jul 26 01:26:46 vmkernel: 7:21:06:31.191 cpu3:33421)…" in
	// /var/log/messages (4.x, 5.0). Sample vmkernel-4x-messages.log.
	LogSyslog4x LogFormat = iota
	// LogISO: "2017-09-30T17:27:30.509Z cpu1:65597)…" in
	// /var/log/vmkernel.log (5.1–7.x). Sample vmkernel-5x.log.
	LogISO
	// LogISO8x: "2023-12-07T05:04:55.159Z In(182) vmkernel: cpu10:2099084)…"
	// (8.x, 9.x); warnings are "Wa(180) vmkwarning:" and also go to
	// vmkwarning.log. Samples vmkernel-8x.log, vmkernel-9x.log.
	LogISO8x
)

// InitStyle is the wording of the agents' init scripts.
type InitStyle int

const (
	// InitOpt4x: /etc/opt/init.d/vmware-vpxa, "Starting vmware-vpxa:success"
	// (samples init-opt-vmware-vpxa-*-esxi4.txt).
	InitOpt4x InitStyle = iota
	// InitWatchdog: /etc/init.d/vpxa with watchdog lines (5.x–7.x, samples
	// init-vpxa.txt, init-hostd.txt).
	InitWatchdog
	// InitShort: "vpxa stopped." / "vpxa started." (8.x, 9.x; samples
	// init-*-restart-esxi8.txt, -esxi9.txt).
	InitShort
)

// Version is everything that differs between ESXi releases, as data.
type Version struct {
	Name        string // "5.5": what --version takes
	Full        string // "5.5.0"
	Build       string // "1623387"
	Label       string // vmware -l: "VMware ESXi 5.5.0 Update 1"
	Update      int
	Patch       int
	Maintenance bool // esxcli system version get has a Maintenance: line (9.0 sample)
	Log         LogFormat
	Init        InitStyle
	// EsxcliPadded: esxcli tables pad the last column and "DVPort ID: "
	// keeps its trailing space (samples *-trailing-spaces.txt,
	// port-list-2.txt, 6-digit world ids); 6.7 and later do not.
	EsxcliPadded bool
	// WorldBase is where vmkernel world ids start (5 digits on 4.x/5.x,
	// 7 digits on 7.x+), so generated lines look like the version's.
	WorldBase int
	// MaxHW is the newest virtual hardware version the release runs; a
	// scenario's VMs are clamped to it.
	MaxHW int
	// VmwareBusybox: /usr/lib/vmware/busybox/bin/busybox exists and
	// `… crond` starts crond with it. BinCrond: `/bin/busybox crond` does
	// (before 7.0 Update 2). Sources: local.sh recipes restarting crond
	// with /usr/lib/vmware/busybox/bin/busybox for "ESXi > 5.1" (33hops.com
	// xsibackup-cron-how-to) and on 6.5 and later; from 7.0.2 on `/bin/busybox
	// crond` no longer starts it (github.com/lamw/ghettoVCB issue 242).
	// unverified: whether the path exists on 5.5–6.0 (taken: yes, as those
	// recipes say) and on 5.0 (taken: no); what `/bin/busybox crond`
	// prints where it no longer works.
	VmwareBusybox, BinCrond bool
	// Source line numbers printed by vmkernel; they change per build.
	// 4.x numbers are from the incident; 6.5 NetPort/Uplink from
	// vmkernel-5x.log; 5.x Heap numbers from vmkernel-heap-maxed-kb.txt.
	// unverified: the others are plausible values, not observed ones.
	LineNetPortDisabled, LineNetPortEnabled, LineHeapMax, LineHeapAlign, LineUser, LineUserDump int
	// VmknicNetStack: esxcfg-vmknic -l has the "Port Group/DVPort/Opaque
	// Network" header and a NetStack column (samples
	// esxcfg-vmknic-l-trailing-spaces.txt, -ipv6-dvport.txt); before, the
	// "Port Group/DVPort" header and Type last (-no-netstack.txt).
	// unverified: which release changed it (taken: 6.0, whose API added
	// opaque networks), and 4.1's header (taken: the 5.x one).
	VmknicNetStack bool
}

// LogPath is the vmkernel log on this version (host path).
func (v Version) LogPath() string {
	if v.Log == LogSyslog4x {
		return "/var/log/messages"
	}
	return "/var/log/vmkernel.log"
}

// WarningLogPath is /var/log/vmkwarning.log on 8.x and later, else "".
func (v Version) WarningLogPath() string {
	if v.Log == LogISO8x {
		return "/var/log/vmkwarning.log"
	}
	return ""
}

// VpxaInit and HostdInit are the agents' init scripts (host paths); the
// same paths host.DetectLayout looks for.
func (v Version) VpxaInit() string {
	if v.Init == InitOpt4x {
		return "/etc/opt/init.d/vmware-vpxa"
	}
	return "/etc/init.d/vpxa"
}

// BootScript is the script ESXi runs at the end of boot, the one place a
// change to the RAM file systems can be replayed from: /etc/rc.local on
// 4.x and 5.0, /etc/rc.local.d/local.sh from 5.1 on (williamlam.com 2013
// "Executing commands during boot up in ESXi 5.1", after VMware KB 2043564).
func (v Version) BootScript() string {
	if v.Log == LogSyslog4x {
		return "/etc/rc.local"
	}
	return "/etc/rc.local.d/local.sh"
}

// CrondBusybox is the busybox whose `crond` applet starts crond on this
// version: /usr/lib/vmware/busybox/bin/busybox from 7.0 Update 2 on, where
// /bin/busybox no longer has it; /bin/busybox before.
func (v Version) CrondBusybox() string {
	if v.BinCrond {
		return "/bin/busybox"
	}
	return VmwareBusyboxPath
}

// VmwareBusyboxPath is the busybox under /usr/lib/vmware (VmwareBusybox).
const VmwareBusyboxPath = "/usr/lib/vmware/busybox/bin/busybox"

// HostdInit is the hostd init script. ESXi 4.x had /etc/init.d/hostd too.
func (v Version) HostdInit() string { return "/etc/init.d/hostd" }

// MaxSizeWording is how "Heap … already at its maximum size" spells the
// size on this version (4.x: "maximumSize").
func (v Version) MaxSizeWording() string {
	if v.Log == LogSyslog4x {
		return "maximumSize"
	}
	return "maximum size"
}

// versions are the releases esxsim can imitate. Builds with a sample:
// 4.1 (vmware-v-esxi41.txt), 5.0 (vmware-l-esxi50.txt), 5.5
// (vmware-vl-esxi55.txt), 6.0, 6.5 (vmware-vl-*.txt), 6.7
// (esxcli-system-version-get.txt), 9.0 (esxcli-system-version-get-esxi9.txt).
// unverified: 4.1's Update label, 5.0's build number, 7.0 and 8.0 builds
// and labels are real public build numbers but their command output was
// not captured.
var versions = []Version{
	{Name: "4.1", BinCrond: true, MaxHW: 7, Full: "4.1.0", Build: "702113", Label: "VMware ESXi 4.1.0 Update 2", Update: 2,
		Log: LogSyslog4x, Init: InitOpt4x, EsxcliPadded: true, WorldBase: 14000,
		LineNetPortDisabled: 1165, LineNetPortEnabled: 982, LineHeapMax: 2218, LineHeapAlign: 2481, LineUser: 2432, LineUserDump: 1485},
	{Name: "5.0", BinCrond: true, MaxHW: 8, Full: "5.0.0", Build: "469512", Label: "VMware ESXi 5.0.0 GA",
		Log: LogSyslog4x, Init: InitWatchdog, EsxcliPadded: true, WorldBase: 14000,
		LineNetPortDisabled: 1165, LineNetPortEnabled: 982, LineHeapMax: 2218, LineHeapAlign: 2481, LineUser: 2432, LineUserDump: 1485},
	{Name: "5.5", VmwareBusybox: true, BinCrond: true, MaxHW: 10, Full: "5.5.0", Build: "1623387", Label: "VMware ESXi 5.5.0 Update 1", Update: 1,
		Log: LogISO, Init: InitWatchdog, EsxcliPadded: true, WorldBase: 33000,
		LineNetPortDisabled: 1632, LineNetPortEnabled: 1426, LineHeapMax: 2525, LineHeapAlign: 2900, LineUser: 2888, LineUserDump: 1820},
	{Name: "6.0", VmknicNetStack: true, VmwareBusybox: true, BinCrond: true, MaxHW: 11, Full: "6.0.0", Build: "2809209", Label: "VMware ESXi 6.0.0 GA",
		Log: LogISO, Init: InitWatchdog, EsxcliPadded: true, WorldBase: 33000,
		LineNetPortDisabled: 1763, LineNetPortEnabled: 1573, LineHeapMax: 3057, LineHeapAlign: 3481, LineUser: 2888, LineUserDump: 1820},
	{Name: "6.5", VmknicNetStack: true, VmwareBusybox: true, BinCrond: true, MaxHW: 13, Full: "6.5.0", Build: "5969303", Label: "VMware ESXi 6.5.0 Update 1", Update: 1,
		Log: LogISO, Init: InitWatchdog, EsxcliPadded: true, WorldBase: 65500,
		LineNetPortDisabled: 1879, LineNetPortEnabled: 1660, LineHeapMax: 3057, LineHeapAlign: 3481, LineUser: 3173, LineUserDump: 2072},
	{Name: "6.7", VmknicNetStack: true, VmwareBusybox: true, BinCrond: true, MaxHW: 14, Full: "6.7.0", Build: "8169922", Label: "VMware ESXi 6.7.0 GA",
		Log: LogISO, Init: InitWatchdog, WorldBase: 2097000,
		LineNetPortDisabled: 1879, LineNetPortEnabled: 1660, LineHeapMax: 3057, LineHeapAlign: 3481, LineUser: 3173, LineUserDump: 2072},
	{Name: "7.0", VmknicNetStack: true, VmwareBusybox: true, MaxHW: 19, Full: "7.0.3", Build: "21930508", Label: "VMware ESXi 7.0 Update 3", Update: 3, Patch: 95,
		Log: LogISO, Init: InitWatchdog, WorldBase: 2097000,
		LineNetPortDisabled: 2156, LineNetPortEnabled: 1914, LineHeapMax: 3213, LineHeapAlign: 3649, LineUser: 3212, LineUserDump: 2096},
	{Name: "8.0", VmknicNetStack: true, VmwareBusybox: true, MaxHW: 21, Full: "8.0.3", Build: "24022510", Label: "VMware ESXi 8.0 Update 3", Update: 3, Patch: 35,
		Log: LogISO8x, Init: InitShort, WorldBase: 2097000,
		LineNetPortDisabled: 2389, LineNetPortEnabled: 2127, LineHeapMax: 3305, LineHeapAlign: 3743, LineUser: 3479, LineUserDump: 2180},
	{Name: "9.0", VmknicNetStack: true, VmwareBusybox: true, MaxHW: 22, Full: "9.0.0", Build: "24755229", Label: "VMware ESXi 9.0 GA", Maintenance: true,
		Log: LogISO8x, Init: InitShort, WorldBase: 131000,
		LineNetPortDisabled: 2389, LineNetPortEnabled: 2127, LineHeapMax: 3305, LineHeapAlign: 3743, LineUser: 3479, LineUserDump: 2180},
}

// VersionNames lists the versions LookupVersion knows, oldest first.
func VersionNames() []string {
	var n []string
	for _, v := range versions {
		n = append(n, v.Name)
	}
	return n
}

// LookupVersion finds a version by "5.5", "5.5.0" or "ESXi 5.5".
func LookupVersion(name string) (Version, error) {
	name = strings.TrimPrefix(strings.TrimSpace(name), "ESXi ")
	for _, v := range versions {
		if v.Name == name || v.Full == name {
			return v, nil
		}
	}
	known := VersionNames()
	sort.Strings(known)
	return Version{}, fmt.Errorf("%w: unknown ESXi version %q (known: %s)", ErrScenario, name, strings.Join(known, ", "))
}

func isKnownVersion(name string) bool {
	return slices.ContainsFunc(versions, func(v Version) bool { return v.Name == name || v.Full == name })
}
