#!/bin/bash
# The master as root: the process tree and its privileges, restart of
# killed children, reload with a broken and a good file, a port in use,
# and a bounded stop that leaves nothing behind.
. "$(dirname "$0")/lib.sh"
need_root

start_default
ok "sluiced ready (pid $MASTER)"

[ "$(status_field "$MASTER" Uid)" = 0 ] || fail "sluiced is not root"

# every child runs as its own account, without new privileges, filtered
declare -A want_user=([smtpd]=sluice-smtpd [authd]=sluice-authd
    [queued]=sluice-queued [deliverd]=sluice-deliverd
    [redis-server]=sluice-redis)
declare -A count
for c in $(children "$MASTER"); do
	name=$(comm "$c")
	count[$name]=$(( ${count[$name]:-0} + 1 ))
	[ -n "${want_user[$name]:-}" ] || fail "unexpected child $name ($c)"
	uid=$(status_field "$c" Uid)
	[ "$uid" = "$(id -u "${want_user[$name]}")" ] ||
	    fail "$name ($c) runs as uid $uid, not ${want_user[$name]}"
	[ "$uid" != 0 ] || fail "$name runs as root"
	[ "$name" = redis-server ] && continue
	[ "$(status_field "$c" NoNewPrivs)" = 1 ] || fail "$name: NoNewPrivs"
	[ "$(status_field "$c" Seccomp)" = 2 ] || fail "$name: Seccomp"
	ok "$name pid $c uid $uid NoNewPrivs 1 Seccomp 2"
done
[ "${count[smtpd]:-0}" = 2 ] || fail "want 2 smtpd, have ${count[smtpd]:-0}"
[ "${count[deliverd]:-0}" = 2 ] || fail "want 2 deliverd"
for n in authd queued redis-server; do
	[ "${count[$n]:-0}" = 1 ] || fail "want 1 $n, have ${count[$n]:-0}"
done

# smtpd and deliverd are chrooted into the empty directory
for n in smtpd deliverd; do
	p=$(pid_of_child "$MASTER" $n)
	[ "$(readlink "/proc/$p/root")" = "$T/state/empty" ] ||
	    fail "$n root is $(readlink "/proc/$p/root")"
done
ok "smtpd and deliverd chrooted to $T/state/empty"

# the embedded redis-server: AOF fsync always, no eviction, on the socket
python3 - "$T/state/redis/redis.sock" <<'PY' || fail "embedded redis settings"
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
f = s.makefile("rwb")
def cmd(*a):
    f.write(b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in a)); f.flush()
    n = int(f.readline()[1:]); out = []
    for _ in range(n):
        f.readline(); out.append(f.readline().strip().decode())
    return out
assert cmd(b"CONFIG", b"GET", b"appendfsync") == ["appendfsync", "always"], "appendfsync"
assert cmd(b"CONFIG", b"GET", b"appendonly") == ["appendonly", "yes"], "appendonly"
assert cmd(b"CONFIG", b"GET", b"maxmemory-policy") == ["maxmemory-policy", "noeviction"], "policy"
PY
ok "embedded redis: appendonly yes, appendfsync always, noeviction"
wait_for 10 log_has "queued\[0\]: redis $T/state/redis/redis.sock: connected" ||
    fail "queued did not reach the embedded redis from its sandbox"
ok "queued connected to the embedded redis through its group"

# smtpd answers on both address families through the passed sockets
g=$(smtp_greeting "$port") || fail "no greeting on 127.0.0.1"
case $g in "220 mail.test.example ESMTP"*) ;; *) fail "greeting: $g" ;; esac
g=$(smtp_greeting "$port" ::1) || fail "no greeting on ::1"
ok "smtpd answers on 127.0.0.1 and ::1: $g"

# kill -9 of any child: a new one within 2 seconds
for name in smtpd authd queued deliverd redis-server; do
	old=$(pid_of_child "$MASTER" "$name") || fail "no $name"
	of_name() { children "$MASTER" | while read -r c; do [ "$(comm "$c")" = "$name" ] && echo "$c"; done; }
	oldset=$(of_name | tr '\n' ' ')
	before=$(echo $oldset | wc -w)
	kill -KILL "$old"
	replaced() {
		local n=0 c
		for c in $(children "$MASTER"); do
			[ "$c" = "$old" ] && return 1
			[ "$(comm "$c")" = "$name" ] && n=$((n + 1))
		done
		[ "$n" = "$before" ]
	}
	wait_for 2 replaced || fail "$name ($old) not replaced within 2 s"
	new=$(of_name | tr '\n' ' ')
	ok "$name: killed $old ($oldset-> $new)"
done
log_has "lost child: smtpd\[[01]\] terminated; signal 9 (KILL)" ||
    fail "no 'lost child' line for smtpd"
log_has "lost child: redis-server terminated; signal 9" ||
    fail "no 'lost child' line for redis-server"
wait_for 10 log_has "queued\[0\]: ready" || fail "restarted queued not ready"

# siblings are wired again after a restart: the new authd greeted both
# smtpd, the new queued both smtpd and both deliverd
linked() {	# linked PROG PEER... - the running PROG logged each PEER
	local pid peer
	pid=$(pid_of_child "$MASTER" "$1") || return 1
	shift
	for peer; do
		grep -q "$(comm "$pid" | head -c 15)\[$pid\]: .*: peer $peer connected" "$LOG" || return 1
	done
}
wait_for 5 linked authd 'smtpd\[0\]' 'smtpd\[1\]' ||
    fail "restarted authd not linked to both smtpd"
wait_for 5 linked queued 'smtpd\[0\]' 'smtpd\[1\]' 'deliverd\[0\]' 'deliverd\[1\]' ||
    fail "restarted queued not linked to smtpd and deliverd"
ok "sibling channels re-made after restarts"

# SIGHUP with a broken file: logged, the running configuration stays
before=$(children "$MASTER" | sort | tr '\n' ' ')
cp "$T/sluice.conf" "$T/good.conf"
echo 'bogus_key = 1;' >>"$T/sluice.conf"
kill -HUP "$MASTER"
wait_for 5 log_has "keeping the running configuration" ||
    fail "broken reload not reported"
grep "reload:" "$LOG" | grep -q "bogus_key" || fail "reload error does not name the key"
sleep 1
after=$(children "$MASTER" | sort | tr '\n' ' ')
[ "$before" = "$after" ] || fail "children changed on a refused reload"
smtp_greeting "$port" >/dev/null || fail "no service after refused reload"
ok "broken reload refused: $(grep -m1 'keeping the running' "$LOG" | sed 's/.*reload: //')"

# SIGHUP with a good file: applied (one smtpd fewer), then back
sed 's/smtpd_processes = 2;/smtpd_processes = 1;/' "$T/good.conf" >"$T/sluice.conf"
kill -HUP "$MASTER"
wait_for 5 log_has "reload: configuration 1 in effect" || fail "reload not applied"
nsmtpd() { children "$MASTER" | while read -r c; do [ "$(comm "$c")" = smtpd ] && echo x; done | wc -l; }
one_smtpd() { [ "$(nsmtpd)" = 1 ]; }
wait_for 10 one_smtpd || fail "smtpd count is $(nsmtpd) after reload, want 1"
cp "$T/good.conf" "$T/sluice.conf"
kill -HUP "$MASTER"
two_smtpd() { [ "$(nsmtpd)" = 2 ]; }
wait_for 10 two_smtpd || fail "smtpd count is $(nsmtpd), want 2"
ok "reload applied: smtpd 2 -> 1 -> 2"
log_has "CRASH LOOP" && fail "a crash loop was reported"

# a second instance on the same port: one line naming address and port
mkdir -p "$T/second"
write_conf "$T/second.conf" "$port"
sed -i "s|$T/state|$T/second/state|; s|$T/sluiced.pid|$T/second/sluiced.pid|" "$T/second.conf"
out=$("$SLUICED" -f -c "$T/second.conf" -x "$BUILD" 2>&1)
rc=$?
[ "$rc" = 1 ] || fail "port in use: exit $rc"
echo "$out" | grep -q "cannot listen on 127.0.0.1 port $port: Address already in use" ||
    fail "port in use: $out"
ok "port in use: $(echo "$out" | grep 'cannot listen' | sed 's/^.*: cannot/cannot/')"

# SIGTERM: every child and the embedded redis-server gone within 10 s
all=$(descendants "$MASTER")
[ -n "$all" ] || fail "no descendants"
start=$(date +%s%N)
kill -TERM "$MASTER"
gone() {
	local p
	kill -0 "$MASTER" 2>/dev/null && return 1
	for p in $all; do kill -0 "$p" 2>/dev/null && return 1; done
	return 0
}
wait_for 10 gone || fail "still running 10 s after SIGTERM: $(for p in $all $MASTER; do kill -0 $p 2>/dev/null && comm $p; done | tr '\n' ' ')"
wait "$MASTER"
rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$rc" = 0 ] || fail "sluiced exit status $rc"
[ ! -e "$T/sluiced.pid" ] || fail "pid file left behind"
log_has "sluice stopped" || fail "no stop line"
MASTER=
ok "SIGTERM: $(echo "$all" | wc -w) processes and the master gone in ${ms} ms"
