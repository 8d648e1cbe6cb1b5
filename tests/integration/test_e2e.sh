#!/bin/bash
# test_e2e - a message from smtplib through every daemon to a real
# upstream (aiosmtpd, a Debian package, so Debian's python3).
exec /usr/bin/python3 "$(dirname "$0")/test_e2e.py" "$@"
