"""
itlib - the small helpers the Python integration suites share: a
failure with a message, checks, a free loopback port, a bounded wait,
and the children of a process.  Nothing here starts anything.
"""
import socket
import threading
import time
import traceback


class Fail(AssertionError):
    """A check that did not hold; the message says what was seen."""


def check(cond, msg, *args):
    if not cond:
        raise Fail(msg % args if args else msg)


def eq(got, want, what):
    if got != want:
        raise Fail("%s: expected %r, got %r" % (what, want, got))


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(what, fn, seconds, step=0.05):
    """fn() until it returns something true, which is returned; at most
    seconds (the caller scales them for slow builds)."""
    deadline = time.monotonic() + seconds
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise Fail("timed out after %.0f s waiting for %s" %
                       (seconds, what))
        time.sleep(step)


def children(pid):
    """The PIDs whose parent is pid (its main thread's children)."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def run_test(fn, limit, verbose, logs=None, after=None):
    """Run one test function in a thread for at most limit seconds and
    print "ok NAME (Ns)" or "FAIL NAME: why"; True when it passed.  On a
    failure, logs() gives the lines to show: (name, tail, errors) each,
    read before after() (the test's clean-up, run in any case)."""
    box = {}

    def body():
        try:
            fn()
            box["ok"] = True
        except Exception as ex:           # noqa: report every failure
            box["err"] = ex
            box["tb"] = traceback.format_exc()
    t = threading.Thread(target=body, daemon=True)
    t0 = time.monotonic()
    t.start()
    t.join(limit)
    dt = time.monotonic() - t0
    passed = not t.is_alive() and "ok" in box
    tails = logs() if not passed and logs is not None else []
    if after is not None:
        after()
    if passed:
        print("ok %s (%.1fs)" % (fn.__name__, dt), flush=True)
        return True
    if t.is_alive():
        reason = "timed out after %.0fs" % limit
    else:
        ex = box["err"]
        reason = str(ex) if isinstance(ex, Fail) else "%s: %s" % (
            type(ex).__name__, ex)
    print("FAIL %s: %s" % (fn.__name__, reason), flush=True)
    if verbose:
        if "tb" in box and not isinstance(box["err"], Fail):
            print("    " + box["tb"].replace("\n", "\n    "))
        for name, tail, errs in tails:
            if errs:
                print("    harness errors (%s): %r" % (name, errs[:5]))
            print("    --- %s log (last lines)" % name)
            for ln in tail.splitlines():
                print("    | " + ln)
    return False
