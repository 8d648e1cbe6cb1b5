"""
runner - every tests/integration/test_*.sh (or those matching the
patterns given), each in its own bash under `timeout`, SLUICE_TEST_JOBS
at a time (default 2).  Most suites spend their time waiting for
timeouts, leases and retries, so two run side by side; suites that
share a fixed address (127.0.0.2:25 and 127.0.0.3:25 for MX hosts) or
that load the whole machine on purpose never run beside each other.
One line per test, the log of each failure, exit status 1 if any
failed.  Every process is started here and ended by its timeout.
"""
import glob
import os
import subprocess
import sys
import tempfile
import time

LIMIT = 300                 # seconds a test may take

# tests in the same group never run at the same time
GROUPS = {
    "test_delivery.sh": "port25", "test_e2e.sh": "port25",
    "test_faults.sh": "load", "test_attacks.sh": "load",
    "test_limits.sh": "load",
}
# the long ones first, so that the short ones fill in beside them
FIRST = ["test_faults.sh", "test_queue.sh", "test_delivery.sh",
         "test_attacks.sh", "test_auth.sh", "test_heartbeat.sh",
         "test_limits.sh", "test_submission.sh", "test_crashloop.sh"]


def main(patterns):
    here = os.path.dirname(os.path.abspath(__file__))
    os.chdir(here)
    if not os.environ.get("SLUICE_BUILD"):
        print("runner: set SLUICE_BUILD to the build directory")
        return 2
    words = [w for p in patterns for w in p.split()] or ["test_*.sh"]
    names = sorted({t for w in words for t in glob.glob(w)})
    names.sort(key=lambda t: FIRST.index(t) if t in FIRST else len(FIRST))
    jobs = max(1, int(os.environ.get("SLUICE_TEST_JOBS", "2")))
    running = {}            # name -> (Popen, log file, start)
    failed = 0
    while names or running:
        busy = {GROUPS.get(n) for n in running} - {None}
        for t in list(names):
            if len(running) >= jobs:
                break
            if GROUPS.get(t) in busy:
                continue
            log = tempfile.TemporaryFile(prefix="sluice-it-log.")
            p = subprocess.Popen(["timeout", "-k", "5", str(LIMIT),
                                  "bash", t], stdout=log,
                                 stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
            running[t] = (p, log, time.monotonic())
            busy.add(GROUPS.get(t))
            names.remove(t)
        time.sleep(0.1)
        for t, (p, log, start) in list(running.items()):
            if p.poll() is None:
                continue
            del running[t]
            took = time.monotonic() - start
            if p.returncode == 0:
                print("PASS %s (%.0fs)" % (t, took), flush=True)
            else:
                failed = 1
                print("FAIL %s (%.0fs)" % (t, took), flush=True)
                log.seek(0)
                for line in log.read().decode("utf-8", "replace") \
                        .splitlines():
                    print("    " + line)
                sys.stdout.flush()
            log.close()
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
