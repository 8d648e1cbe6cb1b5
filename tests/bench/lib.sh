# lib.sh - what the bench scripts share: a gateway started and stopped
# by PID, its processes found through /proc, and their CPU time.
# Sourced by run-submission.sh and run-delivery.sh (bash), which set
#
#	BUILD	the build directory (sluiced, the children, bench/)
#	T	their scratch directory, removed on exit
#	LOG	where the gateway's output goes
#	NAME	how die() signs its message
#
# and may list in EXTRA_PIDS further processes of theirs to stop on
# exit, by PID, before the gateway.  With BENCH_KEEP=DIR the files of
# the scratch directory (logs, stamps, the sink's arrivals; not the
# gateway's state) are copied to DIR before it is removed.

MASTER=
EXTRA_PIDS=

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

# bench_cleanup - every process we started, by PID; then the scratch
# directory.  Set as the EXIT trap by bench_init.
bench_cleanup() {
	local left i p
	for p in $EXTRA_PIDS; do
		if kill -0 "$p" 2>/dev/null; then
			kill -TERM "$p" 2>/dev/null
			wait "$p" 2>/dev/null
		fi
	done
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
	# BENCH_KEEP=DIR: the raw figures and logs, for a closer look
	if [ -n "${BENCH_KEEP:-}" ] && [ -n "${T:-}" ] && [ -d "$T" ]; then
		mkdir -p "$BENCH_KEEP" &&
		    find "$T" -maxdepth 1 -type f -exec cp {} "$BENCH_KEEP"/ \;
	fi
	[ -n "${T:-}" ] && rm -rf "$T"
}

# bench_init - the scratch directory, the traps, the accounts
bench_init() {
	T=$(mktemp -d /tmp/sluice-bench.XXXXXX) || exit 1
	chmod 755 "$T"	# the unprivileged children must traverse it
	LOG=$T/sluiced.log
	trap bench_cleanup EXIT
	trap 'exit 1' INT TERM HUP
	if [ "$(id -u)" = 0 ]; then
		getent passwd sluice-smtpd >/dev/null || sh "$TOP/scripts/mkusers"
	fi
}

die() {
	echo "$NAME: $*" >&2
	if [ -f "$LOG" ]; then
		echo "--- last lines of the gateway's log" >&2
		tail -n 30 "$LOG" >&2
	fi
	exit 1
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# gateway_start CONF - sluiced -f in the background until "sluice ready"
# (-f without -d: debug lines per command would be measured too)
gateway_start() {
	local i
	"$BUILD/sluiced" -f -c "$1" -x "$BUILD" >"$LOG" 2>&1 &
	MASTER=$!
	for ((i = 0; i < 300; i++)); do
		grep -q "sluice ready" "$LOG" 2>/dev/null && break
		kill -0 "$MASTER" 2>/dev/null || die "sluiced exited at start"
		sleep 0.1
	done
	grep -q "sluice ready" "$LOG" || die "sluiced not ready after 30 s"
}

# gateway_user CONF LOGIN - a user who may send as anyone; prints the
# password
gateway_user() {
	local pw=bench-$RANDOM$RANDOM$RANDOM
	echo "$pw" | "$BUILD/sluicectl" -c "$1" user add "$2" \
	    --password-stdin --sender '*' >/dev/null ||
	    die "sluicectl user add failed"
	echo "$pw"
}

# cpu_snapshot [PID...] - "comm ticks" for every process of the gateway
# and for each PID named, and "@machine BUSY" and "@all TICKS" for the
# whole machine (/proc/stat: user, nice, system, irq, softirq and steal;
# and those with idle and iowait; clock ticks too, summed over cores)
cpu_snapshot() {
	local p s comm rest
	local -a a
	awk '$1 == "cpu" { b = $2 + $3 + $4 + $7 + $8 + $9
	    print "@machine", b; print "@all", b + $5 + $6 }' /proc/stat
	for p in $(descendants "$MASTER") "$MASTER" "$@"; do
		{ read -r s <"/proc/$p/stat"; } 2>/dev/null || continue
		comm=${s#*(}
		comm=${comm%)*}
		rest=${s##*) }
		read -r -a a <<<"$rest"
		# fields 14 and 15 (utime, stime) are a[11] and a[12]
		echo "${comm// /_} $((a[11] + a[12]))"
	done
}

# cpu_report BEFORE AFTER MESSAGES [COMM] - ms of CPU per message, per
# program, and the rate the cores could carry at that cost if the
# client (or the sink, COMM) ran elsewhere: COMM is shown apart and not
# counted in the total.  Then how busy the rest of the machine was
# meanwhile (the load generator, which is no process of the gateway,
# and whatever else runs there), as a share of all its cores: the
# figures above are only as good as that is small.
cpu_report() {
	awk -v hz="$(getconf CLK_TCK)" -v n="$3" -v ncpu="$(nproc)" \
	    -v apart="${4:-}" '
	    FNR == NR { b[$1] += $2; next }
	    { a[$1] += $2 }
	    END {
		line = "  server cpu per message (ms):"
		for (c in a) {
			d = a[c] - b[c]
			if (c == "@machine" || c == "@all") {
				m[c] = d
				continue
			}
			ours += d
			if (c == apart) {
				other = sprintf("; %s %.3f (not counted)", c,
				    d * 1000 / hz / n)
				continue
			}
			tot += d
			if (d > 0)
				line = line sprintf(" %s %.3f", c, d * 1000 / hz / n)
		}
		printf "%s; total %.3f%s\n", line, tot * 1000 / hz / n, other
		if (tot > 0)
			printf "  server-only ceiling on %d cores at that cost: %.0f msg/s\n", ncpu, ncpu * hz * n / tot
		if (m["@all"] > 0 && m["@machine"] >= ours)
			printf "  the rest of the machine meanwhile: %.0f%% of its cores (the load generator included)\n", (m["@machine"] - ours) * 100 / m["@all"]
	    }' "$1" "$2"
}
