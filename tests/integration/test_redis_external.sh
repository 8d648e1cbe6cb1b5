#!/bin/bash
# An external Redis named by redis.address: queued connects from inside
# its sandbox, refuses a server that could lose acknowledged mail with a
# line naming the setting, and notices when the admin fixes it.
. "$(dirname "$0")/lib.sh"
need_root

mkdir -p "$T/redis"
chmod 755 "$T/redis"
redis-server --port 0 --unixsocket "$T/redis/redis.sock" --unixsocketperm 777 \
    --dir "$T/redis" --save "" --appendonly yes --appendfsync everysec \
    --maxmemory-policy noeviction --logfile "$T/redis/log" &
PIDS+=($!)
wait_for 10 test -S "$T/redis/redis.sock" || fail "redis-server did not start"

port=$(free_port)
write_conf "$T/sluice.conf" "$port"
sed -i "s|redis = { embedded = true; };|redis = { address = \"unix:$T/redis/redis.sock\"; };|" "$T/sluice.conf"
start_sluiced "$T/sluice.conf"
wait_for 10 log_has "queued\[0\]: redis $T/redis/redis.sock: appendfsync is everysec; sluice needs always" ||
    fail "unsafe redis not refused by name"
ok "refused: $(grep -m1 'appendfsync is everysec' "$LOG" | sed 's/^.*queued\[0\]: //')"
[ "$(grep -c 'queued\[0\]: redis .*appendfsync is everysec' "$LOG")" = 1 ] || fail "refusal logged more than once"

python3 - "$T/redis/redis.sock" <<'PY' || fail "CONFIG SET"
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"*4\r\n$6\r\nCONFIG\r\n$3\r\nSET\r\n$11\r\nappendfsync\r\n$6\r\nalways\r\n")
assert s.recv(100).startswith(b"+OK")
PY
wait_for 15 log_has "queued\[0\]: redis $T/redis/redis.sock: connected; noeviction" ||
    fail "fixed redis not noticed"
ok "accepted once appendfsync is always"
