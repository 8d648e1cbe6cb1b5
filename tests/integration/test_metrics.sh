#!/bin/bash
# test_metrics - the Prometheus endpoint of queued through a real
# sluiced: well-formed text, counters that move with a message sent
# through the gateway, sluicectl stats agreeing, and no listener at all
# without a metrics group (Debian's python3, for aiosmtpd).
exec /usr/bin/python3 "$(dirname "$0")/test_metrics.py" "$@"
