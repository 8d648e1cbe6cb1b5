"""
itlib - the small helpers the Python integration suites share: a
failure with a message, checks, a free loopback port, a bounded wait,
and the children of a process.  Nothing here starts anything.
"""
import socket
import time


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
