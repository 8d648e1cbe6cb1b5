#!/bin/bash
# Certificates: the configured pair is checked at start (a key that does
# not match is named), handed to smtpd, and re-read on SIGHUP; a broken
# file on reload is refused and the running certificate stays.
. "$(dirname "$0")/lib.sh"
need_root

mkcert() {	# mkcert NAME - an ECDSA P-256 key and self-signed certificate
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -subj "/CN=mail.test.example" -days 2 \
	    -keyout "$T/$1.key" -out "$T/$1.crt" >/dev/null 2>&1 ||
	    fail "openssl req"
}
mkcert one
mkcert two
port=$(free_port)
tlsconf() {
	write_conf "$T/sluice.conf" "$port" \
	    "tls = { certificate = \"$T/$1.crt\"; key = \"$T/$2.key\"; };"
}

# a key that belongs to another certificate: one line naming both files
tlsconf one two
out=$("$SLUICED" -n -c "$T/sluice.conf" 2>&1)
[ $? = 1 ] || fail "mismatched key accepted"
echo "$out" | grep -q "$T/two.key does not match the certificate $T/one.crt" ||
    fail "mismatch: $out"
ok "mismatched pair: $out"

tlsconf one one
start_sluiced "$T/sluice.conf"
wait_for 5 log_has "smtpd\[0\]: certificate generation 0 loaded" ||
    fail "smtpd did not load the certificate"
[ ! -e "$T/state/tls/selfsigned.crt" ] || fail "made a self-signed one anyway"
ok "smtpd loaded the configured certificate"

# a renewed certificate on reload reaches every smtpd
cp "$T/two.crt" "$T/one.crt"
cp "$T/two.key" "$T/one.key"
kill -HUP "$MASTER"
wait_for 5 log_has "smtpd\[1\]: certificate generation 1 loaded" ||
    fail "renewed certificate not reloaded"
ok "renewed certificate loaded on SIGHUP"

# a broken file on reload: refused, named, the old one stays in use
echo "not a certificate" >"$T/one.crt"
kill -HUP "$MASTER"
wait_for 5 log_has "keeping the running configuration" || fail "broken cert accepted"
grep "reload:" "$LOG" | grep -q "$T/one.crt" || fail "broken cert not named"
log_has "certificate generation 2" && fail "broken certificate reached smtpd"
smtp_greeting "$port" >/dev/null || fail "no service after refused reload"
ok "broken certificate refused: $(grep -m1 'keeping the running' "$LOG" | sed 's/.*reload: //')"
