# lib.sh - helpers for integration tests (sourced).  Every process a test
# starts is recorded and stopped by PID in the EXIT trap; nothing is
# ever killed by name.
set -u

BUILD=${SLUICE_BUILD:?}
SLUICED=$BUILD/sluiced
T=$(mktemp -d /tmp/sluice-it.XXXXXX)
chmod 755 "$T"		# the unprivileged children must traverse it
PIDS=()
MASTER=
LOG=

t_cleanup() {
	local p
	if [ -n "$MASTER" ] && kill -0 "$MASTER" 2>/dev/null; then
		# the master's descendants, so nothing outlives the test
		local kids
		kids=$(descendants "$MASTER")
		kill -TERM "$MASTER" 2>/dev/null
		for _ in $(seq 100); do
			kill -0 "$MASTER" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$MASTER" $kids 2>/dev/null
	fi
	for p in "${PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$T"
}
trap t_cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	if [ -n "$LOG" ] && [ -f "$LOG" ]; then
		echo "--- last lines of $LOG" >&2
		tail -n 40 "$LOG" >&2
	fi
	exit 1
}

ok() {
	echo "ok: $*"
}

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# need_root - skip unless root; make sure sluice's accounts exist
need_root() {
	if [ "$(id -u)" != 0 ]; then
		echo "SKIP: needs root"
		exit 0
	fi
	getent passwd sluice-smtpd >/dev/null || sh "$TOP/scripts/mkusers"
}

# free_port - a TCP port nobody listens on right now
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# children PID - direct children of PID
children() {
	ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' '
}

descendants() {
	local c
	for c in $(children "$1"); do
		echo "$c"
		descendants "$c"
	done
}

# comm PID - the program name
comm() {
	cat "/proc/$1/comm" 2>/dev/null
}

# pid_of_child MASTER NAME - the pid of the master's child running NAME
pid_of_child() {
	local c
	for c in $(children "$1"); do
		if [ "$(comm "$c")" = "$2" ]; then
			echo "$c"
			return 0
		fi
	done
	return 1
}

status_field() {
	awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null
}

# wait_for SECONDS CMD... - poll CMD every 0.1 s
wait_for() {
	local limit=$1 i
	shift
	for ((i = 0; i < limit * 10; i++)); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

log_has() {
	grep -q -- "$1" "$LOG"
}

# write_conf FILE PORT [extra lines] - a test configuration on loopback
write_conf() {
	local file=$1 port=$2
	shift 2
	cat >"$file" <<CONF
hostname = "mail.test.example";
state_dir = "$T/state";
pid_file = "$T/sluiced.pid";
smtpd_processes = 2;
listen = (
  { address = "127.0.0.1"; port = $port; tls = "starttls"; auth = "required"; },
  { address = "::1"; port = $port; tls = "starttls"; auth = "required"; }
);
redis = { embedded = true; };
delivery = { workers = 2; };
$*
CONF
}

# start_sluiced CONF - run the master in the foreground with debug logs
# and wait until it says every child is ready
start_sluiced() {
	LOG=$T/sluiced.log
	"$SLUICED" -d -c "$1" -x "$BUILD" >"$LOG" 2>&1 &
	MASTER=$!
	wait_for 30 log_has "sluice ready" ||
	    fail "sluiced did not become ready"
}

# start_default - the test configuration on a free port ($port), running
start_default() {
	port=$(free_port)
	write_conf "$T/sluice.conf" "$port"
	start_sluiced "$T/sluice.conf"
}

# smtp_greeting PORT [HOST] - the first line the server sends
smtp_greeting() {
	python3 - "$1" "${2:-127.0.0.1}" <<'PY'
import socket, sys
s = socket.create_connection((sys.argv[2], int(sys.argv[1])), timeout=5)
print(s.makefile("rb").readline().decode().strip())
PY
}
