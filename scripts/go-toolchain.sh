#!/usr/bin/env bash
# go-toolchain.sh VERSION DIR: puts Go VERSION (go1.27.3) in DIR, the Go
# that make builds, tests and vulnchecks heapguard with.
#
# Why not the machine's Go: Go 1.26.8 has eight standard-library
# vulnerabilities in code heapguard calls (net/http and mime/multipart in
# serve, crypto/x509 and crypto/tls in syslog over TLS); the 1.26 patch
# releases that fix them cannot be fetched here, go1.27.3 can, as a module
# of the Go module proxy (GOTOOLCHAIN=VERSION). Why a copy: that module
# lands in the module cache, and `go build -overlay` (the ESXi-safe
# runtime, tools/rtpatch) refuses to replace files beneath GOMODCACHE.
# go.mod keeps `go 1.26.0`: the source still builds with the machine's Go.
set -euo pipefail
version=$1 dir=$2
if [ -x "$dir/bin/go" ] && [ "$(head -n 1 "$dir/VERSION" 2>/dev/null)" = "$version" ]; then
	exit 0
fi
# The proxy's copy, fetched once per machine (about 76 MB).
if ! src=$(GOTOOLCHAIN=$version go env GOROOT 2>&1); then
	echo "go-toolchain: cannot fetch $version through the Go module proxy: $src" >&2
	exit 1
fi
if [ "$(head -n 1 "$src/VERSION" 2>/dev/null)" != "$version" ]; then
	echo "go-toolchain: $src is not $version (its VERSION: $(head -n 1 "$src/VERSION" 2>/dev/null))" >&2
	exit 1
fi
rm -rf "$dir.tmp"
mkdir -p "$(dirname "$dir")"
cp -R "$src" "$dir.tmp"
chmod -R u+w "$dir.tmp" # the module cache's files are read-only
rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "go-toolchain: $version in $dir (copied from $src)"
