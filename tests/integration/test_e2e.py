"""
test_e2e - the whole gateway, end to end, with real clients, real
daemons and real upstream servers.

One real sluiced (SLUICE_BUILD) with its embedded redis-server runs
smtpd, authd, queued and two deliverd, with two loopback listeners:

  587 role   tls = "starttls", auth = "required"
  465 role   tls = "implicit", auth = "required"

and two routes, tried in order:

  mx.test    mx = true, tls = "may": MX lookup through a real DNS server
             on 127.0.0.1 (dnsserver.py: mx.test MX 10 mx1.mx.test,
             mx1.mx.test A 127.0.0.3) to aiosmtpd on 127.0.0.3:25, which
             offers STARTTLS
  *          the smarthost: aiosmtpd on 127.0.0.1 that REQUIRES STARTTLS
             and AUTH (require_starttls, auth_required), with a
             self-signed certificate made by openssl; the route has
             tls = "verify" against that certificate (tls.ca_file),
             auth_user and an auth_password_file of mode 0600

The clients are swaks, msmtp, curl (smtp:// with --ssl-reqd, and
smtps://) and Python smtplib, each on both listeners, each logging in
as a user made with `sluicectl user add`.  What is proven, for every
message, at every upstream it was due at:

  - the body is delivered byte for byte as the client sent it: lines
    that start with ".", "..", a lone "." line inside the body, a line
    of 998 octets that starts with a dot, 8-bit (UTF-8 and ISO-8859-1)
    text, a long folded header; a UTF-8 message with UTF-8 addresses
    under SMTPUTF8; a 20 MiB attachment (generated, base64);
  - exactly one header is added, one Received at the very top (naming
    the client, TLS, the authenticated user, ESMTPSA, our hostname);
    for a message sent without Message-ID and Date, queued adds
    "Message-ID: <QUEUE-ID@hostname>" and then "Date: ..." at the end
    of the header section, just before the empty line
    (daemons/queued/store.c store_fixup), and nothing else;
  - the envelope is intact: MAIL FROM, and the recipients of one
    message that share a destination arrive in one transaction, the
    ones for mx.test at the MX host and the rest at the smarthost;
    SIZE matches what was sent, BODY=8BITMIME and SMTPUTF8 are passed
    on exactly when the client gave them;
  - at the smarthost, TLS was on (session.ssl) and deliverd logged in
    with the route's auth_user; at the MX host TLS was on (STARTTLS
    under tls = "may"); EHLO named our hostname;
  - a recipient the smarthost refuses with 550 comes back to the sender
    as exactly one RFC 3464 report (parsed with the email package);
  - every message arrives once, and the queue is empty at the end
    (`sluicectl queue list --json`); no child of sluiced died (nor got
    a sanitizer report) on the way.

Runs with Debian's python3 (aiosmtpd is a Debian package) as root (port
25 on 127.0.0.3).  Only 127.0.0.0/8 is used.  Every process it starts
is stopped by PID, every wait is bounded.  Prints "ok NAME" or "FAIL
NAME: why" per check and "N passed, N failed"; exits 1 on a failure.

    python3 tests/integration/test_e2e.py [NAME-SUBSTRING ...]
"""
import base64
import email
import email.policy
import email.utils
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
import sys
import tempfile
import threading
import time
import traceback

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import dnsserver  # noqa: E402

from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import AuthResult  # noqa: E402
from itlib import Fail, check, free_port, children  # noqa: E402
import itlib  # noqa: E402

# aiosmtpd logs every session; the checks say enough
logging.getLogger("mail.log").setLevel(logging.CRITICAL)

BUILD = os.path.abspath(os.environ.get("SLUICE_BUILD", os.path.join(
    HERE, "..", "..", "build")))
SLOW = 2.0 if "asan" in BUILD else 1.0


def wait_for(what, fn, limit):
    return itlib.wait_for(what, fn, limit * SLOW)


HOSTNAME = "mail.e2e.test"
SENDER = "alice@example.org"
PASSWORD = "e2e-%08x" % random.randrange(1 << 32)
RELAY_USER = "relay-user"
RELAY_PASSWORD = "relay-%08x" % random.randrange(1 << 32)
MX_ADDR = "127.0.0.3"
BIG = 20 * 1024 * 1024


def port_free(host, port):
    """Whether host:port (TCP) can be bound now; test_delivery binds
    127.0.0.x:25 too, for a moment per test, and may run meanwhile."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def run(argv, stdin=None, timeout=60):
    p = subprocess.run(argv, input=stdin, capture_output=True,
                       timeout=timeout * SLOW)
    return (p.returncode, p.stdout.decode(errors="replace"),
            p.stderr.decode(errors="replace"))


def queued_id(text):
    m = re.search(r"250 2\.0\.0 Ok: queued as ([0-9A-Za-z]+)", text)
    check(m is not None, "no queue id in %r", text[-400:])
    return m.group(1)


def make_cert(tmp, name):
    """A throwaway self-signed P-256 certificate for 127.0.0.1, as
    test_delivery makes them."""
    key = os.path.join(tmp, name + ".key")
    crt = os.path.join(tmp, name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                    "-out", crt, "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)
    return crt, key


# ---------------------------------------------------------------------------
# the upstream servers: aiosmtpd, recording every transaction


class Upstream:
    """aiosmtpd with STARTTLS offered (and with required=True, required
    together with AUTH); records one dict per DATA.  Refuses recipients
    whose local part is "refuse" with 550."""

    def __init__(self, name, host, port, cert, users=None, required=False):
        self.name, self.host, self.port = name, host, port
        self.users = users or {}
        self.lock = threading.Lock()
        self.got = []
        self.auth_failed = []
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert[0], cert[1])
        kw = {"tls_context": ctx, "require_starttls": required,
              "enable_SMTPUTF8": True, "data_size_limit": 64 << 20,
              "decode_data": False}
        if users:
            kw.update(authenticator=self._authenticate,
                      auth_required=required, auth_require_tls=True)
        self.ctl = Controller(self, hostname=host, port=port,
                              ready_timeout=10 * SLOW, **kw)
        self.ctl.start()

    def stop(self):
        try:
            self.ctl.stop()
        except Exception:
            pass

    def _authenticate(self, server, session, envelope, mechanism, data):
        login = data.login.decode(errors="replace")
        ok = self.users.get(login) == data.password.decode(errors="replace")
        if not ok:
            with self.lock:
                self.auth_failed.append(login)
        return AuthResult(success=ok, auth_data=data)

    async def handle_EHLO(self, server, session, envelope, hostname,
                          responses):
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address.startswith("refuse@"):
            return "550 5.1.1 <%s>: no such user here" % address
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        auth = session.auth_data
        rec = {"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
               "content": bytes(envelope.original_content),
               "mail_options": list(envelope.mail_options),
               "smtputf8": envelope.smtp_utf8,
               "tls": session.ssl is not None,
               "cipher": (session.ssl or {}).get("cipher"),
               "authenticated": bool(session.authenticated),
               "login": (auth.login.decode(errors="replace")
                         if auth is not None and
                         getattr(auth, "login", None) else None),
               "helo": session.host_name,
               "local": server.transport.get_extra_info("sockname")}
        with self.lock:
            self.got.append(rec)
            n = len(self.got)
        return "250 2.0.0 Ok: %s has it as U%d" % (self.name, n)

    def find(self, tag, sender=SENDER):
        with self.lock:
            return [g for g in self.got if g["from"] == sender and
                    tag_of(g["content"]) == tag]

    def bounces(self):
        with self.lock:
            return [g for g in self.got if g["from"] in ("", "<>")]


SUBJ = re.compile(rb"^Subject: [^\r\n]*\[(e2e-[0-9a-z-]+)\]", re.M)


def tag_of(content):
    head = content[:content.find(b"\r\n\r\n")]
    m = SUBJ.search(head)
    return m.group(1).decode() if m else None


# ---------------------------------------------------------------------------
# the gateway


def descendants(pid):
    out = []
    for c in children(pid):
        out.append(c)
        out.extend(descendants(c))
    return out


def start_time(pid):
    """the start time of a process (field 22 of /proc/PID/stat), so that
    a PID used again by another process is never signalled"""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


class Gateway:
    def __init__(self, tmp, smarthost, dns, ca, pwfile):
        self.tmp = tmp
        self.submission, self.smtps = free_port(), free_port()
        while self.smtps == self.submission:
            self.smtps = free_port()
        self.conf = os.path.join(tmp, "sluice.conf")
        with open(self.conf, "w") as f:
            f.write("""hostname = "%(host)s";
state_dir = "%(tmp)s/state";
pid_file = "%(tmp)s/sluiced.pid";
smtpd_processes = 1;
listen = (
  { address = "127.0.0.1"; port = %(sub)d; tls = "starttls";
    auth = "required"; },
  { address = "127.0.0.1"; port = %(smtps)d; tls = "implicit";
    auth = "required"; } );
tls = { ca_file = "%(ca)s"; };
redis = { embedded = true; };
limits = { message_size = "40M"; };
timeouts = { connect = "5s"; };
queue = { retry_min = "1s"; retry_max = "2s"; };
%(dns)s
delivery = { workers = 2; routes = (
  { domains = [ "mx.test" ]; mx = true; tls = "may"; },
  { domains = [ "*" ]; smarthost = "127.0.0.1:%(up)d"; tls = "verify";
    auth_user = "%(user)s"; auth_password_file = "%(pw)s"; } ); };
""" % {"host": HOSTNAME, "tmp": tmp, "sub": self.submission,
                "smtps": self.smtps, "ca": ca, "dns": dns.conf().strip(),
                "up": smarthost.port, "user": RELAY_USER, "pw": pwfile})
        self.logpath = os.path.join(tmp, "sluiced.log")
        self.log = open(self.logpath, "ab")
        self.pids = {}          # pid -> start time, sluiced's descendants
        self.proc = subprocess.Popen(
            [os.path.join(BUILD, "sluiced"), "-d", "-c", self.conf, "-x",
             BUILD], stdout=self.log, stderr=self.log,
            stdin=subprocess.DEVNULL)

    def start(self):
        def ready():
            check(self.proc.poll() is None, "sluiced exited with %s",
                  self.proc.returncode)
            return "sluice ready" in self.logtext()
        wait_for("sluice ready", ready, 30)
        self.note_children()
        rc, out, err = run([os.path.join(BUILD, "sluicectl"), "-c",
                            self.conf, "user", "add", "alice",
                            "--password-stdin", "--sender", "@example.org"],
                           stdin=(PASSWORD + "\n").encode())
        check(rc == 0, "sluicectl user add: %s", err)

    def note_children(self):
        for pid in descendants(self.proc.pid):
            self.pids.setdefault(pid, start_time(pid))

    def logtext(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def queue(self):
        rc, out, err = run([os.path.join(BUILD, "sluicectl"), "-c",
                            self.conf, "queue", "list", "--json"])
        check(rc == 0, "sluicectl queue list: %s", err)
        return json.loads(out)

    def stop(self):
        """SIGTERM to sluiced, which stops its children and Redis; then
        whatever of them is still there, by PID."""
        if self.proc.poll() is None:
            self.note_children()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for pid, started in self.pids.items():
            if started is not None and start_time(pid) == started:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        self.log.close()


# ---------------------------------------------------------------------------
# the messages

def folded(name, words):
    """A header of many words, folded before 78 columns."""
    lines, cur = [], name + ":"
    for w in words:
        if len(cur) + 1 + len(w) > 76:
            lines.append(cur)
            cur = "\t" if len(lines) % 2 else " "
            cur += w
        else:
            cur += " " + w
    lines.append(cur)
    return ("\r\n".join(lines) + "\r\n").encode()


LONG_HEADER = (folded("References", ["<%d.%d.thread@example.org>" % (i, i * i)
                                     for i in range(120)]) +
               folded("X-Folded", ["word%04d" % i for i in range(700)]))

DOT_BODY = (b".a line that starts with a dot\r\n"
            b"..two dots\r\n"
            b"..\r\n"
            b".\r\n"
            b"after a lone dot\r\n"
            b"...\r\n"
            b". a dot and a space\r\n"
            b"." + b"x" * 997 + b"\r\n"    # 998 octets before the CRLF
            b"\r\n"
            b".\r\n"
            b"\r\n"
            b"a line ending in a dot.\r\n")
UTF8_TEXT = (b"Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln, caf\xc3\xa9 \xe2\x82\xac "
             b"\xf0\x9f\x93\xa7 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\r\n")
LATIN1_TEXT = b"caf\xe9, na\xefve, \xfcber, \xa3 5\r\n"


def tag_for(name):
    return "e2e-%s-%06x" % (name.replace("_", "-"), random.randrange(1 << 24))


def message(tag, rcpts, charset="utf-8", text=UTF8_TEXT, msgid=True,
            subject="end to end", extra=b""):
    h = (b"From: Alice <alice@example.org>\r\n"
         b"To: " + b", ".join(b"<" + r.encode() + b">" for r in rcpts) +
         b"\r\n"
         b"Subject: " + subject.encode() + b" [" + tag.encode() + b"]\r\n")
    if msgid:
        h += (b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
              b"Message-ID: <" + tag.encode() + b"@example.org>\r\n")
    h += (b"MIME-Version: 1.0\r\n"
          b"Content-Type: text/plain; charset=" + charset.encode() + b"\r\n"
          b"Content-Transfer-Encoding: 8bit\r\n" + LONG_HEADER + extra)
    return h + b"\r\n" + text + DOT_BODY + text + b"the end\r\n"


def big_message(tag, rcpts):
    data = random.Random(tag).randbytes(BIG)
    b64 = base64.encodebytes(data).replace(b"\n", b"\r\n")
    bound = b"=_e2e_boundary_" + tag.encode()
    return (b"From: Alice <alice@example.org>\r\n"
            b"To: " + b", ".join(b"<" + r.encode() + b">" for r in rcpts) +
            b"\r\n"
            b"Subject: a 20 MiB attachment [" + tag.encode() + b"]\r\n"
            b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
            b"Message-ID: <" + tag.encode() + b"@example.org>\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"" + bound + b"\"\r\n"
            b"\r\n"
            b"--" + bound + b"\r\n"
            b"Content-Type: text/plain; charset=us-ascii\r\n"
            b"\r\n"
            b"20 MiB of random bytes follow.\r\n"
            b"..and a dot\r\n"
            b"\r\n"
            b"--" + bound + b"\r\n"
            b"Content-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=\"random.bin\"\r\n"
            b"\r\n" + b64 +
            b"--" + bound + b"--\r\n")


# ---------------------------------------------------------------------------
# what the upstreams must have got

RECEIVED = re.compile(
    rb"\AReceived: from (\S+) \(\[127\.0\.0\.1\]\)\r\n"
    rb"\t\(using TLSv1\.[23] [A-Z0-9_-]+\)\r\n"
    rb"\t\(Authenticated sender: alice\)\r\n"
    rb"\tby " + re.escape(HOSTNAME.encode()) +
    rb" \(sluice\) with ESMTPSA id [0-9a-f]{12};\r\n"
    rb"\t[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}"
    rb"\r\n")
DATE = re.compile(rb"Date: ((?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
                  rb"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                  rb"\d{4} \d\d:\d\d:\d\d [+-]\d{4})\r\n")


def split_received(data):
    """(the trace header at the top, the rest)"""
    check(data.startswith(b"Received: "), "delivered message starts %r",
          data[:60])
    pos = data.index(b"\r\n") + 2
    while data[pos:pos + 1] in (b"\t", b" "):
        pos = data.index(b"\r\n", pos) + 2
    return data[:pos], data[pos:]


def header_names(data):
    head = data[:data.index(b"\r\n\r\n") + 2]
    return [ln.split(b":", 1)[0].lower() for ln in head.split(b"\r\n")
            if ln and ln[:1] not in (b" ", b"\t")]


def first_diff(a, b):
    i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y),
             min(len(a), len(b)))
    return "%d bytes delivered, %d sent; first difference at %d: %r vs %r" % (
        len(a), len(b), i, a[max(0, i - 30):i + 30], b[max(0, i - 30):i + 30])


def with_fixups(sent, qid, delivered):
    """sent, with the Message-ID and Date queued adds: both at the end of
    the header section, Message-ID first (store_fixup).  -> (expected,
    the Date value)"""
    hend = sent.index(b"\r\n\r\n") + 2
    add = b"Message-ID: <" + qid.encode() + b"@" + HOSTNAME.encode() + b">\r\n"
    at = hend + len(add)
    m = DATE.match(delivered, at)
    check(m is not None, "no Date header after the Message-ID: %r",
          delivered[hend - 20:at + 60])
    return sent[:hend] + add + m.group(0) + sent[hend:], m.group(1)


class Sent:
    """One submitted message and where it is due."""

    def __init__(self, name, tag, msg, rcpts, qid, body8=False,
                 smtputf8=False, fixups=False):
        self.name, self.tag, self.msg, self.qid = name, tag, msg, qid
        self.rcpts = rcpts
        self.body8, self.smtputf8, self.fixups = body8, smtputf8, fixups

    def due(self, up):
        mx = up.host == MX_ADDR
        return sorted(r for r in self.rcpts if not r.startswith("refuse@")
                      and r.endswith("@mx.test") == mx)


def verify(sent, ups, limit=20):
    """Wait for every copy of sent and check it; -> a summary"""
    notes = []
    for up in ups:
        want = sent.due(up)
        if not want:
            continue
        got = wait_for("%s at the %s" % (sent.tag, up.name),
                       lambda: up.find(sent.tag), limit)
        check(len(got) == 1, "%d transactions at the %s", len(got), up.name)
        g = got[0]
        check(g["from"] == SENDER, "MAIL FROM %r at the %s", g["from"],
              up.name)
        check(sorted(g["to"]) == want, "recipients at the %s: %r, not %r",
              up.name, g["to"], want)
        data = g["content"]
        rcv, rest = split_received(data)
        check(RECEIVED.match(rcv) is not None, "Received header: %r", rcv)
        if sent.fixups:
            expected, date = with_fixups(sent.msg, sent.qid, rest)
            when = email.utils.parsedate_to_datetime(date.decode())
            skew = abs(time.time() - when.timestamp())
            check(skew < 300, "added Date %s is %.0f s off", date, skew)
        else:
            expected = sent.msg
        if rest != expected:
            raise Fail("message at the %s differs: %s" %
                       (up.name, first_diff(rest, expected)))
        names = header_names(data)
        check(names.count(b"received") == 1, "%d Received headers",
              names.count(b"received"))
        check(names.count(b"message-id") == 1 and names.count(b"date") == 1,
              "Message-ID/Date headers: %r", names)
        opts = g["mail_options"]
        check("SIZE=%d" % len(data) in opts, "MAIL parameters %r for %d "
              "bytes", opts, len(data))
        check(("BODY=8BITMIME" in opts) == sent.body8,
              "BODY=8BITMIME %s at the %s: %r",
              "missing" if sent.body8 else "added", up.name, opts)
        check(("SMTPUTF8" in opts) == sent.smtputf8 == g["smtputf8"],
              "SMTPUTF8 %s at the %s: %r",
              "missing" if sent.smtputf8 else "added", up.name, opts)
        check(g["tls"], "no TLS at the %s", up.name)
        check(g["helo"] == HOSTNAME, "EHLO %r at the %s", g["helo"],
              up.name)
        if up.users:
            check(g["authenticated"] and g["login"] == RELAY_USER,
                  "AUTH at the %s: %r %r", up.name, g["authenticated"],
                  g["login"])
        check(tuple(g["local"][:2]) == (up.host, up.port),
              "reached %r, not the %s", g["local"], up.name)
        notes.append("%s: %d rcpt, %d bytes, %s" % (
            up.name, len(want), len(data), g["cipher"][1]
            if g["cipher"] else "TLS"))
    return "; ".join(notes)


# ---------------------------------------------------------------------------
# the clients

def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def smtplib_send(port, implicit, rcpts, msg, options=()):
    """smtplib; -> the queue id from the reply to the end of data"""
    if implicit:
        s = smtplib.SMTP_SSL("127.0.0.1", port, context=client_ctx(),
                             local_hostname="smtplib.e2e.test",
                             timeout=60 * SLOW)
    else:
        s = smtplib.SMTP("127.0.0.1", port, local_hostname="smtplib.e2e.test",
                         timeout=60 * SLOW)
        s.starttls(context=client_ctx())
    try:
        s.login("alice", PASSWORD)
        code, resp = s.mail(SENDER, list(options))
        check(code == 250, "MAIL: %d %r", code, resp)
        for r in rcpts:
            code, resp = s.rcpt(r)
            check(code == 250, "RCPT %s: %d %r", r, code, resp)
        code, resp = s.data(msg)
        check(code == 250, "end of data: %d %r", code, resp)
        qid = queued_id("%d %s" % (code, resp.decode(errors="replace")))
        s.quit()
    finally:
        s.close()
    return qid


def swaks_send(port, implicit, rcpts, msg, mech):
    path = os.path.join(T.tmp, "swaks.msg")
    # swaks ends the data with CRLF "." itself: give it the message
    # without its last line end, or it sends an empty line more
    with open(path, "wb") as f:
        f.write(msg[:-2])
    rc, out, err = run(["swaks", "--server", "127.0.0.1", "--port",
                        str(port), "--tlsc" if implicit else "--tls",
                        "--auth", mech, "--auth-user", "alice",
                        "--auth-password", PASSWORD, "--from", SENDER,
                        "--to", ",".join(rcpts), "--helo", "swaks.e2e.test",
                        "--data", "@" + path])
    check(rc == 0, "swaks exit %d: %s", rc, (out + err)[-600:])
    check(re.search(r"<~? +235 2\.7\.0", out) and "AUTH %s" % mech in out,
          "swaks did not log in with %s: %s", mech, out[-600:])
    return queued_id(out)


def msmtp_send(port, implicit, rcpts, msg):
    conf = os.path.join(T.tmp, "msmtprc")
    with open(conf, "w") as f:
        f.write("defaults\nlogfile -\n"
                "account e2e\nhost 127.0.0.1\nport %d\n"
                "tls on\ntls_starttls %s\ntls_certcheck off\n"
                "auth on\nuser alice\npassword %s\n"
                "from %s\ndomain msmtp.e2e.test\n"
                "account default : e2e\n" % (
                    port, "off" if implicit else "on", PASSWORD, SENDER))
    os.chmod(conf, 0o600)
    rc, out, err = run(["msmtp", "-C", conf, "-f", SENDER] + rcpts,
                       stdin=msg)
    check(rc == 0, "msmtp exit %d: %s", rc, (out + err)[-600:])
    return queued_id(out + err)


def curl_send(port, implicit, rcpts, msg, timeout=60):
    path = os.path.join(T.tmp, "curl.msg")
    with open(path, "wb") as f:
        f.write(msg)
    if implicit:
        url, extra = "smtps://127.0.0.1:%d" % port, []
    else:
        url, extra = "smtp://127.0.0.1:%d" % port, ["--ssl-reqd"]
    argv = ["curl", "-sS", "-v", "--insecure"] + extra + [
        url + "/curl.e2e.test", "--user", "alice:" + PASSWORD,
        "--mail-from", SENDER]
    for r in rcpts:
        argv += ["--mail-rcpt", r]
    rc, out, err = run(argv + ["--upload-file", path], timeout=timeout)
    os.unlink(path)
    check(rc == 0, "curl exit %d: %s", rc, err[-600:])
    check(re.search(r"< 235 ", err), "curl did not log in: %s", err[-600:])
    return queued_id(err)


# ---------------------------------------------------------------------------
# the checks

class T:
    tmp = None
    gw = None
    smarthost = None
    mx = None
    dns = None
    sent = []


def ups():
    return (T.smarthost, T.mx)


RCPTS = ["bob@example.net", "carol@example.com", "dave@mx.test",
         "erin@mx.test"]


def c_swaks_starttls():
    tag = tag_for("swaks-587")
    msg = message(tag, RCPTS)
    qid = swaks_send(T.gw.submission, False, RCPTS, msg, "PLAIN")
    s = Sent("swaks", tag, msg, RCPTS, qid)
    T.sent.append(s)
    return "AUTH PLAIN; " + verify(s, ups())


def c_swaks_implicit():
    tag = tag_for("swaks-465")
    rcpts = ["bob@example.net", "frank@mx.test"]
    msg = message(tag, rcpts)
    qid = swaks_send(T.gw.smtps, True, rcpts, msg, "LOGIN")
    s = Sent("swaks", tag, msg, rcpts, qid)
    T.sent.append(s)
    return "AUTH LOGIN; " + verify(s, ups())


def c_msmtp_starttls():
    tag = tag_for("msmtp-587")
    msg = message(tag, RCPTS)
    qid = msmtp_send(T.gw.submission, False, RCPTS, msg)
    s = Sent("msmtp", tag, msg, RCPTS, qid)
    T.sent.append(s)
    return verify(s, ups())


def c_msmtp_implicit_latin1():
    tag = tag_for("msmtp-465")
    rcpts = ["carol@example.com", "dave@mx.test"]
    msg = message(tag, rcpts, charset="iso-8859-1", text=LATIN1_TEXT)
    qid = msmtp_send(T.gw.smtps, True, rcpts, msg)
    s = Sent("msmtp", tag, msg, rcpts, qid)
    T.sent.append(s)
    return "ISO-8859-1 body; " + verify(s, ups())


def c_curl_starttls():
    tag = tag_for("curl-587")
    msg = message(tag, RCPTS)
    qid = curl_send(T.gw.submission, False, RCPTS, msg)
    s = Sent("curl", tag, msg, RCPTS, qid)
    T.sent.append(s)
    return "smtp:// --ssl-reqd; " + verify(s, ups())


def c_curl_smtps_20mib():
    tag = tag_for("curl-465-big")
    rcpts = ["bob@example.net", "dave@mx.test"]
    msg = big_message(tag, rcpts)
    t0 = time.monotonic()
    qid = curl_send(T.gw.smtps, True, rcpts, msg, timeout=120)
    s = Sent("curl", tag, msg, rcpts, qid)
    T.sent.append(s)
    v = verify(s, ups(), limit=60)
    return "smtps://, %.1f s; %s" % (time.monotonic() - t0, v)


def c_smtplib_starttls_smtputf8():
    tag = tag_for("smtplib-587-utf8")
    rcpts = ["j\u00f6rg@example.net", "zo\u00eb@mx.test",
             "bob@example.net"]
    msg = message(tag, rcpts,
                  subject="Gr\u00fc\u00dfe \u2014 \u65e5\u672c\u8a9e",
                  extra=b"X-Sender-Name: J\xc3\xb6rg M\xc3\xbcller\r\n")
    qid = smtplib_send(T.gw.submission, False, rcpts, msg,
                       ["SMTPUTF8", "BODY=8BITMIME"])
    s = Sent("smtplib", tag, msg, rcpts, qid, body8=True, smtputf8=True)
    T.sent.append(s)
    return "SMTPUTF8, UTF-8 addresses and header; " + verify(s, ups())


def c_smtplib_implicit_no_msgid():
    tag = tag_for("smtplib-465-bare")
    rcpts = ["bob@example.net", "carol@example.com", "erin@mx.test"]
    msg = message(tag, rcpts, msgid=False)
    qid = smtplib_send(T.gw.smtps, True, rcpts, msg, ["BODY=8BITMIME"])
    s = Sent("smtplib", tag, msg, rcpts, qid, body8=True, fixups=True)
    T.sent.append(s)
    return "Message-ID <%s@%s> and Date added; %s" % (qid, HOSTNAME,
                                                      verify(s, ups()))


def c_refused_one_report():
    """a 550 for one recipient: the others delivered, one RFC 3464 report
    for that one to the sender"""
    tag = tag_for("smtplib-587-refuse")
    rcpts = ["bob@example.net", "carol@example.com", "refuse@example.net"]
    msg = message(tag, rcpts)
    qid = smtplib_send(T.gw.submission, False, rcpts, msg, ["BODY=8BITMIME"])
    s = Sent("smtplib", tag, msg, rcpts, qid, body8=True)
    T.sent.append(s)
    v = verify(s, ups())

    def mine():
        return [g for g in T.smarthost.bounces() if qid.encode() in
                g["content"] or tag.encode() in g["content"]]
    wait_for("the report", mine, 20)
    time.sleep(1.5 * SLOW)      # a second one would come within this
    dsn = mine()
    check(len(dsn) == 1, "%d reports", len(dsn))
    g = dsn[0]
    check(g["to"] == [SENDER], "report to %r", g["to"])
    check(g["authenticated"] and g["tls"], "report without AUTH or TLS")
    m = email.message_from_bytes(split_received(g["content"])[1]
                                 if g["content"].startswith(b"Received:")
                                 else g["content"],
                                 policy=email.policy.default)
    check(m.get_content_type() == "multipart/report", "type %s",
          m.get_content_type())
    check(m.get_param("report-type") == "delivery-status",
          "report-type %r", m.get_param("report-type"))
    check(m["To"] is not None and SENDER in str(m["To"]), "To: %r", m["To"])
    parts = [p.get_content_type() for p in m.walk()]
    check("message/delivery-status" in parts, "parts %r", parts)
    ds = next(p for p in m.walk()
              if p.get_content_type() == "message/delivery-status")
    blocks = ds.get_payload()
    check(len(blocks) == 2, "%d delivery-status blocks, want per-message "
          "and one per-recipient", len(blocks))
    rb = blocks[1]
    check(rb["Final-Recipient"] is not None and
          rb["Final-Recipient"].lower() == "rfc822; refuse@example.net",
          "Final-Recipient %r", rb["Final-Recipient"])
    check(rb["Action"] == "failed" and rb["Status"] == "5.1.1",
          "Action %r Status %r", rb["Action"], rb["Status"])
    check("550" in str(rb["Diagnostic-Code"]), "Diagnostic-Code %r",
          rb["Diagnostic-Code"])
    return "%s; the report: %s" % (v, ", ".join(parts))


def c_mx_by_dns():
    """the mx.test copies went by MX lookup to 127.0.0.3:25"""
    q = list(T.dns.queries)
    check(("mx.test", "MX") in q, "no MX query: %r", q)
    check(("mx1.mx.test", "A") in q, "no A query for the MX host: %r", q)
    log = T.gw.logtext()
    check("relay=mx1.mx.test[%s]:25" % MX_ADDR in log,
          "no relay=mx1.mx.test[%s]:25 in the log" % MX_ADDR)
    check("relay=127.0.0.1[127.0.0.1]:%d" % T.smarthost.port in log,
          "no smarthost relay in the log")
    return "%d queries" % len(q)


def c_each_once_and_queue_empty():
    def empty():
        return T.gw.queue() == []
    wait_for("an empty queue", empty, 20)
    for s in T.sent:
        for up in ups():
            n = len(up.find(s.tag))
            check(n == (1 if s.due(up) else 0), "%s %d times at the %s",
                  s.tag, n, up.name)
    check(not T.smarthost.auth_failed, "failed AUTH at the smarthost: %r",
          T.smarthost.auth_failed)
    total = sum(len(u.got) for u in ups())
    return "%d messages, %d transactions, queue empty" % (len(T.sent), total)


def c_no_child_lost():
    """no process died on the way (a sanitizer report kills the child,
    and sluiced would start it again unnoticed)"""
    bad = [ln for ln in T.gw.logtext().splitlines()
           if "lost child" in ln or "CRASH LOOP" in ln or
           "Sanitizer" in ln or "runtime error:" in ln]
    check(not bad, "%d lines, the first: %s", len(bad), bad[:1])
    return "%d descendants of sluiced, none restarted" % len(T.gw.pids)


CHECKS = [("swaks_starttls", c_swaks_starttls),
          ("swaks_implicit", c_swaks_implicit),
          ("msmtp_starttls", c_msmtp_starttls),
          ("msmtp_implicit_latin1", c_msmtp_implicit_latin1),
          ("curl_starttls", c_curl_starttls),
          ("curl_smtps_20mib", c_curl_smtps_20mib),
          ("smtplib_starttls_smtputf8", c_smtplib_starttls_smtputf8),
          ("smtplib_implicit_no_msgid", c_smtplib_implicit_no_msgid),
          ("refused_one_report", c_refused_one_report),
          ("mx_by_dns", c_mx_by_dns),
          ("each_once_and_queue_empty", c_each_once_and_queue_empty),
          ("no_child_lost", c_no_child_lost)]


def main():
    only = sys.argv[1:]
    t_start = time.monotonic()
    T.tmp = tempfile.mkdtemp(prefix="sluice-e2e.", dir="/tmp")
    os.chmod(T.tmp, 0o755)          # the children must traverse it
    passed = failed = 0
    started = []
    try:
        cert = make_cert(T.tmp, "upstream")
        pwfile = os.path.join(T.tmp, "relay.pass")
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, (RELAY_PASSWORD + "\n").encode())
        os.close(fd)
        T.dns = dnsserver.DNS({"mx.test": {"MX": [(10, "mx1.mx.test")]},
                               "mx1.mx.test": {"A": [MX_ADDR]}})
        started.append(T.dns)
        T.smarthost = Upstream("smarthost", "127.0.0.1", free_port(), cert,
                               users={RELAY_USER: RELAY_PASSWORD},
                               required=True)
        started.append(T.smarthost)
        wait_for("%s:25 to be free" % MX_ADDR,
                 lambda: port_free(MX_ADDR, 25), 20)
        T.mx = Upstream("MX host", MX_ADDR, 25, cert)
        started.append(T.mx)
        T.gw = Gateway(T.tmp, T.smarthost, T.dns, cert[0], pwfile)
        started.append(T.gw)
        T.gw.start()
        for name, fn in CHECKS:
            if only and not any(o in name for o in only):
                continue
            t0 = time.monotonic()
            try:
                note = fn()
                passed += 1
                print("ok %s (%.1f s): %s" % (name, time.monotonic() - t0,
                                              note), flush=True)
            except Exception as ex:
                failed += 1
                print("FAIL %s: %s" % (name, ex if isinstance(ex, Fail)
                                       else "%s: %s" % (type(ex).__name__,
                                                        ex)), flush=True)
                if not isinstance(ex, Fail):
                    print("    " + traceback.format_exc().replace(
                        "\n", "\n    "))
                print("\n".join("    | " + ln[:300] for ln in
                                T.gw.logtext().splitlines()[-15:]))
    except Exception as ex:
        failed += 1
        print("FAIL setup: %s: %s" % (type(ex).__name__, ex), flush=True)
        if T.gw is not None:
            print("\n".join("    | " + ln for ln in
                            T.gw.logtext().splitlines()[-40:]))
    finally:
        for x in reversed(started):
            try:
                x.stop()
            except Exception as ex:
                print("    stopping %r: %s" % (x, ex))
        if not os.environ.get("SLUICE_KEEP"):
            subprocess.run(["rm", "-rf", T.tmp], timeout=60)
    print("%d passed, %d failed (%.1f s)" % (passed, failed,
                                             time.monotonic() - t_start))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
