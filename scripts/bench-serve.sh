#!/usr/bin/env bash
# bench-serve.sh: how fast `heapguard serve --inetd` answers GET /metrics,
# one process per request as inetd runs it (the dry runs' metrics: the
# checks here are dry), on a simulated host with 500
# flapping ports (250 VMs, 2 NICs each) and 40 heaps, after two checks.
# Prints the 50th, 99th percentile and worst of SERVE_REQUESTS requests.
# Target: 99th percentile <= 50 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
export HEAPGUARD_TEST_CLOCK=sim
HEAPGUARD=${HEAPGUARD:-bin/heapguard}
ESXSIM=${ESXSIM:-bin/esxsim}
N=${SERVE_REQUESTS:-1000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The scenario: the seed incident's host with 250 VMs whose two NICs all
# flap (no leak), and 40 heaps.
{
	printf '{"base": "seed-incident", "name": "bench-serve", "description": "500 flapping ports, 40 heaps",\n "vms": [\n'
	for ((v = 1; v <= 250; v++)); do
		sep=$([[ $v -lt 250 ]] && echo , || true)
		printf '  {"id": %d, "name": "vm-%03d", "vmx": "vm-%03d/vm-%03d.vmx", "guest_os": "rhel6_64Guest", "hw_version": 8, "nics": [' "$v" "$v" "$v" "$v"
		printf '{"index": 0, "network": "VM Network", "virtual_dev": "vmxnet3", "address_type": "vpx", "mac": "00:50:56:90:%02x:%02x", "port": "0x%x", "switch": "vSwitch0", "uplink": "vmnic0"}, ' $((v / 256)) $((v % 256)) $((0x5000000 + 2 * v))
		printf '{"index": 1, "network": "VM Network", "virtual_dev": "vmxnet3", "address_type": "vpx", "mac": "00:50:56:91:%02x:%02x", "port": "0x%x", "switch": "vSwitch0", "uplink": "vmnic0"}]}%s\n' $((v / 256)) $((v % 256)) $((0x5000001 + 2 * v)) "$sep"
	done
	printf ' ],\n "heaps": [\n'
	printf '  {"name": "netGPHeap", "address": "0x410001000000", "max": 67109968, "current": 25167928, "initial": 2097152, "allocated": 21765168, "releasable": 19568, "overhead": 2448, "ranges": 10, "max_ranges": 200}'
	for ((h = 1; h < 40; h++)); do
		printf ',\n  {"name": "heap%02d", "address": "0x4100%02x000000", "max": 100663296, "current": 2097152, "initial": 2097152, "allocated": %d, "releasable": 4096, "overhead": 1008, "ranges": 1, "max_ranges": 200}' "$h" $((h + 16)) $((1000000 + h * 10000))
	done
	printf '\n ],\n "flaps": [\n'
	for ((v = 1; v <= 250; v++)); do
		for n in 0 1; do
			sep=$([[ $v -lt 250 || $n -lt 1 ]] && echo , || true)
			printf '  {"vm": "vm-%03d", "nic": %d, "period": "30s", "jitter": "1s", "heap": "netGPHeap", "leak_bytes": 0}%s\n' "$v" "$n" "$sep"
		done
	done
	printf ' ]\n}\n'
} >"$work/scenario.json"

"$ESXSIM" init --root "$work/host" --scenario "$work/scenario.json" >/dev/null
"$ESXSIM" advance --root "$work/host" --by 20m >/dev/null
for _ in 1 2; do
	"$HEAPGUARD" check --dry-run --root "$work/host" --state-dir "$work/state" >/dev/null 2>&1 || true
	"$ESXSIM" advance --root "$work/host" --by 1m >/dev/null
done

printf 'GET /metrics HTTP/1.1\r\nHost: esx01\r\n\r\n' >"$work/req"
"$HEAPGUARD" serve --inetd --dry-run --root "$work/host" --state-dir "$work/state" <"$work/req" >"$work/answer"
head -n1 "$work/answer" | tr -d '\r'
echo "answer: $(wc -c <"$work/answer") bytes, $(grep -c '^heapguard_' "$work/answer" || true) samples," \
	"$(grep -c '^heapguard_port_flapping{' "$work/answer" || true) ports, $(grep -c '^heapguard_heap_free_ratio{' "$work/answer" || true) heaps"
: >"$work/times"
for ((i = 0; i < N; i++)); do
	t0=$EPOCHREALTIME
	"$HEAPGUARD" serve --inetd --dry-run --root "$work/host" --state-dir "$work/state" <"$work/req" >/dev/null
	t1=$EPOCHREALTIME
	echo "$t0 $t1" >>"$work/times"
done
awk '{print ($2 - $1) * 1000}' "$work/times" | sort -n | awk -v n="$N" '
	{ v[NR] = $1 }
	END {
		p50 = v[int(n * 0.50)]; p99 = v[int(n * 0.99)]
		printf "serve --inetd GET /metrics, %d requests: p50 %.1f ms, p99 %.1f ms, worst %.1f ms (target p99 <= 50: %s)\n",
			n, p50, p99, v[n], (p99 <= 50 ? "met" : "MISSED")
	}'
