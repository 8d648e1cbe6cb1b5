#!/usr/bin/env python3
"""test_attacks - hostile clients against one real sluice.

One sluiced (SLUICE_BUILD) runs with its embedded redis-server, one smtpd
process (so that the per-process connection limits are exact and there is
one process whose memory to watch) and three listeners on free loopback
ports:

  sub    tls = "starttls", auth = "required"   (the port 587 role)
  smtps  tls = "implicit", auth = "required"   (the port 465 role)
  open   tls = "none", auth = "optional", trusted_networks = 10.0.0.0/8
         (127.0.0.1 is not trusted: the RCPT-level relay check)

Mail is routed to a closed loopback port, so whatever is accepted stays
in the queue, where `sluicectl queue list --json` counts it.

What is proven, attack by attack (each asserts the exact SMTP reply code
and RFC 3463 enhanced status code that daemons/smtpd/smtp_session.c and
lib/smtp_fsm.c send):

  1  no open relay without AUTH on any listener: foreign recipients, the
     %-hack (user%foreign@local) and source routes (<@a,@b:user@c>)
     are refused (530 5.7.0 at MAIL on the auth-required listeners, 530
     5.7.0 at RCPT on the open one, 554 5.5.1 at DATA); nothing queued;
  2  AUTH before STARTTLS is refused with 538 5.7.11 (PLAIN with a right
     password, LOGIN), AUTH is not offered in the clear, and the session
     stays unauthenticated;
  3  password guessing: limits.auth_failures wrong passwords (535 5.7.8,
     each after a pause) from one address block that address (421 4.7.0
     ... try again in N seconds, then close), even for another user's
     right password on the other listener; the same number of failures
     for one login from different addresses and sessions block that
     login, right password included, while others still log in;
  4  SMTP smuggling in DATA: bare LF, bare CR, and "\\n.\\n", "\\r.\\r",
     "\\n.\\r\\n", "\\r\\n.\\n" followed by a smuggled transaction are
     no end of data; the message fails with 550 5.6.0 at the real
     <CRLF>.<CRLF>; no second message is ever queued;
  5  command lines: 512 octets with the CRLF pass, 513 get 500 5.5.2, as
     do over-long MAIL and RCPT lines and a 1 MiB line (never buffered);
     an over-long AUTH response line gets 500 5.5.6; limits.errors
     errors end the session with 421 4.7.0; DATA text lines of 1000
     octets with the CRLF pass, longer ones fail with 550 5.5.6;
  6  limits.message_size (1M): SIZE= over it gets 552 5.3.4 at MAIL; a
     bigger body (DATA and BDAT) is read to its end and refused with 552
     5.3.4; the session goes on; nothing queued;
  7  thousands of pipelined RCPTs: the first limits.recipients get 250
     2.1.5, the next 1000 452 4.5.3 (RFC 5321 4.5.3.1.10: no error; as
     Postfix's recipient overshoot), and the session survives: DATA queues
     the message with exactly limits.recipients recipients; past those
     1000, every 452 counts as an error and limits.errors ends the
     session with 421 4.7.0;
  8  pipelining floods (commands written without reading a reply, with
     replies 15 times larger than the commands): smtpd's memory stays
     bounded while the client does not read, and it still serves others;
  9  slowloris: an idle client, a client silent inside the TLS handshake,
     a client sending a byte a second in a command line and one doing so
     inside DATA are all cut by the timeouts (3 s) with 421 4.4.2, or,
     in the handshake, a silent close;
  10 5000 concurrent connections, kept alive past timeouts.command with
     NOOPs (each answered 250 2.0.0): exactly limits.connections_per_ip
     (5000) get the 220 greeting and the excess the documented "421
     4.7.0 ... too many connections" (on the implicit TLS listener: a
     bare close); while they are all held (from another address) and
     after they are gone (from 127.0.0.1) a normal STARTTLS + AUTH +
     message transaction is queued; smtpd's RSS stays under 12 KiB a
     session and every descriptor comes back.

After every attack: sluiced and each child (smtpd, authd, queued,
deliverd, redis-server) are the very same PIDs (nothing crashed and was
restarted), the log has no crash or sanitizer report, and smtpd's VmRSS
stays under a bound.  At the end smtpd's descriptors are back where they
started (no descriptor leak).  smtpd's RSS and descriptor count are
printed before and after each attack.

    python3 tests/integration/test_attacks.py [-q] [NUMBER-OR-NAME ...]

Runs as root (sluice's accounts), talks only to 127.0.0.1 (clients bind
other 127.0.0.x source addresses where an attack needs distinct client
addresses), and stops every process it started by PID.
"""

import atexit
import base64
import json
import os
import re
import resource
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from itlib import Fail, check, eq, free_port  # noqa: E402

sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, "..", ".."))
BUILD = os.path.abspath(os.environ.get("SLUICE_BUILD",
                                       os.path.join(TOP, "build")))
ASAN = "asan" in BUILD
SLOW = 2.5 if ASAN else 1.0
HOSTNAME = "mail.attack.test"

# limits in the configuration, and what the attacks expect of them
MESSAGE_SIZE = 1024 * 1024          # "1M"
MAX_RCPT = 100
MAX_ERRORS = 10
AUTH_FAILURES = 3
AUTH_BLOCK = 30                     # seconds; outlives the suite
TIMEOUT = 3                         # timeouts.command and data_block
# Attack 10: 5000 connections on both builds (under AddressSanitizer the
# connection phase takes about 3 s, well inside the budget, so there is
# no need to scale it down; set SLUICE_ATTACK_CONNS to change it).
NCONN = int(os.environ.get("SLUICE_ATTACK_CONNS", "5000"))
EXTRA = 250                         # over connections_per_ip: refused
PER_IP = NCONN
MAX_CONN = NCONN + 1000

# memory bounds for smtpd (VmRSS, KiB).  ASan keeps freed memory in its
# quarantine and adds shadow memory, so the bounds are wider there.
# (ASan's quarantine alone may hold 256 MiB of freed memory.)
RSS_SLACK = (320 if ASAN else 48) * 1024        # growth per attack
RSS_PER_CONN = 24 if ASAN else 12               # KiB per held session

ESC = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})$")


# ---------------------------------------------------------------------------
# the server


def proc_status(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for ln in f:
                if ln.startswith(key + ":"):
                    return ln.split()[1]
    except OSError:
        pass
    return None


def proc_comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return None


def children_of(ppid):
    """Every process whose parent is ppid, from a walk of /proc."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        if proc_status(int(d), "PPid") == str(ppid):
            out.append(int(d))
    return sorted(out)


def rss_kib(pid):
    v = proc_status(pid, "VmRSS")
    return int(v) if v is not None else -1


def nfds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


class Sluice:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="sluice-atk.", dir="/tmp")
        os.chmod(self.tmp, 0o755)         # the children traverse it
        self.conf = os.path.join(self.tmp, "sluice.conf")
        self.logpath = os.path.join(self.tmp, "sluiced.log")
        self.proc = None
        self.started = []                 # every pid seen as ours
        ports = set()
        while len(ports) < 4:
            ports.add(free_port())
        self.sub, self.smtps, self.open, self.closed = sorted(ports)
        with open(self.conf, "w") as f:
            f.write("""\
hostname = "%(host)s";
state_dir = "%(tmp)s/state";
pid_file = "%(tmp)s/sluiced.pid";
smtpd_processes = 1;
listen = (
  { address = "127.0.0.1"; port = %(sub)d; tls = "starttls";
    auth = "required"; },
  { address = "127.0.0.1"; port = %(smtps)d; tls = "implicit";
    auth = "required"; },
  { address = "127.0.0.1"; port = %(open)d; tls = "none";
    auth = "optional"; trusted_networks = [ "10.0.0.0/8" ]; }
);
limits = { message_size = "1M"; recipients = %(rcpt)d; errors = %(err)d;
           auth_failures = %(af)d; auth_block = "%(ab)ds";
           connections = %(conn)d; connections_per_ip = %(perip)d; };
timeouts = { command = "%(to)ds"; data_block = "%(to)ds"; };
redis = { embedded = true; };
# a closed port on loopback: every accepted message stays queued
delivery = { workers = 1; routes = (
  { domains = [ "*" ]; smarthost = "127.0.0.1:%(closed)d";
    tls = "none"; } ); };
""" % {"host": HOSTNAME, "tmp": self.tmp, "sub": self.sub,
                "smtps": self.smtps, "open": self.open,
                "closed": self.closed, "rcpt": MAX_RCPT, "err": MAX_ERRORS,
                "af": AUTH_FAILURES, "ab": AUTH_BLOCK, "conn": MAX_CONN,
                "perip": PER_IP, "to": TIMEOUT})

    def start(self):
        log = open(self.logpath, "ab")
        self.proc = subprocess.Popen(
            [os.path.join(BUILD, "sluiced"), "-f", "-c", self.conf,
             "-x", BUILD], stdin=subprocess.DEVNULL, stdout=log,
            stderr=log, cwd=self.tmp)
        log.close()
        self.started.append(self.proc.pid)
        deadline = time.monotonic() + 30 * SLOW
        while "sluice ready" not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("sluiced did not become ready:\n" +
                                   self.log_tail())
            time.sleep(0.1)
        self.pids = self.snapshot()
        self.started.extend(p for ps in self.pids.values() for p in ps)
        for want in ("smtpd", "authd", "queued", "deliverd",
                     "redis-server"):
            check(self.pids.get(want), "no %s child in %r", want, self.pids)
        eq(len(self.pids["smtpd"]), 1, "smtpd processes")
        self.smtpd = self.pids["smtpd"][0]

    def snapshot(self):
        """{program: [pid, ...]} of the master's children."""
        out = {}
        for pid in children_of(self.proc.pid):
            out.setdefault(proc_comm(pid) or "?", []).append(pid)
        return {k: sorted(v) for k, v in out.items()}

    def same_processes(self):
        check(self.proc.poll() is None, "sluiced exited with %r",
              self.proc.returncode)
        now = self.snapshot()
        for name, pids in self.pids.items():
            check(now.get(name) == pids, "%s: pid %r, now %r (a crash and "
                  "a restart?)", name, pids, now.get(name))
        bad = [ln for ln in self.log().splitlines()
               if re.search(r"lost child|AddressSanitizer|runtime error:|"
                            r"CRASH LOOP|LeakSanitizer|SIGSEGV|SIGABRT",
                            ln)]
        check(not bad, "log: %s", bad[0] if bad else "")

    def log(self):
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    def stop(self):
        """SIGTERM to the master; SIGKILL to it and to the processes it
        started that are still there after 10 s.  Only our own PIDs."""
        if self.proc is not None and self.proc.poll() is None:
            kids = [p for p in children_of(self.proc.pid)]
            for k in kids:
                kids.extend(c for c in children_of(k) if c not in kids)
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10 * SLOW)
            except subprocess.TimeoutExpired:
                for p in [self.proc.pid] + kids:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except OSError:
                        pass
                self.proc.wait(5)
        self.proc = None
        if not os.environ.get("SLUICE_KEEP"):
            subprocess.run(["rm", "-rf", self.tmp], timeout=60)

    def ctl(self, *args, stdin=None):
        p = subprocess.run([os.path.join(BUILD, "sluicectl"), "-c",
                            self.conf] + list(args), input=stdin,
                           capture_output=True, timeout=30 * SLOW)
        if p.returncode != 0:
            raise Fail("sluicectl %s: exit %d: %s" % (
                " ".join(args), p.returncode,
                p.stderr.decode(errors="replace").strip()))
        return p.stdout

    def queued(self):
        return len(json.loads(self.ctl("queue", "list", "--json")))

    def recipients(self, qid):
        return json.loads(self.ctl("queue", "show", qid,
                                   "--json"))["recipients"]


SRV = None

USERS = {
    "alice": "alice-Pass-7f3a",     # the ordinary user
    "bob": "bob-Pass-29c1",         # right password from a blocked address
    "victim": "victim-Pass-5e8d",   # the login being guessed
}


# ---------------------------------------------------------------------------
# clients


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE     # sluiced's self-signed certificate
    return ctx


class Reply:
    def __init__(self, lines):
        self.lines = lines
        self.code = int(lines[0][:3])
        words = lines[-1][4:].split(" ", 1)
        self.esc = words[0] if ESC.match(words[0]) else None
        self.text = "\n".join(lines)

    def __repr__(self):
        return "<%s>" % " | ".join(ln[:120] for ln in self.lines)


class Closed(Exception):
    pass


class Client:
    """A raw SMTP client: every byte as the attack wants it."""

    def __init__(self, port, implicit=False, src=None, timeout=10,
                 greet=True):
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=timeout * SLOW,
            source_address=(src, 0) if src else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if implicit:
            self.sock = tls_context().wrap_socket(self.sock)
        self.buf = b""
        self.greeting = None
        if greet:
            self.greeting = self.expect(220, None, "greeting")
            check(self.greeting.lines[0].startswith("220 " + HOSTNAME),
                  "greeting %r", self.greeting)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _line(self):
        while b"\n" not in self.buf:
            try:
                d = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError) as ex:
                raise Closed("connection reset (%s)" % ex)
            if not d:
                raise Closed("connection closed (pending %r)" %
                             self.buf[:80])
            self.buf += d
            check(len(self.buf) < 1 << 20, "reply line over 1 MiB")
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def reply(self):
        lines = []
        while True:
            raw = self._line()
            check(raw.endswith(b"\r\n"), "reply line without CRLF: %r",
                  raw[:100])
            s = raw[:-2].decode("utf-8", "replace")
            check(re.match(r"^\d{3}([ -]|$)", s), "malformed reply %r", s)
            lines.append(s)
            if len(s) == 3 or s[3] == " ":
                return Reply(lines)

    def expect(self, code, esc=None, what="reply", text=None):
        r = self.reply()
        if code is not None:
            eq(r.code, code, "%s -> %r: code" % (what[:70], r))
        if esc is not None:
            eq(r.esc, esc, "%s -> %r: enhanced status" % (what[:70], r))
        if text is not None:
            check(text in r.text, "%s -> %r: lacks %r", what[:70], r, text)
        return r

    def cmd(self, line, code, esc=None, text=None):
        self.send(line + "\r\n")
        return self.expect(code, esc, line, text)

    def ehlo(self, name="client.attack.test"):
        r = self.cmd("EHLO " + name, 250)
        return [ln[4:] for ln in r.lines[1:]]

    def starttls(self):
        self.cmd("STARTTLS", 220, "2.0.0")
        check(self.buf == b"", "bytes after the 220 to STARTTLS")
        self.sock = tls_context().wrap_socket(self.sock)

    def auth_plain(self, login, password, code, esc=None, text=None):
        tok = base64.b64encode(b"\0" + login.encode() + b"\0" +
                               password.encode()).decode()
        self.send("AUTH PLAIN " + tok + "\r\n")
        return self.expect(code, esc, "AUTH PLAIN %s" % login, text)

    def auth_login(self, login, password, code, esc=None, text=None):
        self.cmd("AUTH LOGIN", 334, None, "VXNlcm5hbWU6")
        self.cmd(base64.b64encode(login.encode()).decode(), 334, None,
                 "UGFzc3dvcmQ6")
        self.send(base64.b64encode(password.encode()) + b"\r\n")
        return self.expect(code, esc, "AUTH LOGIN %s" % login, text)

    def is_closed(self, timeout=5):
        """The server closes within timeout (what it sends is dropped)."""
        end = time.monotonic() + timeout * SLOW
        try:
            while time.monotonic() < end:
                self.sock.settimeout(max(0.01, end - time.monotonic()))
                if not self.sock.recv(65536):
                    return True
        except (socket.timeout, TimeoutError):
            pass
        except (ConnectionResetError, ssl.SSLError, OSError):
            return True
        return False

    def silent(self, t):
        """Nothing comes within t seconds, and the connection stays."""
        if self.buf:
            return False
        self.sock.settimeout(t)
        try:
            d = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return True
        finally:
            self.sock.settimeout(10 * SLOW)
        self.buf += d
        return False


def submit_session(login="alice", src=None, port=None):
    """STARTTLS + EHLO + AUTH PLAIN on the sub listener (or smtps)."""
    if port == "smtps":
        c = Client(SRV.smtps, implicit=True, src=src)
        c.ehlo()
    else:
        c = Client(SRV.sub, src=src)
        c.ehlo()
        c.starttls()
        c.ehlo()
    c.auth_plain(login, USERS[login], 235, "2.7.0")
    return c


def message(subject, body=b"Hello.\r\n"):
    return (b"From: Alice <alice@example.org>\r\n"
            b"To: <rcpt@example.net>\r\n"
            b"Subject: " + subject.encode() + b"\r\n"
            b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
            b"Message-ID: <%d.attack@example.org>\r\n" % time.time_ns() +
            b"\r\n" + body)


def queued_id(r):
    m = re.search(r"queued as ([0-9A-Za-z]+)", r.text)
    check(m is not None, "no queue id in %r", r)
    return m.group(1)


def send_message(c, subject, rcpts=("rcpt@example.net",)):
    c.cmd("MAIL FROM:<alice@example.org>", 250, "2.1.0")
    for r in rcpts:
        c.cmd("RCPT TO:<%s>" % r, 250, "2.1.5")
    c.cmd("DATA", 354)
    c.send(message(subject) + b".\r\n")
    return queued_id(c.expect(250, "2.0.0", "end of data"))


# ---------------------------------------------------------------------------
# the attacks

ATTACKS = []


def attack(num, name, rss_allow=RSS_SLACK):
    """Register an attack; rss_allow is how far (KiB) smtpd's VmRSS may
    grow from before it to after it."""
    def reg(fn):
        ATTACKS.append((num, name, fn, rss_allow))
        return fn
    return reg


FOREIGN = ["<victim@foreign.example>",
           "<user%%foreign.example@%s>" % HOSTNAME,         # %-hack
           "<user%foreign.example@example.org>",
           "<@relay.example:user@foreign.example>",          # source routes
           "<@a.example,@b.example:user@c.example>",
           "<@%s:user@foreign.example>" % HOSTNAME,
           "<user@[192.0.2.1]>",
           "<postmaster>",
           "<user@%s>" % HOSTNAME]


@attack(1, "open relay refused on every listener without AUTH")
def attack_relay():
    before = SRV.queued()
    # auth-required STARTTLS listener, in the clear: MAIL needs STARTTLS
    with Client(SRV.sub) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<anyone@foreign.example>", 530, "5.7.0",
              "Must issue a STARTTLS command first")
        for rcpt in FOREIGN[:5]:
            c.cmd("RCPT TO:" + rcpt, 503, "5.5.1", "need MAIL command")
        c.cmd("DATA", 503, "5.5.1")
        c.cmd("NOOP", 250, "2.0.0")
    # ... and under TLS, without AUTH: MAIL needs AUTH
    with Client(SRV.sub) as c:
        c.ehlo()
        c.starttls()
        c.ehlo()
        c.cmd("MAIL FROM:<anyone@foreign.example>", 530, "5.7.0",
              "Authentication required")
        c.cmd("MAIL FROM:<>", 530, "5.7.0", "Authentication required")
        for rcpt in FOREIGN[3:9]:
            c.cmd("RCPT TO:" + rcpt, 503, "5.5.1", "need MAIL command")
        c.cmd("NOOP", 250, "2.0.0")
    # implicit TLS listener
    with Client(SRV.smtps, implicit=True) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<anyone@foreign.example>", 530, "5.7.0",
              "Authentication required")
        for rcpt in FOREIGN[:6]:
            c.cmd("RCPT TO:" + rcpt, 503, "5.5.1", "need MAIL command")
        c.send("BDAT 5 LAST\r\nhello")
        c.expect(503, "5.5.1", "BDAT without MAIL")
        c.cmd("NOOP", 250, "2.0.0")
    # the auth-optional listener, untrusted client: RCPT is the check
    for forms in (FOREIGN[:5], FOREIGN[5:]):
        with Client(SRV.open) as c:
            c.ehlo()
            c.cmd("MAIL FROM:<anyone@foreign.example>", 250, "2.1.0")
            for rcpt in forms:
                c.cmd("RCPT TO:" + rcpt, 530, "5.7.0",
                      "Authentication required")
            c.cmd("DATA", 554, "5.5.1", "no valid recipients")
            c.send("BDAT 5 LAST\r\nhello")      # read, dropped, refused
            c.expect(554, "5.5.1", "BDAT without recipients")
            c.cmd("NOOP", 250, "2.0.0")
    # a pipelined relay attempt behind a HELO, as spam tools send it
    with Client(SRV.open) as c:
        c.send("HELO spam.example\r\nMAIL FROM:<a@foreign.example>\r\n"
               "RCPT TO:<b@foreign.example>\r\nDATA\r\nSubject: x\r\n\r\n"
               "spam\r\n.\r\nQUIT\r\n")
        c.expect(250, None, "HELO")
        c.expect(250, "2.1.0", "MAIL")
        c.expect(530, "5.7.0", "RCPT")
        c.expect(554, "5.5.1", "DATA")
        # the body lines are commands now: Subject: is unknown, and so on
        r = c.expect(500, "5.5.1", "body line as a command")
        check("Subject" not in r.text, "echoed input: %r", r)
    eq(SRV.queued(), before, "messages queued by relay attempts")


@attack(2, "AUTH before STARTTLS refused")
def attack_plain_auth():
    tok = base64.b64encode(b"\0alice\0" + USERS["alice"].encode()).decode()
    for port in (SRV.sub, SRV.open):
        with Client(port) as c:
            # before EHLO too: the TLS rule comes first
            c.cmd("AUTH PLAIN " + tok, 538, "5.7.11",
                  "Encryption required")
            kw = c.ehlo()
            check(not any(k.upper().startswith("AUTH") for k in kw),
                  "AUTH offered in the clear: %r", kw)
            c.cmd("AUTH PLAIN " + tok, 538, "5.7.11")
            c.cmd("AUTH PLAIN", 538, "5.7.11")     # no 334 prompt either
            c.cmd("AUTH LOGIN", 538, "5.7.11")
            c.cmd("AUTH LOGIN " + base64.b64encode(b"alice").decode(),
                  538, "5.7.11")
            c.cmd("AUTH CRAM-MD5", 538, "5.7.11")
            if port == SRV.sub:
                c.cmd("MAIL FROM:<alice@example.org>", 530, "5.7.0",
                      "Must issue a STARTTLS command first")
            else:
                c.cmd("MAIL FROM:<alice@example.org>", 250, "2.1.0")
                c.cmd("RCPT TO:<x@foreign.example>", 530, "5.7.0",
                      "Authentication required")
            c.cmd("NOOP", 250, "2.0.0")
    # AUTH sent in the clear right behind STARTTLS is thrown away
    with Client(SRV.sub) as c:
        c.ehlo()
        c.send("STARTTLS\r\nAUTH PLAIN " + tok + "\r\n")
        c.expect(220, "2.0.0", "STARTTLS")
        c.sock = tls_context().wrap_socket(c.sock)
        check(c.silent(0.5), "the injected AUTH was answered: %r", c.buf)
        c.ehlo()
        c.cmd("MAIL FROM:<alice@example.org>", 530, "5.7.0",
              "Authentication required")


RETRY = re.compile(r"try again in (\d+) seconds")


def blocked(c, what):
    r = c.expect(421, "4.7.0", what, "too many failed authentications")
    check(r.text.startswith("421 4.7.0 " + HOSTNAME), "421 %r", r)
    m = RETRY.search(r.text)
    check(m is not None, "no retry time in %r", r)
    check(1 <= int(m.group(1)) <= AUTH_BLOCK, "retry %s s for a %d s "
          "block", m.group(1), AUTH_BLOCK)
    check(c.is_closed(), "%s: not closed after the 421", what)


def brute_address():
    """limits.auth_failures wrong passwords from 127.0.0.2, for
    different logins: the address is blocked for everyone."""
    src = "127.0.0.2"
    with Client(SRV.sub, src=src) as c:
        c.ehlo()
        c.starttls()
        c.ehlo()
        guesses = [("bob", "123456"), ("nosuchuser", "password"),
                   ("alice", "qwerty"), ("root", "letmein")]
        for i, (login, pw) in enumerate(guesses[:AUTH_FAILURES]):
            t0 = time.monotonic()
            if i % 2:
                c.auth_login(login, pw, 535, "5.7.8",
                             "authentication failed")
            else:
                c.auth_plain(login, pw, 535, "5.7.8",
                             "authentication failed")
            dt = time.monotonic() - t0
            check(dt >= 0.45, "failure %d answered after %.2f s, no pause",
                  i + 1, dt)
        # one guess more than limits.auth_failures: blocked, and closed
        login, pw = guesses[AUTH_FAILURES]
        c.send(b"AUTH PLAIN " + base64.b64encode(
            b"\0" + login.encode() + b"\0" + pw.encode()) + b"\r\n")
        blocked(c, "guess %d" % (AUTH_FAILURES + 1))
    # a new session from the same address, a right password: blocked
    tok = base64.b64encode(b"\0bob\0" + USERS["bob"].encode())
    with Client(SRV.sub, src=src) as c:
        c.ehlo()
        c.starttls()
        c.ehlo()
        c.send(b"AUTH PLAIN " + tok + b"\r\n")
        blocked(c, "right password from a blocked address (587)")
    with Client(SRV.smtps, implicit=True, src=src) as c:
        c.ehlo()
        c.send("AUTH LOGIN\r\n")
        c.expect(334)
        c.send(base64.b64encode(b"alice") + b"\r\n")
        c.expect(334)
        c.send(base64.b64encode(USERS["alice"].encode()) + b"\r\n")
        blocked(c, "right password from a blocked address (465)")
    # alice herself is not blocked: one failure for her login
    c = submit_session("alice", src="127.0.0.3")
    c.cmd("QUIT", 221, "2.0.0")
    c.close()


def brute_login():
    """limits.auth_failures wrong passwords for one login, each from
    another address and session: the login is blocked, its right
    password too, and the addresses are not."""
    for i in range(AUTH_FAILURES):
        src = "127.0.0.%d" % (10 + i)
        if i % 2:
            with Client(SRV.smtps, implicit=True, src=src) as c:
                c.ehlo()
                c.auth_plain("victim", "guess-%d" % i, 535, "5.7.8")
        else:
            with Client(SRV.sub, src=src) as c:
                c.ehlo()
                c.starttls()
                c.ehlo()
                c.auth_login("victim", "guess-%d" % i, 535, "5.7.8")
    for src, port in (("127.0.0.20", SRV.sub), ("127.0.0.21", SRV.smtps)):
        with Client(port, implicit=port == SRV.smtps, src=src) as c:
            c.ehlo()
            if port == SRV.sub:
                c.starttls()
                c.ehlo()
            tok = base64.b64encode(b"\0victim\0" + USERS["victim"].encode())
            c.send(b"AUTH PLAIN " + tok + b"\r\n")
            blocked(c, "victim's right password from %s" % src)
    # the same new address still serves another user
    c = submit_session("bob", src="127.0.0.20")
    c.cmd("NOOP", 250, "2.0.0")
    c.close()


@attack(3, "password brute force throttled per address and per login")
def attack_brute_force():
    errs = []

    def run(fn):
        try:
            fn()
        except Exception as ex:            # noqa: reported below
            errs.append("%s: %s" % (fn.__name__, ex))
    ts = [threading.Thread(target=run, args=(f,), daemon=True)
          for f in (brute_address, brute_login)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(40 * SLOW)
        check(not t.is_alive(), "a brute-force client hung")
    check(not errs, "; ".join(errs))


def data_open(c):
    c.cmd("MAIL FROM:<alice@example.org>", 250, "2.1.0")
    c.cmd("RCPT TO:<victim@example.net>", 250, "2.1.5")
    c.cmd("DATA", 354)


SMUGGLE = (b"MAIL FROM:<evil@example.org>\r\n"
           b"RCPT TO:<smuggled@example.net>\r\n"
           b"DATA\r\n"
           b"Subject: smuggled\r\n\r\nsmuggled body\r\n")


@attack(4, "SMTP smuggling in DATA refused, nothing smuggled queued")
def attack_smuggling():
    before = SRV.queued()
    nlog = SRV.log().count("smtp message queued")
    bare_lf = "550 5.6.0 Error: bare <LF> received"
    bare_cr = "550 5.6.0 Error: bare <CR> received"
    cases = [
        # (what, body, the reply at the end)
        ("bare LF in a line", b"Subject: a\nb\r\n\r\nbody\r\n", bare_lf),
        ("bare CR in a line", b"Subject: a\rb\r\n\r\nbody\r\n", bare_cr),
        ("bare LF line end", b"Subject: x\r\n\r\nline\nmore\r\n", bare_lf),
        ("<LF>.<LF> + smuggled", b"Subject: s\r\n\r\nx\n.\n" + SMUGGLE,
         bare_lf),
        ("<CR>.<CR> + smuggled", b"Subject: s\r\n\r\nx\r.\r" + SMUGGLE,
         bare_cr),
        ("<LF>.<CR><LF> + smuggled", b"Subject: s\r\n\r\nx\n.\r\n" +
         SMUGGLE, bare_lf),
        ("<CR><LF>.<LF> + smuggled", b"Subject: s\r\n\r\nx\r\n.\n" +
         SMUGGLE, bare_lf),
        ("<CR><LF>.<CR> + smuggled", b"Subject: s\r\n\r\nx\r\n.\r" +
         SMUGGLE, bare_cr),
        ("<CR>.<CR><LF> + smuggled", b"Subject: s\r\n\r\nx\r.\r\n" +
         SMUGGLE, bare_cr),
    ]
    c = None
    try:
        for i, (what, body, want) in enumerate(cases):
            if i % 4 == 0:          # stay below limits.errors
                if c is not None:
                    c.close()
                c = submit_session("alice")
            data_open(c)
            c.send(body)
            check(c.silent(0.3 * SLOW), "%s: the data ended early (server "
                  "said %r)", what, c.buf[:120])
            c.send(b"\r\n.\r\n")
            r = c.expect(550, "5.6.0", what)
            check(r.text.startswith(want), "%s: %r, expected %r", what, r,
                  want)
            c.cmd("NOOP", 250, "2.0.0")
            check(c.silent(0.1), "%s: a second reply: %r", what, c.buf)
        # BDAT: the same bytes in a chunk fail the same way
        for what, body, want in cases[3:5]:
            c.cmd("RSET", 250, "2.0.0")
            c.cmd("MAIL FROM:<alice@example.org>", 250, "2.1.0")
            c.cmd("RCPT TO:<victim@example.net>", 250, "2.1.5")
            c.send(b"BDAT %d LAST\r\n" % len(body) + body)
            r = c.expect(550, "5.6.0", "BDAT " + what)
            check(r.text.startswith(want), "BDAT %s: %r", what, r)
            c.cmd("NOOP", 250, "2.0.0")
        c.close()
        # the whole attack in one write, replies read afterwards
        c = submit_session("alice")
        c.send(b"MAIL FROM:<alice@example.org>\r\nRCPT TO:<v@example.net>\r\n"
               b"DATA\r\n")
        c.expect(250, "2.1.0")
        c.expect(250, "2.1.5")
        c.expect(354)
        c.send(b"Subject: s\r\n\r\nx\n.\n" + SMUGGLE + b".\r\nNOOP\r\n")
        c.expect(550, "5.6.0", "pipelined smuggling", "bare <LF>")
        c.expect(250, "2.0.0", "NOOP after it")
        check(c.silent(0.3), "more replies: %r", c.buf)
        # and a clean message still goes through: exactly one more
        qid = send_message(c, "after smuggling")
        c.cmd("QUIT", 221, "2.0.0")
    finally:
        if c is not None:
            c.close()
    eq(SRV.queued(), before + 1, "messages in the queue")
    eq(SRV.log().count("smtp message queued"), nlog + 1,
       "'message queued' log lines")
    eq([r["address"] for r in SRV.recipients(qid)], ["rcpt@example.net"],
       "recipients of the clean message")


@attack(5, "over-long command lines and DATA lines")
def attack_long_lines():
    with Client(SRV.open) as c:
        c.ehlo()
        # RFC 5321 4.5.3.1.4: 512 octets with the CRLF
        c.cmd("NOOP " + "x" * (510 - 5), 250, "2.0.0")
        c.cmd("NOOP " + "x" * (511 - 5), 500, "5.5.2", "Line too long")
        c.cmd("HELP " + "y" * 5000, 500, "5.5.2", "Line too long")
        # MAIL may be 652 longer, RCPT 500 longer; not more
        c.cmd("MAIL FROM:<a@example.org> ENVID=" + "e" * 1200, 500,
              "5.5.2", "Line too long")
        c.cmd("MAIL FROM:<a@example.org>", 250, "2.1.0")
        c.cmd("RCPT TO:<b@example.net> ORCPT=rfc822;" + "o" * 1000, 500,
              "5.5.2", "Line too long")
        c.cmd("RSET", 250, "2.0.0")
        # a line far beyond any buffer, written in pieces
        c.send(b"NOOP ")
        for _ in range(16):
            c.send(b"z" * 65536)
        c.send(b"\r\nNOOP\r\n")
        c.expect(500, "5.5.2", "1 MiB command line", "Line too long")
        c.expect(250, "2.0.0", "NOOP after it")
        # 5 errors so far; the tenth (limits.errors) ends the session
        for i in range(MAX_ERRORS - 6):
            c.cmd("X" * 600, 500, "5.5.2")
        c.send("NOOP " + "x" * 600 + "\r\n")
        c.expect(500, "5.5.2", "the tenth error")
        c.expect(421, "4.7.0", "past limits.errors", "too many errors")
        check(c.is_closed(), "open after limits.errors")
    # an over-long AUTH response line (RFC 4954 4: 12288 octets)
    c = Client(SRV.smtps, implicit=True)
    try:
        c.ehlo()
        c.cmd("AUTH PLAIN", 334)
        c.send(b"A" * 20000 + b"\r\n")
        c.expect(500, "5.5.6", "20000-octet AUTH line", "Line too long")
        c.cmd("AUTH LOGIN", 334)
        c.send(b"B" * 13000 + b"\r\n")
        c.expect(500, "5.5.6", "13000-octet AUTH LOGIN line")
        c.cmd("NOOP", 250, "2.0.0")
    finally:
        c.close()
    # DATA text lines: 1000 octets with the CRLF, a doubled dot not counted
    before = SRV.queued()
    c = submit_session("alice")
    try:
        data_open(c)
        c.send(message("998", b"a" * 998 + b"\r\n.." + b"b" * 997 +
                       b"\r\n") + b".\r\n")
        c.expect(250, "2.0.0", "998 octets + CRLF")
        for n in (999, 1500, 200000):
            data_open(c)
            c.send(message("long", b"z" * n + b"\r\n") + b".\r\n")
            c.expect(550, "5.5.6", "text line of %d octets + CRLF" % n,
                     "text line longer than 1000 octets")
            c.cmd("NOOP", 250, "2.0.0")
        # an endless line in DATA, never ended: the end of data still
        # counts only after a CRLF, and 2 MiB of it is not kept
        data_open(c)
        c.send(b"Subject: x\r\n\r\n")
        for _ in range(32):
            c.send(b"q" * 65536)
        c.send(b"\r\n.\r\n")
        c.expect(550, "5.5.6", "2 MiB text line")
        c.cmd("QUIT", 221, "2.0.0")
    finally:
        c.close()
    eq(SRV.queued(), before + 1, "messages in the queue")


def body_of(size):
    line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ+/\r\n"
    return line * (size // len(line) + 1)


@attack(6, "oversized message refused (limits.message_size = 1M)")
def attack_oversize():
    before = SRV.queued()
    c = submit_session("alice")
    try:
        kw = c.ehlo()
        check("SIZE %d" % MESSAGE_SIZE in kw, "EHLO lacks SIZE %d: %r",
              MESSAGE_SIZE, kw)
        c.cmd("MAIL FROM:<alice@example.org> SIZE=%d" % (MESSAGE_SIZE + 1),
              552, "5.3.4", "Message size exceeds fixed limit")
        # 20 digits, past 2^64 - 1
        c.cmd("MAIL FROM:<alice@example.org> SIZE=99999999999999999999",
              552, "5.3.4")
        c.cmd("NOOP", 250, "2.0.0")
        for size in (MESSAGE_SIZE + 4096, 24 * MESSAGE_SIZE):
            data_open(c)
            c.send(message("big", body_of(size)) + b".\r\n")
            c.expect(552, "5.3.4", "DATA of %d octets" % size,
                     "message file too big")
            c.cmd("NOOP", 250, "2.0.0")
        # BDAT: two chunks that together pass the limit
        c.cmd("MAIL FROM:<alice@example.org>", 250, "2.1.0")
        c.cmd("RCPT TO:<victim@example.net>", 250, "2.1.5")
        half = body_of(MESSAGE_SIZE // 2 + 1024)
        c.send(b"BDAT %d\r\n" % len(half) + half)
        c.expect(250, "2.0.0", "first chunk")
        c.send(b"BDAT %d LAST\r\n" % len(half) + half)
        c.expect(552, "5.3.4", "second chunk over the limit")
        c.cmd("NOOP", 250, "2.0.0")
        c.cmd("QUIT", 221, "2.0.0")
    finally:
        c.close()
    eq(SRV.queued(), before, "messages in the queue")


def pump(c, data, want, deadline):
    """Write data while reading replies (so neither side blocks); return
    the replies once want of them have come."""
    replies = []
    sock = c.sock
    sock.setblocking(False)
    view = memoryview(data)
    pos = 0
    raw = b""
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    try:
        while len(replies) < want:
            check(time.monotonic() < deadline, "no end after %d of %d "
                  "replies (last %r)", len(replies), want,
                  replies[-1] if replies else None)
            if pos == len(data):
                sel.modify(sock, selectors.EVENT_READ)
            for key, ev in sel.select(0.5):
                if ev & selectors.EVENT_WRITE and pos < len(data):
                    try:
                        pos += sock.send(view[pos:pos + 65536])
                    except (BlockingIOError, ssl.SSLWantWriteError):
                        pass
                if ev & selectors.EVENT_READ:
                    while True:
                        try:
                            d = sock.recv(65536)
                        except (BlockingIOError, ssl.SSLWantReadError):
                            break
                        if not d:
                            *lines, raw = raw.split(b"\r\n")
                            replies.extend(ln.decode("utf-8", "replace")
                                           for ln in lines)
                            replies.append("EOF")
                            return replies
                        raw += d
                    *lines, raw = raw.split(b"\r\n")
                    replies.extend(ln.decode("utf-8", "replace")
                                   for ln in lines)
    finally:
        sel.close()
        sock.setblocking(True)
        sock.settimeout(10 * SLOW)
    c.buf = raw
    return replies


RCPT_OVERSHOOT = 1000


@attack(7, "thousands of RCPTs in one transaction")
def attack_rcpt_flood():
    nrcpt = MAX_RCPT + RCPT_OVERSHOOT
    before = SRV.queued()
    c = submit_session("alice")
    try:
        c.cmd("MAIL FROM:<alice@example.org>", 250, "2.1.0")
        cmds = b"".join(b"RCPT TO:<r%d@example.net>\r\n" % i
                        for i in range(nrcpt))
        replies = pump(c, cmds, nrcpt, time.monotonic() + 30 * SLOW)
        ok = [r for r in replies if r.startswith("250 2.1.5 ")]
        full = [r for r in replies if r ==
                "452 4.5.3 Error: too many recipients"]
        other = [r for r in replies if r not in ok and r not in full]
        eq(len(ok), MAX_RCPT, "250 2.1.5 replies")
        check(replies[:MAX_RCPT] == ok, "the 250s are not the first %d",
              MAX_RCPT)
        check(not other, "%d replies after %d x 250 and %d x 452 were "
              "neither; the first: %r (the session did not survive)",
              len(other), len(ok), len(full), other[0] if other else None)
        eq(len(full), nrcpt - MAX_RCPT, "452 4.5.3 replies")
        c.cmd("DATA", 354)
        c.send(message("many recipients") + b".\r\n")
        qid = queued_id(c.expect(250, "2.0.0", "end of data"))
        c.cmd("QUIT", 221, "2.0.0")
    finally:
        c.close()
    eq(len(SRV.recipients(qid)), MAX_RCPT, "recipients stored")
    eq(SRV.queued(), before + 1, "messages in the queue")
    # past the overshoot the 452s are errors: limits.errors of them end it
    c = submit_session("alice")
    try:
        c.cmd("MAIL FROM:<alice@example.org>", 250, "2.1.0")
        n = MAX_RCPT + RCPT_OVERSHOOT + MAX_ERRORS
        cmds = b"".join(b"RCPT TO:<r%d@example.net>\r\n" % i
                        for i in range(n))
        replies = pump(c, cmds, n, time.monotonic() + 30 * SLOW)
        cut = [r for r in replies if r.startswith("421 4.7.0 ") and
               "too many errors" in r]
        check(cut, "no 421 after %d RCPTs; the last replies: %r (%d)", n,
              replies[-3:], len(replies))
    finally:
        c.close()


def flood(port, unit, total, deadline, tls=False):
    """Write total octets of unit (whole commands) without reading a
    reply, in the clear or (tls) after EHLO and STARTTLS, when the
    replies pass through smtpd's TLS layer before its socket.  Returns
    (octets the server took, open socket)."""
    if tls:
        c = Client(port)
        c.cmd("EHLO x", 250)
        c.starttls()
        sock = c.sock
        chunk = unit * (16384 // len(unit))
    else:
        sock = socket.create_connection(("127.0.0.1", port),
                                        timeout=10 * SLOW)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        f = sock.makefile("rb")
        check(f.readline().startswith(b"220 "), "no greeting")
        chunk = unit * (65536 // len(unit))
    sock.setblocking(False)
    sent = 0
    stalled = None
    while sent < total and time.monotonic() < deadline:
        try:
            sent += sock.send(chunk)
            stalled = None
        except (BlockingIOError, ssl.SSLWantWriteError,
                ssl.SSLWantReadError):
            # the server stopped reading: that is the backpressure we
            # hope for; wait a little in case it is only slow
            now = time.monotonic()
            if stalled is None:
                stalled = now
            elif now - stalled > 1.5 * SLOW:
                break
            time.sleep(0.005)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            break
    return sent, sock


@attack(8, "pipelining floods without reading replies")
def attack_pipelining_flood():
    base = rss_kib(SRV.smtpd)
    total = 8 << 20
    socks = []
    try:
        results = []
        # HELP: 6 octets in, 95 out; EHLO: 8 in, about 150 out; NOOP
        for port, unit in ((SRV.open, b"HELP\r\n"),
                           (SRV.sub, b"EHLO x\r\n"),
                           (SRV.open, b"NOOP\r\n")):
            sent, s = flood(port, unit, total,
                            time.monotonic() + 4 * SLOW)
            socks.append(s)
            time.sleep(0.3)
            results.append((unit.strip().decode(), sent, rss_kib(SRV.smtpd)))
        sent, s = flood(SRV.sub, b"HELP\r\n", total,
                        time.monotonic() + 4 * SLOW, tls=True)
        socks.append(s)
        time.sleep(0.3)
        results.append(("TLS", sent, rss_kib(SRV.smtpd)))
        peak = max(r[2] for r in results)
        for name, sent, rss in results:
            print("    %-6s flood: %6.1f MiB written unread; smtpd rss "
                  "%6.1f MiB" % (name, sent / 1048576.0, rss / 1024.0))
        # meanwhile the server serves others
        c = submit_session("alice")
        c.cmd("NOOP", 250, "2.0.0")
        c.close()
        check(peak - base <= RSS_SLACK, "smtpd grew from %d to %d KiB "
              "under %d unread floods of %d MiB (no bound on the output "
              "a client does not read)", base, peak, len(results),
              total >> 20)
    finally:
        for s in socks:
            s.close()


def slow_command(port, data):
    """Send data one octet a second; return (seconds, the reply or
    None, whether closed), bounded by 4 x the timeout."""
    c = Client(port)
    t0 = time.monotonic()
    limit = t0 + 3 * TIMEOUT + 2 * SLOW
    try:
        for b in data:
            if time.monotonic() > limit:
                break
            try:
                c.sock.send(bytes([b]))
            except OSError:
                break
            if not c.silent(1.0):
                break
        try:
            c.sock.settimeout(max(0.1, limit - time.monotonic()))
            r = c.reply()
        except (Closed, socket.timeout, TimeoutError, OSError):
            r = None
        return time.monotonic() - t0, r, c.is_closed(1)
    finally:
        c.close()


@attack(9, "slowloris cut by the timeouts")
def attack_slowloris():
    out = {}

    def idle():
        with Client(SRV.sub) as c:
            t0 = time.monotonic()
            r = c.expect(421, "4.4.2", "idle client", "timeout exceeded")
            dt = time.monotonic() - t0
            check(r.text.startswith("421 4.4.2 " + HOSTNAME), "%r", r)
            check(c.is_closed(), "idle: not closed after the 421")
            out["idle"] = dt

    def handshake():
        s = socket.create_connection(("127.0.0.1", SRV.smtps),
                                     timeout=(3 * TIMEOUT + 3) * SLOW)
        t0 = time.monotonic()
        try:
            try:
                d = s.recv(100)
            except ConnectionResetError:
                d = b""
            eq(d, b"", "silent TLS client got")
        finally:
            s.close()
        out["handshake"] = time.monotonic() - t0

    def byte_a_second_cmd():
        dt, r, closed = slow_command(SRV.open, b"EHLO " + b"s" * 200)
        check(r is not None, "byte-a-second command line: no reply "
              "after %.0f s (never cut)", dt)
        eq((r.code, r.esc), (421, "4.4.2"), "byte-a-second command: %r" % r)
        check(closed, "byte-a-second: not closed after the 421")
        out["byte/s command"] = dt

    def byte_a_second_data():
        c = submit_session("alice")
        try:
            data_open(c)
            t0 = time.monotonic()
            limit = t0 + 3 * TIMEOUT + 2 * SLOW
            r = None
            while time.monotonic() < limit:
                try:
                    c.sock.send(b"d")
                except OSError:
                    break
                if not c.silent(1.0):
                    break
            try:
                c.sock.settimeout(max(0.1, limit - time.monotonic()))
                r = c.reply()
            except (Closed, socket.timeout, TimeoutError, OSError):
                pass
            dt = time.monotonic() - t0
            check(r is not None, "byte-a-second DATA: no reply after "
                  "%.0f s (never cut)", dt)
            eq((r.code, r.esc), (421, "4.4.2"), "byte-a-second DATA: %r" % r)
            out["byte/s DATA"] = dt
        finally:
            c.close()

    errs = []

    def run(fn):
        try:
            fn()
        except Exception as ex:            # noqa: reported below
            errs.append("%s: %s" % (fn.__name__, ex))
    ts = [threading.Thread(target=run, args=(f,), daemon=True)
          for f in (idle, handshake, byte_a_second_cmd, byte_a_second_data)]
    for t in ts:
        t.start()
    for t in ts:
        t.join((6 * TIMEOUT + 10) * SLOW)
        check(not t.is_alive(), "a slowloris client hung")
    print("    cut after: " + ", ".join("%s %.1f s" % kv
                                        for kv in sorted(out.items())))
    check(not errs, "; ".join(errs))
    for what, dt in out.items():
        check(TIMEOUT - 0.5 <= dt <= (2 * TIMEOUT + 2) * SLOW,
              "%s cut after %.1f s (timeout %d s)", what, dt, TIMEOUT)


def transaction(src, subject):
    c = submit_session("alice", src=src)
    try:
        qid = send_message(c, subject)
        c.cmd("QUIT", 221, "2.0.0")
    finally:
        c.close()
    return qid


class Swarm:
    """Many non-blocking SMTP clients on one selector.  Each reads its
    greeting (220, or the 421 of the connection limits and then the
    close), then keeps its session alive with a NOOP whenever it has
    been quiet for keepalive seconds, and checks each 250 2.0.0."""

    GREET, IDLE, NOOP, REFUSED = range(4)
    OK220 = b"220 " + HOSTNAME.encode() + b" ESMTP sluice"
    NO421 = (b"421 4.7.0 " + HOSTNAME.encode() +
             b" Error: too many connections; try again later")

    def __init__(self, port, keepalive):
        self.port = port
        self.keepalive = keepalive
        self.sel = selectors.DefaultSelector()
        self.conns = {}         # fd -> [socket, state, input, since, answers]
        self.opened = self.pending = self.greeted = self.refused = 0
        self.noops = 0
        self.bad = []
        self.next_sweep = 0.0

    def open(self):
        s = socket.socket()
        s.setblocking(False)
        # close with a RST: no TIME_WAIT pile-up on either side
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     b"\x01\x00\x00\x00\x00\x00\x00\x00")
        try:
            s.connect(("127.0.0.1", self.port))
        except BlockingIOError:
            pass
        self.conns[s.fileno()] = [s, self.GREET, b"", time.monotonic(), 0]
        self.sel.register(s, selectors.EVENT_READ)
        self.opened += 1
        self.pending += 1

    def _drop(self, fd):
        c = self.conns.pop(fd)
        self.sel.unregister(c[0])
        c[0].close()

    def _line(self, fd, c, line):
        if c[1] == self.GREET:
            self.pending -= 1
            if line == self.OK220:
                c[1], c[3] = self.IDLE, time.monotonic()
                self.greeted += 1
            elif line == self.NO421:
                c[1] = self.REFUSED
                self.refused += 1
            else:
                self.bad.append("greeting %r" % line[:100])
                self._drop(fd)
        elif c[1] == self.NOOP and line == b"250 2.0.0 Ok":
            c[1], c[3] = self.IDLE, time.monotonic()
            c[4] += 1
        else:
            self.bad.append("unexpected %r" % line[:100])
            self._drop(fd)

    def turn(self, timeout=0.05):
        for key, _ in self.sel.select(timeout):
            fd = key.fd
            c = self.conns.get(fd)
            if c is None:
                continue
            try:
                d = c[0].recv(4096)
            except BlockingIOError:
                continue
            except (ConnectionResetError, ConnectionRefusedError):
                d = b""
            if not d:
                if c[1] == self.GREET:
                    self.pending -= 1
                    self.bad.append("closed without a greeting")
                elif c[1] != self.REFUSED:
                    self.bad.append("a held session was closed (%d NOOPs "
                                    "answered)" % c[4])
                self._drop(fd)
                continue
            c[2] += d
            while fd in self.conns and b"\r\n" in c[2]:
                line, c[2] = c[2].split(b"\r\n", 1)
                self._line(fd, c, line)
        now = time.monotonic()
        if now < self.next_sweep:
            return
        self.next_sweep = now + 0.2
        for fd, c in list(self.conns.items()):
            if c[1] == self.IDLE and now - c[3] >= self.keepalive:
                try:
                    c[0].send(b"NOOP\r\n")
                except OSError as ex:
                    self.bad.append("NOOP: %s" % ex)
                    self._drop(fd)
                    continue
                c[1], c[3] = self.NOOP, now
                self.noops += 1

    def held(self):
        return [c for c in self.conns.values()
                if c[1] in (self.IDLE, self.NOOP)]

    def close(self):
        for fd in list(self.conns):
            self._drop(fd)
        self.sel.close()


@attack(10, "%d concurrent connections" % NCONN,
        RSS_SLACK + PER_IP * RSS_PER_CONN)
def attack_connections():
    total = NCONN + EXTRA
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    check(soft >= total + 200, "RLIMIT_NOFILE %d for %d connections",
          soft, total)
    base_rss, base_fds = rss_kib(SRV.smtpd), nfds(SRV.smtpd)
    sw = Swarm(SRV.sub, keepalive=1.0)
    try:
        # phase 1: connect, at most 256 waiting for a greeting at a time
        t0 = time.monotonic()
        deadline = t0 + 45 * SLOW
        while sw.opened < total or sw.pending:
            check(time.monotonic() < deadline, "%d of %d connections still "
                  "without an answer after %.0f s", sw.pending + total -
                  sw.opened, total, time.monotonic() - t0)
            while sw.opened < total and sw.pending < 256:
                sw.open()
            sw.turn()
            check(not sw.bad, "%d connections misbehaved: %s", len(sw.bad),
                  sw.bad[:3])
        t_up = time.monotonic()
        print("    %d connections in %.1f s: %d greeted, %d refused with "
              "421 4.7.0" % (total, t_up - t0, sw.greeted, sw.refused))
        eq(sw.greeted, PER_IP, "connections greeted")
        eq(sw.refused, total - PER_IP, "connections refused")
        held_rss, held_fds = rss_kib(SRV.smtpd), nfds(SRV.smtpd)
        print("    smtpd with %d sessions: rss %.1f MiB (was %.1f), %d fds "
              "(was %d)" % (sw.greeted, held_rss / 1024.0, base_rss / 1024.0,
                            held_fds, base_fds))
        check(base_fds + PER_IP <= held_fds <= base_fds + PER_IP + 8,
              "smtpd has %d descriptors with %d sessions (%d before)",
              held_fds, PER_IP, base_fds)
        # phase 2: hold them past timeouts.command; meanwhile another
        # address gets a transaction through, and 127.0.0.1 no session
        box = {}

        def side():
            try:
                box["qid"] = transaction("127.0.0.50", "during the swarm")
            except Exception as ex:        # noqa: reported below
                box["err"] = "%s: %s" % (type(ex).__name__, ex)
        t = threading.Thread(target=side, daemon=True)
        t.start()
        over = []

        def one_more():
            try:
                s = socket.create_connection(("127.0.0.1", SRV.sub),
                                             timeout=5 * SLOW)
                try:
                    over.append(s.makefile("rb").read())
                finally:
                    s.close()
                s = socket.create_connection(("127.0.0.1", SRV.smtps),
                                             timeout=5 * SLOW)
                try:
                    try:
                        over.append(s.recv(100))
                    except ConnectionResetError:
                        over.append(b"")
                finally:
                    s.close()
            except Exception as ex:        # noqa: reported below
                over.append(ex)
        t2 = threading.Thread(target=one_more, daemon=True)
        t2.start()
        hold = t_up + TIMEOUT + 1.5
        while t.is_alive() or t2.is_alive() or time.monotonic() < hold:
            check(time.monotonic() < t_up + 40 * SLOW, "hold phase stuck")
            sw.turn()
            check(not sw.bad, "while held: %s", sw.bad[:3])
        check("err" not in box, "transaction while held: %s",
              box.get("err"))
        eq(over, [Swarm.NO421 + b"\r\n", b""], "one more connection "
           "from 127.0.0.1 (STARTTLS port, then implicit TLS port)")
        held = sw.held()
        eq(len(held), PER_IP, "sessions still held")
        least = min(c[4] for c in held)
        check(least >= 2, "a held session had only %d NOOPs answered",
              least)
        peak = rss_kib(SRV.smtpd)
        print("    held %.1f s past the greeting, %d NOOPs answered (at "
              "least %d each); smtpd rss %.1f MiB" % (
                  time.monotonic() - t_up, sw.noops, least, peak / 1024.0))
        check(peak - base_rss <= RSS_SLACK + PER_IP * RSS_PER_CONN,
              "smtpd rss %d KiB with %d sessions (from %d)", peak, PER_IP,
              base_rss)
    finally:
        sw.close()
    # phase 3: all gone; smtpd drops them and serves 127.0.0.1 again
    t0 = time.monotonic()
    while nfds(SRV.smtpd) > base_fds and time.monotonic() < t0 + 15 * SLOW:
        time.sleep(0.1)
    after_fds = nfds(SRV.smtpd)
    print("    after closing: smtpd rss %.1f MiB, %d fds (%.1f s to drop "
          "them)" % (rss_kib(SRV.smtpd) / 1024.0, after_fds,
                     time.monotonic() - t0))
    eq(after_fds, base_fds, "smtpd descriptors after the connections closed")
    transaction(None, "after the swarm")


# ---------------------------------------------------------------------------
# runner


def settle(base_fds, limit=10):
    """Wait until smtpd is back to base_fds descriptors (sessions of the
    last attack freed), at most limit seconds."""
    t0 = time.monotonic()
    while nfds(SRV.smtpd) > base_fds and time.monotonic() < t0 + limit:
        time.sleep(0.1)
    return nfds(SRV.smtpd)


def run_attack(num, name, fn, rss_allow, verbose, base):
    box = {}
    rss0, fds0 = rss_kib(SRV.smtpd), nfds(SRV.smtpd)

    def body():
        try:
            fn()
            box["ok"] = True
        except Exception as ex:            # noqa: every failure reported
            box["err"] = ex
            box["tb"] = traceback.format_exc()
    t = threading.Thread(target=body, daemon=True)
    t0 = time.monotonic()
    t.start()
    t.join(120 * SLOW)
    dt = time.monotonic() - t0
    reason = None
    if t.is_alive():
        reason = "timed out after %.0f s" % dt
    elif "err" in box:
        ex = box["err"]
        reason = str(ex) if isinstance(ex, Fail) else "%s: %s" % (
            type(ex).__name__, ex)
    try:
        SRV.same_processes()
    except Fail as ex:
        reason = (reason + "; " if reason else "") + str(ex)
    rss1 = rss_kib(SRV.smtpd)
    if reason is None and rss1 - rss0 > rss_allow:
        reason = "smtpd rss grew from %d to %d KiB (allowed: %d more)" % (
            rss0, rss1, rss_allow)
    fds1 = settle(fds0 if fds0 >= 0 else base)
    stats = "%.1f s; smtpd rss %.1f -> %.1f MiB, fds %d -> %d" % (
        dt, rss0 / 1024.0, rss1 / 1024.0, fds0, fds1)
    if reason is None:
        print("PASS %d %s (%s)" % (num, name, stats), flush=True)
        return True
    print("FAIL %d %s: %s (%s)" % (num, name, reason, stats), flush=True)
    if verbose:
        if "tb" in box and not isinstance(box["err"], Fail):
            print("    " + box["tb"].rstrip().replace("\n", "\n    "))
        print("    --- sluiced log (last lines)")
        for ln in SRV.log_tail(25).splitlines():
            print("    | " + ln[:300])
    return False


def cleanup():
    global SRV
    if SRV is not None:
        srv, SRV = SRV, None
        srv.stop()


def main(argv):
    global SRV
    verbose = "-q" not in argv
    pats = [a for a in argv if a != "-q"]
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return 0
    for exe in ("sluiced", "smtpd", "sluicectl"):
        if not os.access(os.path.join(BUILD, exe), os.X_OK):
            print("FAIL setup: no %s (set SLUICE_BUILD)" %
                  os.path.join(BUILD, exe))
            return 1
    if subprocess.run(["getent", "passwd", "sluice-smtpd"],
                      capture_output=True).returncode != 0:
        subprocess.run(["sh", os.path.join(TOP, "scripts", "mkusers")],
                       check=True)
    # descriptors for attack 10, here and in sluiced (which inherits them)
    need = NCONN + EXTRA + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (need, max(hard, need)))
    sel = [a for a in ATTACKS if not pats or any(
        p == str(a[0]) or p in a[2].__name__ for p in pats)]
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    atexit.register(cleanup)
    t0 = time.monotonic()
    try:
        SRV = Sluice()
        SRV.start()
        for login, pw in USERS.items():
            SRV.ctl("user", "add", login, "--password-stdin", "--sender",
                    "@example.org", stdin=pw.encode() + b"\n")
    except Exception as ex:
        print("FAIL setup: %s" % ex)
        cleanup()
        return 1
    npass = nfail = 0
    try:
        base_rss, base_fds = rss_kib(SRV.smtpd), nfds(SRV.smtpd)
        print("    smtpd pid %d: rss %.1f MiB, %d fds at the start; %s" % (
            SRV.smtpd, base_rss / 1024.0, base_fds, BUILD))
        for num, name, fn, allow in sel:
            if run_attack(num, name, fn, allow, verbose, base_fds):
                npass += 1
            else:
                nfail += 1
        end_fds = settle(base_fds, 10)
        print("    smtpd at the end: rss %.1f MiB, %d fds (%d at the "
              "start)" % (rss_kib(SRV.smtpd) / 1024.0, end_fds, base_fds))
        if end_fds > base_fds:
            print("FAIL descriptors: smtpd has %d, %d at the start" % (
                end_fds, base_fds))
            nfail += 1
    finally:
        cleanup()
    print("    (%.0f s in all)" % (time.monotonic() - t0))
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
