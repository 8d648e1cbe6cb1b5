#!/bin/bash
# The systemd notify protocol: READY=1 once every child is up,
# RELOADING=1 then READY=1 around a reload, STOPPING=1 on SIGTERM.
. "$(dirname "$0")/lib.sh"
need_root

sock=$T/notify.sock
python3 - "$sock" "$T/notify.out" <<'PY' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o777)
s.settimeout(60)
with open(sys.argv[2], "w", buffering=1) as out:
    try:
        while True:
            msg = s.recv(4096).decode()
            out.write(msg.replace("\n", " ") + "\n")
            if msg.startswith("STOPPING=1"):
                break
    except socket.timeout:
        pass
PY
PIDS+=($!)
wait_for 5 test -S "$sock" || fail "notify listener did not start"

port=$(free_port)
write_conf "$T/sluice.conf" "$port"
NOTIFY_SOCKET=$sock start_sluiced "$T/sluice.conf"
has() { grep -q "^$1" "$T/notify.out" 2>/dev/null; }
wait_for 5 has READY=1 || fail "no READY=1"
ok "READY=1"
kill -HUP "$MASTER"
wait_for 5 has RELOADING=1 || fail "no RELOADING=1"
wait_for 5 log_has "in effect" || fail "reload not applied"
[ "$(grep -c '^READY=1' "$T/notify.out")" -ge 2 ] || fail "no READY=1 after reload"
ok "RELOADING=1, READY=1"
kill -TERM "$MASTER"
wait_for 10 has STOPPING=1 || fail "no STOPPING=1"
wait "$MASTER"
MASTER=
ok "STOPPING=1; sequence: $(tr '\n' '|' <"$T/notify.out")"
