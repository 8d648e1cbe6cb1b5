#!/bin/bash
# test_delivery.sh - deliverd through its real channels against a real
# upstream SMTP server (aiosmtpd); the tests are in test_delivery.py.
# aiosmtpd comes from Debian (python3-aiosmtpd), so prefer the system
# interpreter over whatever python3 comes first in PATH.
py=python3
if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null; then
	py=/usr/bin/python3
fi
if ! "$py" -c 'import aiosmtpd' 2>/dev/null; then
	echo "test_delivery: python3-aiosmtpd is missing (sh scripts/deps --test)" >&2
	exit 1
fi
exec "$py" "$(dirname "$0")/test_delivery.py" "$@"
