#!/usr/bin/env bash
# bench-report.sh: how fast `heapguard report --json` reads a big vmkernel log,
# against `wc -l` and the incident's shell pipeline, and its gzip -6 copy
# against `zcat`; at the bench log's own event density and at 10 % (the
# incident's density at its peak). Prints figures and whether each target is
# met; a miss does not fail the run.
#
# Targets (issue 14): on a ~1 GB, 8 M-line 5.x log with a warm page cache,
# on a quiet machine: heapguard <= 0.35 x pipeline, <= 1.3 x wc -l, the .gz
# copy <= 0.5 x zcat, peak RSS <= 32 MB.
#
# Environment:
#   BENCH_LOG    reuse this log for the first density instead of generating one
#   BENCH_LINES  lines to generate (default 8000000)
#   BENCH_RATIOS event ratios to generate, "default" for loggen's own density
#                (default "default 0.1")
#   BENCH_RUNS   rounds, each running every command once; the best of each
#                is kept (default 5)
#   HEAPGUARD    binary to time (default bin/heapguard)
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

hg=${HEAPGUARD:-bin/heapguard}
[[ -x $hg ]] || { echo "bench-report: $hg is not built (make build)" >&2; exit 1; }

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
min() { awk -v a="$1" -v b="$2" 'BEGIN{ print (b == "" || a+0 < b+0) ? a : b }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "inf" }'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN{ print (v <= t) ? "met" : "MISSED" }'; }

# bench LOG: times the commands on LOG and on its gzip -6 copy. The
# commands take turns, round after round, so that a change of load on the
# machine hits them alike; each keeps its fastest run, and the rounds' own
# heapguard / wc -l ratios show the spread.
bench() {
	local log=$1 gz=$tmp/bench.log.gz
	local size nlines events w p h kb z hz wc_s="" pipe_s="" hg_s="" hg_kb="" zcat_s="" hgz_s="" hgz_kb=""
	local round_ratios=()
	size=$(stat -c %s "$log")
	nlines=$(wc -l <"$log")
	events=$(LC_ALL=C grep -c ' port 0x' "$log" || true)
	gzip -6 -c "$log" >"$gz"
	echo "log: $log, $size bytes, $nlines lines, $(ratio "$events" "$nlines") port lines; .gz $(stat -c %s "$gz") bytes; $(nproc) cores"
	cat "$log" "$gz" >/dev/null
	cat "$log" "$gz" >/dev/null
	for ((i = 0; i < runs; i++)); do
		read -r w _ < <(once wc -l "$log")
		read -r p _ < <(once env LC_ALL=C bash -c \
			'grep "enabled port" "$1" | awk "{print \$9}" | sort | uniq -c' _ "$log")
		read -r h kb < <(once "$hg" report --json "$log")
		read -r z _ < <(once zcat "$gz")
		read -r hz zkb < <(once "$hg" report --json "$gz")
		wc_s=$(min "$w" "$wc_s") pipe_s=$(min "$p" "$pipe_s") zcat_s=$(min "$z" "$zcat_s")
		if [[ $(min "$h" "$hg_s") == "$h" ]]; then hg_s=$h hg_kb=$kb; fi
		if [[ $(min "$hz" "$hgz_s") == "$hz" ]]; then hgz_s=$hz hgz_kb=$zkb; fi
		round_ratios+=("$(ratio "$h" "$w")")
	done
	local r_pipe r_wc r_gz rss_mb rssz_mb
	r_pipe=$(ratio "$hg_s" "$pipe_s") r_wc=$(ratio "$hg_s" "$wc_s") r_gz=$(ratio "$hgz_s" "$zcat_s")
	rss_mb=$(awk -v k="$hg_kb" 'BEGIN{printf "%.1f", k/1024}')
	rssz_mb=$(awk -v k="$hgz_kb" 'BEGIN{printf "%.1f", k/1024}')
	printf '%-44s %8s s\n' "wc -l" "$wc_s" "pipeline (LC_ALL=C, awk \$9)" "$pipe_s" "heapguard report --json" "$hg_s" \
		"zcat (.gz)" "$zcat_s" "heapguard report --json (.gz)" "$hgz_s"
	printf 'heapguard / pipeline = %s  (target <= 0.35: %s)\n' "$r_pipe" "$(verdict "$r_pipe" 0.35)"
	printf 'heapguard / wc -l    = %s  (target <= 1.3:  %s)\n' "$r_wc" "$(verdict "$r_wc" 1.3)"
	echo "  each round's heapguard / wc -l: ${round_ratios[*]}"
	printf 'heapguard .gz / zcat = %s  (target <= 0.5:  %s)\n' "$r_gz" "$(verdict "$r_gz" 0.5)"
	printf 'heapguard peak RSS   = %s MB, .gz %s MB (target <= 32: %s, %s)\n' "$rss_mb" "$rssz_mb" \
		"$(verdict "$rss_mb" 32)" "$(verdict "$rssz_mb" 32)"
	echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the figures)"
}

first=1
for r in ${BENCH_RATIOS:-default 0.1}; do
	echo
	if [[ $r == default ]]; then
		echo "== event density: loggen's default"
		args=()
	else
		echo "== event density: $r"
		args=(-event-ratio "$r")
	fi
	log=$tmp/vmkernel.log
	if [[ $first == 1 && -n ${BENCH_LOG:-} ]]; then
		log=$BENCH_LOG
		[[ -f $log ]] || { echo "bench-report: no log file $log" >&2; exit 1; }
	else
		echo "generating $lines lines into $log ..."
		go run ./tools/loggen bench -lines "$lines" "${args[@]}" >"$log"
	fi
	first=0
	bench "$log"
done
