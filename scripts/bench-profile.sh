#!/usr/bin/env bash
# bench-profile.sh: where the scan spends its time: BenchmarkScan (the bench
# log's shape) under the CPU profiler, the top functions by flat time inside ScanFile (the log's generation is left out).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -run '^$' -bench '^BenchmarkScan$' -benchtime 60x -cpuprofile "$tmp/scan.prof" \
	-o "$tmp/collector.test" ./collector/ | grep -E '^Benchmark|ns/op' || true
echo "scan profile (flat, top 15):"
go tool pprof -top -nodecount 15 -focus 'heapguard/collector\.' -ignore 'loggen\.' "$tmp/collector.test" "$tmp/scan.prof" 2>/dev/null | sed -n '/flat%/,$p'
