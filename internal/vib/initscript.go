package vib

// InitScript is /etc/init.d/heapguard. It starts nothing by itself: the
// administrator names the configuration file (on a datastore: /etc is
// rebuilt at boot), so a VIB installed by deploy changes nothing on the
// host until someone chooses what heapguard does there. busybox sh.
// HEAPGUARD_BIN and HEAPGUARD_PIDFILE exist for the tests.
const InitScript = `#!/bin/sh
# heapguard, installed by the heapguard VIB (CommunitySupported).
#
#   /etc/init.d/heapguard start CONFIG  run "heapguard run --config CONFIG" in the background
#   /etc/init.d/heapguard stop          SIGTERM: it finishes the action under way, then exits
#   /etc/init.d/heapguard status        exit 0 running, 3 not running
#
# Without CONFIG (as at boot) start does nothing. To start at boot, add to
# /etc/rc.local.d/local.sh:
#   /etc/init.d/heapguard start /vmfs/volumes/datastore1/heapguard/heapguard.conf
# heapguard's output goes nowhere: its journal is in its state folder, and
# "syslog" in CONFIG sends each entry to syslog too.

BIN=${HEAPGUARD_BIN:-/opt/heapguard/bin/heapguard}
PIDFILE=${HEAPGUARD_PIDFILE:-/var/run/heapguard.pid}

running() {
	[ -f "$PIDFILE" ] || return 1
	pid=$(cat "$PIDFILE" 2>/dev/null)
	case "$pid" in
	'' | *[!0-9]*) return 1 ;;
	esac
	kill -0 "$pid" 2>/dev/null
}

case "$1" in
start)
	if [ -z "$2" ]; then
		echo "heapguard: nothing started: name the configuration file (start /vmfs/volumes/DATASTORE/heapguard/heapguard.conf)"
		exit 0
	fi
	if [ ! -f "$2" ]; then
		echo "heapguard: not started: no configuration file $2" >&2
		exit 1
	fi
	if running; then
		echo "heapguard: already running (pid $pid)"
		exit 0
	fi
	"$BIN" run --config "$2" </dev/null >/dev/null 2>&1 &
	echo $! >"$PIDFILE"
	echo "heapguard: started (pid $!)"
	;;
stop)
	if running; then
		kill -TERM "$pid"
		echo "heapguard: stopping (pid $pid; it finishes the action under way)"
	else
		echo "heapguard: not running"
	fi
	rm -f "$PIDFILE"
	;;
status)
	if running; then
		echo "heapguard: running (pid $pid)"
		exit 0
	fi
	echo "heapguard: not running"
	exit 3
	;;
*)
	echo "usage: $0 start CONFIG | stop | status" >&2
	exit 1
	;;
esac
`
