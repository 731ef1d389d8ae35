#!/usr/bin/env bash
# make demo: heapguard against the simulated seed incident (esxsim).
# 1. lay out a simulated ESXi 5.5 host with the incident: three DSVA
#    appliances flapping their ports, each flap leaking netGPHeap;
# 2. let 106 simulated minutes pass and show `heapguard report` on it,
#    then on its vm-support bundle (`esxsim vm-support`);
# 3. let heapguard guard it, first with --dry-run (the plan is printed,
#    nothing changes), then live; the simulated host moves on while
#    heapguard waits between polls (HEAPGUARD_TEST_CLOCK=step), so every
#    run of the demo tells the same story, however busy the machine;
# 4. show the VMs before and after, and the journal.
# Its folders are removed when it ends, unless KEEP=1 (make demo KEEP=1)
# or it failed: then they are kept and it says where.
set -euo pipefail
cd "$(dirname "$0")/.."
HEAPGUARD=${HEAPGUARD:-bin/heapguard}
ESXSIM=${ESXSIM:-bin/esxsim}
KEEP=${KEEP:-}
demo=$(mktemp -d "${TMPDIR:-/tmp}/heapguard-demo.XXXXXX")
root=$demo/esx
state=$demo/state
export HEAPGUARD_TEST_CLOCK=step

interrupted=
finish() {
	local status=$?
	if [ "$KEEP" = 1 ]; then
		return
	fi
	if [ "$status" -ne 0 ] && [ -z "$interrupted" ]; then
		printf '\ndemo failed (exit %s): its folders are kept for a look: %s\n' "$status" "$demo" >&2
		return
	fi
	rm -rf "$demo"
}
trap finish EXIT
trap 'interrupted=1; exit 130' INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "A simulated ESXi host with the seed incident (${root})"
"$ESXSIM" init --root "$root" --scenario seed-incident
"$ESXSIM" advance --root "$root" --by 106m
"$ESXSIM" status --root "$root"

step "heapguard report --root $root   (read-only: what is going on?)"
"$HEAPGUARD" report --root "$root" || true

step "esxsim vm-support, then heapguard report on the bundle (as a support engineer gets it)"
"$ESXSIM" vm-support --root "$root" --out "$demo/esx01.tgz"
"$HEAPGUARD" report "$demo/esx01.tgz" >"$demo/bundle-report.txt" || true
sed -n '1,8p' "$demo/bundle-report.txt"
printf '  ...
'
tail -n 1 "$demo/bundle-report.txt"

step "heapguard run --dry-run for 5 simulated minutes (journal: $state/journal.jsonl)"
"$HEAPGUARD" run --root "$root" --state-dir "$state" --dry-run --power-off-allow 'DSVA*' \
	--for 5m 2>"$demo/heapguard-dry-run.log"
printf '\nesxsim action log after the dry run (empty: nothing was changed): %s lines\n' \
	"$(wc -l <"$root/var/log/esxsim-actions.log" 2>/dev/null || echo 0)"

step "heapguard run --power-off-allow 'DSVA*' for 20 simulated minutes (live)"
"$HEAPGUARD" run --root "$root" --state-dir "$state" --power-off-allow 'DSVA*' \
	--for 20m 2>"$demo/heapguard-run.log"

step "The host after: the DSVA appliances are off, every other VM untouched, vpxa running"
"$ESXSIM" status --root "$root"

step "What esxsim saw heapguard do (var/log/esxsim-actions.log)"
cat "$root/var/log/esxsim-actions.log"

step "heapguard journal --state-dir $state   (one line per decision and action; --json for the file's own lines)"
"$HEAPGUARD" journal --root "$root" --state-dir "$state" | cut -c1-200

if [ "$KEEP" != 1 ]; then
	printf '\n(%s is removed now; make demo KEEP=1 keeps it to poke at)\n' "$demo"
	exit 0
fi
step "Poke at it yourself (KEEP=1: kept; rm -rf $demo when done)"
cat <<EOT
  simulated host:  $root
  try:             PATH=$root/bin:\$PATH vim-cmd vmsvc/getallvms
                   $HEAPGUARD report --root $root
                   $HEAPGUARD doctor --root $root --state-dir $state
  logs:            $demo/heapguard-run.log
EOT
