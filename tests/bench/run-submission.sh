#!/usr/bin/env bash
# run-submission.sh - submission throughput and idle-session memory of a
# whole gateway: sluiced with its smtpd/authd/queued/deliverd children and
# the embedded Redis (AOF, appendfsync always: durability as shipped),
# driven over loopback by tests/bench/smtpload.
#
#	SLUICE_BUILD=$PWD/build bash tests/bench/run-submission.sh
#
# (make bench does that after building build/bench/smtpload).  The runs,
# with P1 the STARTTLS listener and P2 the implicit TLS one, both with
# auth = "required":
#
#   (a) smtpload --port P1 --tls starttls --auth bench:PW --pipelining \
#	    --connections 50 --messages 2000 --per-connection 1 --size 4096
#   (b) smtpload --port P1 --tls starttls --auth bench:PW --pipelining \
#	    --connections 50 --messages 5000 --per-connection 100 --size 4096
#   (c) smtpload --port P1 --tls starttls --auth bench:PW --pipelining \
#	    --connections 50 --messages 500 --per-connection 10 --size 102400
#   (d) smtpload --port P2 --tls implicit --connections 2000 --idle 120
#	    (handshake and EHLO, then idle; no AUTH, no mail)
#
# (d) runs first, on a fresh smtpd: after the load runs its heap holds
# freed memory that idle sessions would reuse, and the figure would
# look smaller than what a session costs.  Memory is the sum of VmRSS
# of sluiced's smtpd children, found through /proc/*/stat, before and
# after the sessions are up.  For each load run the CPU time every
# process used (utime + stime from /proc/PID/stat) is shown per message,
# which says where the time goes.
#
# It prints numbers only and never fails on speed; it fails only when
# the gateway cannot be started.  Every process it starts is stopped by
# PID (the gateway through its master, which stops its children and
# the embedded Redis), on any exit.  SMTPLOAD_IDLE=N changes (d)'s N.
set -u

BUILD=${SLUICE_BUILD:?set SLUICE_BUILD to the build directory}
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LOAD=$BUILD/bench/smtpload
IDLE_N=${SMTPLOAD_IDLE:-2000}

T=$(mktemp -d /tmp/sluice-bench.XXXXXX) || exit 1
chmod 755 "$T"		# the unprivileged children must traverse it
MASTER=
LOADPID=
LOG=$T/sluiced.log

# kids PID [COMM] - direct children of PID, optionally only those
# running COMM, from /proc/*/stat (comm may hold spaces: cut at the
# last parenthesis)
kids() {
	local f s comm rest
	local -a a
	for f in /proc/[0-9]*/stat; do
		# a process may end between the glob and the read
		{ read -r s <"$f"; } 2>/dev/null || continue
		comm=${s#*(}
		comm=${comm%)*}
		rest=${s##*) }
		read -r -a a <<<"$rest"
		[ "${a[1]}" = "$1" ] || continue
		[ -n "${2:-}" ] && [ "$comm" != "$2" ] && continue
		echo "${s%% *}"
	done
}

descendants() {
	local c
	for c in $(kids "$1"); do
		echo "$c"
		descendants "$c"
	done
}

cleanup() {
	local left i
	if [ -n "$LOADPID" ] && kill -0 "$LOADPID" 2>/dev/null; then
		kill -TERM "$LOADPID" 2>/dev/null
		wait "$LOADPID" 2>/dev/null
	fi
	if [ -n "$MASTER" ] && kill -0 "$MASTER" 2>/dev/null; then
		left=$(descendants "$MASTER")
		kill -TERM "$MASTER" 2>/dev/null
		for ((i = 0; i < 100; i++)); do
			kill -0 "$MASTER" 2>/dev/null || break
			sleep 0.1
		done
		# whatever did not go with the master: by PID, never by name
		kill -KILL "$MASTER" $left 2>/dev/null
		wait "$MASTER" 2>/dev/null
	fi
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

die() {
	echo "run-submission: $*" >&2
	if [ -f "$LOG" ]; then
		echo "--- last lines of the gateway's log" >&2
		tail -n 30 "$LOG" >&2
	fi
	exit 1
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

[ -x "$LOAD" ] || die "$LOAD missing (make bench builds it)"
if [ "$(id -u)" = 0 ]; then
	getent passwd sluice-smtpd >/dev/null || sh "$TOP/scripts/mkusers"
fi

# (d) holds thousands of sessions; the client and each smtpd (which
# inherits it through sluiced) need a descriptor for each
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
nofile=$(ulimit -n)
if [ "$nofile" != unlimited ] && [ $((nofile - 100)) -lt "$IDLE_N" ]; then
	IDLE_N=$((nofile - 100))
fi

P1=$(free_port)
P2=$(free_port)
P3=$(free_port)
while [ "$P2" = "$P1" ]; do P2=$(free_port); done
while [ "$P3" = "$P1" ] || [ "$P3" = "$P2" ]; do P3=$(free_port); done
CONF=$T/sluice.conf
cat >"$CONF" <<CONF
# written by tests/bench/run-submission.sh
hostname = "bench.test";
state_dir = "$T/state";
pid_file = "$T/sluiced.pid";
listen = (
  { address = "127.0.0.1"; port = $P1; tls = "starttls"; auth = "required"; },
  { address = "127.0.0.1"; port = $P2; tls = "implicit"; auth = "required"; }
);
redis = { embedded = true; };
limits = {
  connections = 20000;
  connections_per_ip = 20000;
  user_messages_per_hour = 10000000;
  user_recipients_per_hour = 100000000;
};
# Nothing leaves the machine: every route goes to a loopback port
# nobody listens on, DNS too, so delivery attempts fail at once and
# wait for their retry; queued messages stay in the (private) Redis.
delivery = {
  workers = 1;
  routes = ( { domains = [ "*" ]; smarthost = "127.0.0.1:$P3"; tls = "none"; } );
};
dns = { servers = [ "127.0.0.1:$P3" ]; };
CONF

# -f without -d: debug lines per command would be measured too
"$BUILD/sluiced" -f -c "$CONF" -x "$BUILD" >"$LOG" 2>&1 &
MASTER=$!
for ((i = 0; i < 300; i++)); do
	grep -q "sluice ready" "$LOG" 2>/dev/null && break
	kill -0 "$MASTER" 2>/dev/null || die "sluiced exited at start"
	sleep 0.1
done
grep -q "sluice ready" "$LOG" || die "sluiced not ready after 30 s"

PW=bench-$RANDOM$RANDOM$RANDOM
echo "$PW" | "$BUILD/sluicectl" -c "$CONF" user add bench \
    --password-stdin --sender '*' >/dev/null ||
    die "sluicectl user add failed"

# smtpd_rss - the summed VmRSS of sluiced's smtpd children, in kB
smtpd_rss() {
	local p sum=0 v
	for p in $(kids "$MASTER" smtpd); do
		v=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$p/status" 2>/dev/null)
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}

# cpu_snapshot - "comm ticks" for every process of the gateway
cpu_snapshot() {
	local p s comm rest
	local -a a
	for p in $(descendants "$MASTER") "$MASTER"; do
		{ read -r s <"/proc/$p/stat"; } 2>/dev/null || continue
		comm=${s#*(}
		comm=${comm%)*}
		rest=${s##*) }
		read -r -a a <<<"$rest"
		# fields 14 and 15 (utime, stime) are a[11] and a[12]
		echo "${comm// /_} $((a[11] + a[12]))"
	done
}

# cpu_report BEFORE AFTER MESSAGES - ms of CPU per message, per
# program, and the rate the cores could carry at that cost if the
# client ran elsewhere (it shares them here: see its "client cpu")
cpu_report() {
	awk -v hz="$(getconf CLK_TCK)" -v n="$3" -v ncpu="$(nproc)" '
	    FNR == NR { b[$1] += $2; next }
	    { a[$1] += $2 }
	    END {
		line = "  server cpu per message (ms):"
		for (c in a) {
			d = a[c] - b[c]
			tot += d
			if (d > 0)
				line = line sprintf(" %s %.3f", c, d * 1000 / hz / n)
		}
		printf "%s; total %.3f\n", line, tot * 1000 / hz / n
		if (tot > 0)
			printf "  server-only ceiling on %d cores at that cost: %.0f msg/s\n", ncpu, ncpu * hz * n / tot
	    }' "$1" "$2"
}

declare -A RES

# load NAME ARGS... - one smtpload run against the STARTTLS listener
load() {
	local name=$1 out=$T/load.$1 msgs ok rate p50 p99 ccpu
	shift
	echo "== ($name) smtpload --tls starttls --pipelining $*"
	cpu_snapshot >"$T/cpu.before"
	"$LOAD" --host 127.0.0.1 --port "$P1" --tls starttls \
	    --auth "bench:$PW" --pipelining --timeout 60 "$@" >"$out" &
	LOADPID=$!
	wait "$LOADPID"
	LOADPID=
	cpu_snapshot >"$T/cpu.after"
	sed 's/^/  /' "$out"
	ok=$(awk -F': ' '$1 == "messages ok" { print $2 }' "$out")
	rate=$(awk -F': ' '$1 == "messages/s" { print $2 }' "$out")
	p50=$(awk -F': ' '$1 == "latency p50" { print $2 }' "$out")
	p99=$(awk -F': ' '$1 == "latency p99" { print $2 }' "$out")
	if [ -n "$ok" ] && [ "$ok" -gt 0 ]; then
		cpu_report "$T/cpu.before" "$T/cpu.after" "$ok"
	fi
	RES[$name]="${rate:-?} msg/s (ok ${ok:-0}; end of data to 250: p50 ${p50:-?}, p99 ${p99:-?})"
}

# One AUTH first, so that (a) measures the steady state (authd's
# credential cache warm) rather than fifty argon2id hashes at once.
"$LOAD" --host 127.0.0.1 --port "$P1" --tls starttls --auth "bench:$PW" \
    --connections 1 --messages 1 --timeout 60 >"$T/load.warm" ||
    { cat "$T/load.warm"; die "the warm-up message failed"; }

# (d) first, on a fresh smtpd (see the top of the file)
echo "== (d) smtpload --port P2 --tls implicit --connections $IDLE_N --idle 120"
sleep 1
rss0=$(smtpd_rss)
"$LOAD" --host 127.0.0.1 --port "$P2" --tls implicit \
    --connections "$IDLE_N" --idle 120 --timeout 60 >"$T/load.d" &
LOADPID=$!
up=
for ((i = 0; i < 600; i++)); do
	up=$(awk '$1 == "idle:" { print $2 }' "$T/load.d")
	[ -n "$up" ] && break
	kill -0 "$LOADPID" 2>/dev/null || break
	sleep 0.1
done
if [ -n "$up" ] && [ "$up" -gt 0 ]; then
	sleep 0.5
	rss1=$(smtpd_rss)
	per=$(( (rss1 - rss0) * 1024 / up ))
	RES[d]="$per bytes per idle TLS session ($up sessions; smtpd RSS $rss0 kB -> $rss1 kB)"
else
	RES[d]="no idle session came up"
fi
kill -TERM "$LOADPID" 2>/dev/null
wait "$LOADPID"
LOADPID=
sed 's/^/  /' "$T/load.d"
# let the server see every close before the load runs
sleep 1

load a --connections 50 --messages 2000 --per-connection 1 --size 4096
load b --connections 50 --messages 5000 --per-connection 100 --size 4096
load c --connections 50 --messages 500 --per-connection 10 --size 102400

echo "== submission summary (STARTTLS + AUTH PLAIN, pipelining, 50 connections)"
echo "(a) 4 KiB, 1 message per connection:    ${RES[a]}"
echo "(b) 4 KiB, 100 messages per connection: ${RES[b]}"
echo "(c) 100 KiB, 10 messages per connection: ${RES[c]}"
echo "(d) ${RES[d]}"
exit 0
