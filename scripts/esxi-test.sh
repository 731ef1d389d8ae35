#!/usr/bin/env bash
# esxi-test.sh: run heapguard under an emulated ESXi kernel. strace makes
# every call in esxi/syscalls.profile answer ENOSYS, then:
#   (a) a STOCK build (no runtime overlay) must die with the netpoll
#       signature, else the emulation is not faithful and the test fails;
#   (b) the SHIPPED build completes `report --json` on a simulated host,
#       and on its vm-support bundle (inflated in goroutines);
#   (b2) `serve --inetd` answers GET /status on standard output;
#   (c) `check --dry-run` against a simulated host (timers, children, tail);
#   (d) `run --dry-run` following the log of a running simulated host;
#   (e) `doctor`.
# Each step passes only on its expected exit status and content (the
# journal for check and run), and fails when any of its processes printed
# the runtime's ESXi signature, whatever the exit status.
# After each run it lists which calls actually answered ENOSYS, and how
# often, so a new need shows up in the output.
#
# The simulated host's tools (esxsim's multi-call binary answering as
# vim-cmd, vsish, esxcli, ...) run as children of heapguard, so strace -f
# injects the faults into them too. On ESXi those tools are native and
# never die of a Go runtime, so esxsim is built with the same ESXi-safe
# runtime as heapguard (ESXSIM must carry the marker, checked below); a
# stock-built tool would die at random, depending on whether its runtime's
# sysmon reached the netpoller before it exited.
#
# Environment:
#   HEAPGUARD        shipped binary (default: built here with the overlay)
#   HEAPGUARD_STOCK  same source built without the overlay (default: built here)
#   ESXSIM           simulator binary, built with the ESXi-safe runtime (default: built here)
#   ESXI_TARGET      heapguard | probe | auto (default auto: heapguard when
#                    ./cmd/heapguard builds, else tools/esxiprobe stands in)
#   ESXI_PROFILE     profile file (default esxi/syscalls.profile)
#   ESXI_EXTRA_ENOSYS comma-separated calls to inject on top of the profile
#   ESXI_TIMEOUT     seconds per run (default 120)
#   CI=true          a missing strace is a failure instead of a SKIP
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
PROFILE=${ESXI_PROFILE:-esxi/syscalls.profile}
TIMEOUT=${ESXI_TIMEOUT:-120}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/esxi-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
FAILS=0

say() { printf '%s\n' "$*"; }
fail() { say "FAIL $*"; FAILS=$((FAILS + 1)); }

if ! command -v strace >/dev/null 2>&1; then
	if [ "${CI:-}" = "true" ]; then
		say "FAIL esxi-test: strace not found (required under CI=true)"
		exit 1
	fi
	say "SKIP esxi-test: strace not found (install it, or set CI=true to make this a failure)"
	exit 0
fi

# profile_calls prints the profile's calls joined by commas, plus extras.
profile_calls() {
	local calls
	calls=$(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$PROFILE" | paste -sd, -)
	if [ -n "${ESXI_EXTRA_ENOSYS:-}" ]; then
		calls="$calls,$ESXI_EXTRA_ENOSYS"
	fi
	printf '%s' "$calls"
}
CALLS=$(profile_calls)
if [ -z "$CALLS" ]; then
	say "FAIL esxi-test: no calls in $PROFILE"
	exit 1
fi
# "?" makes strace ignore a name it does not know (an older strace).
QCALLS=$(printf '%s' "$CALLS" | sed -e 's/^/?/' -e 's/,/,?/g')

# Calls rtpatch falls back for that the profile does not inject (see the
# profile); pipe2 only in runs that use no os.Pipe (os/exec needs it).
FALLBACK_CALLS=epoll_create1,eventfd2,pipe2

# emulate LOG CMD...: run CMD with the profile's calls (and EXTRA_CALLS)
# answering ENOSYS. strace records every call that failed (-Z) into LOG; the
# command's output goes to stdout/stderr. Returns the command's exit status.
EXTRA_CALLS=
emulate() {
	local log=$1 q=$QCALLS
	shift
	if [ -n "$EXTRA_CALLS" ]; then
		q="$q,?$(printf '%s' "$EXTRA_CALLS" | sed -e 's/,/,?/g')"
	fi
	timeout --kill-after=10 "$TIMEOUT" \
		strace -f -qq -Z -o "$log" -e "inject=$q:error=ENOSYS" "$@"
}

# enosys_summary LOG: which calls answered ENOSYS, injected or real, and
# how many times.
enosys_summary() {
	local log=$1 seen
	seen=$(grep -E '= -1 ENOSYS' "$log" 2>/dev/null |
		sed -E 's/^[0-9]+ +//; s/^<\.\.\. ([a-z0-9_]+) resumed>.*/\1/; s/^([a-z0-9_]+)\(.*/\1/' |
		sort | uniq -c | awk '{printf "%s=%s ", $2, $1}')
	say "     ENOSYS answered: ${seen:-none}"
}

# ---- building ------------------------------------------------------------

GOFLAGS_BUILD=(-trimpath -tags nethttpomithttp2 -ldflags "-s -w") # as make build

build_overlay() {
	OVERLAY=$(go run ./tools/rtpatch -out "$WORK/overlay")
}

main_builds() { # PKG: does the package have a main that compiles?
	[ -n "$(go list -f '{{if eq .Name "main"}}main{{end}}' "$1" 2>/dev/null)" ] &&
		CGO_ENABLED=0 go build -o /dev/null "$1" >/dev/null 2>&1
}

PROBE="$WORK/esxiprobe"
PROBE_STOCK="$WORK/esxiprobe-stock"
build_probe() {
	CGO_ENABLED=0 go build -overlay "$OVERLAY" "${GOFLAGS_BUILD[@]}" -o "$PROBE" ./tools/esxiprobe
	CGO_ENABLED=0 go build "${GOFLAGS_BUILD[@]}" -o "$PROBE_STOCK" ./tools/esxiprobe
}

select_target() {
	TARGET=${ESXI_TARGET:-auto}
	if [ "$TARGET" = auto ]; then
		if [ -n "${HEAPGUARD:-}" ] || main_builds ./cmd/heapguard; then
			TARGET=heapguard
		else
			TARGET=probe
		fi
	fi
	if [ "$TARGET" = heapguard ]; then
		if [ -z "${HEAPGUARD:-}" ]; then
			HEAPGUARD="$WORK/heapguard"
			CGO_ENABLED=0 go build -overlay "$OVERLAY" "${GOFLAGS_BUILD[@]}" -o "$HEAPGUARD" ./cmd/heapguard
		fi
		if [ -z "${HEAPGUARD_STOCK:-}" ]; then
			HEAPGUARD_STOCK="$WORK/heapguard-stock"
			CGO_ENABLED=0 go build "${GOFLAGS_BUILD[@]}" -o "$HEAPGUARD_STOCK" ./cmd/heapguard
		fi
	fi
	say "esxi-test: target=$TARGET profile=$PROFILE"
	say "esxi-test: injecting ENOSYS for $CALLS"
}

# has_subcommand BIN SUB: SKIP a step whose heapguard command is not
# written yet. A command exists unless `BIN SUB -h` says it is unknown.
has_subcommand() {
	local out
	out=$("$1" "$2" -h 2>&1 || true)
	! printf '%s' "$out" | grep -qiE 'unknown (sub)?command|no such command|unknown: '"$2"
}

# stand_in BIN SUB: true when BIN has SUB; otherwise prints a SKIP line and
# returns false, and the step runs tools/esxiprobe in its place, so the
# runtime is still proven.
stand_in() {
	if has_subcommand "$1" "$2"; then
		return 0
	fi
	say "SKIP heapguard $2: no such command yet; tools/esxiprobe stands in"
	return 1
}

# sim_host ROOT: a simulated ESXi root with esxsim's default scenario (the
# seed incident).
sim_host() {
	local root=$1
	if ! "$ESXSIM" init --root "$root" >"$root.esxsim.out" 2>&1; then
		cat "$root.esxsim.out"
		fail "esxsim init --root $root"
		return 1
	fi
}

# The runtime's ESXi signature: a Go program that used a call ESXi lacks.
# Any process of a step printing it (heapguard, or a simulated tool whose
# error heapguard passed on) fails the step, whatever its exit status.
SIGNATURE='runtime: epollwait on fd [0-9]+ failed with 38|fatal error: runtime|^panic: '

# run_step NAME WANT CHECK CMD...: run CMD under the emulation. WANT is the
# exit status the step must end with, or "netpoll" (it must die with the
# ESXi signature). CHECK is a function called with the output file (stdout
# and stderr) that prints why the content is wrong and returns 1, or "-".
run_step() {
	local name=$1 want=$2 check=$3 rc=0 why=
	shift 3
	local out="$WORK/$name.out" log="$WORK/$name.strace"
	say "---- $name: $*"
	emulate "$log" "$@" >"$out" 2>&1 || rc=$?
	if [ "$want" = netpoll ]; then
		if [ "$rc" -ne 0 ] && grep -qE 'runtime: epollwait on fd [0-9]+ failed with 38' "$out" &&
			grep -q 'fatal error: runtime: netpoll failed' "$out"; then
			say "PASS $name: died as on ESXi: $(grep -m1 'epollwait on fd' "$out")"
		else
			sed 's/^/     | /' "$out" | tail -n 30
			fail "$name: exit status $rc without the netpoll signature: the emulation is not faithful"
		fi
		enosys_summary "$log"
		return
	fi
	if [ "$rc" -ne "$want" ]; then
		why="exit status $rc, want $want"
	elif grep -qE "$SIGNATURE" "$out" "${STEP_FILES[@]}" 2>/dev/null; then
		why="a process died of the runtime: $(grep -hm1 -E "$SIGNATURE" "$out" "${STEP_FILES[@]}" 2>/dev/null | head -n1 | cut -c1-200)"
	elif [ "$check" != - ]; then
		why=$("$check" "$out") || true
	fi
	if [ -z "$why" ]; then
		say "PASS $name (exit $rc): $(head -n1 "$out" | cut -c1-160)"
	else
		sed 's/^/     | /' "$out" | tail -n 30
		fail "$name: $why"
	fi
	STEP_FILES=()
	enosys_summary "$log"
}
# STEP_FILES: more files of the running step to search for the signature
# (the journal, which keeps the commands' output).
STEP_FILES=()

# count PATTERN FILE: lines of FILE matching the extended regexp.
count() { grep -cE "$1" "$2" 2>/dev/null || true; }

# ---- the steps ----------------------------------------------------------

# step_stock: the emulation must be faithful. The stock probe always runs
# (its timers need the netpoller) and must die with the ESXi signature. The
# stock heapguard runs too; a command that never starts the netpoller (a
# one-shot scan with no timer and no child) survives even on ESXi, so its
# survival is only reported, unless ESXI_STOCK_STRICT=1.
step_stock() {
	run_step stock-probe netpoll - "$PROBE_STOCK" -stages timers
	if [ "$TARGET" = probe ]; then
		return
	fi
	# check starts timers and children, so it reaches the netpoller.
	local root="$WORK/host-stock" cmd
	if has_subcommand "$HEAPGUARD_STOCK" check; then
		# Its own state folder: the default lies beside the binary.
		cmd=("$HEAPGUARD_STOCK" check --dry-run --root "$root" --state-dir "$WORK/state-stock")
	elif stand_in "$HEAPGUARD_STOCK" report; then
		cmd=("$HEAPGUARD_STOCK" report --json --root "$root")
	else
		return
	fi
	sim_host "$root"
	if [ "${ESXI_STOCK_STRICT:-0}" = 1 ]; then
		run_step stock-heapguard netpoll - "${cmd[@]}"
		return
	fi
	local rc=0 log="$WORK/stock-heapguard.strace" out="$WORK/stock-heapguard.out"
	say "---- stock-heapguard: ${cmd[*]}"
	emulate "$log" "${cmd[@]}" >"$out" 2>&1 || rc=$?
	if grep -q 'fatal error: runtime: netpoll failed' "$out"; then
		say "INFO stock-heapguard: died as on ESXi (exit $rc): $(grep -m1 'epollwait on fd' "$out")"
	else
		say "INFO stock-heapguard: survived (exit $rc): this run never started the netpoller (ESXI_STOCK_STRICT=1 makes that a failure)"
	fi
	enosys_summary "$log"
}

# The seed incident 100 simulated minutes in: three DSVA appliances flap
# (ports 0x3000003, 0x3000005, 0x3000007) and netGPHeap is at 14 % free;
# at 110 minutes it is below 10 %.

# report must find the three flapping ports, each mapped to its VM, and
# sample netGPHeap live with vsish.
check_report() {
	local n
	grep -q '"verdict": "WARNING"' "$1" || { echo 'verdict is not WARNING'; return 1; }
	grep -q 'netGPHeap 1[0-9][.][0-9]% free of max (below 20%, sampled live)' "$1" ||
		{ echo 'no live netGPHeap sample below 20 % among the reasons'; return 1; }
	n=$(count '"vm": "DSVA0[134]"' "$1")
	[ "$n" -eq 3 ] || { echo "$n flapping ports mapped to a DSVA VM, want 3"; return 1; }
}

step_report() {
	local root="$WORK/host-report"
	if [ "$TARGET" = probe ] || ! stand_in "$HEAPGUARD" report; then
		run_step report 0 - "$PROBE" -stages timers,goroutines,alloc,files,rand -dir "$WORK"
		return
	fi
	sim_host "$root"
	"$ESXSIM" advance --root "$root" --by 100m >/dev/null
	# Exit 1: WARNING, ports flap and vsish shows netGPHeap at 14 % free.
	run_step report 1 check_report "$HEAPGUARD" report --json --root "$root"
}

# report on a vm-support bundle streams the tar through two inflating
# goroutines (the archive's and each rotated .gz copy's): they must run on
# the ESXi runtime too, and find the same three ports.
check_bundle() {
	local n
	grep -q '"verdict": "WARNING"' "$1" || { echo 'verdict is not WARNING'; return 1; }
	grep -q 'b[.]tgz:var/log/vmkernel[.]0[.]gz"' "$1" || { echo 'the rotated .gz copy inside the bundle was not read'; return 1; }
	n=$(count '"vm": "DSVA0[134]"' "$1")
	[ "$n" -eq 3 ] || { echo "$n flapping ports mapped to a DSVA VM, want 3"; return 1; }
}

step_bundle() {
	local root="$WORK/host-bundle"
	if [ "$TARGET" = probe ] || ! stand_in "$HEAPGUARD" report; then
		return
	fi
	sim_host "$root"
	"$ESXSIM" advance --root "$root" --by 100m >/dev/null
	"$ESXSIM" vm-support --root "$root" --out "$WORK/b.tgz" >/dev/null
	run_step bundle 1 check_bundle "$HEAPGUARD" report --json "$WORK/b.tgz"
}

# serve --inetd answers one request from standard input: /status samples
# the heaps with vsish under its time budget (timers, children).
check_serve() {
	head -n1 "$1" | grep -q '^HTTP/1.1 200 OK' || { echo 'not a 200 answer'; return 1; }
	grep -q '"nagios": "HEAPGUARD WARNING: netGPHeap 1[0-9][.]' "$1" ||
		{ echo 'the status has no WARNING line from a live netGPHeap sample'; return 1; }
}

step_serve() {
	local root="$WORK/host-serve"
	if [ "$TARGET" = probe ] || ! stand_in "$HEAPGUARD" serve; then
		return
	fi
	sim_host "$root"
	"$ESXSIM" advance --root "$root" --by 100m >/dev/null
	printf 'GET /status HTTP/1.1\r\nHost: esx01\r\n\r\n' >"$WORK/serve.req"
	run_step serve 0 check_serve "$HEAPGUARD" serve --inetd --root "$root" --state-dir "$WORK/state-serve" <"$WORK/serve.req"
}

# check must reach a complete inventory (getallvms, net-stats and the .vmx
# files) and plan the three power-offs: each needs the VM's vmid.
check_check() {
	local j="$WORK/state-check/journal.jsonl" n
	grep -q '^HEAPGUARD CRITICAL: .*powering off 3 VMs' "$1" ||
		{ echo "Nagios line is not CRITICAL, powering off 3 VMs"; return 1; }
	grep -q 'inventory incomplete' "$1" && { echo 'the inventory was incomplete'; return 1; }
	n=$(count '"action":"power_off","target":"DSVA0[134]","vmid":"[134]".*"result":"dry_run"' "$j")
	[ "$n" -eq 3 ] || { echo "$n power-offs journaled as dry_run with a vmid, want 3"; return 1; }
}

step_check() {
	local root="$WORK/host-check"
	if [ "$TARGET" = probe ] || ! stand_in "$HEAPGUARD" check; then
		run_step check 0 - "$PROBE" -stages timers,exec,signal,tail,goroutines,alloc -dir "$WORK"
		return
	fi
	sim_host "$root"
	"$ESXSIM" advance --root "$root" --by 110m >/dev/null
	# One pass: --hold-polls 1 lets it act on its first sample.
	STEP_FILES=("$WORK/state-check/journal.jsonl")
	run_step check 2 check_check env HEAPGUARD_TEST_CLOCK=sim "$HEAPGUARD" check --dry-run --hold-polls 1 --power-off-allow 'DSVA*' \
		--root "$root" --state-dir "$WORK/state-check"
}

# run must have followed the log (read lines written after it started),
# sampled the heaps, and planned the power-offs.
RUN_LINES_AT_START=0
check_run() {
	local j="$WORK/state-run/journal.jsonl" n lines
	n=$(count '"action":"power_off","target":"DSVA0[134]","vmid":"[134]".*"result":"dry_run"' "$j")
	[ "$n" -ge 3 ] || { echo "$n power-offs journaled as dry_run, want 3 or more"; return 1; }
	grep -q '"heap":{"name":"netGPHeap' "$j" || { echo 'no journal entry carries heap figures'; return 1; }
	lines=$(grep '"msg":"stopped"' "$1" | sed -nE 's/.*"lines":([0-9]+).*/\1/p' | tail -n1)
	[ -n "$lines" ] && [ "$lines" -gt "$RUN_LINES_AT_START" ] ||
		{ echo "read ${lines:-no} log lines, want more than the $RUN_LINES_AT_START there at its start"; return 1; }
}

# step_run: the daemon under emulation for 5 simulated minutes while
# esxsim runs the incident at 60x: the log follower, the interval timer
# and the heap sampling's child processes.
step_run() {
	if [ "$TARGET" = probe ] || ! stand_in "$HEAPGUARD" run; then
		say "SKIP run: needs heapguard run"
		return
	fi
	local root="$WORK/host-run"
	sim_host "$root"
	"$ESXSIM" advance --root "$root" --by 110m >/dev/null
	RUN_LINES_AT_START=$(wc -l <"$root/var/log/vmkernel.log")
	"$ESXSIM" run --root "$root" --speed 60 >"$WORK/esxsim-run.out" 2>&1 &
	local sim=$!
	sleep 0.5
	STEP_FILES=("$WORK/state-run/journal.jsonl")
	run_step run 0 check_run env HEAPGUARD_TEST_CLOCK=sim "$HEAPGUARD" run --dry-run --hold-polls 1 --power-off-allow 'DSVA*' \
		--interval 10s --for 5m --root "$root" --state-dir "$WORK/state-run"
	kill "$sim" 2>/dev/null
	wait "$sim" 2>/dev/null || true
}

# doctor must pass every line a real host passes.
check_doctor() {
	local bad
	bad=$(grep -E '^(WARN|FAIL) ' "$1" | head -n3)
	[ -z "$bad" ] || { echo "not every line is OK: $bad"; return 1; }
	grep -q '^doctor: OK' "$1" || { echo 'no "doctor: OK" verdict'; return 1; }
}

step_doctor() {
	if [ "$TARGET" = probe ] || ! stand_in "$HEAPGUARD" doctor; then
		run_step doctor 0 - "$PROBE" -dir "$WORK"
		return
	fi
	local root="$WORK/host-doctor"
	sim_host "$root"
	# A state folder on the simulated datastore, as on a real host (where
	# the default is heapguard-state/<host name> beside the binary).
	run_step doctor 0 check_doctor "$HEAPGUARD" doctor --root "$root" --state-dir "$root/vmfs/volumes/datastore1/heapguard-state"
}

# step_fallbacks: the runtime's own fallbacks beyond the profile
# (epoll_create, a pipe for netpollBreak, pipe(2) when pipe2 is missing),
# on the probe's stages that need no os.Pipe.
step_fallbacks() {
	EXTRA_CALLS=$FALLBACK_CALLS
	run_step fallbacks 0 - "$PROBE" -stages timers,goroutines,signal,tail,alloc,net -dir "$WORK"
	EXTRA_CALLS=
}

# check_marker: the shipped binary carries the patched runtime (its function
# names stay in the pclntab even when stripped); the stock one does not.
check_marker() {
	local bin=$1 want=$2 n
	# The function name between NULs, as the pclntab holds it (what
	# doctor.PatchedRuntime looks for): the words in a message do not count.
	n=$(LC_ALL=C grep -c -aP '\x00runtime\.esxiEpollWait\x00' "$bin" || true)
	if [ "$want" = yes ] && [ "$n" -eq 0 ]; then
		fail "marker: $bin has no runtime.esxiEpollWait: built without the rtpatch overlay"
	elif [ "$want" = no ] && [ "$n" -ne 0 ]; then
		fail "marker: $bin (stock) carries runtime.esxiEpollWait"
	else
		say "PASS marker: $bin $([ "$want" = yes ] && echo has || echo lacks) the patched runtime"
	fi
}

main() {
	build_overlay
	select_target
	build_probe
	check_marker "$PROBE" yes
	check_marker "$PROBE_STOCK" no
	if [ "$TARGET" = heapguard ]; then
		check_marker "$HEAPGUARD" yes
		check_marker "$HEAPGUARD_STOCK" no
	fi
	if [ -z "${ESXSIM:-}" ]; then
		ESXSIM="$WORK/esxsim"
		CGO_ENABLED=0 go build -overlay "$OVERLAY" "${GOFLAGS_BUILD[@]}" -o "$ESXSIM" ./cmd/esxsim
	fi
	check_marker "$ESXSIM" yes
	step_stock
	step_report
	step_bundle
	step_serve
	step_check
	step_run
	step_doctor
	step_fallbacks
	if [ "$FAILS" -gt 0 ]; then
		say "esxi-test: $FAILS failed"
		exit 1
	fi
	say "esxi-test: all passed"
}

main "$@"
