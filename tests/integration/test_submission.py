#!/usr/bin/env python3
"""test_submission - the submission front end with real clients.

One real sluiced (SLUICE_BUILD) runs for the whole file, with its
embedded redis-server and the self-signed certificate it makes, on four
loopback listeners:

  587 role   tls = "starttls", auth = "required"
  465 role   tls = "implicit", auth = "required"
  app relay  tls = "none", auth = "optional", trusted 127.0.0.0/8
  untrusted  tls = "starttls", auth = "optional", trusted 10.0.0.0/8
             (so 127.0.0.1 may not relay there without AUTH)

Users are made with `sluicectl user add`, messages are looked at with
`sluicectl queue list --json`, `queue show ID --json` and `queue cat
ID`.  The clients are swaks, msmtp, curl, Python smtplib and raw
sockets for the hostile dialogues.  One function per behaviour; the
runner prints `ok NAME` or `FAIL NAME: reason` and finally `N passed,
N failed`.

    python3 tests/integration/test_submission.py [NAME-SUBSTRING ...]
    python3 tests/integration/test_submission.py -q ...  (no log on failure)

Every client comes from 127.0.0.1, and authd blocks AUTH per client
address as well as per login, so the brute-force test runs last and
waits out the block before it ends.
"""

import base64
import hashlib
import json
import os
import random
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import itlib  # noqa: E402
from itlib import Fail, check, eq, free_port, children  # noqa: E402

sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, "..", ".."))
BUILD = os.path.abspath(os.environ.get("SLUICE_BUILD",
                                       os.path.join(TOP, "build")))
SLOW = 2.0 if ("asan" in BUILD or os.environ.get("SLUICE_SLOW")) else 1.0
HOSTNAME = "mail.test.example"
MESSAGE_SIZE = 25 * 1024 * 1024
ESC = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)")

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


# ---------------------------------------------------------------------------
# the server: one sluiced for the whole file


def descendants(pid):
    out = []
    for c in children(pid):
        out.append(c)
        out.extend(descendants(c))
    return out


class Server:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="sluice-sub.", dir="/tmp")
        os.chmod(self.tmp, 0o755)     # the children must traverse it
        self.conf = os.path.join(self.tmp, "sluice.conf")
        self.logpath = os.path.join(self.tmp, "sluiced.log")
        self.proc = None
        ports = set()
        while len(ports) < 4:
            ports.add(free_port())
        self.submission, self.smtps, self.relay, self.untrusted = ports
        self.closed = free_port()
        with open(self.conf, "w") as f:
            f.write("""\
hostname = "%(host)s";
state_dir = "%(tmp)s/state";
pid_file = "%(tmp)s/sluiced.pid";
smtpd_processes = 2;
listen = (
  { address = "127.0.0.1"; port = %(sub)d; tls = "starttls";
    auth = "required"; },
  { address = "127.0.0.1"; port = %(smtps)d; tls = "implicit";
    auth = "required"; },
  { address = "127.0.0.1"; port = %(relay)d; tls = "none";
    auth = "optional"; trusted_networks = [ "127.0.0.0/8" ]; },
  { address = "127.0.0.1"; port = %(untr)d; tls = "starttls";
    auth = "optional"; trusted_networks = [ "10.0.0.0/8" ]; }
);
limits = { message_size = "25M"; recipients = 5; errors = 6;
           auth_failures = 3; auth_block = "4s";
           connections_per_ip = 50; };
timeouts = { command = "3s"; };
redis = { embedded = true; };
# nothing leaves: deliveries to a closed port on loopback are deferred,
# so every accepted message stays in the queue for the checks
delivery = { workers = 1; routes = (
  { domains = [ "*" ]; smarthost = "127.0.0.1:%(closed)d"; tls = "none"; } ); };
""" % {"closed": self.closed, "host": HOSTNAME, "tmp": self.tmp, "sub": self.submission,
                "smtps": self.smtps, "relay": self.relay,
                "untr": self.untrusted})

    def start(self):
        log = open(self.logpath, "ab")
        self.proc = subprocess.Popen(
            [os.path.join(BUILD, "sluiced"), "-d", "-c", self.conf,
             "-x", BUILD], stdin=subprocess.DEVNULL, stdout=log,
            stderr=log, cwd=self.tmp)
        log.close()
        deadline = time.monotonic() + 30 * SLOW
        while "sluice ready" not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("sluiced did not become ready\n" +
                                   self.log_tail())
            time.sleep(0.1)

    def log(self):
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    def stop(self):
        """SIGTERM to the master, by PID; SIGKILL to it and to what it
        started if it is not gone within 10 s."""
        if self.proc is not None and self.proc.poll() is None:
            kids = descendants(self.proc.pid)
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
        subprocess.run(["rm", "-rf", self.tmp], timeout=60)

    def ctl(self, *args, stdin=None, timeout=30):
        p = subprocess.run([os.path.join(BUILD, "sluicectl"), "-c",
                            self.conf] + list(args),
                           input=stdin, capture_output=True,
                           timeout=timeout * SLOW)
        if p.returncode != 0:
            raise Fail("sluicectl %s: exit %d: %s" % (
                " ".join(args), p.returncode,
                p.stderr.decode(errors="replace").strip()))
        return p.stdout

    def add_user(self, login, password, *senders):
        a = ["user", "add", login, "--password-stdin"]
        for s in senders:
            a += ["--sender", s]
        self.ctl(*a, stdin=password.encode() + b"\n")

    def queue_ids(self):
        return [m["id"] for m in json.loads(self.ctl("queue", "list",
                                                     "--json"))]

    def show(self, qid):
        return json.loads(self.ctl("queue", "show", qid, "--json"))

    def cat(self, qid):
        return self.ctl("queue", "cat", qid)


SRV = None

USERS = {
    "alice": ("alice-Secret-1", ["@example.org"]),
    "logan": ("logan-Secret-2", ["logan@example.org"]),
    "swaks": ("swaks-Secret-3", ["@example.org"]),
    "ratey": ("ratey-Secret-4", ["*"]),
    "intl": ("intl-Secret-5", ["*"]),
    "carol": ("carol-Secret-6", ["carol@example.org"]),
}


def pw(login):
    return USERS[login][0]


def setup():
    global SRV
    SRV = Server()
    SRV.start()
    for login, (password, senders) in USERS.items():
        SRV.add_user(login, password, *senders)
    SRV.ctl("user", "limits", "ratey", "--messages-per-hour", "2")


def teardown():
    global SRV
    if SRV is not None:
        SRV.stop()
        SRV = None


# ---------------------------------------------------------------------------
# clients


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE   # sluiced's own self-signed certificate
    return ctx


class Reply:
    def __init__(self, lines):
        self.lines = lines
        self.code = int(lines[0][:3])
        self.text = "\n".join(lines)

    def __repr__(self):
        return "<%s>" % " | ".join(self.lines)

    def esc(self):
        """The enhanced status code of the last line, or None."""
        m = ESC.match(self.lines[-1][4:])
        return m.group(0).strip() if m else None


class EOF(Exception):
    pass


class Conn:
    """A raw SMTP client on a socket: every byte as we choose it."""

    def __init__(self, port, implicit=False, timeout=10, greet=True):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout * SLOW)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if implicit:
            self.sock = tls_context().wrap_socket(self.sock)
        self.buf = b""
        self.greeting = self.reply() if greet else None

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

    def readline(self):
        while b"\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOF("connection closed (pending %r)" % self.buf[:80])
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def reply(self):
        lines = []
        while True:
            raw = self.readline()
            check(raw.endswith(b"\r\n"), "reply line without CRLF: %r", raw)
            s = raw[:-2].decode("utf-8", "replace")
            check(re.match(r"^\d{3}([ -]|$)", s), "malformed reply %r", s)
            lines.append(s)
            if len(s) == 3 or s[3] == " ":
                return Reply(lines)

    def cmd(self, line, code=None, esc=None):
        self.send(line + "\r\n")
        return self.expect(code, esc, line)

    def expect(self, code=None, esc=None, what="reply"):
        r = self.reply()
        if code is not None:
            eq(r.code, code, "%s -> %r: code" % (what[:60], r))
        if esc is not None:
            eq(r.esc(), esc, "%s -> %r: enhanced status" % (what[:60], r))
        return r

    def ehlo(self, name="client.test"):
        return self.cmd("EHLO " + name, 250)

    def starttls(self):
        self.cmd("STARTTLS", 220, "2.0.0")
        check(self.buf == b"", "bytes after the 220 to STARTTLS: %r",
              self.buf)
        self.sock = tls_context().wrap_socket(self.sock)

    def auth_plain(self, login, password, code=235):
        tok = base64.b64encode(b"\0" + login.encode() + b"\0" +
                               password.encode()).decode()
        return self.cmd("AUTH PLAIN " + tok, code)

    def closed(self, timeout=5):
        """True if the server closes the connection within timeout
        (anything it still sends is read and dropped)."""
        self.sock.settimeout(timeout * SLOW)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (socket.timeout, TimeoutError):
            return False
        except (ConnectionResetError, ssl.SSLError, OSError):
            return True

    def silent(self, timeout):
        """Nothing arrives within timeout (and the connection stays)."""
        if self.buf:
            return False
        self.sock.settimeout(timeout)
        try:
            d = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return True
        finally:
            self.sock.settimeout(10 * SLOW)
        self.buf += d
        return False


class BioTLS:
    """TLS over memory BIOs on a connected socket, so that we choose
    what goes into each write: handshake(first) sends the client's
    Finished and the first command in one segment, as curl and msmtp
    do.  Has the recv/sendall/settimeout/close that Conn uses."""

    def __init__(self, sock):
        self.raw = sock
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = tls_context().wrap_bio(self.inc, self.out)

    def _pull(self):
        d = self.raw.recv(65536)
        if not d:
            self.inc.write_eof()
        else:
            self.inc.write(d)
        return d

    def handshake(self, first):
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                if self.out.pending:
                    self.raw.sendall(self.out.read())
                if not self._pull():
                    raise EOF("closed during the handshake")
        self.obj.write(first)
        self.raw.sendall(self.out.read())    # Finished + command, at once

    def recv(self, n):
        while True:
            try:
                return self.obj.read(n)
            except ssl.SSLWantReadError:
                if self.out.pending:
                    self.raw.sendall(self.out.read())
                if not self._pull():
                    return b""
            except ssl.SSLZeroReturnError:
                return b""

    def sendall(self, data):
        self.obj.write(data)
        self.raw.sendall(self.out.read())

    def settimeout(self, t):
        self.raw.settimeout(t)

    def close(self):
        self.raw.close()


def submission(login=None, ehlo=True):
    """A smtplib session on the STARTTLS port after STARTTLS (and AUTH
    PLAIN when login is given)."""
    s = smtplib.SMTP("127.0.0.1", SRV.submission, local_hostname="client.test",
                     timeout=30 * SLOW)
    s.ehlo()
    s.starttls(context=tls_context())
    s.ehlo()
    if login is not None:
        s.login(login, pw(login))
    return s


def message(subject, body=b"Hello.\r\n", extra=b""):
    """A message with Message-ID and Date, so that nothing is added."""
    if isinstance(body, str):
        body = body.encode()
    tag = "%d.%d" % (time.time_ns(), random.randrange(1 << 30))
    return (b"From: Alice <alice@example.org>\r\n"
            b"To: Rcpt <rcpt@example.net>\r\n"
            b"Subject: " + subject.encode() + b"\r\n"
            b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
            b"Message-ID: <" + tag.encode() + b"@example.org>\r\n" + extra +
            b"\r\n" + body)


def queued_id(text):
    m = re.search(r"queued as ([0-9A-Za-z]+)", text)
    check(m is not None, "no queue id in %r", text[-300:])
    return m.group(1)


def split_received(raw):
    """(the Received header sluice put in front, the rest)."""
    check(raw.startswith(b"Received: "), "stored message starts %r",
          raw[:60])
    pos = raw.index(b"\r\n") + 2
    while raw[pos:pos + 1] in (b"\t", b" "):
        pos = raw.index(b"\r\n", pos) + 2
    return raw[:pos], raw[pos:]


def stored_body(qid, sent):
    """Check that queue ID holds a Received header and then sent."""
    check(qid in SRV.queue_ids(), "%s not in the queue list", qid)
    rcv, rest = split_received(SRV.cat(qid))
    if rest != sent:
        raise Fail("stored message differs: %d bytes stored, %d sent; "
                   "first difference at %d" % (
                       len(rest), len(sent), next(
                           (i for i, (a, b) in enumerate(zip(rest, sent))
                            if a != b), min(len(rest), len(sent)))))
    return rcv.decode("utf-8", "replace")


def sendmail_id(s, sender, rcpts, msg, **kw):
    """smtplib sendmail, keeping the reply to the end of data."""
    got = []
    orig = s.data

    def data(m):
        r = orig(m)
        got.append(r)
        return r
    s.data = data
    try:
        refused = s.sendmail(sender, rcpts, msg, **kw)
    finally:
        s.data = orig
    eq(refused, {}, "refused recipients")
    code, text = got[-1]
    eq(code, 250, "end of data")
    return queued_id(text.decode())


def run(argv, timeout=60, stdin=None):
    p = subprocess.run(argv, input=stdin, capture_output=True,
                       timeout=timeout * SLOW)
    return (p.returncode, p.stdout.decode(errors="replace"),
            p.stderr.decode(errors="replace"))


# ---------------------------------------------------------------------------
# greeting, EHLO, enhanced status codes


@test
def test_greeting_and_ehlo():
    with Conn(SRV.submission) as c:
        eq(c.greeting.code, 220, "greeting")
        check(c.greeting.lines[0].startswith("220 " + HOSTNAME + " "),
              "greeting %r", c.greeting)
        r = c.ehlo()
        eq(r.lines[0], "250-" + HOSTNAME, "first EHLO line")
        kw = [ln[4:] for ln in r.lines[1:]]
        for want in ("PIPELINING", "SIZE %d" % MESSAGE_SIZE, "8BITMIME",
                     "ENHANCEDSTATUSCODES", "SMTPUTF8", "CHUNKING", "DSN",
                     "STARTTLS"):
            check(want in kw, "EHLO before TLS lacks %s: %r", want, kw)
        check(not any(k.startswith("AUTH") for k in kw),
              "AUTH offered in the clear: %r", kw)
        c.starttls()
        r = c.ehlo()
        kw = [ln[4:] for ln in r.lines[1:]]
        check("AUTH PLAIN LOGIN" in kw, "no AUTH PLAIN LOGIN under TLS: %r",
              kw)
        check("STARTTLS" not in kw, "STARTTLS offered again: %r", kw)
        check("SIZE %d" % MESSAGE_SIZE in kw, "SIZE under TLS: %r", kw)
        c.cmd("QUIT", 221, "2.0.0")
    # the implicit TLS listener: greeting under TLS, AUTH, no STARTTLS
    with Conn(SRV.smtps, implicit=True) as c:
        check(c.greeting.lines[0].startswith("220 " + HOSTNAME),
              "implicit TLS greeting %r", c.greeting)
        kw = [ln[4:] for ln in c.ehlo().lines[1:]]
        check("AUTH PLAIN LOGIN" in kw and "STARTTLS" not in kw,
              "EHLO on implicit TLS: %r", kw)


@test
def test_enhanced_status_codes():
    """RFC 2034: every reply but the greeting, EHLO/HELO and the 3xx
    intermediates carries an enhanced code of the same class."""
    seen = []
    # a few sessions, each staying below limits.errors
    for group in (("FOOBAR", "MAIL FROM:<a@example.org>", "HELO x",
                   "RCPT TO:<b@example.net>", "DATA", "QUIT"),
                  ("EHLO x", "BDAT 0 LAST", "MAIL FROM:<bad address>",
                   "MAIL FROM:<a@example.org> NOSUCH=1",
                   "MAIL FROM:<a@example.org>", "MAIL FROM:<a@example.org>",
                   "QUIT"),
                  ("EHLO x", "MAIL FROM:<a@example.org>", "RCPT TO:<>",
                   "DATA", "DATA x", "RSET", "NOOP", "VRFY alice", "QUIT"),
                  ("EHLO x", "EXPN staff", "HELP", "STARTTLS",
                   "AUTH PLAIN AGFsaWNlAHB3", "AUTH FOO", "QUIT")):
        with Conn(SRV.relay) as c:
            for line in group:
                seen.append((line, c.cmd(line)))
    want = {"FOOBAR": (500, "5.5.1"), "HELO x": (250, None),
            "MAIL FROM:<a@example.org> NOSUCH=1": (555, "5.5.4"),
            "MAIL FROM:<bad address>": (501, "5.1.7"),
            "BDAT 0 LAST": (503, "5.5.1"), "DATA x": (501, "5.5.4"),
            "RCPT TO:<>": (501, "5.1.3"), "RSET": (250, "2.0.0"),
            "NOOP": (250, "2.0.0"), "QUIT": (221, "2.0.0"),
            "VRFY alice": (252, "2.5.0"), "EXPN staff": (502, "5.5.1"),
            "HELP": (214, "2.0.0"), "STARTTLS": (502, "5.5.1")}
    for line, r in seen:
        if line in want:
            eq((r.code, r.esc()), want[line], "%s -> %r" % (line, r))
        if line.startswith(("HELO", "EHLO")):
            continue
        for ln in r.lines:
            m = ESC.match(ln[4:])
            check(m is not None, "%s -> %r: no enhanced status code",
                  line, ln)
            eq(m.group(1), ln[0], "%s -> %r: class" % (line, ln))
    codes = sorted({r.code for _, r in seen})
    check(len(codes) >= 8, "too few kinds of replies seen: %r", codes)


@test
def test_first_command_with_finished():
    """A command in the same segment as the client's Finished is read
    (curl and msmtp send EHLO so after STARTTLS)."""
    for port, implicit in ((SRV.submission, False), (SRV.smtps, True),
                           (SRV.untrusted, False)):
        for _ in range(3):
            with Conn(port, greet=not implicit) as c:
                if not implicit:
                    c.ehlo()
                    c.cmd("STARTTLS", 220)
                t = BioTLS(c.sock)
                t.handshake(b"EHLO finished.test\r\n" if not implicit
                            else b"")
                c.sock = t
                c.sock.settimeout(5 * SLOW)
                if implicit:
                    c.expect(220, None, "implicit TLS greeting")
                    c.send("EHLO finished.test\r\n")
                r = c.expect(250, None, "EHLO with the Finished (%d)" % port)
                check(any("AUTH PLAIN" in ln for ln in r.lines), "%r", r)
                c.cmd("NOOP", 250)


# ---------------------------------------------------------------------------
# real clients with AUTH over TLS


@test
def test_smtplib_starttls_plain():
    s = submission()
    code, _ = s.login("alice", pw("alice"))   # PLAIN: smtplib's first choice
    eq(code, 235, "AUTH PLAIN")
    version, cipher = s.sock.version(), s.sock.cipher()[0]
    msg = message("smtplib plain", b"Line one.\r\n\r\n.dot line\r\n")
    qid = sendmail_id(s, "alice@example.org", ["rcpt@example.net"], msg)
    s.quit()
    eq(len(qid), 26, "queue id length (%s)" % qid)
    rcv = stored_body(qid, msg)
    check(re.search(r"\bwith ESMTPSA\b", rcv), "no ESMTPSA: %r", rcv)
    check(version in rcv and cipher in rcv,
          "TLS %s %s not in %r", version, cipher, rcv)
    check("Authenticated sender: alice" in rcv, "no user in %r", rcv)
    check("by %s (sluice)" % HOSTNAME in rcv, "no hostname in %r", rcv)
    check("from client.test ([127.0.0.1])" in rcv, "no client in %r", rcv)
    env = SRV.show(qid)["envelope"]
    eq(env.get("from"), "alice@example.org", "envelope from")
    eq(env.get("user"), "alice", "envelope user")
    eq(env.get("proto"), "ESMTPSA", "envelope proto")
    eq([r["address"] for r in SRV.show(qid)["recipients"]],
       ["rcpt@example.net"], "recipients")


@test
def test_smtplib_auth_login():
    for initial in (False, True):
        s = submission()
        s.user, s.password = "logan", pw("logan")
        code, text = s.auth("LOGIN", s.auth_login,
                            initial_response_ok=initial)
        eq(code, 235, "AUTH LOGIN (initial response %s): %r" % (initial,
                                                                text))
        msg = message("smtplib login %s" % initial)
        qid = sendmail_id(s, "logan@example.org", ["x@example.net"], msg)
        s.quit()
        rcv = stored_body(qid, msg)
        check("Authenticated sender: logan" in rcv, "user in %r", rcv)


def subject_of(qid):
    m = re.search(rb"^Subject: (.*)\r$", SRV.cat(qid), re.M)
    return m.group(1).decode() if m else None


@test
def test_swaks():
    tmp = SRV.tmp
    runs = [("--tls", SRV.submission, "PLAIN"),
            ("--tlsc", SRV.smtps, "LOGIN")]
    for mode, port, mech in runs:
        subj = "swaks %s %s" % (mode, mech)
        path = os.path.join(tmp, "swaks.msg")
        with open(path, "wb") as f:
            f.write(message(subj))
        rc, out, err = run(["swaks", "--server", "127.0.0.1",
                            "--port", str(port), mode, "--auth", mech,
                            "--auth-user", "swaks",
                            "--auth-password", pw("swaks"),
                            "--from", "swaks@example.org",
                            "--to", "rcpt@example.net",
                            "--helo", "swaks.test",
                            "--data", "@" + path])
        eq(rc, 0, "swaks %s exit status: %s" % (mode, (out + err)[-500:]))
        check(re.search(r"<~\s+235 2\.7\.0", out), "swaks %s: no 235 in %s",
              mode, out[-600:])
        check("AUTH %s" % mech in out, "swaks did not use %s", mech)
        qid = queued_id(out)
        eq(subject_of(qid), subj, "subject of %s" % qid)


@test
def test_msmtp():
    for starttls, port in (("on", SRV.submission), ("off", SRV.smtps)):
        subj = "msmtp tls_starttls %s" % starttls
        conf = os.path.join(SRV.tmp, "msmtprc")
        with open(conf, "w") as f:
            f.write("defaults\nlogfile -\n"
                    "account sluice\nhost 127.0.0.1\nport %d\n"
                    "tls on\ntls_starttls %s\ntls_certcheck off\n"
                    "auth on\nuser alice\npassword %s\n"
                    "from alice@example.org\ndomain msmtp.test\n"
                    "account default : sluice\n" % (port, starttls,
                                                    pw("alice")))
        os.chmod(conf, 0o600)
        rc, out, err = run(["msmtp", "-C", conf, "rcpt@example.net"],
                           stdin=message(subj))
        eq(rc, 0, "msmtp (starttls %s) exit: %s" % (starttls,
                                                     (out + err)[-500:]))
        qid = queued_id(out + err)
        eq(subject_of(qid), subj, "subject of %s" % qid)


@test
def test_curl():
    for url, extra in (("smtp://127.0.0.1:%d" % SRV.submission,
                        ["--ssl-reqd"]),
                       ("smtps://127.0.0.1:%d" % SRV.smtps, [])):
        subj = "curl " + url.split(":")[0]
        path = os.path.join(SRV.tmp, "curl.msg")
        msg = message(subj)
        with open(path, "wb") as f:
            f.write(msg)
        rc, out, err = run(["curl", "-sS", "-v", "--insecure"] + extra +
                           [url, "--user", "alice:" + pw("alice"),
                            "--mail-from", "alice@example.org",
                            "--mail-rcpt", "rcpt@example.net",
                            "--upload-file", path])
        eq(rc, 0, "curl %s exit: %s" % (url, err[-600:]))
        qid = queued_id(err)
        stored_body(qid, msg)


# ---------------------------------------------------------------------------
# AUTH only over TLS; no relay without AUTH or a trusted network


@test
def test_no_auth_in_the_clear():
    for port in (SRV.untrusted, SRV.relay, SRV.submission):
        with Conn(port) as c:
            kw = [ln[4:] for ln in c.ehlo().lines[1:]]
            check(not any(k.startswith("AUTH") for k in kw),
                  "AUTH offered in the clear on %d: %r", port, kw)
            if port == SRV.relay:
                check("STARTTLS" not in kw, "STARTTLS on tls=none: %r", kw)
            r = c.auth_plain("alice", pw("alice"), code=None)
            check(500 <= r.code < 600, "AUTH in the clear: %r", r)
            check(r.esc() is not None and r.esc().startswith("5."),
                  "AUTH in the clear: %r", r)
            r = c.cmd("AUTH LOGIN")
            check(500 <= r.code < 600, "AUTH LOGIN in the clear: %r", r)
            c.cmd("NOOP", 250)
    # smtplib refuses too: it never sees AUTH advertised
    s = smtplib.SMTP("127.0.0.1", SRV.untrusted, timeout=10 * SLOW)
    try:
        s.login("alice", pw("alice"))
        raise Fail("smtplib logged in without TLS")
    except smtplib.SMTPNotSupportedError:
        pass
    finally:
        s.close()


@test
def test_auth_required_listener():
    with Conn(SRV.submission) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<alice@example.org>", 530, "5.7.0")
        c.starttls()
        c.ehlo()
        c.cmd("MAIL FROM:<alice@example.org>", 530, "5.7.0")
        c.cmd("RCPT TO:<rcpt@example.net>", 503, "5.5.1")
    with Conn(SRV.smtps, implicit=True) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<alice@example.org>", 530, "5.7.0")


@test
def test_no_open_relay():
    before = len(SRV.queue_ids())
    forms = ["<user@example.net>", "<user%other@example.net>",
             "<@relay.example:user@example.net>",
             "<@a.example,@b.example:user@example.net>",
             "<postmaster>", "<user@[192.0.2.1]>", '<"a@b"@example.net>']
    with Conn(SRV.untrusted) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<someone@example.org>", 250, "2.1.0")
        for i, rcpt in enumerate(forms):
            c.cmd("RCPT TO:" + rcpt, 530, "5.7.0")
            if i == 3:
                c.cmd("RSET", 250)
                c.cmd("MAIL FROM:<someone@example.org>", 250)
                break
    # the same under TLS (still untrusted, still no AUTH)
    with Conn(SRV.untrusted) as c:
        c.ehlo()
        c.starttls()
        c.ehlo()
        c.cmd("MAIL FROM:<>", 250)
        for rcpt in forms[3:6]:
            c.cmd("RCPT TO:" + rcpt, 530, "5.7.0")
        c.cmd("DATA", 554, "5.5.1")     # no valid recipients
        c.send("BDAT 5 LAST\r\nhello")   # read and dropped, refused
        r = c.expect()
        eq((r.code, r.esc()), (554, "5.5.1"), "BDAT without recipients")
        c.cmd("NOOP", 250)
    eq(len(SRV.queue_ids()), before, "messages in the queue")
    # with AUTH the untrusted listener relays
    with Conn(SRV.untrusted) as c:
        c.ehlo()
        c.starttls()
        c.ehlo()
        c.auth_plain("alice", pw("alice"))
        c.cmd("MAIL FROM:<alice@example.org>", 250)
        c.cmd("RCPT TO:<user@example.net>", 250, "2.1.5")
        c.cmd("RSET", 250)


@test
def test_trusted_app_relay():
    msg = message("app relay", b"Your password reset link.\r\n")
    with Conn(SRV.relay) as c:
        c.ehlo("app.internal")
        c.cmd("MAIL FROM:<noreply@example.org>", 250, "2.1.0")
        c.cmd("RCPT TO:<user%other@example.net>", 250, "2.1.5")
        c.cmd("RCPT TO:<customer@example.net>", 250, "2.1.5")
        c.cmd("DATA", 354)
        c.send(msg + b".\r\n")
        r = c.expect(250, "2.0.0")
        c.cmd("QUIT", 221)
    qid = queued_id(r.text)
    rcv = stored_body(qid, msg)
    check(re.search(r"\bwith ESMTP\b", rcv), "proto in %r", rcv)
    check("Authenticated" not in rcv, "an authenticated sender: %r", rcv)
    sh = SRV.show(qid)
    eq(sh["envelope"].get("user"), "", "user of a trusted relay")
    eq([r["address"] for r in sh["recipients"]],
       ["user%other@example.net", "customer@example.net"], "recipients")
    # smtplib through the same listener
    s = smtplib.SMTP("127.0.0.1", SRV.relay, timeout=10 * SLOW)
    msg = message("app relay smtplib")
    qid = sendmail_id(s, "app@example.org", ["c@example.net"], msg)
    s.quit()
    stored_body(qid, msg)


@test
def test_sender_patterns():
    s = submission("alice")
    for sender, code in (("mallory@example.com", 553),
                         ("alice@sub.example.org", 553),
                         ("alice@example.org.evil", 553),
                         ("ALICE@Example.ORG", 250),
                         ("anyone@example.org", 250), ("", 250)):
        s.rset()
        c, text = s.mail(sender)
        eq(c, code, "MAIL FROM:<%s>: %r" % (sender, text))
        if code == 553:
            check(text.startswith(b"5.7.1 "), "%s: %r", sender, text)
    s.rset()
    msg = message("null sender")
    qid = sendmail_id(s, "", ["x@example.net"], msg)
    eq(SRV.show(qid)["envelope"].get("from"), "", "null sender stored")
    s.quit()


# ---------------------------------------------------------------------------
# PIPELINING, CHUNKING, sizes, limits


@test
def test_pipelining():
    msg = message("pipelined", b"one write\r\n..two dots\r\n")
    with Conn(SRV.submission) as c:
        c.ehlo()
        c.starttls()
        c.ehlo()
        c.auth_plain("alice", pw("alice"))
        stuffed = msg.replace(b"\r\n.", b"\r\n..")
        c.send(b"EHLO pipe.test\r\nMAIL FROM:<alice@example.org>\r\n"
               b"RCPT TO:<a@example.net>\r\nRCPT TO:<b@example.net>\r\n"
               b"DATA\r\n" + stuffed + b".\r\nQUIT\r\n")
        r = c.expect(250)
        eq(r.lines[0], "250-" + HOSTNAME, "EHLO in the group")
        c.expect(250, "2.1.0", "MAIL")
        c.expect(250, "2.1.5", "RCPT 1")
        c.expect(250, "2.1.5", "RCPT 2")
        c.expect(354, None, "DATA")
        r = c.expect(250, "2.0.0", "end of data")
        c.expect(221, "2.0.0", "QUIT")
        check(c.closed(), "connection open after QUIT")
    qid = queued_id(r.text)
    stored_body(qid, msg)
    eq(len(SRV.show(qid)["recipients"]), 2, "recipients")


@test
def test_bdat():
    msg = message("chunked", b"first part, ")
    chunks = [msg, b"second part\r\n.\r\n", b"third\r\n"]
    with Conn(SRV.relay) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<app@example.org>", 250)
        c.cmd("RCPT TO:<x@example.net>", 250)
        for ch in chunks[:-1]:
            c.send(b"BDAT %d\r\n" % len(ch) + ch)
            r = c.expect(250, "2.0.0")
            check(str(len(ch)) in r.text, "chunk size in %r", r)
        c.send(b"BDAT %d LAST\r\n" % len(chunks[-1]) + chunks[-1])
        r = c.expect(250, "2.0.0")
        qid = queued_id(r.text)
        # and pipelined: every chunk in one write, with an empty LAST
        m2 = message("chunked pipelined")
        c.send(b"MAIL FROM:<app@example.org>\r\nRCPT TO:<y@example.net>\r\n"
               b"BDAT %d\r\n%sBDAT 0 LAST\r\n" % (len(m2), m2))
        c.expect(250, "2.1.0")
        c.expect(250, "2.1.5")
        c.expect(250, "2.0.0")
        q2 = queued_id(c.expect(250, "2.0.0").text)
        c.cmd("NOOP", 250)
    stored_body(qid, b"".join(chunks))
    stored_body(q2, m2)


def big_message(subject, size):
    """Random base64 lines of 76 characters, with lines starting with
    a dot among them, about size bytes in all."""
    n = size // 78
    b64 = base64.b64encode(os.urandom(57 * n))
    lines = [b64[i:i + 76] for i in range(0, len(b64), 76)]
    for i in range(0, n, 997):
        lines[i] = (b".", b"..", b".leading dot", b"..double")[i % 4]
    return message(subject, b"\r\n".join(lines) + b"\r\n",
                   extra=b"Content-Transfer-Encoding: base64\r\n")


@test
def test_large_message():
    msg = big_message("20 MiB", 20 * 1024 * 1024)
    t0 = time.monotonic()
    s = submission("alice")
    qid = sendmail_id(s, "alice@example.org", ["big@example.net"], msg)
    dt = time.monotonic() - t0
    raw = SRV.cat(qid)
    _, rest = split_received(raw)
    eq(len(rest), len(msg), "stored length")
    eq(hashlib.sha256(rest).hexdigest(), hashlib.sha256(msg).hexdigest(),
       "sha256 of the stored message")
    print("    %d bytes in %.1f s" % (len(msg), dt))
    # SIZE= over the limit: refused at MAIL
    big = big_message("26 MiB", 26 * 1024 * 1024)
    try:
        s.sendmail("alice@example.org", ["big@example.net"], big)
        raise Fail("26 MiB with SIZE= accepted")
    except smtplib.SMTPSenderRefused as e:
        eq(e.smtp_code, 552, "MAIL with SIZE=%d" % len(big))
        check(e.smtp_error.startswith(b"5.3.4"), "%r", e.smtp_error)
    eq(s.noop()[0], 250, "NOOP after SIZE refusal")
    # no SIZE=: read to the end, then refused, and the session goes on
    before = len(SRV.queue_ids())
    eq(s.mail("alice@example.org")[0], 250, "MAIL without SIZE")
    eq(s.rcpt("big@example.net")[0], 250, "RCPT")
    code, text = s.data(big)
    eq(code, 552, "end of a 26 MiB message: %r" % text)
    check(text.startswith(b"5.3.4"), "%r", text)
    eq(s.noop()[0], 250, "NOOP after the refused message")
    s.quit()
    eq(len(SRV.queue_ids()), before, "messages in the queue")


@test
def test_recipient_limit():
    s = submission("alice")
    eq(s.mail("alice@example.org")[0], 250, "MAIL")
    for i in range(5):
        eq(s.rcpt("r%d@example.net" % i)[0], 250, "RCPT %d" % (i + 1))
    code, text = s.rcpt("r5@example.net")
    eq(code, 452, "sixth RCPT")
    check(text.startswith(b"4.5.3"), "%r", text)
    code, text = s.data(message("five recipients"))
    eq(code, 250, "DATA with five")
    qid = queued_id(text.decode())
    eq(len(SRV.show(qid)["recipients"]), 5, "recipients stored")
    s.quit()


@test
def test_rate_limit():
    s = submission("ratey")
    for i in range(2):
        sendmail_id(s, "ratey@example.org", ["r@example.net"],
                    message("rate %d" % i))
    eq(s.mail("ratey@example.org")[0], 250, "third MAIL")
    code, text = s.rcpt("r@example.net")
    eq(code, 450, "third message's RCPT: %r" % text)
    check(text.startswith(b"4.7.1"), "%r", text)
    s.rset()
    eq(s.noop()[0], 250, "NOOP after the limit")
    s.quit()


# ---------------------------------------------------------------------------
# hostile dialogues


def data_session(c):
    c.cmd("MAIL FROM:<app@example.org>", 250)
    c.cmd("RCPT TO:<victim@example.net>", 250)
    c.cmd("DATA", 354)


@test
def test_smuggling():
    before = len(SRV.queue_ids())
    with Conn(SRV.relay) as c:
        c.ehlo()
        # a bare LF line end: refused after the end of data
        data_session(c)
        c.send(b"Subject: bare LF\nbody\r\n.\r\n")
        c.expect(550, "5.6.0", "bare LF")
        c.cmd("NOOP", 250)
        # <LF>.<LF> is no end of data, nor is <CR>.<CR>
        for end, name in ((b"\n.\n", "LF.LF"), (b"\r.\r", "CR.CR"),
                          (b"\r\n.\n", "CRLF.LF"), (b"\n.\r\n", "LF.CRLF")):
            data_session(c)
            c.send(b"Subject: smuggle " + name.encode() + b"\r\n\r\nx" +
                   end + b"MAIL FROM:<evil@example.com>\r\n"
                   b"RCPT TO:<victim@example.net>\r\nDATA\r\nevil\r\n")
            check(c.silent(0.5), "%s ended the data (server said %r)",
                  name, c.buf[:100])
            c.send(b"\r\n.\r\n")
            c.expect(550, "5.6.0", name)
            c.cmd("NOOP", 250, "2.0.0")
            c.cmd("RSET", 250)
    eq(len(SRV.queue_ids()), before, "messages queued by smuggling tests")


@test
def test_long_lines_and_errors():
    with Conn(SRV.relay) as c:
        c.ehlo()
        c.cmd("NOOP " + "x" * 1200, 500, "5.5.2")
        c.cmd("NOOP", 250)
        c.cmd("MAIL FROM:<a@example.org> " + "X" * 1300, 500)
        c.cmd("NOOP", 250)
        c.send(b"HELP " + b"y" * 40000 + b"\r\n")   # beyond any buffer
        c.expect(500, "5.5.2", "40000 octets")
        c.cmd("NOOP", 250)
        c.cmd("FOOBAR", 500, "5.5.1")
        c.cmd("NOOP", 250, "2.0.0")
        c.cmd("BOGUS", 500, "5.5.1")
        # 5 errors so far; the sixth is limits.errors: 421 and closed
        c.cmd("RCPT TO:<x@example.net>", 503, "5.5.1")
        r = c.expect(421, "4.7.0", "past limits.errors")
        check(HOSTNAME in r.text, "421 without hostname: %r", r)
        check(c.closed(), "not closed after 421")
    # text lines of 1000 octets with the CRLF (RFC 5321 4.5.3.1.6, a
    # doubled dot not counted) pass; one more fails after the end
    with Conn(SRV.relay) as c:
        c.ehlo()
        ok = message("1000 octets", b"a" * 998 + b"\r\n." + b"b" * 997 +
                     b"\r\n")
        data_session(c)
        c.send(ok.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        qid = queued_id(c.expect(250, "2.0.0", "998 octets and CRLF").text)
        stored_body(qid, ok)
        for body in (b"z" * 999 + b"\r\n", b"." + b"z" * 999 + b"\r\n",
                     b"z" * 1200 + b"\r\n", b"y" * 30000 + b"\r\n"):
            data_session(c)
            c.send(message("long line", body).replace(b"\r\n.", b"\r\n..") +
                   b".\r\n")
            c.expect(550, "5.5.6", "text line of %d octets" % len(body))
            c.cmd("NOOP", 250)
        # BDAT likewise
        for body, code in ((b"c" * 998 + b"\r\n", 250),
                           (b"c" * 999 + b"\r\n", 550)):
            c.cmd("MAIL FROM:<app@example.org>", 250)
            c.cmd("RCPT TO:<x@example.net>", 250)
            m = message("bdat line", body)
            c.send(b"BDAT %d LAST\r\n" % len(m) + m)
            c.expect(code, None, "BDAT text line of %d" % len(body))


@test
def test_starttls_injection():
    with Conn(SRV.submission) as c:
        c.ehlo()
        c.send(b"STARTTLS\r\nNOOP\r\n")
        c.expect(220, "2.0.0", "STARTTLS")
        check(c.buf == b"", "plaintext after 220: %r", c.buf)
        c.sock = tls_context().wrap_socket(c.sock)
        check(c.silent(0.7), "the injected NOOP was answered: %r", c.buf)
        r = c.ehlo()
        check(any("AUTH PLAIN" in ln for ln in r.lines), "EHLO %r", r)
        c.cmd("NOOP", 250)
    # the same with a whole transaction behind STARTTLS
    with Conn(SRV.untrusted) as c:
        c.ehlo()
        c.send(b"STARTTLS\r\nRSET\r\nMAIL FROM:<x@example.org>\r\n")
        c.expect(220)
        c.sock = tls_context().wrap_socket(c.sock)
        check(c.silent(0.5), "injected commands answered: %r", c.buf)
        c.cmd("MAIL FROM:<x@example.org>", 503, "5.5.1")   # EHLO again


@test
def test_idle_timeout():
    with Conn(SRV.relay) as c:
        t0 = time.monotonic()
        c.sock.settimeout(10 * SLOW)
        r = c.expect(421, "4.4.2", "idle")
        dt = time.monotonic() - t0
        check(2.0 <= dt <= 8 * SLOW, "cut after %.1f s", dt)
        check(c.closed(), "not closed after the timeout")
    print("    cut after %.1f s" % dt)
    # between BDAT chunks the client owes us a command: the same timeout
    with Conn(SRV.relay) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<app@example.org>", 250)
        c.cmd("RCPT TO:<x@example.net>", 250)
        c.send(b"BDAT 4\r\nabcd")
        c.expect(250, "2.0.0")
        t0 = time.monotonic()
        c.expect(421, "4.4.2", "idle between chunks")
        dt = time.monotonic() - t0
        check(2.0 <= dt <= 8 * SLOW, "cut after %.1f s between chunks", dt)


@test
def test_8bit_and_smtputf8():
    body = ("Grüße aus Köln — ½ €\r\n".encode() + bytes(range(0x80, 0x100)) +
            b"\r\n")
    msg = message("8bit", body, extra=b"Content-Type: text/plain; "
                  b"charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n")
    s = submission("intl")
    sender, rcpt = "jös@example.org", "ünï@exämple.net"
    code, text = s.mail(sender, ["SMTPUTF8", "BODY=8BITMIME"])
    eq(code, 250, "MAIL SMTPUTF8: %r" % text)
    eq(s.rcpt(rcpt)[0], 250, "RCPT UTF-8")
    code, text = s.data(msg)
    eq(code, 250, "DATA 8-bit: %r" % text)
    qid = queued_id(text.decode())
    s.quit()
    stored_body(qid, msg)
    sh = SRV.show(qid)
    eq(sh["envelope"].get("from"), sender, "stored sender")
    eq([r["address"] for r in sh["recipients"]], [rcpt], "stored recipient")
    # a UTF-8 address without SMTPUTF8 is refused
    with Conn(SRV.relay) as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<jös@example.org>")
        eq((r.code, r.esc()), (553, "5.6.7"), "UTF-8 without SMTPUTF8")


@test
def test_auth_failures_and_block():
    """Last: a block is per address, and every test is from 127.0.0.1."""
    s = submission()
    s.user, s.password = "carol", "wrong-password"
    try:
        s.auth("PLAIN", s.auth_plain)   # s.login would try LOGIN too
        raise Fail("wrong password accepted")
    except smtplib.SMTPAuthenticationError as e:
        eq(e.smtp_code, 535, "wrong password")
        check(e.smtp_error.startswith(b"5.7.8"), "%r", e.smtp_error)
    s.close()
    with Conn(SRV.submission) as c:
        c.ehlo()
        c.starttls()
        c.ehlo()
        for pwd in ("guess-1", "guess-2"):
            c.auth_plain("carol", pwd, code=535)
        r = c.auth_plain("carol", pw("carol"), code=421)
        eq(r.esc(), "4.7.0", "blocked: %r" % r)
        m = re.search(r"try again in (\d+) seconds", r.text)
        check(m is not None, "no retry time in %r", r)
        check(c.closed(), "not closed after 421")
    retry = int(m.group(1))
    check(1 <= retry <= 4, "retry %d s for a 4 s block", retry)
    # from this address, everyone is blocked meanwhile
    with Conn(SRV.smtps, implicit=True) as c:
        c.ehlo()
        c.auth_plain("alice", pw("alice"), code=421)
    time.sleep(retry + 0.6)
    s = submission("carol")
    qid = sendmail_id(s, "carol@example.org", ["x@example.net"],
                      message("after the block"))
    s.quit()
    check(qid in SRV.queue_ids(), "message after the block")
    s = submission("alice")
    s.quit()


@test
def test_reload_keeps_sessions():
    # SIGHUP re-reads the configuration and the certificate; a session
    # in the middle of its TLS conversation goes on as if nothing happened
    s = submission("alice")
    before = SRV.log().count("configuration")
    os.kill(SRV.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 15 * SLOW
    while SRV.log().count("configuration") == before:
        check(time.monotonic() < deadline, "no reload in the log")
        time.sleep(0.1)
    time.sleep(0.5)
    qid = sendmail_id(s, "alice@example.org", ["rcpt@example.net"],
                      message("after reload"))
    s.quit()
    eq(len(qid), 26, "queued after the reload")
    # and a new session gets the (re)loaded certificate
    s = submission("alice")
    s.quit()


@test
def test_no_process_lost():
    """Nothing above crashed a process (sluiced would have restarted it
    quietly) or tripped a sanitizer."""
    log = SRV.log()
    bad = [ln for ln in log.splitlines()
           if re.search(r"lost child|AddressSanitizer|runtime error:|"
                        r"CRASH LOOP|fatal", ln)]
    check(not bad, "%d bad log lines, first: %s", len(bad),
          bad[0] if bad else "")


# ---------------------------------------------------------------------------
# runner


def run_one(fn, limit, verbose):
    return itlib.run_test(fn, limit, verbose, logs=lambda: [
        ("sluiced", SRV.log_tail(30), None)])


def main(argv):
    verbose = "-q" not in argv
    pats = [a for a in argv if a not in ("-v", "-q")]
    if os.geteuid() != 0:
        print("SKIP: needs root")
        return 0
    for exe in ("sluiced", "smtpd", "sluicectl"):
        if not os.access(os.path.join(BUILD, exe), os.X_OK):
            print("FAIL setup: no %s (set SLUICE_BUILD)" %
                  os.path.join(BUILD, exe))
            print("0 passed, 1 failed")
            return 1
    if subprocess.run(["getent", "passwd", "sluice-smtpd"],
                      capture_output=True).returncode != 0:
        subprocess.run(["sh", os.path.join(TOP, "scripts", "mkusers")],
                       check=True)
    sel = [f for f in TESTS if not pats or any(p in f.__name__
                                                for p in pats)]
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    t0 = time.monotonic()
    try:
        setup()
    except Exception as ex:
        print("FAIL setup: %s" % ex)
        teardown()
        print("0 passed, 1 failed")
        return 1
    npass = nfail = 0
    try:
        for fn in sel:
            if run_one(fn, 60 * SLOW, verbose):
                npass += 1
            else:
                nfail += 1
    finally:
        teardown()
    print("    (%.0f s in all)" % (time.monotonic() - t0))
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
