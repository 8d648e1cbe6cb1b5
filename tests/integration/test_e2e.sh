#!/bin/bash
# test_e2e - swaks, msmtp, curl and smtplib on both kinds of listener,
# through every daemon, to a smarthost requiring STARTTLS + AUTH and to
# an MX host found through a DNS server on loopback (aiosmtpd, a Debian
# package, so Debian's python3).
exec /usr/bin/python3 "$(dirname "$0")/test_e2e.py" "$@"
