#!/usr/bin/env bash
# bench-agent.sh: the agent's cost and reaction time, measured on the real
# binaries against a simulated host.
#
#  1. Steady state: `heapguard run --interval 10s` on a healthy host. The
#     simulation runs at AGENT_SPEED (10x by default) so the run is short.
#     Polls are counted from the metrics snapshot each poll writes
#     (<state-dir>/metrics.json, its "time"), and the resident size is
#     sampled after each one. After AGENT_WARM polls of warm-up (the first
#     full read of the log, the first allocations), over AGENT_POLLS polls:
#       steady RSS  median of the samples (anonymous and file-backed shown);
#       growth      median of the last quarter minus that of the first;
#       working set the pages touched over the polls (accessed bits cleared
#                   after warm-up, smaps' Referenced at the end), file-backed
#                   and anonymous;
#       CPU         the agent's own user+system time per poll, as a share
#                   of one core at a real 10 s interval.
#     Targets (issue 17): steady RSS <= 6 MB, growth < 1 MB, CPU <= 0.05 %.
#     The children (vsish, the init script: esxsim here) are not counted;
#     starting them is. At 10x the agent follows the simulator's clock
#     (HEAPGUARD_TEST_CLOCK=sim), which it re-reads from a file several
#     times a poll: a test-only cost, about a tenth of its CPU (perf,
#     2026-12). AGENT_SPEED=1
#     runs the agent on the system clock, as on a host, and also leaves
#     the work that goes by the wall clock between polls (the scavenger,
#     sysmon, the forced GC every 2 minutes) at its real pace: the targets
#     are judged on that run (11 minutes).
#  2. Reaction: the seed incident a little above the 10 % threshold, the
#     simulation at real speed, `heapguard run --interval 10s`; the delay
#     from the heap crossing 10 % free of max (sampled every 0.2 s with
#     vsish) to the first action in the journal. Measured with
#     --hold-polls 1 (the target: <= one interval + 1 s) and with the
#     default --hold-polls 3 (by design about 2 intervals more).
#     AGENT_REACT=0 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
# heapguard follows the simulator's published clock (a test-only setting),
# except in the steady state at real speed (below).
export HEAPGUARD_TEST_CLOCK=sim
HEAPGUARD=${HEAPGUARD:-bin/heapguard}
ESXSIM=${ESXSIM:-bin/esxsim}
POLLS=${AGENT_POLLS:-60}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# faults PID: minor and major page faults so far. A major fault reads a
# page from disk or swap, in steady state most likely part of the binary
# the page cache let go.
faults() { awk '{print $10, $12}' "/proc/$1/stat"; }
SPEED=${AGENT_SPEED:-10}
WARM=${AGENT_WARM:-5}

# poll_time STATE: the time of the last poll's metrics snapshot ("" before
# the first), read with builtins only so that sampling costs little.
poll_time() {
	local line=""
	[ -e "$1/metrics.json" ] && IFS= read -r -n 64 line <"$1/metrics.json" 2>/dev/null || true
	line=${line#*\"time\":\"}
	printf '%s' "${line%%\"*}"
}
# next_poll PID STATE LAST: waits (at most 60 s) for a poll newer than LAST
# and prints its time; fails when the agent is gone.
next_poll() {
	local t deadline=$((SECONDS + 60))
	while [ $SECONDS -lt $deadline ]; do
		kill -0 "$1" 2>/dev/null || return 1
		t=$(poll_time "$2")
		if [ -n "$t" ] && [ "$t" != "$3" ]; then
			printf '%s' "$t"
			return 0
		fi
		sleep 0.05
	done
	return 1
}

echo "== steady state: healthy host, --interval 10s, $WARM polls of warm-up then $POLLS polls at ${SPEED}x ($([ "$SPEED" = 1 ] && echo "system clock, as on a host" || echo "the simulator's clock"))"
"$ESXSIM" init --root "$work/idle" --scenario healthy >/dev/null
"$ESXSIM" run --root "$work/idle" --speed "$SPEED" >/dev/null 2>&1 &
pids+=($!)
sleep 0.5
state=$work/idle-state
# At real speed the system clock keeps pace with the simulator's.
clock=sim
[ "$SPEED" = 1 ] && clock=
HEAPGUARD_TEST_CLOCK=$clock "$HEAPGUARD" run --root "$work/idle" --state-dir "$state" --interval 10s \
	--for "$(((POLLS + WARM) * 30 + 60))s" >/dev/null 2>"$work/idle.log" &
hg=$!
pids+=("$hg")
last=""
for _ in $(seq "$WARM"); do
	last=$(next_poll "$hg" "$state" "$last") || { echo "steady state: the agent stopped polling during warm-up" >&2; tail -5 "$work/idle.log" >&2; exit 1; }
done
t0=$(cpu_ticks "$hg")
f0=$(faults "$hg")
# The pages the agent touches from here on (the working set): the
# accessed bits are cleared now and read back at the end. VmRSS counts
# more: on a read fault Linux also maps the neighbouring pages of the
# executable already in the page cache (fault-around, 64 kB), so most of
# a 10 MB binary shows as resident though a poll runs a small part of it.
clear_refs=0
echo 1 >"/proc/$hg/clear_refs" 2>/dev/null && clear_refs=1
: >"$work/rss"
for _ in $(seq "$POLLS"); do
	last=$(next_poll "$hg" "$state" "$last") || { echo "steady state: the agent stopped polling" >&2; tail -5 "$work/idle.log" >&2; exit 1; }
	awk '/^VmRSS/ {r = $2} /^RssAnon/ {a = $2} /^RssFile/ {f = $2} END {print r, a, f}' "/proc/$hg/status" >>"$work/rss"
done
t1=$(cpu_ticks "$hg")
f1=$(faults "$hg")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$hg/status")
# working set: kB referenced in mappings of a file (inode not 0) and in
# anonymous ones.
wset=$(awk '/^[0-9a-f]+-[0-9a-f]+ / {file = ($5 != 0)} /^Referenced:/ {if (file) f += $2; else a += $2} END {print f + 0, a + 0}' "/proc/$hg/smaps")
kill "$hg" 2>/dev/null || true
# median: the median of the first column of stdin (kB).
median() { sort -n | awk '{v[NR] = $1} END {print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
q=$((POLLS / 4 > 0 ? POLLS / 4 : 1))
awk -v t0="$t0" -v t1="$t1" -v hz="$ticks" -v polls="$POLLS" -v hwm="$hwm" \
	-v steady="$(median <"$work/rss")" -v first="$(head -n "$q" "$work/rss" | median)" -v lastq="$(tail -n "$q" "$work/rss" | median)" \
	-v anon="$(awk '{print $2}' "$work/rss" | median)" -v file="$(awk '{print $3}' "$work/rss" | median)" '
	NR == 1 { min = max = $1 }
	{ if ($1 < min) min = $1; if ($1 > max) max = $1 }
	END {
		cpu = (t1 - t0) / hz
		per = cpu / polls
		pct = per / 10 * 100
		printf "cpu %.3f s over %d polls = %.2f ms per poll -> %.3f %% of a core at a real 10 s interval (target <= 0.05 %%: %s)\n",
			cpu, polls, per * 1000, pct, (pct <= 0.05 ? "met" : "NOT met")
		printf "rss steady %.2f MB (median over %d polls; anonymous %.2f MB, file-backed %.2f MB), range %.2f..%.2f MB, peak %.2f MB (target <= 6 MB: %s)\n",
			steady / 1024, NR, anon / 1024, file / 1024, min / 1024, max / 1024, hwm / 1024, (steady / 1024 <= 6 ? "met" : "NOT met")
		growth = (lastq - first) / 1024
		printf "rss growth %+.2f MB over %d polls (median of the last quarter minus the first; target < 1 MB: %s)\n",
			growth, NR, (growth < 1 ? "met" : "NOT met")
	}' "$work/rss"
read -r min0 maj0 <<<"$f0"
read -r min1 maj1 <<<"$f1"
awk -v min="$((min1 - min0))" -v maj="$((maj1 - maj0))" -v polls="$POLLS" 'BEGIN {
	printf "page faults %.1f minor and %.2f major per poll\n", min / polls, maj / polls }'
if [ "$clear_refs" = 1 ]; then
	read -r wfile wanon <<<"$wset"
	awk -v f="$wfile" -v a="$wanon" -v polls="$POLLS" 'BEGIN {
		printf "working set %.2f MB (pages touched over the %d polls: file-backed %.2f MB, anonymous %.2f MB; VmRSS above also counts pages mapped by fault-around)\n",
			(f + a) / 1024, polls, f / 1024, a / 1024 }'
fi

# react HOLD: prints the delay from crossing 10% to the first action.
react() {
	local hold=$1 root=$work/react$1 state=$work/react$1-state
	"$ESXSIM" init --root "$root" >/dev/null
	"$ESXSIM" advance --root "$root" --by 107m >/dev/null
	"$ESXSIM" run --root "$root" --speed 1 >/dev/null 2>&1 &
	local sim=$!
	pids+=("$sim")
	sleep 0.3
	"$HEAPGUARD" run --root "$root" --state-dir "$state" --interval 10s --hold-polls "$hold" \
		--power-off-allow 'DSVA*' --for 10m >/dev/null 2>"$work/react$hold.log" &
	local hg=$!
	pids+=("$hg")
	local heap crossed="" acted="" deadline=$((SECONDS + 240))
	heap=$(PATH="$root/bin:$PATH" vsish -e ls /system/heaps/ | grep '^netGPHeap' | tr -d /)
	while [ $SECONDS -lt $deadline ]; do
		if [ -z "$crossed" ]; then
			if PATH="$root/bin:$PATH" vsish -e cat "/system/heaps/$heap/stats" | awk -F: '
				/^maximum heap size/ {max=$2} /^maximum bytes available/ {avail=$2}
				END {exit !(max > 0 && avail / max * 100 < 10)}'; then
				crossed=$(date +%s.%N)
			fi
		elif grep -q '"result":"started"' "$state/journal.jsonl" 2>/dev/null; then
			acted=$(date +%s.%N)
			break
		fi
		sleep 0.2
	done
	kill "$hg" "$sim" 2>/dev/null || true
	if [ -z "$crossed" ] || [ -z "$acted" ]; then
		echo "hold-polls $hold: no action within 240 s (crossed: ${crossed:-no})"
		return
	fi
	awk -v c="$crossed" -v a="$acted" -v h="$hold" 'BEGIN {
		d = a - c
		if (h == 1) printf "hold-polls 1: first action %.1f s after the heap crossed 10%% free (target <= 11 s: %s)\n", d, (d <= 11 ? "met" : "MISSED")
		else printf "hold-polls %d (default): first action %.1f s after the crossing (%d polls must agree)\n", h, d, h
	}'
}

if [ "${AGENT_REACT:-1}" != 0 ]; then
	echo "== reaction: seed incident crossing 10% free of max, real time"
	react 1
	react 3
fi
