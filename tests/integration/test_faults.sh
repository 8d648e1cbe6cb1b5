#!/bin/bash
# test_faults - kill -9 of every daemon, a missing, refusing or
# connection-cutting upstream, all under load: nothing acknowledged is
# lost (aiosmtpd is a Debian package, so Debian's python3).
exec /usr/bin/python3 "$(dirname "$0")/test_faults.py" "$@"
