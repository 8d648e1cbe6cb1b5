#!/bin/bash
# test_queue.sh - the queue manager through its real channels against a
# real redis-server; the tests themselves are in test_queue.py.
exec python3 "$(dirname "$0")/test_queue.py" "$@"
