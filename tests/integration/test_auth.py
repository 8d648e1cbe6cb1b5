#!/usr/bin/env python3
"""test_auth - authd and `sluicectl user`, through their real interfaces.

Each test starts a private redis-server and, where it needs one, the
real build/authd (SLUICE_BUILD), playing sluiced (HELLO, CONF memfd,
PEER smtpd[0], START) and smtpd (AUTH_REQ, RATE_REQ) over real
SOCK_SEQPACKET channels with the machinery of qharness.  Users are made
with the real build/sluicectl.  One function per behaviour; the runner
prints `ok NAME` or `FAIL NAME: reason` and finally `N passed, N failed`.

    python3 tests/integration/test_auth.py [NAME-SUBSTRING ...]
    python3 tests/integration/test_auth.py -q ...   (no authd log on failure)

Timings (argon2id against the cache, unknown against known logins) are
printed, and asserted only with generous bounds.
"""

import json
import os
import re
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True     # no __pycache__ in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qharness as H                                    # noqa: E402
from qharness import wait_until, SLOW, u32, pstr        # noqa: E402
import itlib  # noqa: E402
from itlib import Fail, check, eq  # noqa: E402

TESTS = []
ENVS = []

# lib/auth_proto.h
_AP_H = open(os.path.join(H.TOP, "lib", "auth_proto.h")).read()
AP = {k: int(v) for k, v in re.findall(r"#define\s+(AP_\w+)\s+(\d+)",
                                       _AP_H)}
AP_OK, AP_FAIL, AP_BLOCKED = AP["AP_OK"], AP["AP_FAIL"], AP["AP_BLOCKED"]
AP_TEMPFAIL, AP_LIMITED = AP["AP_TEMPFAIL"], AP["AP_LIMITED"]
AP_NAME = {AP_OK: "OK", AP_FAIL: "FAIL", AP_BLOCKED: "BLOCKED",
           AP_TEMPFAIL: "TEMPFAIL", AP_LIMITED: "LIMITED"}
PROC_AUTHD = H.PROC["PROC_AUTHD"]


def test(fn):
    TESTS.append(fn)
    return fn


# ---------------------------------------------------------------------------
# authd, with the harness as its sluiced and its smtpd


class AuthRes:
    def __init__(self, f, elapsed):
        r = f.r()
        self.result, self.retry = r.u32(), r.u32()
        self.login = r.str()
        self.messages, self.recipients = r.u32(), r.u32()
        self.senders = r.str()
        r.end()
        self.elapsed = elapsed

    def __repr__(self):
        return "<AUTH_RES %s retry=%d login=%r limits=%d/%d senders=%r>" % (
            AP_NAME.get(self.result, self.result), self.retry, self.login,
            self.messages, self.recipients, self.senders)


class Authd:
    """One authd process; the harness holds the other end of its
    parent channel and of its smtpd[0] channel.  One I/O thread reads
    both and files answers by reqid."""

    def __init__(self, tmpdir, config, name="authd"):
        self.dir, self.config, self.name = tmpdir, config, name
        self.binary = os.path.join(H.BUILD, "authd")
        self.logpath = os.path.join(tmpdir, name + ".log")
        self.proc = None
        self.cv = threading.Condition()
        self.answers = {}
        self.ready_pid = None
        self.hello = None
        self.dead = set()         # channels authd closed
        self.io_errors = []
        self._reqid = 1000
        self._sel = None
        self._thread = None
        self._stop = False
        self.parent = self.smtpd = None
        H._CLEANUPS.append(self.kill9)

    def next_reqid(self):
        with self.cv:
            self._reqid += 1
            return self._reqid

    def log(self):
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=30):
        return "\n".join(self.log().splitlines()[-n:])

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # -- I/O
    def _io(self):
        while not self._stop:
            try:
                events = self._sel.select(0.2)
            except (OSError, ValueError):
                return
            for key, _ in events:
                ch = key.data
                try:
                    f = ch.recv()
                except (OSError, ValueError) as e:
                    if not ch.dead:
                        self.io_errors.append("%s: %s" % (ch.name, e))
                    f = None
                if f is None:
                    try:
                        self._sel.unregister(key.fd)
                    except (KeyError, ValueError, OSError):
                        pass
                    with self.cv:
                        self.dead.add(ch)
                        self.cv.notify_all()
                    continue
                if f.fd is not None:
                    os.close(f.fd)
                self._frame(ch, f)

    def _frame(self, ch, f):
        with self.cv:
            if ch is self.parent:
                if f.type == H.T.READY:
                    self.ready_pid = f.r().u32()
                elif f.type not in (H.T.CONF_DONE, H.T.HEARTBEAT_ACK):
                    self.io_errors.append("parent: unexpected %r" % f)
            elif f.type == H.T.HELLO:
                r = f.r()
                self.hello = (r.u32(), r.u32(), r.u32())
            else:
                self.answers[f.reqid] = (f, time.monotonic())
            self.cv.notify_all()

    def start(self):
        self._logoff = os.path.getsize(self.logpath) if os.path.exists(
            self.logpath) else 0
        self.ready_pid = self.hello = None
        self.dead = set()
        self.parent, child_end = H.pair(self.name + ":parent")
        cfd = child_end.fileno()
        # the channel must be descriptor 3 (see qharness.Queued.start)
        script = ('exec "$0" "$@"' if cfd == 3 else
                  'exec 3<&%d %d<&- && exec "$0" "$@"' % (cfd, cfd))
        logf = open(self.logpath, "ab")
        self.proc = subprocess.Popen(
            ["/bin/bash", "-c", script, self.binary, "-i", "0", "-d", "-f"],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
            pass_fds=(cfd,), cwd=self.dir)
        H._PIDS.add(self.proc.pid)
        child_end.close()
        logf.close()
        p = self.parent
        p.send(H.T.HELLO, 0, u32(H.IPC_VERSION) + u32(H.PROC_SLUICED) +
               u32(0))
        fd = H.memfd_with(self.config)
        try:
            p.send(H.T.CONF, 0, u32(1), fd)
        finally:
            os.close(fd)
        self.smtpd = self._peer()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.parent.sock.fileno(), selectors.EVENT_READ,
                           self.parent)
        self._sel.register(self.smtpd.sock.fileno(), selectors.EVENT_READ,
                           self.smtpd)
        self._stop = False
        self._thread = threading.Thread(target=self._io, daemon=True)
        self._thread.start()
        p.send(H.T.START)
        with self.cv:
            ok = self.cv.wait_for(lambda: (self.ready_pid is not None and
                                           self.hello is not None) or
                                  not self.alive(), 15 * SLOW)
        if not ok or self.ready_pid is None:
            raise RuntimeError("authd did not get READY (alive=%s)\n%s" %
                               (self.alive(), self.log_tail()))
        eq(self.ready_pid, self.proc.pid, "READY pid")
        eq(self.hello, (H.IPC_VERSION, PROC_AUTHD, 0), "authd's HELLO")
        self.wait_redis()
        return self

    def this_log(self):
        try:
            with open(self.logpath, "rb") as f:
                f.seek(self._logoff)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def wait_redis(self, timeout=10, count=1):
        wait_until(lambda: len(re.findall(r"redis .*: connected;",
                                          self.this_log())) >= count or
                   not self.alive(), timeout, what="authd's redis up")
        time.sleep(0.05)   # the subscription, right behind it

    @property
    def smtpd_eof(self):
        return self.smtpd in self.dead

    def _peer(self):
        ours, theirs = H.pair(self.name + ":smtpd[0]")
        try:
            self.parent.send(H.T.PEER, 0, u32(H.PROC_SMTPD) + u32(0),
                             theirs.fileno())
        finally:
            theirs.close()
        ours.send(H.T.HELLO, 0, u32(H.IPC_VERSION) + u32(H.PROC_SMTPD) +
                  u32(0))
        return ours

    def relink_smtpd(self):
        """A new smtpd[0] channel, as when smtpd is restarted."""
        self.hello = None
        old = self.smtpd
        self.smtpd = self._peer()
        try:
            self._sel.unregister(old.sock.fileno())
        except (KeyError, ValueError, OSError):
            pass
        old.close()
        self._sel.register(self.smtpd.sock.fileno(), selectors.EVENT_READ,
                           self.smtpd)
        with self.cv:
            self.cv.wait_for(lambda: self.hello is not None, 10 * SLOW)
        check(self.hello is not None, "no HELLO on the new smtpd channel")

    # -- requests
    def send_raw(self, type_, payload, reqid=None):
        reqid = self.next_reqid() if reqid is None else reqid
        self.smtpd.send(type_, reqid, payload)
        return reqid

    def wait_answer(self, reqid, t0, timeout=10):
        with self.cv:
            ok = self.cv.wait_for(lambda: reqid in self.answers or
                                  self.smtpd_eof, timeout * SLOW)
            got = self.answers.pop(reqid, None)
        if got is None:
            raise Fail("no answer to request %d %s" % (
                reqid, "(the channel closed)" if ok else
                "within %.0fs" % (timeout * SLOW)))
        return got[0], got[1] - t0

    def auth(self, login, password, client="192.0.2.1"):
        t0 = time.monotonic()
        rid = self.send_raw(H.T.AUTH_REQ, pstr(login) + pstr(password) +
                            pstr(client))
        f, dt = self.wait_answer(rid, t0)
        eq(H.TYPE_NAME.get(f.type), "AUTH_RES", "answer type")
        return AuthRes(f, dt)

    def rate(self, login, messages, recipients):
        t0 = time.monotonic()
        rid = self.send_raw(H.T.RATE_REQ, pstr(login) + u32(messages) +
                            u32(recipients))
        f, _dt = self.wait_answer(rid, t0)
        eq(H.TYPE_NAME.get(f.type), "RATE_RES", "answer type")
        r = f.r()
        res = (r.u32(), r.u32())
        r.end()
        return res

    def _teardown(self):
        self._stop = True
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        for ch in (self.parent, self.smtpd):
            if ch is not None:
                ch.close()
        if self._sel is not None:
            self._sel.close()
            self._sel = None

    def kill9(self):
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            H._reap(self.proc, 5)
        self._teardown()

    def stop(self):
        if self.alive():
            os.kill(self.proc.pid, signal.SIGTERM)
            H._reap(self.proc, 10 * SLOW)
        self._teardown()


# ---------------------------------------------------------------------------
# one environment per test: temp dir, redis, configuration, maybe authd


def make_config(tmp, auth_failures=3, auth_block="3s", messages=1000,
                recipients=5000, prefix=None):
    state = os.path.join(tmp, "state")
    os.makedirs(state, exist_ok=True)
    r = 'address = "unix:%s";' % os.path.join(tmp, "redis.sock")
    if prefix is not None:
        r += ' prefix = "%s";' % prefix
    return ('hostname = "mx.test";\nstate_dir = "%s";\nredis = { %s };\n'
            'listen = ( { address = "127.0.0.1"; port = 2587; '
            'tls = "starttls"; auth = "required"; } );\n'
            'limits = { auth_failures = %d; auth_block = "%s"; '
            'user_messages_per_hour = %d; '
            'user_recipients_per_hour = %d; };\n') % (
                state, r, auth_failures, auth_block, messages, recipients)


class Env:
    def __init__(self, name, start_authd=True, **confkw):
        self.tmp = tempfile.mkdtemp(prefix="sluice-a-%s." % name, dir="/tmp")
        os.chmod(self.tmp, 0o755)
        self.redis = self.a = None
        self.prefix = confkw.get("prefix") or "sluice:"
        try:
            self.redis = H.Redis(self.tmp).start()
            self.config = make_config(self.tmp, **confkw)
            self.confpath = os.path.join(self.tmp, "sluice.conf")
            with open(self.confpath, "w") as f:
                f.write(self.config)
            self.a = Authd(self.tmp, self.config)
            if start_authd:
                self.a.start()
        except BaseException:
            self.close()
            raise

    def ctl(self, *args, stdin=None, timeout=20):
        exe = os.path.join(H.BUILD, "sluicectl")
        p = subprocess.run([exe, "-c", self.confpath] + list(args),
                           input=stdin.encode() if stdin is not None
                           else None,
                           stdin=None if stdin is not None
                           else subprocess.DEVNULL,
                           capture_output=True, timeout=timeout * SLOW)
        return (p.returncode, p.stdout.decode(errors="replace"),
                p.stderr.decode(errors="replace"))

    def ctl_ok(self, *args, **kw):
        rc, out, err = self.ctl(*args, **kw)
        if rc != 0:
            raise Fail("sluicectl %s: exit %d: %s" % (" ".join(args), rc,
                                                      err.strip()))
        return out

    def add_user(self, login, password, *senders):
        a = ["user", "add", login, "--password-stdin"]
        for s in senders:
            a += ["--sender", s]
        self.ctl_ok(*a, stdin=password + "\n")

    def close(self):
        if self.a is not None:
            try:
                self.a.stop()
            except Exception:
                self.a.kill9()
        if self.redis is not None:
            self.redis.kill9()
        subprocess.run(["rm", "-rf", self.tmp], timeout=30)


def mkenv(name, **kw):
    e = Env(name, **kw)
    ENVS.append(e)
    return e


def rkey(e, *parts):
    return e.prefix + ":".join(parts)


# ---------------------------------------------------------------------------
# sluicectl user


@test
def test_user_add_generated_password():
    e = mkenv("gen", start_authd=False)
    rc, out, err = e.ctl("user", "add", "Alice@Example.ORG")
    eq(rc, 0, "exit status (%s)" % err.strip())
    lines = out.split("\n")
    eq(len(lines), 2, "lines of output %r" % out)
    pw = lines[0]
    check(re.fullmatch(r"[2-9a-km-zA-HJ-NP-Z]{20}", pw),
          "generated password %r: not 20 unambiguous characters", pw)
    h = e.redis.hgetall(rkey(e, "user", "alice@example.org"))
    eq(h.get("login"), "alice@example.org", "stored login (lower case)")
    check(h.get("hash", "").startswith("$argon2id$"), "hash %r",
          h.get("hash"))
    check(pw not in json.dumps(h), "the password is stored in clear")
    eq(h.get("enabled"), "1", "enabled")
    for f in ("created", "updated", "gen"):
        check(h.get(f, "").isdigit(), "field %s: %r", f, h.get(f))
    eq(e.redis("SMEMBERS", rkey(e, "users")), [b"alice@example.org"],
       "users set")
    # the password works (authd verifies with the same library)
    e.a.start()
    r = e.a.auth("alice@example.org", pw)
    eq(r.result, AP_OK, "AUTH with the generated password")
    # another add generates another password
    _rc, out2, _ = e.ctl("user", "add", "bob")
    check(out2.strip() != pw, "the same password twice")


@test
def test_user_add_stdin_and_exists():
    e = mkenv("stdin", start_authd=False)
    rc, out, err = e.ctl("user", "add", "carol", "--password-stdin",
                         "--sender", "Carol@Example.org", "--sender",
                         "@lists.example.org", stdin="pa ss:word\r\n")
    eq(rc, 0, "exit status (%s)" % err.strip())
    check("pa ss" not in out, "the password was echoed: %r", out)
    rc, out, err = e.ctl("user", "add", "CAROL", "--password-stdin",
                         stdin="other\n")
    eq(rc, 1, "exit status for an existing login")
    eq(err.strip(), "sluicectl: user exists: carol", "message")
    rc, out, err = e.ctl("user", "add", "dave", "--password-stdin", stdin="")
    eq(rc, 1, "empty password refused")
    check(e.redis("EXISTS", rkey(e, "user", "dave")) == 0,
          "a user was made without a password")
    for bad in ("a:b", "with space", "", "x" * 256):
        rc, _o, err = e.ctl("user", "add", bad, "--password-stdin",
                            stdin="pw\n")
        eq(rc, 1, "exit status for login %r" % bad)
    for bad in ("nodomain", "a@@b", "a@-b.org", "@", "a b@c.org", "x@y..z"):
        rc, _o, err = e.ctl("user", "add", "eve", "--password-stdin",
                            "--sender", bad, stdin="pw\n")
        eq(rc, 1, "exit status for pattern %r (%s)" % (bad, err.strip()))
    e.a.start()
    r = e.a.auth("carol", "pa ss:word")
    eq(r.result, AP_OK, "AUTH with the password from stdin (CRLF cut)")
    eq(r.senders, "@lists.example.org\ncarol@example.org", "senders")


@test
def test_user_show_list_json():
    e = mkenv("show", start_authd=False, messages=111, recipients=222)
    e.add_user("alice", "pw-a", "alice@example.org", "*")
    e.add_user("bob", "pw-b")
    e.ctl_ok("user", "limits", "bob", "--messages-per-hour", "7")
    out = e.ctl_ok("user", "show", "alice", "--json")
    eq(out.count("\n"), 1, "one line of JSON")
    u = json.loads(out)
    eq(sorted(u), sorted(["login", "enabled", "senders", "messages_per_hour",
                          "recipients_per_hour", "created", "updated"]),
       "fields")
    eq(u["login"], "alice", "login")
    eq(u["enabled"], True, "enabled")
    eq(u["senders"], ["*", "alice@example.org"], "senders")
    eq(u["messages_per_hour"], None, "default limit is null")
    check(isinstance(u["created"], int) and u["created"] > 1e9, "created")
    text = e.ctl_ok("user", "show", "alice")
    check("password: set" in text, "show says the password is set")
    check("argon2" not in text and "argon2" not in out, "show prints the hash")
    check("messages_per_hour: 111 (default)" in text, "default in text: %s",
          text)
    lst = json.loads(e.ctl_ok("user", "list", "--json"))
    eq([x["login"] for x in lst], ["alice", "bob"], "list order")
    eq(lst[1]["messages_per_hour"], 7, "bob's own limit")
    eq(lst[1]["recipients_per_hour"], None, "bob's default limit")
    text = e.ctl_ok("user", "list")
    check("argon2" not in text, "list prints the hash")
    check(re.search(r"^bob disabled|^bob enabled", text, re.M),
          "bob in list: %s", text)
    check(text.strip().endswith("2 users"), "count line: %s", text)
    eq(json.loads(mkenv("empty", start_authd=False).ctl_ok(
        "user", "list", "--json")), [], "empty list")


@test
def test_user_change_verbs():
    e = mkenv("verbs", start_authd=False)
    e.add_user("alice", "pw")
    key = rkey(e, "user", "alice")
    gen0 = int(e.redis.hgetall(key)["gen"])
    # every change is announced on P userchg
    sub = H.RespClient(e.redis.sock)
    sub.s.sendall(sub._enc(["SUBSCRIBE", rkey(e, "userchg")]))
    sub._read()
    e.ctl_ok("user", "senders", "alice", "add", "@Example.org")
    eq(e.redis("SMEMBERS", key + ":senders"), [b"@example.org"], "senders")
    rc, _o, err = e.ctl("user", "senders", "alice", "del", "x@y.org")
    eq(rc, 1, "del of a pattern that is not there")
    e.ctl_ok("user", "senders", "alice", "del", "@example.org")
    eq(e.redis("SMEMBERS", key + ":senders"), [], "senders after del")
    e.ctl_ok("user", "limits", "alice", "--messages-per-hour", "5",
             "--recipients-per-hour=9")
    h = e.redis.hgetall(key)
    eq((h.get("messages_per_hour"), h.get("recipients_per_hour")),
       ("5", "9"), "limits")
    out = e.ctl_ok("user", "limits", "alice", "--messages-per-hour", "0")
    check("messages_per_hour: 1000 (default)" in out, "0 = default: %s", out)
    check("messages_per_hour" not in e.redis.hgetall(key), "field removed")
    e.ctl_ok("user", "disable", "alice")
    eq(e.redis.hgetall(key)["enabled"], "0", "disabled")
    eq(json.loads(e.ctl_ok("user", "show", "alice", "--json"))["enabled"],
       False, "JSON enabled after disable")
    e.ctl_ok("user", "enable", "alice")
    eq(e.redis.hgetall(key)["enabled"], "1", "enabled")
    e.ctl_ok("user", "passwd", "alice", "--password-stdin", stdin="new\n")
    gen1 = int(e.redis.hgetall(key)["gen"])
    eq(gen1, gen0 + 7, "gen after 7 changes")
    msgs = []
    sub.s.settimeout(2)
    for _ in range(7):
        m = sub._read()
        msgs.append(m[2])
    eq(set(msgs), {b"alice"}, "userchg messages")
    out = e.ctl_ok("user", "passwd", "alice")
    check(re.fullmatch(r"\S{20}\n", out), "generated passwd output %r", out)
    e.ctl_ok("user", "del", "alice")
    eq(e.redis("EXISTS", key, key + ":senders"), 0, "keys deleted")
    eq(e.redis("SMEMBERS", rkey(e, "users")), [], "users set")
    sub.close()


@test
def test_user_unknown():
    e = mkenv("unknown", start_authd=False)
    for args in (["del", "nobody"], ["show", "nobody"],
                 ["show", "nobody", "--json"], ["disable", "nobody"],
                 ["enable", "nobody"], ["passwd", "nobody",
                                        "--password-stdin"],
                 ["senders", "nobody", "add", "*"],
                 ["limits", "nobody", "--messages-per-hour", "3"],
                 ["limits", "Nobody"]):
        rc, out, err = e.ctl("user", *args, stdin="x\n")
        eq(rc, 1, "exit status of user %s" % " ".join(args))
        eq(err.strip(), "sluicectl: no such user: nobody",
           "message of user %s" % " ".join(args))
    check(e.redis("KEYS", "*user*") == [], "unknown user verbs wrote keys")
    rc, _o, err = e.ctl("user", "add")
    eq(rc, 1, "usage exit status")
    check(err.startswith("usage:"), "usage line: %r", err)
    rc, _o, err = e.ctl("user", "limits", "x", "--messages-per-hour", "-1")
    eq(rc, 1, "negative limit")


# ---------------------------------------------------------------------------
# authd: verdicts


@test
def test_auth_ok_with_policy():
    e = mkenv("ok", messages=1000, recipients=5000)
    e.add_user("Alice@Example.org", "correct horse", "alice@example.org",
               "@example.org")
    e.ctl_ok("user", "limits", "alice@example.org", "--messages-per-hour",
             "42")
    r = e.a.auth("ALICE@example.ORG", "correct horse")
    eq(r.result, AP_OK, "result")
    eq(r.login, "alice@example.org", "login as stored")
    eq((r.messages, r.recipients), (42, 5000), "limits (own, default)")
    eq(r.senders, "@example.org\nalice@example.org", "senders")
    print("    argon2id verify: %.0f ms" % (r.elapsed * 1000))
    log = e.a.log()
    check(re.search(r"authd\[0\]: auth user=alice@example.org "
                    r"client=192.0.2.1 result=ok", log), "log line: %s",
          e.a.log_tail(5))
    check("correct horse" not in log, "the password is in the log")


@test
def test_auth_fail_unknown_disabled_and_timing():
    e = mkenv("fail", auth_failures=1000)
    e.add_user("alice", "right")
    e.add_user("dis", "right")
    e.ctl_ok("user", "disable", "dis")
    r = e.a.auth("alice", "wrong")
    eq((r.result, r.login, r.senders), (AP_FAIL, "", ""), "wrong password")
    eq(e.a.auth("nobody", "right").result, AP_FAIL, "unknown login")
    eq(e.a.auth("dis", "right").result, AP_FAIL, "disabled login")
    eq(e.a.auth("bad login\x01", "x").result, AP_FAIL, "impossible login")
    eq(e.a.auth("alice", "").result, AP_FAIL, "empty password")
    known = [e.a.auth("alice", "wrong%d" % i).elapsed for i in range(5)]
    unknown = [e.a.auth("nobody%d" % i, "wrong").elapsed for i in range(5)]
    mk, mu = statistics.median(known), statistics.median(unknown)
    print("    median wrong password %.1f ms, unknown login %.1f ms" % (
        mk * 1000, mu * 1000))
    check(mu > mk / 3 and mu < mk * 3, "unknown %.1f ms vs known %.1f ms",
          mu * 1000, mk * 1000)
    log = e.a.log()
    check(re.search(r"auth user=nobody client=192\.0\.2\.1 result=fail", log),
          "fail log line")
    check(re.search(r"user=bad\\x20login\\x01 |user=bad login\\x01", log),
          "unprintable login not escaped in the log")


@test
def test_block_per_address():
    e = mkenv("blockip", auth_failures=3, auth_block="3s")
    e.add_user("alice", "right")
    for i in range(3):
        eq(e.a.auth("x%d" % i, "wrong", client="10.0.0.1").result, AP_FAIL,
           "failure %d" % i)
    r = e.a.auth("alice", "right", client="10.0.0.1")
    eq(r.result, AP_BLOCKED, "right password from the blocked address")
    check(1 <= r.retry <= 3, "retry %d", r.retry)
    eq(r.login, "", "no login in a block")
    eq(e.a.auth("alice", "right", client="10.0.0.2").result, AP_OK,
       "from another address")
    ttl = e.redis("TTL", rkey(e, "authfail", "ip", "10.0.0.1"))
    check(0 < ttl <= 3, "counter TTL %r", ttl)
    eq(int(e.redis("GET", rkey(e, "authfail", "ip", "10.0.0.1"))), 3,
       "address counter (a blocked request is not counted)")
    check(re.search(r"client=10\.0\.0\.1 result=blocked", e.a.log()),
          "blocked log line")
    time.sleep(r.retry + 0.6)
    eq(e.a.auth("alice", "right", client="10.0.0.1").result, AP_OK,
       "after the block")


@test
def test_block_per_login():
    e = mkenv("blocklogin", auth_failures=3, auth_block="3s")
    e.add_user("alice", "right")
    e.add_user("bob", "right")
    for i in range(3):
        eq(e.a.auth("alice", "wrong", client="10.0.1.%d" % i).result,
           AP_FAIL, "failure %d" % i)
    r = e.a.auth("alice", "right", client="10.0.1.99")
    eq(r.result, AP_BLOCKED, "alice from a fresh address")
    eq(e.a.auth("bob", "right", client="10.0.1.99").result, AP_OK,
       "bob from that address")
    # unknown logins are counted (and blocked) like known ones
    for i in range(3):
        e.a.auth("ghost", "x", client="10.0.2.%d" % i)
    eq(e.a.auth("ghost", "x", client="10.0.2.99").result, AP_BLOCKED,
       "unknown login blocked")
    time.sleep(r.retry + 0.6)
    eq(e.a.auth("alice", "right", client="10.0.1.99").result, AP_OK,
       "after the block")


@test
def test_cache_and_password_change():
    e = mkenv("cache", auth_failures=1000)
    e.add_user("alice", "old-pw", "alice@example.org")
    first = e.a.auth("alice", "old-pw")
    eq(first.result, AP_OK, "first AUTH")
    second = e.a.auth("alice", "old-pw")
    eq(second.result, AP_OK, "second AUTH")
    eq(second.senders, "alice@example.org", "policy on a cache hit")
    print("    first %.1f ms (argon2id), second %.1f ms (cache)" % (
        first.elapsed * 1000, second.elapsed * 1000))
    check(second.elapsed < first.elapsed, "cache hit not faster")
    check("result=ok cache=hit" in e.a.log(), "cache hit not logged")
    # another password is no hit
    eq(e.a.auth("alice", "old-pwx").result, AP_FAIL, "wrong password")
    e.ctl_ok("user", "passwd", "alice", "--password-stdin", stdin="new-pw\n")
    eq(e.a.auth("alice", "old-pw").result, AP_FAIL, "old password at once")
    eq(e.a.auth("alice", "new-pw").result, AP_OK, "new password")
    e.ctl_ok("user", "disable", "alice")
    eq(e.a.auth("alice", "new-pw").result, AP_FAIL, "disabled at once")
    e.ctl_ok("user", "enable", "alice")
    eq(e.a.auth("alice", "new-pw").result, AP_OK, "enabled again")
    # a change behind sluicectl's back (no announcement): gen decides
    hits = e.a.log().count("cache=hit")
    e.redis("HINCRBY", rkey(e, "user", "alice"), "gen", "1")
    r = e.a.auth("alice", "new-pw")
    eq(r.result, AP_OK, "after a silent gen change")
    eq(e.a.log().count("cache=hit"), hits, "cache hits after a gen change")
    eq(e.a.auth("alice", "new-pw").result, AP_OK, "cached again")
    eq(e.a.log().count("cache=hit"), hits + 1, "cache hits after that")
    e.ctl_ok("user", "del", "alice")
    e.add_user("alice", "third-pw")
    eq(e.a.auth("alice", "new-pw").result, AP_FAIL,
       "the deleted user's password")
    eq(e.a.auth("alice", "third-pw").result, AP_OK, "re-added user")


@test
def test_rate_limits():
    e = mkenv("rate", messages=1000, recipients=5000)
    e.add_user("alice", "pw")
    e.add_user("bob", "pw")
    e.ctl_ok("user", "limits", "alice", "--messages-per-hour", "3")
    for i in range(3):
        eq(e.a.rate("alice", 1, 1), (AP_OK, 0), "message %d" % i)
    res, retry = e.a.rate("ALICE", 1, 1)
    eq(res, AP_LIMITED, "fourth message")
    check(1 <= retry <= 7200, "retry %d", retry)
    print("    limited; retry in %d s" % retry)
    hour = int(time.time()) // 3600
    k = rkey(e, "rate", "alice", "msgs", str(hour))
    eq(e.redis("GET", k), b"3", "message counter")
    ttl = e.redis("TTL", k)
    check(7000 < ttl <= 7200, "TTL %r", ttl)
    eq(e.redis("GET", rkey(e, "rate", "alice", "rcpts", str(hour))), b"3",
       "recipients not taken when refused")
    check(re.search(r"rate user=alice result=limited", e.a.log()),
          "limited log line")
    # recipients: both must fit, or nothing is taken
    e.ctl_ok("user", "limits", "bob", "--recipients-per-hour", "5")
    eq(e.a.rate("bob", 1, 3)[0], AP_OK, "3 of 5 recipients")
    eq(e.a.rate("bob", 1, 3)[0], AP_LIMITED, "3 more")
    eq(e.a.rate("bob", 1, 2)[0], AP_OK, "2 more")
    eq(e.redis("GET", rkey(e, "rate", "bob", "msgs", str(hour))), b"2",
       "messages taken only with their recipients")
    eq(e.a.rate("bob", 0, 6)[0], AP_LIMITED, "more than the limit")
    # the previous hour counts by what is left of it in the window
    into = time.time() % 3600
    prev = rkey(e, "rate", "carol", "rcpts", str(hour - 1))
    e.add_user("carol", "pw")
    e.ctl_ok("user", "limits", "carol", "--recipients-per-hour", "100")
    e.redis("SET", prev, "100")
    share = 100 * (3600 - into) / 3600
    room = int(100 - share) - 1
    if room > 1:
        eq(e.a.rate("carol", 0, room)[0], AP_OK, "room left by the window")
    eq(e.a.rate("carol", 0, 3)[0], AP_LIMITED, "over the sliding window")


@test
def test_redis_down_tempfail():
    e = mkenv("down")
    e.add_user("alice", "pw")
    eq(e.a.auth("alice", "pw").result, AP_OK, "before")
    e.redis.kill9()
    time.sleep(0.3)
    r = e.a.auth("alice", "pw")
    eq(r.result, AP_TEMPFAIL, "AUTH with Redis down")
    eq(e.a.rate("alice", 1, 1)[0], AP_TEMPFAIL, "RATE with Redis down")
    check(e.a.alive(), "authd died without Redis")
    e.redis.start()
    e.a.wait_redis(count=2)
    wait_until(lambda: e.a.auth("alice", "pw").result == AP_OK, 10,
               what="AUTH ok after Redis came back")
    eq(e.a.rate("alice", 1, 1)[0], AP_OK, "RATE after")


@test
def test_garbage_frames():
    e = mkenv("garbage")
    e.add_user("alice", "pw")
    a = e.a
    # parses as a frame, not as an AUTH_REQ: answered, nothing counted
    t0 = time.monotonic()
    rid = a.send_raw(H.T.AUTH_REQ, u32(5) + b"ab" + u32(0) + u32(0))
    f, _ = a.wait_answer(rid, t0)
    eq(AuthRes(f, 0).result, AP_TEMPFAIL, "malformed AUTH_REQ")
    rid = a.send_raw(H.T.AUTH_REQ, pstr("alice") + pstr("pw") + pstr("") +
                     b"extra")
    f, _ = a.wait_answer(rid, t0)
    eq(AuthRes(f, 0).result, AP_TEMPFAIL, "trailing bytes")
    rid = a.send_raw(H.T.RATE_REQ, pstr("alice") + u32(1) + u32(1) + u32(9))
    f, _ = a.wait_answer(rid, t0)
    eq(f.r().u32(), AP_TEMPFAIL, "malformed RATE_REQ")
    rid = a.send_raw(H.T.AUTH_REQ, pstr("a" * 300) + pstr("pw") +
                     pstr("1.2.3.4"))
    f, _ = a.wait_answer(rid, t0)
    eq(AuthRes(f, 0).result, AP_TEMPFAIL, "overlong login")
    # a type authd has nothing to do with: ignored
    a.send_raw(H.T.Q_ABORT, b"")
    eq(a.auth("alice", "pw").result, AP_OK, "still answering")
    eq(e.redis("KEYS", "*authfail*"), [], "garbage counted as failures")
    check("malformed AUTH_REQ" in a.log(), "malformed frame not logged")
    # a frame the IPC layer refuses kills the channel, not authd
    a.send_raw(H.T.AUTH_REQ, b"\x00\x00")
    wait_until(lambda: a.smtpd_eof, 5, what="channel closed")
    check(a.alive(), "authd died on a malformed frame")
    a.relink_smtpd()
    eq(a.auth("alice", "pw").result, AP_OK, "on a new channel")
    # a request whose channel dies before the answer does not hurt
    a.send_raw(H.T.AUTH_REQ, pstr("alice") + pstr("slow-wrong") +
               pstr("1.2.3.4"))
    a.relink_smtpd()
    time.sleep(0.3)
    check(a.alive(), "authd died answering a dead channel")
    eq(a.auth("alice", "pw").result, AP_OK, "after the dead channel")


@test
def test_many_at_once():
    e = mkenv("many", auth_failures=1000)
    e.add_user("alice", "pw")
    a = e.a
    t0 = time.monotonic()
    ids = [a.send_raw(H.T.AUTH_REQ, pstr("alice") +
                      pstr("pw" if i % 2 == 0 else "no%d" % i) +
                      pstr("10.9.0.%d" % i)) for i in range(12)]
    res = [AuthRes(a.wait_answer(r, t0, timeout=30)[0], 0).result
           for r in ids]
    eq(res, [AP_OK if i % 2 == 0 else AP_FAIL for i in range(12)],
       "results in order of the requests")
    print("    12 concurrent AUTHs in %.0f ms" % (
        (time.monotonic() - t0) * 1000))


@test
def test_parallel_guesses_are_throttled():
    # many wrong guesses at once must not all slip past the check before
    # the first failure is counted
    e = mkenv("parallel", auth_failures=3)
    e.add_user("alice", "pw")
    a = e.a
    t0 = time.monotonic()
    ids = [a.send_raw(H.T.AUTH_REQ, pstr("alice") + pstr("guess%d" % i) +
                      pstr("10.8.0.%d" % i)) for i in range(12)]
    res = [AuthRes(a.wait_answer(r, t0, timeout=30)[0], 0).result
           for r in ids]
    nfail = res.count(AP_FAIL)
    check(nfail <= 3, "%d guesses judged with auth_failures = 3: %r",
          nfail, res)
    check(all(x in (AP_FAIL, AP_BLOCKED) for x in res), "results %r", res)
    print("    12 parallel guesses: %d judged, %d blocked" % (
        nfail, res.count(AP_BLOCKED)))


@test
def test_parallel_right_passwords_pass():
    # an application opening many sessions at once on a cold cache: the
    # right password must not be taken for a guess
    e = mkenv("rightburst", auth_failures=3)
    e.add_user("alice", "pw")
    a = e.a
    t0 = time.monotonic()
    ids = [a.send_raw(H.T.AUTH_REQ, pstr("alice") + pstr("pw") +
                      pstr("10.7.0.1")) for i in range(12)]
    res = [AuthRes(a.wait_answer(r, t0, timeout=30)[0], 0).result
           for r in ids]
    eq(res, [AP_OK] * 12, "12 parallel right passwords")


# ---------------------------------------------------------------------------
# runner


def close_envs():
    while ENVS:
        env = ENVS.pop()
        try:
            env.close()
        except Exception:
            pass


def run_one(fn, limit, verbose):
    return itlib.run_test(fn, limit, verbose, logs=lambda: [
        (env.a.name, env.a.log_tail(40), env.a.io_errors)
        for env in ENVS if env.a is not None], after=close_envs)


def main(argv):
    verbose = "-q" not in argv
    pats = [a for a in argv if a not in ("-v", "-q")]
    for exe in ("authd", "sluicectl"):
        if not os.access(os.path.join(H.BUILD, exe), os.X_OK):
            print("FAIL setup: no %s (set SLUICE_BUILD)" %
                  os.path.join(H.BUILD, exe))
            print("0 passed, 1 failed")
            return 1
    sel = [f for f in TESTS if not pats or any(p in f.__name__
                                                for p in pats)]
    npass = nfail = 0
    for fn in sel:
        if run_one(fn, 60 * SLOW, verbose):
            npass += 1
        else:
            nfail += 1
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
