#!/usr/bin/env bash
# vulncheck.sh: govulncheck over the module, failing on a vulnerability in
# code heapguard calls (govulncheck's exit status 3). Ones only in packages
# or modules it imports but never reaches are printed, not failed on.
#
# Both govulncheck and its database come through the Go module proxy, so
# this runs where vuln.go.dev cannot be reached (CI here reaches only
# Debian's packages and Go modules): golang.org/x/vulndb, the database's
# source module, carries every entry as OSV JSON in data/osv, and
# govulncheck reads such a folder of <ID>.json files with -db file://
# (x/vuln internal/client: newLocalClient falls back to a flat list of
# OSV files when index/modules.json is absent).
#
# Environment:
#   GOVULNCHECK  the govulncheck module query (default golang.org/x/vuln/cmd/govulncheck@v1.9.0)
#   VULNDB       the database module query (default golang.org/x/vulndb@latest: the
#                newest entries; pin a version to repeat a run exactly)
#   CI           true: a database or tool that cannot be fetched fails the run;
#                elsewhere it is a SKIP, so an offline machine can still run make test
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
GOVULNCHECK=${GOVULNCHECK:-golang.org/x/vuln/cmd/govulncheck@v1.9.0}
VULNDB=${VULNDB:-golang.org/x/vulndb@latest}

skip() {
	echo "vulncheck: SKIP ($1)"
	if [ "${CI:-}" = true ]; then
		echo "vulncheck: FAIL: CI must run it" >&2
		exit 1
	fi
	exit 0
}

start=$(date +%s)
# go mod download prints the module's folder in its JSON; it changes
# neither go.mod nor go.sum (the database is not a dependency).
if ! info=$($GO mod download -json "$VULNDB" 2>&1); then
	skip "cannot fetch $VULNDB: $(printf '%s' "$info" | tr '\n' ' ')"
fi
dir=$(printf '%s\n' "$info" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
version=$(printf '%s\n' "$info" | sed -n 's/^[[:space:]]*"Version": "\(.*\)",\{0,1\}$/\1/p')
if [ -z "$dir" ] || [ ! -d "$dir/data/osv" ]; then
	skip "$VULNDB has no data/osv folder: $(printf '%s' "$info" | tr '\n' ' ')"
fi
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
if ! out=$(GOBIN=$bin $GO install "$GOVULNCHECK" 2>&1); then
	skip "cannot fetch or build $GOVULNCHECK: $(printf '%s' "$out" | tr '\n' ' ')"
fi
entries=$(find "$dir/data/osv" -name 'GO-*.json' | wc -l)
echo "vulncheck: $($GO env GOVERSION), database golang.org/x/vulndb $version ($entries entries), $GOVULNCHECK"
# The build tags of make build: the code scanned is the code shipped.
set +e
"$bin/govulncheck" -db "file://$dir/data/osv" -tags nethttpomithttp2 ./... | tee "$bin/out"
rc=${PIPESTATUS[0]}
set -e
echo "vulncheck: exit $rc in $(($(date +%s) - start)) s"
case $rc in
0) ;;
3) echo "vulncheck: FAIL: heapguard calls vulnerable code (above; a standard library finding is fixed by the Go release named in 'Fixed in': raise GOVERSION in the Makefile)" >&2 ;;
*) echo "vulncheck: FAIL: govulncheck could not run" >&2 ;;
esac
exit $rc
