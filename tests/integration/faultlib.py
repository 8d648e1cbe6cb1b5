"""faultlib - the pieces test_faults.py is built from.

  Upstream   a scripted smarthost (aiosmtpd on 127.0.0.1) that records
             every message and report it takes, and can be stopped and
             started again on the same port;
  Gateway    a real sluiced with its embedded redis-server, started from
             a build directory, with helpers to find its children in /proc,
             kill one by PID and wait for its replacement;
  Load       client threads that submit with smtplib (STARTTLS, AUTH PLAIN,
             several messages per connection) and retry what was not
             acknowledged with 250.

Local parts of recipient addresses script the upstream's answers:

  ok-TAG      accepted
  t421-TAG    421 (and the connection closed) the first two times, then ok
  t451-TAG    451 the first two times, then ok
  p550-TAG    550 every time: the sender must get one report
  cut-TAG     the first DATA carrying it is cut in the middle of the body
  cutr-TAG    the first DATA carrying it is cut after the final dot,
              before any reply (and the message is not kept)

Every process started here is recorded by PID and stopped by that PID;
every wait is bounded in time.
"""

import asyncio
import ctypes
import email
import email.policy
import json
import logging
import os
import random
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from itlib import free_port  # noqa: E402
import itlib  # noqa: E402

logging.getLogger("mail.log").setLevel(logging.CRITICAL)

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("SLUICE_BUILD",
                       os.path.join(HERE, "..", "..", "build"))
ASAN = "asan" in BUILD
SLOW = 2.0 if ASAN else 1.0


def wait_for(what, fn, limit, step=0.05):
    """fn() until it is true, for at most limit seconds (scaled)."""
    return itlib.wait_for(what, fn, limit * SLOW, step)


TRANSIENT_TRIES = 2          # t421- and t451- fail this many times
XTEST = re.compile(rb"\r\nX-Test: ([^\r\n]+)\r\n")
XATTEMPT = re.compile(rb"\r\nX-Attempt: ([^\r\n]+)\r\n")


def kind_of(local):
    """The script word of a recipient's local part: ok, t421, ..."""
    return local.split("-", 1)[0]


# ---------------------------------------------------------------------------
# the upstream


class ScriptedSMTP(SMTP):
    """aiosmtpd's server, with a DATA that can be cut in the body."""

    async def smtp_DATA(self, arg):
        up = self.event_handler
        if self.envelope.rcpt_tos and up.cut_now(self.envelope, "cut"):
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            try:
                await self._reader.readuntil(b"\r\n")
            except Exception:
                pass
            self.transport.abort()
            return
        await super().smtp_DATA(arg)


class ScriptedController(Controller):
    def factory(self):
        return ScriptedSMTP(self.handler, decode_data=False,
                            hostname="upstream.faults.test")


class Upstream:
    """The smarthost.  Thread-safe records, read by the test:

    messages  (time, test id, attempt id, [rcpts]) per message taken
    reports   (time, raw bytes, [rcpts]) per message from <>
    refused   address -> [time of each 550]
    """

    def __init__(self, port):
        self.port = port
        self.lock = threading.Lock()
        self.messages = []
        self.reports = []
        self.refused = {}
        self.tries = {}
        self.ctl = None

    # -- running ---------------------------------------------------------

    def start(self):
        self.ctl = ScriptedController(self, hostname="127.0.0.1",
                                      port=self.port)
        self.ctl.start()

    def stop(self):
        if self.ctl is not None:
            self.ctl.stop()
            self.ctl = None

    def running(self):
        return self.ctl is not None

    # -- the script ------------------------------------------------------

    def _try(self, address):
        """count one more attempt at this address; return the count"""
        with self.lock:
            n = self.tries.get(address, 0) + 1
            self.tries[address] = n
        return n

    def cut_now(self, envelope, word):
        """should this DATA be cut (first transaction with a WORD- rcpt)?"""
        for a in envelope.rcpt_tos:
            if kind_of(a.split("@")[0]) == word and self._try(a) == 1:
                return True
        return False

    async def handle_RCPT(self, server, session, envelope, address, opts):
        kind = kind_of(address.split("@")[0])
        if kind == "p550":
            with self.lock:
                self.refused.setdefault(address, []).append(time.time())
            return "550 5.1.1 <%s>: no such user here" % address
        if kind in ("t421", "t451") and self._try(address) <= \
                TRANSIENT_TRIES:
            if kind == "t421":
                # a 421 closes the connection (RFC 5321 3.8)
                asyncio.get_running_loop().call_soon(server.transport.close)
                return "421 4.3.2 upstream going down for a moment"
            return "451 4.3.0 <%s>: try again later" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        if self.cut_now(envelope, "cutr"):
            server.transport.abort()
            return "421 4.3.2 not reached"
        data = bytes(envelope.original_content or envelope.content)
        now = time.time()
        with self.lock:
            if envelope.mail_from in ("", "<>"):
                self.reports.append((now, data, list(envelope.rcpt_tos)))
            else:
                m = XTEST.search(data)
                a = XATTEMPT.search(data)
                self.messages.append((
                    now, m.group(1).decode() if m else None,
                    a.group(1).decode() if a else None,
                    list(envelope.rcpt_tos)))
        return "250 2.0.0 Ok: upstream has it"

    def snapshot(self):
        with self.lock:
            return (list(self.messages), list(self.reports),
                    {k: list(v) for k, v in self.refused.items()})


class Report:
    """A delivery status notification as the upstream got it."""

    def __init__(self, data, envelope_to):
        self.to = envelope_to
        self.test_id = self.attempt = self.queue_id = None
        self.rcpts = []             # [(final recipient, action)]
        m = email.message_from_bytes(data, policy=email.policy.compat32)
        self.id = (m.get("Message-ID") or "").strip()
        self.type = m.get_content_type()
        for part in m.walk():
            ct = part.get_content_type()
            if ct == "message/delivery-status":
                # the per-message block, then one block per recipient
                for b in part.get_payload():
                    if b.get("X-Sluice-Queue-ID"):
                        self.queue_id = b.get("X-Sluice-Queue-ID").strip()
                    final = b.get("Final-Recipient")
                    if final:
                        self.rcpts.append((
                            final.split(";", 1)[-1].strip(),
                            (b.get("Action") or "").strip().lower()))
            elif ct in ("text/rfc822-headers", "message/rfc822"):
                payload = part.get_payload()
                if isinstance(payload, list):
                    orig = payload[0]
                else:
                    orig = email.message_from_bytes(
                        part.get_payload(decode=True) or b"",
                        policy=email.policy.compat32)
                self.test_id = (orig.get("X-Test") or "").strip() or None
                self.attempt = (orig.get("X-Attempt") or "").strip() or None


# ---------------------------------------------------------------------------
# the gateway


class Gateway:
    """sluiced from BUILD with the embedded Redis, in a temp directory."""

    KINDS = ("smtpd", "authd", "queued", "deliverd", "redis-server")

    def __init__(self, tmp, upstream_port, smtpd=2, workers=2):
        self.tmp = tmp
        self.port = free_port()
        self.conf = os.path.join(tmp, "sluice.conf")
        self.logpath = os.path.join(tmp, "sluiced.log")
        self.proc = None
        self._logf = None
        self._logpos = 0
        self._ready = set()         # pids that logged "ready (pid N)"
        with open(self.conf, "w") as f:
            f.write("""hostname = "mail.faults.test";
state_dir = "%(tmp)s/state";
pid_file = "%(tmp)s/sluiced.pid";
smtpd_processes = %(smtpd)d;
listen = ( { address = "127.0.0.1"; port = %(port)d; tls = "starttls";
             auth = "required"; } );
redis = { embedded = true; };
limits = { user_messages_per_hour = 10000000;
           user_recipients_per_hour = 100000000; };
timeouts = { connect = "3s"; upstream_command = "15s"; };
queue = { retry_min = "1s"; retry_max = "2s"; lease = "5s"; };
delivery = { workers = %(workers)d; routes = (
  { domains = [ "*" ]; smarthost = "127.0.0.1:%(up)d"; tls = "none";
    backoff = "1s"; } ); };
""" % {"tmp": tmp, "smtpd": smtpd, "port": self.port, "workers": workers,
                "up": upstream_port})

    def start(self):
        self._logf = open(self.logpath, "ab")
        self.proc = subprocess.Popen(
            [os.path.join(BUILD, "sluiced"), "-f", "-c", self.conf,
             "-x", BUILD], stdout=self._logf, stderr=self._logf,
            stdin=subprocess.DEVNULL, preexec_fn=_term_with_parent)
        wait_for("sluice ready", lambda: "sluice ready" in self.log(), 30)
        # redis-server rewrites its command line; sluiced names the socket
        m = re.search(r"redis-server: ready \(pid \d+\), socket (\S+)",
                      self.log())
        self.redis_path = m.group(1) if m else None

    def stop(self):
        """SIGTERM, then SIGKILL; and whatever children are left by PID."""
        if self.proc is None:
            return
        kids = [(p, proc_stat(p)) for p, _ in self.children()] \
            if self.alive() else []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for pid, st in kids:
            # only if that pid is still the same process (not reused)
            now = proc_stat(pid)
            if st is not None and now is not None and now[2] == st[2]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self._logf is not None:
            self._logf.close()
            self._logf = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    ROUTINE = re.compile(r" smtp (connected|tls|disconnected|authentication|"
                         r"message queued) |: auth user=|: (client|from|to|"
                         r"message-id)=|: removed$|: ready \(pid")

    def log_unusual(self, n=30):
        """the last n distinct lines that are not one message's or
        session's, each with how often it came (timestamp and pid aside)"""
        last, times = {}, {}
        for i, ln in enumerate(self.log().splitlines()):
            if self.ROUTINE.search(ln):
                continue
            key = re.sub(r"^\S+ (\S+?)\[\d+\]", r"\1", ln)
            last[key] = (i, ln)
            times[key] = times.get(key, 0) + 1
        out = sorted((i, ln, times[k]) for k, (i, ln) in last.items())[-n:]
        return [ln + (" (x%d)" % c if c > 1 else "") for _, ln, c in out]

    def ctl(self, *args, stdin=None):
        return subprocess.run(
            [os.path.join(BUILD, "sluicectl"), "-c", self.conf] + list(args),
            input=stdin, capture_output=True, timeout=30 * SLOW)

    def queue_list(self):
        p = self.ctl("queue", "list", "--json")
        if p.returncode != 0:
            return None
        return json.loads(p.stdout)

    # -- children --------------------------------------------------------

    def children(self, kind=None):
        """[(pid, kind)] of sluiced's children, from /proc"""
        out = []
        for name in os.listdir("/proc"):
            st = proc_stat(name) if name.isdigit() else None
            if st is None or st[1] != self.proc.pid:
                continue
            k = next((k for k in self.KINDS if st[0].startswith(k[:15])),
                     None)
            if k is not None and (kind is None or k == kind):
                out.append((int(name), k))
        return out

    def _scan_ready(self):
        with open(self.logpath, "rb") as f:
            f.seek(self._logpos)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1
        self._logpos += end
        for m in re.finditer(rb"ready \(pid (\d+)\)", chunk[:end]):
            self._ready.add(int(m.group(1)))

    def is_ready(self, pid, kind):
        if kind == "redis-server":
            return redis_pings(self.redis_path)
        self._scan_ready()
        return pid in self._ready

    def kill(self, kind, rng):
        """SIGKILL one process of this kind; return its pid"""
        pids = sorted(p for p, _ in self.children(kind))
        if not pids:
            raise AssertionError("no %s to kill" % kind)
        pid = rng.choice(pids)
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_replaced(self, kind, old, count, limit=30):
        """until count processes of kind run, none of them old, all ready"""
        def done():
            pids = [p for p, _ in self.children(kind)]
            return (len(pids) == count and old not in pids and
                    all(self.is_ready(p, kind) for p in pids))
        wait_for("a new %s after killing %d" % (kind, old), done, limit,
                 step=0.05)


def proc_stat(pid):
    """(comm, ppid, start time) of a process, or None"""
    try:
        with open("/proc/%s/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    rest = stat[stat.rindex(")") + 2:].split()
    return stat[stat.index("(") + 1:stat.rindex(")")], int(rest[1]), rest[19]


def _term_with_parent():
    """in the child before exec: SIGTERM when the test dies, however"""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG,
                                            signal.SIGTERM, 0, 0, 0)


def redis_pings(path):
    if path is None:
        return False
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(1)
    try:
        s.connect(path)
        s.sendall(b"PING\r\n")
        return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False
    finally:
        s.close()


# ---------------------------------------------------------------------------
# the clients


class Message:
    def __init__(self, test_id, rcpts):
        self.id = test_id
        self.rcpts = rcpts
        self.attempts = []          # (attempt id, start, end, outcome)
        self.queue_id = None
        self.acked = None           # the attempt id that got 250
        self.not_before = 0.0


class Load:
    """threads x (connect, STARTTLS, AUTH, up to per_conn messages), the
    messages spread evenly over spread seconds, or as fast as it goes"""

    def __init__(self, port, login, password, messages, threads=4,
                 per_conn=5, limit=60, spread=0.0):
        self.port = port
        self.login = login
        self.password = password
        self.messages = messages
        self.pending = list(messages)
        self.threads = threads
        self.per_conn = per_conn
        self.spread = spread
        self.deadline = time.monotonic() + limit * SLOW
        self.lock = threading.Lock()
        self.acked = 0
        self.replies = {}           # code -> count of non-250 outcomes
        self.permanent = []         # (test id, reply) of every 5xx
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        self._threads = []

    def start(self):
        """go; with spread, message i is not sent before i/n of it"""
        now = time.monotonic()
        for i, m in enumerate(self.messages):
            m.not_before = now + self.spread * i / len(self.messages)
        for i in range(self.threads):
            t = threading.Thread(target=self._run, name="client%d" % i,
                                 daemon=True)
            t.start()
            self._threads.append(t)

    def join(self):
        for t in self._threads:
            t.join(max(1.0, self.deadline - time.monotonic() + 30))
        return not any(t.is_alive() for t in self._threads)

    def done(self):
        with self.lock:
            return self.acked == len(self.messages)

    def _note(self, what):
        with self.lock:
            self.replies[what] = self.replies.get(what, 0) + 1

    def _take(self):
        """up to per_conn messages that are due; [] when all are acked"""
        while time.monotonic() < self.deadline:
            now = time.monotonic()
            with self.lock:
                if self.acked == len(self.messages) and not self.pending:
                    return []
                due = [m for m in self.pending if m.not_before <= now]
                batch = due[:self.per_conn]
                for m in batch:
                    self.pending.remove(m)
            if batch:
                return batch
            time.sleep(0.05)
        return []

    def _give_back(self, batch):
        later = time.monotonic() + 0.2 + random.random() * 0.3
        with self.lock:
            for m in batch:
                m.not_before = later
                self.pending.append(m)

    def _connect(self):
        s = smtplib.SMTP("127.0.0.1", self.port, timeout=10 * SLOW)
        try:
            s.ehlo("client.faults.test")
            s.starttls(context=self.ctx)
            s.ehlo("client.faults.test")
            s.login(self.login, self.password)
        except BaseException:
            s.close()
            raise
        return s

    def _send(self, s, m):
        attempt = "%s.%d" % (m.id, len(m.attempts) + 1)
        t0 = time.time()
        body = ("From: Alice <alice@example.org>\r\n"
                "To: %s\r\n"
                "Subject: fault test %s\r\n"
                "Message-ID: <%s@faults.test>\r\n"
                "X-Test: %s\r\n"
                "X-Attempt: %s\r\n"
                "Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
                "\r\n"
                "This is message %s.\r\n"
                "%s"
                ".a line with a leading dot\r\n"
                "the end\r\n") % (", ".join(m.rcpts), m.id, m.id, m.id,
                                  attempt, m.id,
                                  "filler text to give it some size\r\n" * 8)
        outcome = None
        try:
            code, msg = s.mail("alice@example.org")
            if code != 250:
                outcome = code
                return False, code, msg
            for r in m.rcpts:
                code, msg = s.rcpt(r)
                if code not in (250, 251):
                    outcome = code
                    s.rset()
                    return False, code, msg
            code, msg = s.data(body.encode())
            outcome = code
            if code == 250:
                qid = re.search(rb"queued as (\S+)", msg)
                m.queue_id = qid.group(1).decode() if qid else "?"
                m.acked = attempt
                return True, code, msg
            return False, code, msg
        finally:
            m.attempts.append((attempt, t0, time.time(), outcome))

    def _run(self):
        s = None
        while True:
            batch = self._take()
            if not batch:
                break
            try:
                if s is None:
                    s = self._connect()
                while batch:
                    m = batch[0]
                    ok, code, msg = self._send(s, m)
                    batch.pop(0)
                    if ok:
                        with self.lock:
                            self.acked += 1
                        continue
                    self._note(code)
                    if code >= 500:
                        with self.lock:
                            self.permanent.append((m.id, code, msg))
                    self._give_back([m])
                    if code == 421:
                        raise smtplib.SMTPServerDisconnected("421")
            except (smtplib.SMTPException, OSError, ssl.SSLError) as ex:
                self._note(type(ex).__name__ if not isinstance(
                    ex, smtplib.SMTPResponseException) else ex.smtp_code)
                if isinstance(ex, smtplib.SMTPResponseException) and \
                        ex.smtp_code >= 500:
                    with self.lock:
                        self.permanent.append(("(session)", ex.smtp_code,
                                               ex.smtp_error))
                self._give_back(batch)
                if s is not None:
                    s.close()
                s = None
                continue
            if s is not None and random.random() < 0.3:
                # sometimes a fresh connection, sometimes the old one
                try:
                    s.quit()
                except (smtplib.SMTPException, OSError):
                    pass
                s.close()
                s = None
        if s is not None:
            try:
                s.quit()
            except (smtplib.SMTPException, OSError):
                pass
            s.close()
