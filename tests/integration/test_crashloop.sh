#!/bin/bash
# A child that dies at once is restarted with growing delays and the
# crash loop is reported loudly; a sandbox violation is named as such.
. "$(dirname "$0")/lib.sh"
need_root

# a libexec dir whose smtpd exits at once
mkdir -p "$T/libexec"
for p in authd queued deliverd; do cp "$BUILD/$p" "$T/libexec/"; done
printf '#!/bin/sh\necho "fake smtpd: failing on purpose" >&2\nexit 3\n' >"$T/libexec/smtpd"
chmod 755 "$T/libexec" "$T/libexec"/*

port=$(free_port)
write_conf "$T/sluice.conf" "$port"
LOG=$T/sluiced.log
"$SLUICED" -d -c "$T/sluice.conf" -x "$T/libexec" >"$LOG" 2>&1 &
MASTER=$!
wait_for 30 log_has "CRASH LOOP: smtpd\[0\] exited 5 times" || fail "no crash loop report"
log_has "lost child: smtpd\[0\] exited with status 3" || fail "no exit status line"
log_has "smtpd\[0\]: restarting in 4s" || fail "no growing delay"
kill -0 "$MASTER" || fail "sluiced died"
ok "$(grep -m1 'CRASH LOOP' "$LOG" | sed 's/^.*CRASH/CRASH/')"
# the other children are unaffected
wait_for 10 log_has "authd\[0\]: ready" || fail "authd not ready"
