#!/bin/bash
# test_auth.sh - authd and `sluicectl user` through their real interfaces
# against a real redis-server; the tests themselves are in test_auth.py.
exec python3 "$(dirname "$0")/test_auth.py" "$@"
