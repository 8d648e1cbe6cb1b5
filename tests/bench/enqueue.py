#!/usr/bin/env python3
"""enqueue - how fast queued takes messages, and what one costs in Redis.

A private redis-server (AOF, appendfsync always, as production) and the
real queued (SLUICE_BUILD), driven by the integration harness
(tests/integration/qharness.py) playing smtpd: N messages of SIZE bytes,
C transactions in flight at once on the one smtpd channel.  The fake
deliverd workers take every job and never answer, so the queue only
grows (--no-workers: no worker channels at all, nothing is handed out).

Prints

    enqueue: N messages, SIZE bytes, C concurrent: X msg/s
    redis memory per queued message: Y bytes

and the harness's own ceiling.  It prints numbers; it never fails on
speed (STYLE.md section 12: timing lives here, not in tests).

The harness is Python: one thread does all channel I/O (frames, memfd
writes, reading the job memfds of the fake workers), so on 2 cores it may
well be the bottleneck rather than queued.  Its ceiling is measured last
against an in-process stub that answers Q_OPEN/Q_COMMIT at once with no
Redis; that stub is Python too and shares the machine, so the figure is a
lower bound of what the harness can drive.  When the first number is
close to it, the measurement is the harness's, not queued's.

    SLUICE_BUILD=build python3 tests/bench/enqueue.py [-n N] [-s SIZE]
        [-c C] [--no-workers]
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True     # no __pycache__ in the tree
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import qharness as H            # noqa: E402


def message(i, size):
    head = ("Received: from bench.test (bench.test [127.0.0.1])\r\n"
            "\tby mx.test with ESMTPSA; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
            "From: <bench@example.org>\r\nTo: <r%d@b.test>\r\n"
            "Subject: bench %d\r\nMessage-ID: <bench.%d@example.org>\r\n"
            "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n" % (i, i, i))
    head = head.encode()
    line = b"x" * 76 + b"\r\n"
    body = (line * (size // len(line) + 1))[:max(0, size - len(head) - 2)]
    m = head + body + b"\r\n"
    return m[:size] if len(m) > size else m


def specs(n, size, base=0):
    return [("bench@example.org", ["r%d@b.test" % (base + i)],
             message(base + i, size)) for i in range(n)]


def stub_ceiling(n, size, conc):
    """The harness against a Python stub of queued in this process."""
    q = H.Queued(tempfile.gettempdir(), "", workers=0, name="stub")
    q._io_start()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    chan = H.Channel(ours, "stub:smtpd")
    s = q.attach_smtpd(chan)
    stop = threading.Event()

    def stub():
        peer = H.Channel(theirs, "stub:queued")
        theirs.settimeout(0.2)
        while not stop.is_set():
            try:
                f = peer.recv()
            except socket.timeout:
                continue
            except OSError:
                return
            if f is None:
                return
            if f.type == H.T.Q_OPEN:
                fd = os.memfd_create("body", os.MFD_CLOEXEC)
                peer.send(H.T.Q_OPENED, f.reqid, b"", fd)
                os.close(fd)
            elif f.type == H.T.Q_COMMIT:
                peer.send(H.T.Q_OK, f.reqid, H.pstr("0" * 26))
            if f.fd is not None:
                os.close(f.fd)
    t = threading.Thread(target=stub, daemon=True)
    t.start()
    sp = specs(n, size)
    t0 = time.monotonic()
    res = s.enqueue_many(sp, concurrency=conc, timeout=300)
    dt = time.monotonic() - t0
    stop.set()
    t.join(2)
    chan.close()
    theirs.close()
    q._teardown_io()
    ok = sum(1 for r in res if r and r[0] == "ok")
    return ok / dt if dt > 0 else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5000)
    ap.add_argument("-s", "--size", type=int, default=4096)
    ap.add_argument("-c", "--concurrency", type=int, default=50)
    ap.add_argument("--no-workers", action="store_true")
    ap.add_argument("--no-ceiling", action="store_true")
    a = ap.parse_args()

    exe = os.path.join(H.BUILD, "queued")
    if not os.access(exe, os.X_OK):
        print("bench: no %s (set SLUICE_BUILD)" % exe)
        return 1
    tmp = tempfile.mkdtemp(prefix="sluice-bench.", dir="/tmp")
    os.chmod(tmp, 0o755)
    redis = q = None
    try:
        redis = H.Redis(tmp).start()
        conf = H.make_config(tmp, message_size="1M", retry_min="1h",
                             retry_max="2h", lifetime="5d", lease="10m")
        q = H.Queued(tmp, conf, policy=H.policy_hold,
                     workers=0 if a.no_workers else None)
        q.start()
        # warm up: connections, Lua scripts loaded, allocator pools
        warm = q.smtpd.enqueue_many(specs(100, a.size, base=10 ** 6),
                                    concurrency=a.concurrency, timeout=60)
        bad = [r for r in warm if not r or r[0] != "ok"]
        if bad:
            print("bench: queued refused the warm-up: %r" % (bad[:3],))
            print(q.log_tail(20))
            return 1
        time.sleep(0.5)
        mem0 = int(redis.info("memory")["used_memory"])
        t0 = time.monotonic()
        res = q.smtpd.enqueue_many(specs(a.n, a.size),
                                   concurrency=a.concurrency, timeout=600)
        dt = time.monotonic() - t0
        ok = sum(1 for r in res if r and r[0] == "ok")
        time.sleep(0.5)
        mem1 = int(redis.info("memory")["used_memory"])
        print("enqueue: %d messages, %d bytes, %d concurrent: %.0f msg/s" %
              (ok, a.size, a.concurrency, ok / dt if dt > 0 else 0))
        if ok != a.n:
            fails = {}
            for r in res:
                if r and r[0] != "ok":
                    fails[r[1:3] if len(r) > 2 else r] = fails.get(
                        r[1:3] if len(r) > 2 else r, 0) + 1
            print("  (%d refused: %r)" % (a.n - ok, fails))
        print("redis memory per queued message: %.0f bytes" %
              ((mem1 - mem0) / ok if ok else 0))
        if not a.no_workers:
            print("  (%d jobs handed to the fake workers, none answered)" %
                  len(q.jobs))
        q.stop()
        q = None
        if not a.no_ceiling:
            n = min(a.n, 5000)
            print("harness ceiling (Python stub of queued, no Redis): "
                  "%.0f msg/s" % stub_ceiling(n, a.size, a.concurrency))
    finally:
        if q is not None:
            q.kill9()
        if redis is not None:
            redis.kill9()
        subprocess.run(["rm", "-rf", tmp], timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
