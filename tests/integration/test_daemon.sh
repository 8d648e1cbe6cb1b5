#!/bin/bash
# Without -f sluiced detaches, and its starting shell gets exit 0 only
# once the gateway is up; the pid file names the master; a second
# sluiced on the same pid file refuses to start.
. "$(dirname "$0")/lib.sh"
need_root

port=$(free_port)
write_conf "$T/sluice.conf" "$port"
"$SLUICED" -c "$T/sluice.conf" -x "$BUILD" || fail "daemon start: exit $?"
MASTER=$(cat "$T/sluiced.pid")
kill -0 "$MASTER" || fail "pid file names no live process"
[ "$(comm "$MASTER")" = sluiced ] || fail "pid file names $(comm "$MASTER")"
g=$(smtp_greeting "$port") || fail "no greeting right after start returned"
ok "detached as pid $MASTER, serving at once: $g"

out=$("$SLUICED" -f -c "$T/sluice.conf" -x "$BUILD" 2>&1)
[ $? = 1 ] || fail "second instance did not exit 1"
echo "$out" | grep -q "already running (pid $MASTER" || fail "second instance: $out"
ok "second instance: $(echo "$out" | sed 's/^.*: sluiced/sluiced/')"
