#!/usr/bin/env bash
# bench-report.sh: how fast `heapguard report --json` reads a big vmkernel log,
# against `wc -l` and the incident's shell pipeline. Prints figures and
# whether each target is met; a miss does not fail the run.
#
# Targets (issue): on a ~1 GB, 8 M-line 5.x log with a warm page cache,
#   heapguard <= 0.45 x pipeline, heapguard <= 1.8 x wc -l, peak RSS <= 32 MB.
#
# Environment:
#   BENCH_LOG   reuse this log instead of generating one (8 M lines, seed 1)
#   BENCH_LINES lines to generate (default 8000000)
#   BENCH_RUNS  rounds, each running every command once; the best of each
#               is kept (default 5)
#   HEAPGUARD   binary to time (default bin/heapguard)
#
# The pipeline is the incident's, with the MAC field of the 5.x format:
#   grep 'enabled port' FILE | awk '{print $9}' | sort | uniq -c
# ($13 in the 4.x messages format: 4.x stamps have 4 more fields.) Every
# command of it runs with LC_ALL=C, so sort compares bytes, as fast as it can.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
runs=${BENCH_RUNS:-5}
lines=${BENCH_LINES:-8000000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

log=${BENCH_LOG:-}
if [[ -z $log ]]; then
	log=$tmp/vmkernel.log
	echo "generating $lines lines into $log ..."
	go run ./tools/loggen bench -lines "$lines" >"$log"
fi
[[ -f $log ]] || { echo "bench-report: no log file $log" >&2; exit 1; }

hg=${HEAPGUARD:-bin/heapguard}
[[ -x $hg ]] || { echo "bench-report: $hg is not built (make build)" >&2; exit 1; }
hg_cmd=("$hg" report --json "$log")
hg_name="$hg report --json"

size=$(stat -c %s "$log")
nlines=$(wc -l <"$log")
echo "log: $log, $size bytes, $nlines lines, $(nproc) cores"
echo "warming the page cache ..."
cat "$log" >/dev/null
cat "$log" >/dev/null

# once CMD...: runs CMD once, prints "seconds maxrss_kb", the time in ms
# resolution (bash's clock; /usr/bin/time's %e has 10 ms, too coarse here).
once() {
	local t0 t1 kb
	t0=$EPOCHREALTIME
	# report exits 1 or 2 when it finds flapping ports: not a failure here.
	/usr/bin/time -o "$tmp/t" -f '%M' "$@" >/dev/null || true
	t1=$EPOCHREALTIME
	# time prefixes "Command exited with non-zero status N" when it is not 0.
	kb=$(tail -n1 "$tmp/t")
	awk -v a="$t0" -v b="$t1" -v kb="$kb" 'BEGIN{printf "%.3f %s\n", b-a, kb}'
}

# The three commands take turns, round after round, so that a change of
# load on the machine hits them alike; each keeps its fastest run, and the
# rounds' own heapguard / wc -l ratios show the spread.
min() { awk -v a="$1" -v b="$2" 'BEGIN{ print (b == "" || a+0 < b+0) ? a : b }'; }
wc_s="" pipe_s="" hg_s="" hg_kb="" round_ratios=()
for ((i = 0; i < runs; i++)); do
	read -r w _ < <(once wc -l "$log")
	read -r p _ < <(once env LC_ALL=C bash -c \
		'grep "enabled port" "$1" | awk "{print \$9}" | sort | uniq -c' _ "$log")
	read -r h kb < <(once "${hg_cmd[@]}")
	wc_s=$(min "$w" "$wc_s") pipe_s=$(min "$p" "$pipe_s")
	if [[ $(min "$h" "$hg_s") == "$h" ]]; then hg_s=$h hg_kb=$kb; fi
	round_ratios+=("$(awk -v a="$h" -v b="$w" 'BEGIN{printf "%.2f", a/b}')")
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "inf" }'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN{ print (v <= t) ? "met" : "MISSED" }'; }
r_pipe=$(ratio "$hg_s" "$pipe_s")
r_wc=$(ratio "$hg_s" "$wc_s")
rss_mb=$(awk -v k="$hg_kb" 'BEGIN{printf "%.1f", k/1024}')

printf '%-44s %8s s\n' "wc -l" "$wc_s" "pipeline (LC_ALL=C, awk \$9)" "$pipe_s" "$hg_name" "$hg_s"
printf 'heapguard / pipeline = %s  (target <= 0.45: %s)\n' "$r_pipe" "$(verdict "$r_pipe" 0.45)"
printf 'heapguard / wc -l    = %s  (target <= 1.8:  %s)\n' "$r_wc" "$(verdict "$r_wc" 1.8)"
echo "  each round's heapguard / wc -l: ${round_ratios[*]}"
printf 'heapguard peak RSS   = %s MB (target <= 32: %s)\n' "$rss_mb" "$(verdict "$rss_mb" 32)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the figures)"
