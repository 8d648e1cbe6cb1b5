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
#   (d) smtpload --port P2 --tls implicit --connections 5000 --idle 120
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
# (d) needs a descriptor per session in smtpload and in smtpd (which
# inherits its limit through sluiced): RLIMIT_NOFILE is raised as far
# as the hard limit allows, and N lowered to fit under it; the
# gateway's limits.connections and connections_per_ip are 20000.
#
# It prints numbers only and never fails on speed; it fails only when
# the gateway cannot be started.  Every process it starts is stopped by
# PID (the gateway through its master, which stops its children and
# the embedded Redis), on any exit.  SMTPLOAD_IDLE=N changes (d)'s N.
# The helpers are in lib.sh.
set -u

BUILD=${SLUICE_BUILD:?set SLUICE_BUILD to the build directory}
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LOAD=$BUILD/bench/smtpload
IDLE_N=${SMTPLOAD_IDLE:-5000}
NAME=run-submission
. "$TOP/tests/bench/lib.sh"

bench_init
LOADPID=
EXTRA_PIDS=

[ -x "$LOAD" ] || die "$LOAD missing (make bench builds it)"

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

gateway_start "$CONF"
PW=$(gateway_user "$CONF" bench) || exit 1

# smtpd_rss - the summed VmRSS of sluiced's smtpd children, in kB
smtpd_rss() {
	local p sum=0 v
	for p in $(kids "$MASTER" smtpd); do
		v=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$p/status" 2>/dev/null)
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
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
	EXTRA_PIDS=$LOADPID
	wait "$LOADPID"
	LOADPID=
	EXTRA_PIDS=
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
EXTRA_PIDS=$LOADPID
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
EXTRA_PIDS=
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
