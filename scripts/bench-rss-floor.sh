#!/usr/bin/env bash
# bench-rss-floor.sh: where the daemon's resident size comes from. Each
# program below polls once a second (the agent's on a simulated host at
# 10x, so a 10 s interval) and its VmRSS is read after RSS_WAIT seconds
# (20 by default), with the size of its binary, all built as bin/heapguard
# is (ESXi-safe runtime, static, stripped):
#   plain      a poll's least work in Go: start a command, write a JSON
#              snapshot (tools/rssfloor/plain)
#   zapcore    the same, logging a line per poll through zapcore alone
#   zap        the same through a zap.Logger, as heapguard logs: package
#              zap imports net/http, whose initialisation links crypto/tls
#   agent      `heapguard run` alone, without the other commands
#   heapguard  bin/heapguard run
# On Linux a file-backed page counts as resident once mapped, and a read
# fault maps its neighbours already in the page cache too (fault-around),
# so the file-backed part follows the size of the binary more than the
# code a poll runs.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
HEAPGUARD=${HEAPGUARD:-bin/heapguard}
ESXSIM=${ESXSIM:-bin/esxsim}
OVERLAY=${OVERLAY:-build/_overlay/overlay.json}
WAIT=${RSS_WAIT:-20}
[ -f "$OVERLAY" ] || { echo "bench-rss-floor: no $OVERLAY (make build writes it)" >&2; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

for p in plain zapcore zap agent; do
	CGO_ENABLED=0 "$GO" build -overlay "$OVERLAY" -trimpath -tags nethttpomithttp2 -ldflags '-s -w' \
		-o "$work/$p" "./tools/rssfloor/$p"
done
"$ESXSIM" init --root "$work/host" --scenario healthy >/dev/null
"$ESXSIM" run --root "$work/host" --speed 10 >/dev/null 2>&1 &
pids+=($!)
sleep 0.5

# measure NAME BINARY ARGS...: runs it for WAIT seconds and prints a row.
measure() {
	local name=$1 bin=$2
	shift 2
	# TMPDIR: the programs are killed, so their own folders stay under $work.
	HEAPGUARD_TEST_CLOCK=sim TMPDIR=$work "$bin" "$@" >/dev/null 2>"$work/$name.log" &
	local pid=$!
	pids+=("$pid")
	sleep "$WAIT"
	local status
	status=$(cat "/proc/$pid/status" 2>/dev/null) || status=""
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	# A program that exited (a zombie too) has no VmRSS line.
	grep -q '^VmRSS' <<<"$status" ||
		{ echo "bench-rss-floor: $name stopped:" >&2; tail -5 "$work/$name.log" >&2; exit 1; }
	awk -v name="$name" -v size="$(stat -c %s "$bin")" '
		/^VmRSS/ {r = $2} /^RssAnon/ {a = $2} /^RssFile/ {f = $2}
		END {printf "%-10s binary %5.2f MB  rss %5.2f MB (anonymous %.2f MB, file-backed %.2f MB)\n",
			name, size / 1048576, r / 1024, a / 1024, f / 1024}' <<<"$status"
}

echo "== resident size after ${WAIT} s of polls (target of the daemon: <= 6 MB)"
measure plain "$work/plain"
measure zapcore "$work/zapcore"
measure zap "$work/zap"
measure agent "$work/agent" "$work/host" "$work/agent-state"
measure heapguard "$HEAPGUARD" run --root "$work/host" --state-dir "$work/hg-state" --interval 10s
