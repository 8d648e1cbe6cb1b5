#!/bin/bash
# test_submission.sh - the submission front end through a real sluiced
# with real clients (swaks, msmtp, curl, Python smtplib); the tests
# themselves are in test_submission.py.
exec python3 "$(dirname "$0")/test_submission.py" "$@"
