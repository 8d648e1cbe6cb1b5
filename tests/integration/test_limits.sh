#!/bin/bash
# test_limits - connection reuse, rate, concurrency and back-off through
# the whole gateway to real upstreams (aiosmtpd: Debian's python3).
exec /usr/bin/python3 "$(dirname "$0")/test_limits.py" "$@"
