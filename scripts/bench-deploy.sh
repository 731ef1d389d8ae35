#!/usr/bin/env bash
# bench-deploy.sh: how long `heapguard deploy` takes to put the binary on
# one host and on 20 at once (--parallel 8, the default, and --parallel 20).
# The hosts are two real OpenSSH sshds listening on 10 loopback ports each
# (one sshd listens on 16 at most), each port standing for a host with its
# own known_hosts entry and its own destination folder, so that every host
# gets a full copy (sent, read back, renamed over an old file) and none
# finds the file another put there. Prints the figures and whether the
# target is met; a miss does not fail the run.
#
# Per-host folders: a session's commands run in $work/hosts/PORT (sshd's
# ForceCommand changes there by the port in $SSH_CONNECTION, then runs the
# command deploy sent), and --dest is /proc/self/cwd/heapguard, which each
# remote process resolves in its own working folder. A bench-only device:
# deploy itself sees one absolute --dest, as on a real fleet.
#
# Target (issue 16): 20 hosts in parallel in <= 3 x the time of one. On
# loopback the admin side and all 20 "hosts" share this machine's cores, so
# the figure is a worst case: on a real fleet each host does its own half of
# the SSH work.
#
# Environment:
#   HEAPGUARD   binary to time and to send (default bin/heapguard, make build)
#   BENCH_RUNS  rounds; the best of each is kept (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
HEAPGUARD=${HEAPGUARD:-bin/heapguard}
runs=${BENCH_RUNS:-3}
hosts=20
sshd=$(command -v sshd || echo /usr/sbin/sshd)
if [[ ! -x $sshd ]]; then
	echo "bench-deploy: SKIP (sshd not installed: apt-get install openssh-server)"
	[[ ${CI:-} == true ]] && exit 1
	exit 0
fi
work=$(mktemp -d)
sshd_pids=()
cleanup() {
	local pid
	for pid in "${sshd_pids[@]}"; do
		kill -TERM -- "-$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
# The sshds have their own sessions: Ctrl-C does not reach them, the trap does.
trap 'exit 130' INT TERM

ssh-keygen -q -t ecdsa -b 256 -N '' -f "$work/host_ecdsa"
ssh-keygen -q -t ed25519 -N '' -f "$work/id_user"
cp "$work/id_user.pub" "$work/authorized_keys"
user=$(id -un)

per_sshd=10
ports=()
# start_sshd BASE N: an sshd on ports BASE..BASE+N-1, in its own process
# group (setsid), so that the stop reaches its per-connection children.
start_sshd() {
	local base=$1 n=$2 p cfg="$work/sshd_config.$1" log="$work/sshd.$1.log"
	{
		echo "HostKey $work/host_ecdsa"
		for ((p = base; p < base + n; p++)); do
			echo "ListenAddress 127.0.0.1:$p"
		done
		cat <<CONF
PidFile $work/sshd.$base.pid
AuthorizedKeysFile $work/authorized_keys
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxStartups 100
SetEnv SHLVL=1
ForceCommand set -- \$SSH_CONNECTION; cd "$work/hosts/\$4" && eval "\$SSH_ORIGINAL_COMMAND"
CONF
	} >"$cfg"
	setsid "$sshd" -D -e -f "$cfg" 2>"$log" &
	local pid=$!
	for ((i = 0; i < 100; i++)); do
		if [[ $(grep -c 'Server listening on 127.0.0.1' "$log" || true) -ge $n ]]; then
			sshd_pids+=("$pid")
			for ((p = base; p < base + n; p++)); do ports+=("$p"); done
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -TERM -- "-$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	return 1
}
for ((g = 0; g < hosts / per_sshd; g++)); do
	started=
	for _ in 1 2 3 4 5; do
		if start_sshd $((20000 + RANDOM % 40000)) "$per_sshd"; then
			started=1
			break
		fi
	done
	if [[ -z $started ]]; then
		echo "bench-deploy: sshd did not start:" >&2
		cat "$work"/sshd.*.log >&2
		exit 1
	fi
done

pub=$(cut -d' ' -f1,2 "$work/host_ecdsa.pub")
: >"$work/known_hosts"
for p in "${ports[@]}"; do
	echo "[127.0.0.1]:$p $pub" >>"$work/known_hosts"
	mkdir -p "$work/hosts/$p/heapguard"
done
printf '%s\n' "${ports[@]:0:1}" | sed 's/^/127.0.0.1:/' >"$work/hosts-1"
printf '%s\n' "${ports[@]}" | sed 's/^/127.0.0.1:/' >"$work/hosts-20"

# deploy_once FILE PARALLEL: seconds for one run that upgrades a small
# old file on every host. (An upgrade, not a first install: deploy runs
# mkdir -p before a first install, and coreutils' mkdir -p walks the path
# one folder at a time, which /proc/self/cwd does not survive.)
deploy_once() {
	local f
	for f in "$work"/hosts/*/heapguard; do echo old >"$f/heapguard"; done
	local timing
	TIMEFORMAT='%R %U %S'
	if ! timing=$({ time SSH_AUTH_SOCK= "$HEAPGUARD" deploy --mode none --binary "$HEAPGUARD" -i "$work/id_user" --known-hosts "$work/known_hosts" \
		--user "$user" --dest /proc/self/cwd/heapguard --parallel "$2" --hosts "$1" >"$work/out" 2>&1; } 2>&1); then
		echo "bench-deploy: deploy failed:" >&2
		head -n 5 "$work/out" >&2
		return 1
	fi
	local n
	# The lines as hosts finish, up to the table.
	n=$(sed '/^$/q' "$work/out" | grep -c '  upgraded  ' || true)
	if [[ $n -ne $(wc -l <"$1") ]]; then
		echo "bench-deploy: $n hosts upgraded, want $(wc -l <"$1"):" >&2
		head -n 5 "$work/out" >&2
		return 1
	fi
	# Seconds: wall clock, and deploy's own CPU (user + system).
	set -- $timing
	echo "$1 $(awk -v u="$2" -v s="$3" 'BEGIN { print u + s }')"
}
best() { # FILE PARALLEL: the run of $runs with the best wall clock
	local b= s
	for ((r = 0; r < runs; r++)); do
		s=$(deploy_once "$1" "$2") || return 1
		if [[ -z $b ]] || awk -v s="${s% *}" -v b="${b% *}" 'BEGIN { exit !(s < b) }'; then b=$s; fi
	done
	echo "$b"
}

size=$(stat -c %s "$HEAPGUARD")
one=$(best "$work/hosts-1" 1) || exit 1
p8=$(best "$work/hosts-20" 8) || exit 1
p20=$(best "$work/hosts-20" 20) || exit 1
# Each host's folder got the binary whole.
want=$(sha256sum <"$HEAPGUARD")
for f in "$work"/hosts/*/heapguard/heapguard; do
	if [[ $(sha256sum <"$f") != "$want" ]]; then
		echo "bench-deploy: $f differs from $HEAPGUARD" >&2
		exit 1
	fi
done
read -r one one_cpu <<<"$one"
read -r p8 p8_cpu <<<"$p8"
read -r p20 p20_cpu <<<"$p20"
printf 'deploy (%s bytes, best of %d, %s cores): 1 host %.2fs; 20 hosts --parallel 8 %.2fs (%.1f x), --parallel 20 %.2fs (%.1f x)\n' \
	"$size" "$runs" "$(nproc)" "$one" "$p8" "$(awk -v a="$p8" -v b="$one" 'BEGIN { print a / b }')" "$p20" "$(awk -v a="$p20" -v b="$one" 'BEGIN { print a / b }')"
printf "deploy's own CPU (the admin side; the rest is the 20 sshds): 1 host %.2fs, 20 hosts %.2fs and %.2fs\n" "$one_cpu" "$p8_cpu" "$p20_cpu"
for pair in "8 $p8" "20 $p20"; do
	set -- $pair
	if awk -v n="$2" -v one="$one" 'BEGIN { exit !(n <= 3 * one) }'; then verdict=met; else verdict="NOT met"; fi
	printf 'target 20 hosts (--parallel %s) <= 3 x one host: %s\n' "$1" "$verdict"
done
