#!/bin/bash
# A child that is alive but stuck (SIGSTOP) misses its heartbeats, is
# killed and replaced.
. "$(dirname "$0")/lib.sh"
need_root

start_default
old=$(pid_of_child "$MASTER" authd) || fail "no authd"
kill -STOP "$old"
replaced() {
	local c
	for c in $(children "$MASTER"); do
		[ "$c" = "$old" ] && return 1
	done
	pid_of_child "$MASTER" authd >/dev/null
}
wait_for 30 replaced || fail "stuck authd not replaced"
log_has "authd\[0\] (pid $old): no answer to 3 heartbeats; killing it" ||
    fail "no heartbeat line"
ok "stuck authd $old replaced by $(pid_of_child "$MASTER" authd)"
