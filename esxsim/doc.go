// Package esxsim is a simulated VMware ESXi host for tests and the demo, in
// the spirit of govmomi's vcsim: it lays out an ESXi root folder (logs, .vmx
// files, init scripts, crontab) and answers as vsish, vim-cmd, net-stats, esxcfg-vmknic,
// esxcli, vmware and the vpxa/hostd init scripts from one state file, while
// a Scenario (VMs, flapping ports, heap leaks, crashes, faults) moves the
// simulated clock forward.
//
// It must never be imported by production code: only tests, cmd/esxsim and
// the demo use it.
//
// # Layout of a simulated root
//
//	var/lib/esxsim/state.json   the simulated truth (State), written atomically
//	var/lib/esxsim/lock         flock(2) lock taken by every reader and writer
//	var/lib/esxsim/clock        host.SimClockAnchor for the program under test
//	var/log/esxsim-actions.log  one JSON Action per mutating command
//	var/log/vmkernel.log        (5.1+; 8.x also vmkwarning.log) or var/log/messages (4.x/5.0)
//	vmfs/volumes/<uuid>/<VM>/<vm>.vmx, vmfs/volumes/datastore1 -> <uuid>
//	bin/{vsish,vim-cmd,net-stats,esxcfg-vmknic,esxcli,vmware}, etc/init.d/{vpxa,hostd}
//	(4.x: etc/opt/init.d/vmware-vpxa), sbin/auto-backup.sh: all the one multi-call binary
//	etc/rc.local.d/local.sh (5.1+) or etc/rc.local (4.x/5.0), var/spool/cron/crontabs/root,
//	etc/inetd.conf: stock, as a boot gives them (Boot gives them back)
//	bootbank/state/...          what auto-backup.sh saved (ESXi: /bootbank/state.tgz)
//
// # Services
//
// InstallBusybox adds a static busybox (its applets as hard links under
// bin) and makes bin/busybox, and usr/lib/vmware/busybox/bin/busybox where
// the version has it, the multi-call binary: as `busybox crond` and
// `busybox inetd` it starts a real, harmless daemon that writes
// var/run/crond.pid or inetd.pid, records in the action log what it loaded
// (the crontab, inetd.conf's service lines), a reload on SIGHUP (inetd)
// and its end on SIGTERM, and exits on its own after ServiceLifetime;
// `/bin/busybox crond` fails from 7.0 Update 2 on. Every other applet is
// the real busybox. deploytest.StartESXi runs all this chrooted behind sshd.
//
// # vm-support bundles
//
// VMSupport (`esxsim vm-support --root R --out FILE.tgz`) writes a bundle
// of the host laid out like a real one: top folder esx-HOST-DATE--HH.MM-PID,
// logs under var/run/log with var/log links (6.5 and later) or under
// var/log, commands/vmware_-vl.txt, the .vmx files, and files over 1 MB in
// .FRAG-NNNNN pieces. Only what heapguard reads is in it.
//
// # The multi-call binary
//
// Main dispatches on filepath.Base(args[0]). As a tool it finds its root
// from its own path (<root>/bin/vim-cmd, <root>/etc/init.d/vpxa, …), or from
// $ESXSIM_ROOT. A test binary can stand in for it:
//
//	func TestMain(m *testing.M) {
//		if esxsim.IsMultiCall() {
//			os.Exit(esxsim.Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
//		}
//		os.Exit(m.Run())
//	}
//
// and a test then calls h := esxsim.New(t, esxsim.Incident());
// h.InstallBinary(os.Args[0]).
//
// # Fidelity
//
// Every output follows a real sample in /work/shared/samples where one
// exists (see testdata/SOURCES.md and the golden tests); outputs without a
// sample say so in a comment starting "unverified:".
//
// # Time
//
// Simulated time only moves in Advance (Host.Advance, `esxsim advance`),
// while `esxsim run` runs, or in a clock step (Host.StepClock, `esxsim
// step-clock`: everything scheduled moves with the clock, as after an NTP
// step); a command run at any other moment sees the time stored in the
// state file, so nothing drifts. Effects caused by time (a
// guest shutdown completing, flaps, leaks, crashes, log rotation) happen
// there; effects of commands (power operations, agent restarts) happen at
// once, under the lock, and are logged as Actions.
//
// # Hostile hosts
//
// Tests set up what a scenario cannot say through Host methods that take
// the root's lock and are not logged as Actions: Mutate, EditVMX and
// RenderVMX (a .vmx that disagrees with the host, or agrees again),
// Unregister, AddFlap, StopFlapping and StopPortFlapping, Allocate (one
// jump of a heap), StepClock, AppendLog (hand-made log lines) and
// AddFault. Scenarios themselves allow VMs that share a display name,
// absent NICs (ethernetN.present = "FALSE") and flapping host ports; see
// scenarios/README.md.
package esxsim
