#!/bin/bash
# sluiced -n: the shipped example is valid; broken files stop with
# exit 1 and "FILE:LINE: ..." on stderr; nothing crashes.
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."

out=$("$SLUICED" -n -c etc/sluice.conf.example 2>&1) ||
    fail "example config refused: $out"
ok "example config accepted"

# check_bad NAME LINE PATTERN CONTENT - exit 1, FILE:LINE: prefix, message
check_bad() {
	local name=$1 line=$2 pattern=$3 f=$T/$1.conf rc
	printf '%s\n' "$4" >"$f"
	out=$("$SLUICED" -n -c "$f" 2>&1)
	rc=$?
	[ "$rc" = 1 ] || fail "$name: exit $rc, want 1 ($out)"
	case $out in
	"$f:$line: "*) ;;
	*) fail "$name: want '$f:$line: ...', got: $out" ;;
	esac
	echo "$out" | grep -q -- "$pattern" || fail "$name: no '$pattern' in: $out"
	[ "$(echo "$out" | wc -l)" = 1 ] || fail "$name: more than one line: $out"
	ok "$name: $out"
}

base='listen = ( { address = "127.0.0.1"; port = 2587; } );'

check_bad unknown-key 2 "colour" "$base
colour = \"blue\";"
check_bad unknown-nested 2 "limits.colour" "$base
limits = { colour = 1; };"
check_bad wrong-type 2 "limits.recipients" "$base
limits = { recipients = \"many\"; };"
check_bad out-of-range 1 "port" 'listen = ( { address = "127.0.0.1"; port = 70000; } );'
check_bad port-zero 1 "port" 'listen = ( { address = "127.0.0.1"; port = 0; } );'
check_bad bad-size 2 "message_size" "$base
limits = { message_size = \"35Q\"; };"
check_bad bad-duration 2 "lifetime" "$base
queue = { lifetime = \"5 days\"; };"
check_bad bad-cidr 2 "trusted_networks" 'listen = ( { address = "127.0.0.1"; port = 25;
  trusted_networks = [ "10.0.0.0/33" ]; } );'
check_bad bad-hostport 3 "smarthost" "$base
delivery = { routes = (
  { domains = [ \"*\" ]; smarthost = \"relay.example:99999\"; } ); };"
check_bad syntax 2 "" "$base
hostname = \"unterminated;"

# a missing file is one line, not a crash
out=$("$SLUICED" -n -c "$T/nonexistent.conf" 2>&1)
[ $? = 1 ] || fail "missing file: exit status"
echo "$out" | grep -q "nonexistent.conf" || fail "missing file: $out"
ok "missing config file: $out"

# missing certificate files are named
printf '%s\ntls = { certificate = "%s/no.crt"; key = "%s/no.key"; };\n' \
    "$base" "$T" "$T" >"$T/nocert.conf"
out=$("$SLUICED" -n -c "$T/nocert.conf" 2>&1)
[ $? = 1 ] || fail "missing certificate: exit status ($out)"
echo "$out" | grep -q "$T/no.crt" || fail "missing certificate not named: $out"
ok "missing certificate: $out"

# children that cannot be found: one line naming the path, at start
out=$("$SLUICED" -f -c etc/sluice.conf.example -x "$T/nowhere" 2>&1)
[ $? = 1 ] || fail "missing children: exit status"
echo "$out" | grep -q "cannot run $T/nowhere/smtpd" || fail "missing children: $out"
ok "missing children: $(echo "$out" | sed 's/^.*]: //')"
exit 0
