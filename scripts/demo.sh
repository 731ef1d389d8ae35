#!/usr/bin/env bash
# make demo: heapguard against the simulated seed incident (esxsim).
# 1. lay out a simulated ESXi 5.5 host with the incident: three DSVA
#    appliances flapping their ports, each flap leaking netGPHeap;
# 2. let 106 simulated minutes pass and show `heapguard report` on it;
# 3. let heapguard guard it, first with --dry-run (the plan is printed,
#    nothing changes), then live; the simulated host moves on while
#    heapguard waits between polls (HEAPGUARD_TEST_CLOCK=step), so every
#    run of the demo tells the same story, however busy the machine;
# 4. show the VMs before and after, and the journal.
set -euo pipefail
cd "$(dirname "$0")/.."
HEAPGUARD=${HEAPGUARD:-bin/heapguard}
ESXSIM=${ESXSIM:-bin/esxsim}
demo=$(mktemp -d "${TMPDIR:-/tmp}/heapguard-demo.XXXXXX")
root=$demo/esx
state=$demo/state
export HEAPGUARD_TEST_CLOCK=step

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "A simulated ESXi host with the seed incident (${root})"
"$ESXSIM" init --root "$root" --scenario seed-incident
"$ESXSIM" advance --root "$root" --by 106m
"$ESXSIM" status --root "$root"

step "heapguard report --root $root   (read-only: what is going on?)"
"$HEAPGUARD" report --root "$root" || true

step "heapguard run --dry-run for 5 simulated minutes"
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

step "heapguard's journal ($state/journal.jsonl), one line per decision and action"
cut -c1-220 "$state/journal.jsonl"

step "Poke at it yourself"
cat <<EOT
  simulated host:  $root
  try:             PATH=$root/bin:\$PATH vim-cmd vmsvc/getallvms
                   $HEAPGUARD report --root $root
                   $HEAPGUARD doctor --root $root --state-dir $state
  logs:            $demo/heapguard-run.log
EOT
