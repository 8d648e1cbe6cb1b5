#!/usr/bin/env bash
# run-delivery.sh - how fast the queue drains to a local SMTP server,
# and how long an accepted message takes to get there: a whole gateway
# (sluiced, smtpd, authd, queued, two deliverd, the embedded Redis with
# appendfsync always) whose only route is a smarthost on loopback,
# tls = "none", with connection reuse as shipped (messages_per_connection
# 100, idle_timeout 5 s), and tests/bench/smtpsink as that smarthost.
#
#	SLUICE_BUILD=$PWD/build bash tests/bench/run-delivery.sh
#
# (make bench does that after building bench/smtpload and bench/smtpsink).
#
#   (e) drain: the sink starts with --hold: it accepts connections and
#	does not greet them, so every delivery waits for its greeting.
#	smtpload submits N messages of 4 KiB (STARTTLS, AUTH, 50
#	connections, 100 messages each); the queue manager hands out what
#	it may keep in flight, the rest stays due in the schedule.  Then
#	SIGUSR1 makes the sink greet every connection at once, and the
#	drain rate is N over the time from that moment to the arrival of
#	the last of the N at the sink.  (Not sluicectl queue flush after
#	deliveries to a closed port: it makes the messages due one
#	transaction at a time and wakes the queue manager only at the end,
#	so it would pace the drain itself.)
#   (f) latency: smtpload --rate R submits M more messages at a steady
#	R per second over 10 sessions (STARTTLS, AUTH, pipelining); each
#	carries X-Bench-Id, and smtpload records when its "250 ... queued
#	as" was read, the sink when its final dot was: both CLOCK_MONOTONIC
#	on this machine.  Accepted to delivered is the difference.
#
# For both, the CPU time every process used (from /proc/PID/stat) is
# shown per message; the sink's own is shown apart, to show it is not
# what limits the drain.  Each message's id at the sink is checked once
# and only once (the queue is at-least-once; a second copy is counted).
#
# It prints numbers only and never fails on speed; it fails only when
# the gateway or the sink cannot be started.  Every process it starts
# is stopped by PID, on any exit.  DRAIN_N, LAT_N and LAT_RATE change N,
# M and R (defaults 5000, 3000, 200).
set -u

BUILD=${SLUICE_BUILD:?set SLUICE_BUILD to the build directory}
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LOAD=$BUILD/bench/smtpload
SINK=$BUILD/bench/smtpsink
DRAIN_N=${DRAIN_N:-5000}
LAT_N=${LAT_N:-3000}
LAT_RATE=${LAT_RATE:-200}
NAME=run-delivery
. "$TOP/tests/bench/lib.sh"

bench_init
[ -x "$LOAD" ] || die "$LOAD missing (make bench builds it)"
[ -x "$SINK" ] || die "$SINK missing (make bench builds it)"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null

P1=$(free_port)
PS=$(free_port)
PD=$(free_port)
while [ "$PS" = "$P1" ]; do PS=$(free_port); done
while [ "$PD" = "$P1" ] || [ "$PD" = "$PS" ]; do PD=$(free_port); done

# the sink first, holding, so that not one delivery gets through early
SINKLOG=$T/sink.log
"$SINK" --port "$PS" --log "$SINKLOG" --hold >"$T/sink.out" 2>&1 &
SINKPID=$!
EXTRA_PIDS=$SINKPID
for ((i = 0; i < 50; i++)); do
	grep -q "^listening" "$T/sink.out" 2>/dev/null && break
	kill -0 "$SINKPID" 2>/dev/null || break
	sleep 0.1
done
grep -q "^listening" "$T/sink.out" || { cat "$T/sink.out"; die "smtpsink did not start"; }

CONF=$T/sluice.conf
cat >"$CONF" <<CONF
# written by tests/bench/run-delivery.sh
hostname = "bench.test";
state_dir = "$T/state";
pid_file = "$T/sluiced.pid";
listen = (
  { address = "127.0.0.1"; port = $P1; tls = "starttls"; auth = "required"; }
);
redis = { embedded = true; };
limits = {
  connections = 20000;
  connections_per_ip = 20000;
  user_messages_per_hour = 10000000;
  user_recipients_per_hour = 100000000;
};
# a delivery that failed would wait an hour: it shows as missing
queue = { retry_min = "1h"; retry_max = "2h"; };
delivery = {
  workers = 2;
  routes = ( { domains = [ "*" ]; smarthost = "127.0.0.1:$PS"; tls = "none";
               messages_per_connection = 100; idle_timeout = "5s"; } );
};
dns = { servers = [ "127.0.0.1:$PD" ]; };
CONF

gateway_start "$CONF"
PW=$(gateway_user "$CONF" bench) || exit 1

# smtpload's "key: value" line
field() {
	awk -F': ' -v k="$2" '$1 == k { print $2 }' "$1"
}

# arrivals PREFIX - "id usec" lines at the sink whose id starts with
# PREFIX, the first of each id only
arrivals() {
	awk -v p="$1" 'index($1, p) == 1 && !seen[$1]++' "$SINKLOG"
}

# wait_sink PREFIX N SECS - until N distinct ids with PREFIX arrived
wait_sink() {
	local i n=0
	for ((i = 0; i < $3 * 10; i++)); do
		n=$(arrivals "$1" | wc -l)
		[ "$n" -ge "$2" ] && break
		sleep 0.1
	done
	echo "$n"
}

# copies PREFIX - arrivals beyond the first of an id
copies() {
	awk -v p="$1" 'index($1, p) == 1 && seen[$1]++ { n++ } END { print n + 0 }' "$SINKLOG"
}

# submit OUT ARGS... - smtpload against the STARTTLS listener, with stamps
submit() {
	local out=$1 rc
	shift
	"$LOAD" --host 127.0.0.1 --port "$P1" --tls starttls \
	    --auth "bench:$PW" --pipelining --timeout 60 \
	    --stamps "$out.stamps" "$@" >"$out" &
	LOADPID=$!
	EXTRA_PIDS="$LOADPID $SINKPID"
	wait "$LOADPID"
	rc=$?
	EXTRA_PIDS=$SINKPID
	return $rc
}

# the prefix of the ids a run's messages carry: its smtpload's pid
prefix_of() {
	awk 'NR == 1 { sub(/\..*/, ""); print $0 "."; exit }' "$1.stamps"
}

declare -A RES

# One AUTH first (authd's credential cache warm); it is held too, and
# carries no X-Bench-Id, so it counts in no figure below.
"$LOAD" --host 127.0.0.1 --port "$P1" --tls starttls --auth "bench:$PW" \
    --connections 1 --messages 1 --timeout 60 >"$T/load.warm" ||
    { cat "$T/load.warm"; die "the warm-up message failed"; }

# ---- (e) drain
echo "== (e) $DRAIN_N messages of 4 KiB queued with the sink holding, then released"
submit "$T/load.e" --connections 50 --messages "$DRAIN_N" \
    --per-connection 100 --size 4096
ok=$(field "$T/load.e" "messages ok")
echo "  queued: ${ok:-0} messages at $(field "$T/load.e" "messages/s") msg/s (delivery held)"
[ "${ok:-0}" -gt 0 ] || { sed 's/^/  /' "$T/load.e"; die "nothing was queued"; }
PFX_E=$(prefix_of "$T/load.e")
# the queue manager claims, the workers connect and wait for a greeting
sleep 2
early=$(arrivals "$PFX_E" | wc -l)
cpu_snapshot "$SINKPID" >"$T/cpu.before"
kill -USR1 "$SINKPID"
for ((i = 0; i < 50; i++)); do
	grep -q "^released" "$T/sink.out" && break
	sleep 0.02
done
rel=$(awk '$1 == "released:" { print $2, $NF; exit }' "$T/sink.out")
held=${rel%% *}
t0=${rel##* }
[ -n "$t0" ] || die "smtpsink did not say when it let go"
got=$(wait_sink "$PFX_E" "$ok" 120)
cpu_snapshot "$SINKPID" >"$T/cpu.after"
echo "  sink: $held connections were waiting for a greeting; $early messages had got through early"
RES[e]=$(arrivals "$PFX_E" | sort -k2,2n | awk -v t0="$t0" -v n="$ok" '
    { a[NR] = $2 }
    END {
	if (NR == 0) { print "nothing arrived"; exit }
	first = a[1]; last = a[NR]
	el = (last - t0) / 1e6
	# the middle 80%, away from the start and the tail
	i = int(NR * 0.1) + 1; j = int(NR * 0.9)
	mid = a[j] > a[i] ? (j - i) / ((a[j] - a[i]) / 1e6) : 0
	printf "%.0f msg/s (%d of %d in %.2f s from the release; first after %.1f ms; middle 80%% at %.0f msg/s)",
	    NR / el, NR, n, el, (first - t0) / 1e3, mid
    }')
echo "  drain: ${RES[e]}"
echo "  copies delivered twice: $(copies "$PFX_E")"
cpu_report "$T/cpu.before" "$T/cpu.after" "$got" smtpsink

# ---- (f) accepted to delivered at a steady rate
CONNS=10
PER=$(( (LAT_N + CONNS - 1) / CONNS ))
echo "== (f) smtpload --tls starttls --pipelining --connections $CONNS --messages $LAT_N --per-connection $PER --size 4096 --rate $LAT_RATE"
# kept connections from (e) time out (5 s) or carry (f)'s first ones
cpu_snapshot "$SINKPID" >"$T/cpu.before"
submit "$T/load.f" --connections "$CONNS" --messages "$LAT_N" \
    --per-connection "$PER" --size 4096 --rate "$LAT_RATE"
sed 's/^/  /' "$T/load.f"
ok=$(field "$T/load.f" "messages ok")
PFX_F=$(prefix_of "$T/load.f")
got=$(wait_sink "$PFX_F" "${ok:-0}" 60)
cpu_snapshot "$SINKPID" >"$T/cpu.after"
[ "${got:-0}" -gt 0 ] && cpu_report "$T/cpu.before" "$T/cpu.after" "$got" smtpsink
# one latency (ms) per message, sorted; the percentiles of that
awk 'FNR == NR { q[$1] = $2; next }
    ($1 in q) && !seen[$1]++ { printf "%.3f\n", ($2 - q[$1]) / 1000 }' \
    "$T/load.f.stamps" "$SINKLOG" | sort -n >"$T/lat.f"
RES[f]=$(awk -v m="$(wc -l <"$T/load.f.stamps")" '{ d[NR] = $1 }
    END {
	n = NR
	if (n == 0) { print "nothing arrived"; exit }
	printf "p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, min %.2f, max %.2f ms (%d of %d delivered)",
	    d[int((n - 1) * 0.50) + 1], d[int((n - 1) * 0.90) + 1],
	    d[int((n - 1) * 0.99) + 1], d[1], d[n], n, m
    }' "$T/lat.f")
echo "  accepted to delivered: ${RES[f]}"
echo "  copies delivered twice: $(copies "$PFX_F")"
RES[f2]="end of data to 250: p50 $(field "$T/load.f" "latency p50"), p99 $(field "$T/load.f" "latency p99")"

kill -TERM "$SINKPID"
wait "$SINKPID"
EXTRA_PIDS=
echo "  smtpsink over both runs (the warm-up message too):"
grep -v '^listening\|^released' "$T/sink.out" | sed 's/^/    /'

echo "== delivery summary (smarthost 127.0.0.1, tls none, 2 workers, reuse on, appendfsync always)"
echo "(e) drain of $DRAIN_N x 4 KiB to the sink: ${RES[e]}"
echo "(f) accepted to delivered at $LAT_RATE msg/s: ${RES[f]}; ${RES[f2]}"
exit 0
