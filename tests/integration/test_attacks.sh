#!/bin/bash
# test_attacks.sh - hostile clients against a real sluiced; the attacks
# themselves are in test_attacks.py.
exec /usr/bin/python3 "$(dirname "$0")/test_attacks.py" "$@"
