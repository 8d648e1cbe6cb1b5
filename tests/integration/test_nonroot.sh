#!/bin/bash
# Started by an ordinary user, sluiced says once that it keeps that
# user's uid; the children still run with no_new_privs and seccomp.
. "$(dirname "$0")/lib.sh"
need_root
command -v setpriv >/dev/null || { echo "SKIP: no setpriv"; exit 0; }

mkdir -p "$T/bin"
for p in sluiced smtpd authd queued deliverd; do cp "$BUILD/$p" "$T/bin/"; done
chmod 755 "$T/bin" "$T/bin"/*
chown nobody "$T"
port=$(free_port)
write_conf "$T/sluice.conf" "$port"
chmod 644 "$T/sluice.conf"
LOG=$T/sluiced.log
setpriv --reuid=nobody --regid=nogroup --clear-groups \
    "$T/bin/sluiced" -d -c "$T/sluice.conf" -x "$T/bin" >"$LOG" 2>&1 &
MASTER=$!
wait_for 30 log_has "sluice ready" || fail "not ready as nobody"
[ "$(grep -c 'not running as root' "$LOG")" = 1 ] || fail "want one 'not running as root' line"
nobody=$(id -u nobody)
for c in $(children "$MASTER"); do
	name=$(comm "$c")
	[ "$(status_field "$c" Uid | cut -f1)" = "$nobody" ] || fail "$name uid"
	[ "$name" = redis-server ] && continue
	[ "$(status_field "$c" Seccomp)" = 2 ] || fail "$name: Seccomp"
	[ "$(status_field "$c" NoNewPrivs)" = 1 ] || fail "$name: NoNewPrivs"
done
g=$(smtp_greeting "$port") || fail "no greeting"
ok "as nobody: $(grep 'not running as root' "$LOG" | sed 's/^.*: not/not/'); $g"
