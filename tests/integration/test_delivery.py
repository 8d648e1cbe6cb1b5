"""test_delivery - the real deliverd against a real upstream SMTP server.

The harness plays sluiced (HELLO, CONF memfd, PEER for queued[0], START)
and queued (DLV_RCPT... DLV_JOB with a sealed memfd; it reads DLV_RESULT
and DLV_DONE).  Upstream is aiosmtpd (python3-aiosmtpd) on 127.0.0.1, with
STARTTLS or implicit TLS on a throwaway self-signed certificate and AUTH,
plus a small scripted server for replies aiosmtpd will not give.

Every process started here is killed by PID; every wait is bounded.
Prints "ok NAME" / "FAIL NAME: reason" and "N passed, N failed".
"""

import asyncio
import logging
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qharness as H  # noqa: E402
import dnsserver  # noqa: E402

from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import SMTP, AuthResult  # noqa: E402
from itlib import free_port  # noqa: E402

# aiosmtpd logs every aborted handshake with a trace; the tests say enough
logging.getLogger("mail.log").setLevel(logging.CRITICAL)

QP_BODY_8BITMIME, QP_SMTPUTF8, QP_RET_FULL, QP_RET_HDRS = 0x01, 0x04, 0x08, 0x10
N_NEVER, N_SUCCESS, N_FAILURE, N_DELAY = 1, 2, 4, 8
QP_DONE_DSN, QP_DONE_KEPT, QP_DONE_BACKOFF = 1, 2, 4


# ---------------------------------------------------------------------------
# deliverd under the harness


class Deliverd:
    """One deliverd process; we are its sluiced and its queued[0]."""

    def __init__(self, tmp, routes, extra="", name="deliverd"):
        self.tmp = tmp
        self.config = H.make_config(tmp, routes=routes, extra=extra)
        self.logpath = os.path.join(tmp, name + ".log")
        self.proc = None
        self.parent = None
        self.q = None
        self.reqid = 0
        self.stash = {}           # reqid -> list of frames
        H._CLEANUPS.append(self.kill)

    def start(self):
        self.parent, child_end = H.pair("deliverd:parent")
        cfd = child_end.fileno()
        script = ('exec "$0" "$@"' if cfd == 3 else
                  'exec 3<&%d %d<&- && exec "$0" "$@"' % (cfd, cfd))
        logf = open(self.logpath, "ab")
        self.proc = subprocess.Popen(
            ["/bin/bash", "-c", script, os.path.join(H.BUILD, "deliverd"),
             "-i", "0", "-d", "-f"], stdin=subprocess.DEVNULL, stdout=logf,
            stderr=logf, pass_fds=(cfd,), cwd=self.tmp)
        H._PIDS.add(self.proc.pid)
        child_end.close()
        logf.close()
        p = self.parent
        p.send(H.T.HELLO, 0, H.u32(H.IPC_VERSION) + H.u32(H.PROC_SLUICED) +
               H.u32(0))
        fd = H.memfd_with(self.config)
        try:
            p.send(H.T.CONF, 0, H.u32(1), fd)
        finally:
            os.close(fd)
        self.q = self.link_queued()
        p.send(H.T.START)
        deadline = time.monotonic() + 10 * H.SLOW
        while True:
            if time.monotonic() > deadline:
                raise RuntimeError("no READY\n" + self.log_tail())
            f = self.parent.recv()
            if f is None:
                raise RuntimeError("deliverd closed its parent channel\n" +
                                   self.log_tail())
            if f.fd is not None:
                os.close(f.fd)
            if f.type == H.T.READY:
                break
        return self

    def link_queued(self):
        ours, theirs = H.pair("deliverd:queued")
        try:
            self.parent.send(H.T.PEER, 0, H.u32(H.PROC_QUEUED) + H.u32(0),
                             theirs.fileno())
        finally:
            theirs.close()
        f = ours.recv()
        if f is None or f.type != H.T.HELLO:
            raise RuntimeError("no HELLO from deliverd: %r" % f)
        r = f.r()
        hello = (r.u32(), r.u32(), r.u32())
        if hello != (H.IPC_VERSION, H.PROC_DELIVERD, 0):
            raise RuntimeError("deliverd greeted with %r" % (hello,))
        ours.send(H.T.HELLO, 0, H.u32(H.IPC_VERSION) + H.u32(H.PROC_QUEUED) +
                  H.u32(0))
        self.stash = {}
        return ours

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=25):
        return "\n".join(self.log().splitlines()[-n:])

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, 9)
            H._reap(self.proc, 5)
        for ch in (self.q, self.parent):
            if ch is not None:
                ch.close()

    def submit(self, rcpts, body, sender="alice@example.org", route=0,
               flags=0, envid="", dest="", notify=None, orcpt=None,
               qid=None):
        if isinstance(body, str):
            body = body.encode()
        self.reqid += 1
        rid = self.reqid
        for i, a in enumerate(rcpts):
            self.q.send(H.T.DLV_RCPT, rid, H.u32(i) +
                        H.u32(notify[i] if notify else 0) + H.pstr(a) +
                        H.pstr(orcpt[i] if orcpt else ""))
        fd = H.memfd_with(body, "msg")
        try:
            self.q.send(H.T.DLV_JOB, rid, H.u32(route) + H.u32(flags) +
                        H.u32(len(rcpts)) + H.pstr(qid or "T%09d" % rid) +
                        H.pstr(sender) + H.pstr(envid) + H.pstr(dest), fd)
        finally:
            os.close(fd)
        return rid

    def wait(self, rid, timeout=15):
        """-> (results {index: (code, status, text)}, flags, relay)"""
        deadline = time.monotonic() + timeout * H.SLOW
        while True:
            frames = self.stash.get(rid, [])
            if frames and frames[-1].type == H.T.DLV_DONE:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no DLV_DONE for job %d\n%s" %
                                   (rid, self.log_tail()))
            self.q.sock.settimeout(left)
            try:
                f = self.q.recv()
            except socket.timeout:
                continue
            if f is None:
                raise RuntimeError("deliverd closed the queued channel\n" +
                                   self.log_tail())
            if f.fd is not None:
                os.close(f.fd)
            self.stash.setdefault(f.reqid, []).append(f)
        res = {}
        for f in self.stash.pop(rid)[:-1]:
            assert f.type == H.T.DLV_RESULT, f
            r = f.r()
            idx, code, st, text = r.u32(), r.u32(), r.str(), r.str()
            r.end()
            res[idx] = (code, st, text)
        r = frames[-1].r()
        flags, relay = r.u32(), r.str()
        r.u32(), r.u32()        # set-up and transaction times, ms
        r.end()
        return res, flags, relay

    def deliver(self, *a, timeout=15, **kw):
        return self.wait(self.submit(*a, **kw), timeout)

    def wait_closed(self, timeout=10):
        """-> (route, destination) of the next DLV_CLOSED"""
        deadline = time.monotonic() + timeout * H.SLOW
        while True:
            for f in self.stash.get(0, []):
                if f.type == H.T.DLV_CLOSED:
                    self.stash[0].remove(f)
                    r = f.r()
                    v = (r.u32(), r.str())
                    r.end()
                    return v
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no DLV_CLOSED\n" + self.log_tail())
            self.q.sock.settimeout(left)
            try:
                f = self.q.recv()
            except socket.timeout:
                continue
            if f is None:
                raise RuntimeError("deliverd closed the queued channel")
            self.stash.setdefault(f.reqid, []).append(f)


# ---------------------------------------------------------------------------
# the upstream: aiosmtpd


class Upstream:
    def __init__(self, tls=None, cert=None, auth=None, size=None,
                 smtputf8=False, dsn=False, pipelining=False,
                 rcpt_codes=None, data_code=None, data_delay=0.0,
                 exclude_auth=(), mail_code=None, host="127.0.0.1",
                 port=None):
        self.host = host
        self.port = port or free_port()
        self.rcpt_codes = rcpt_codes or {}
        self.data_code = data_code
        self.mail_code = mail_code
        self.data_delay = data_delay
        self.dsn = dsn
        self.pipelining = pipelining
        self.messages = []        # dicts per DATA
        self.mail_cmds = []       # raw MAIL arguments
        self.rcpt_cmds = []
        self.mail_tls = []        # TLS on when MAIL came?
        self.pipelined = []       # more input waiting when MAIL came?
        self.auth_logins = []
        self.lock = threading.Lock()
        kw = {"enable_SMTPUTF8": smtputf8}
        if size is not None:
            kw["data_size_limit"] = size
        ctx = None
        if cert is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(cert[0], cert[1])
        if tls == "starttls":
            kw["tls_context"] = ctx
        if auth is not None:
            kw["authenticator"] = self._authenticator(auth)
            kw["auth_require_tls"] = tls is not None
            if exclude_auth:
                kw["auth_exclude_mechanism"] = list(exclude_auth)
        up = self

        class Rec(SMTP):
            async def smtp_MAIL(self, arg):
                with up.lock:
                    up.mail_cmds.append(arg)
                    up.mail_tls.append(self.session.ssl is not None)
                    up.pipelined.append(len(self._reader._buffer) > 0)
                if up.dsn and arg:
                    arg = " ".join(w for w in arg.split(" ")
                                   if not w.upper().startswith(("RET=",
                                                                "ENVID=")))
                return await super().smtp_MAIL(arg)

            async def smtp_RCPT(self, arg):
                with up.lock:
                    up.rcpt_cmds.append(arg)
                if up.dsn and arg:
                    arg = " ".join(w for w in arg.split(" ")
                                   if not w.upper().startswith(("NOTIFY=",
                                                                "ORCPT=")))
                return await super().smtp_RCPT(arg)

        class Ctl(Controller):
            def factory(self):
                return Rec(self.handler, **self.SMTP_kwargs)

        self.ctl = Ctl(self, hostname=host, port=self.port,
                       ssl_context=ctx if tls == "implicit" else None,
                       ready_timeout=10, **kw)
        self.ctl.start()
        H._CLEANUPS.append(self.stop)

    def _authenticator(self, users):
        def fn(server, session, envelope, mechanism, auth_data):
            login = auth_data.login.decode()
            ok = users.get(login) == auth_data.password.decode()
            if ok:
                with self.lock:
                    self.auth_logins.append(login)
            return AuthResult(success=ok, handled=False)
        return fn

    def stop(self):
        try:
            self.ctl.stop()
        except Exception:
            pass

    async def handle_EHLO(self, server, session, envelope, hostname,
                          responses):
        session.host_name = hostname
        extra = []
        if self.dsn:
            extra.append("250-DSN")
        if self.pipelining:
            extra.append("250-PIPELINING")
        if extra:
            responses = responses[:-1] + extra + responses[-1:]
        return responses

    async def handle_MAIL(self, server, session, envelope, address, options):
        if self.mail_code:
            return self.mail_code
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, options):
        code = self.rcpt_codes.get(address)
        if code:
            return code
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        with self.lock:
            self.messages.append({
                "from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                "content": bytes(envelope.original_content),
                "mail_options": list(envelope.mail_options),
                "tls": session.ssl is not None,
                "login": getattr(session.auth_data, "login", None)})
        if self.data_code:
            return self.data_code
        return "250 2.0.0 Ok: queued as UP%d" % len(self.messages)


class Script:
    """A scripted upstream for replies aiosmtpd will not give: replies
    by verb, every connection served in a thread."""

    def __init__(self, greeting="220 script.test ESMTP", replies=None,
                 final="250 2.0.0 Ok", silent=False, host="127.0.0.1",
                 port=0):
        self.greeting, self.replies = greeting, replies or {}
        self.final, self.silent = final, silent
        self.lines = []
        self.s = socket.socket()
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.bind((host, port))
        self.s.listen(8)
        self.port = self.s.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()
        H._CLEANUPS.append(self.stop)

    def stop(self):
        self.stopped = True
        try:
            # wakes the thread in accept(): until it returns, close()
            # alone leaves the port bound
            self.s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.s.close()
        except OSError:
            pass

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.s.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c):
        c.settimeout(20)
        f = c.makefile("rb")
        try:
            if self.silent:
                time.sleep(15)
                return
            c.sendall(self.greeting.encode() + b"\r\n")
            while True:
                line = f.readline()
                if not line:
                    return
                self.lines.append(line)
                verb = line.split(b" ", 1)[0].strip().upper().decode(
                    "latin-1")
                if verb.startswith("MAIL"):
                    verb = "MAIL"
                elif verb.startswith("RCPT"):
                    verb = "RCPT"
                rep = self.replies.get(verb)
                if rep is None:
                    rep = {"DATA": "354 go ahead",
                           "QUIT": "221 bye"}.get(verb, "250 ok")
                if callable(rep):
                    rep = rep(line)
                c.sendall(rep.encode() + b"\r\n")
                if verb == "QUIT":
                    return
                if verb == "DATA" and rep.startswith("354"):
                    while True:
                        ln = f.readline()
                        if not ln or ln == b".\r\n":
                            break
                    c.sendall(self.final.encode() + b"\r\n")
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass


# ---------------------------------------------------------------------------
# fixtures

TMP = tempfile.mkdtemp(prefix="sluice-dlv.", dir="/tmp")
if not os.environ.get("SLUICE_KEEP"):
    H._CLEANUPS.append(lambda: subprocess.run(["rm", "-rf", TMP],
                                              timeout=30))


class DNS(dnsserver.DNS):
    """dnsserver.DNS, stopped with the test that made it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        H._CLEANUPS.append(self.stop)


def make_cert(name):
    key = os.path.join(TMP, name + ".key")
    crt = os.path.join(TMP, name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                    "-out", crt, "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)
    return crt, key


CERT = make_cert("upstream")
OTHER = make_cert("other")
# sluiced pins what it resolved from the machine into the image it
# exports (conf_pin): a sandboxed child must never look it up itself, as
# it would on a reload (sysconf opens /sys).  The harness does the same.
TIMEOUTS = ('smtpd_processes = 1;\n'
            'timeouts = { connect = "3s"; upstream_command = "3s"; '
            'data_end = "5s"; };\n')

_n = [0]


def route(port, tls="none", host="127.0.0.1", extra=""):
    return '{ domains = [ "*" ]; smarthost = "%s:%d"; tls = "%s"; %s }' % (
        host, port, tls, extra)


def deliverd(routes, ca=None, extra=""):
    """A fresh deliverd in its own directory, for one test."""
    _n[0] += 1
    d = os.path.join(TMP, "d%d" % _n[0])
    os.makedirs(d)
    if isinstance(routes, str):
        routes = [routes]
    text = TIMEOUTS + extra
    if ca is not None:
        text += 'tls = { ca_file = "%s"; };\n' % ca
    return Deliverd(d, "( " + ", ".join(routes) + " )", text).start()


def password_file(pw, mode=0o600):
    _n[0] += 1
    p = os.path.join(TMP, "pw%d" % _n[0])
    with open(p, "w") as f:
        f.write(pw + "\n")
    os.chmod(p, mode)
    return p


BODY = (b"Received: from client.test by mx.test; Mon, 1 Jan 2024 00:00:00 "
        b"+0000\r\nFrom: <alice@example.org>\r\nTo: <bob@b.test>\r\n"
        b"Subject: dots\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; "
        b"charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        b".leading dot\r\n..two dots\r\n.\r\nafter a lone dot\r\n"
        b"caf\xc3\xa9 \xe2\x82\xac 8-bit\r\n. space\r\nlast line\r\n")


def expect(cond, why):
    if not cond:
        raise AssertionError(why)


def code_of(res, i=0):
    return res[i][0]


# ---------------------------------------------------------------------------
# tests

def t_plain_delivery():
    up = Upstream()
    d = deliverd(route(up.port))
    res, flags, relay = d.deliver(["bob@b.test"], BODY,
                                  flags=QP_BODY_8BITMIME)
    expect(code_of(res) == 250, "result %r" % res)
    expect(res[0][1] == "2.0.0", "status %r" % (res[0],))
    expect("queued as UP1" in res[0][2], "text %r" % (res[0],))
    expect(relay == "127.0.0.1[127.0.0.1]:%d" % up.port, "relay %r" % relay)
    expect(flags & QP_DONE_DSN == 0, "DSN flag without DSN")
    expect(len(up.messages) == 1, "upstream got %d" % len(up.messages))
    m = up.messages[0]
    expect(m["content"] == BODY, "body differs:\n%r\n%r" % (m["content"],
                                                            BODY))
    expect(m["from"] == "alice@example.org" and m["to"] == ["bob@b.test"],
           "envelope %r" % m)
    expect("BODY=8BITMIME" in up.mail_cmds[0], "MAIL %r" % up.mail_cmds)
    expect("SIZE=%d" % len(BODY) in up.mail_cmds[0], "MAIL %r" % up.mail_cmds)
    expect(not m["tls"], "TLS with tls = none?")
    H.wait_until(lambda: ": 221 " in d.log(), 5, what="the QUIT reply")


def t_body_edges():
    """a body whose first line is a dot, and one without a final CRLF"""
    up = Upstream()
    d = deliverd(route(up.port))
    b1 = b".\r\n.x\r\n"
    res, _, _ = d.deliver(["bob@b.test"], b1)
    expect(code_of(res) == 250, "result %r" % res)
    expect(up.messages[0]["content"] == b1, "got %r" % up.messages[0])
    big = b"".join(b"%s line %06d\r\n" % (b"." if i % 7 == 0 else b"x", i)
                   for i in range(20000))
    res, _, _ = d.deliver(["bob@b.test"], big)
    expect(code_of(res) == 250, "result %r" % res)
    expect(up.messages[1]["content"] == big, "large body differs")


def t_null_sender_and_rcpts():
    up = Upstream(rcpt_codes={"nobody@b.test": "550 5.1.1 <nobody@b.test>: "
                              "Recipient address rejected"})
    d = deliverd(route(up.port))
    res, _, _ = d.deliver(["a@b.test", "nobody@b.test", "c@b.test"], BODY,
                          sender="")
    expect(code_of(res, 0) == 250 and code_of(res, 2) == 250,
           "others %r" % res)
    expect(res[1][:2] == (550, "5.1.1"), "refused %r" % (res[1],))
    expect("Recipient address rejected" in res[1][2], "text %r" % (res[1],))
    expect(up.messages[0]["to"] == ["a@b.test", "c@b.test"],
           "upstream %r" % up.messages)
    expect(up.mail_cmds[0].startswith("FROM:<>"), "MAIL %r" % up.mail_cmds)


def t_pipelining():
    up = Upstream(pipelining=True,
                  rcpt_codes={"x@b.test": "450 4.2.0 mailbox busy"})
    d = deliverd(route(up.port))
    res, _, _ = d.deliver(["a@b.test", "x@b.test"], BODY)
    expect(code_of(res, 0) == 250, "a %r" % res)
    expect(res[1][:2] == (450, "4.2.0"), "x %r" % res)
    expect(up.pipelined and up.pipelined[0],
           "RCPT did not arrive together with MAIL")


def t_all_rcpts_refused():
    up = Upstream(pipelining=True, rcpt_codes={
        "a@b.test": "550 5.1.1 no", "b@b.test": "551 5.1.6 moved"})
    d = deliverd(route(up.port))
    res, _, _ = d.deliver(["a@b.test", "b@b.test"], BODY)
    expect(res[0][:2] == (550, "5.1.1") and res[1][:2] == (551, "5.1.6"),
           "results %r" % res)
    expect(not up.messages, "a message went through")


def t_data_451():
    up = Upstream(data_code="451 4.3.0 try again later")
    d = deliverd(route(up.port))
    res, _, _ = d.deliver(["a@b.test", "c@b.test"], BODY)
    for i in (0, 1):
        expect(res[i][:2] == (451, "4.3.0"), "results %r" % res)
        expect("try again later" in res[i][2], "text %r" % res)


def t_data_554_permanent():
    up = Upstream(data_code="554 5.7.1 spam")
    d = deliverd(route(up.port))
    res, _, _ = d.deliver(["a@b.test"], BODY)
    expect(res[0][:2] == (554, "5.7.1"), "results %r" % res)


def t_starttls_encrypt():
    up = Upstream(tls="starttls", cert=CERT)
    d = deliverd(route(up.port, "encrypt"))
    res, _, _ = d.deliver(["bob@b.test"], BODY)
    expect(code_of(res) == 250, "result %r" % res)
    expect(up.messages and up.messages[0]["tls"], "not over TLS")
    expect(up.messages[0]["content"] == BODY, "body differs under TLS")
    expect("TLS with" in d.log(), "no TLS log line")


def t_verify_untrusted():
    up = Upstream(tls="starttls", cert=CERT)
    d = deliverd(route(up.port, "verify"), ca=OTHER[0])
    res, _, _ = d.deliver(["bob@b.test"], BODY)
    expect(400 <= code_of(res) < 500, "result %r" % res)
    expect(res[0][1].startswith("4.7"), "status %r" % (res[0],))
    expect("certificate" in res[0][2], "text %r" % (res[0],))
    expect(not up.mail_cmds, "plaintext fallback: upstream saw MAIL %r" %
           up.mail_cmds)


def t_verify_trusted():
    up = Upstream(tls="starttls", cert=CERT)
    d = deliverd(route(up.port, "verify"), ca=CERT[0])
    res, _, _ = d.deliver(["bob@b.test"], BODY)
    expect(code_of(res) == 250, "result %r" % res)
    expect(up.mail_tls == [True], "MAIL in clear? %r" % up.mail_tls)


def t_verify_wrong_name():
    """trusted chain, but the certificate names 127.0.0.1, not localhost"""
    up = Upstream(tls="starttls", cert=CERT)
    d = deliverd(route(up.port, "verify", host="localhost"), ca=CERT[0])
    res, _, relay = d.deliver(["bob@b.test"], BODY)
    expect(400 <= code_of(res) < 500, "result %r" % res)
    expect("localhost[127.0.0.1]" in relay, "relay %r" % relay)
    expect(not up.mail_cmds, "upstream saw MAIL %r" % up.mail_cmds)


def t_implicit_tls():
    up = Upstream(tls="implicit", cert=CERT)
    d = deliverd(route(up.port, "implicit"), ca=CERT[0])
    res, _, _ = d.deliver(["bob@b.test"], BODY)
    expect(code_of(res) == 250, "result %r" % res)
    expect(up.messages[0]["content"] == BODY, "body differs")


def t_may_without_starttls():
    up = Upstream()
    d = deliverd(route(up.port, "may"))
    res, _, _ = d.deliver(["bob@b.test"], BODY)
    expect(code_of(res) == 250, "result %r" % res)
    expect(up.mail_tls == [False], "tls %r" % up.mail_tls)


def t_may_with_starttls():
    up = Upstream(tls="starttls", cert=CERT)
    d = deliverd(route(up.port, "may"))
    res, _, _ = d.deliver(["bob@b.test"], BODY)
    expect(code_of(res) == 250, "result %r" % res)
    expect(up.mail_tls == [True], "tls %r" % up.mail_tls)


def t_encrypt_not_offered():
    up = Upstream()
    d = deliverd(route(up.port, "encrypt"))
    res, _, _ = d.deliver(["bob@b.test"], BODY)
    expect(res[0][:2] == (451, "4.7.10"), "result %r" % res)
    expect(not up.mail_cmds, "upstream saw MAIL %r" % up.mail_cmds)


def t_auth_plain_ok():
    pw = password_file("s3cret")
    up = Upstream(tls="starttls", cert=CERT, auth={"relay": "s3cret"})
    d = deliverd(route(up.port, "encrypt", extra='auth_user = "relay"; '
                       'auth_password_file = "%s";' % pw))
    res, _, _ = d.deliver(["bob@b.test"], BODY)
    expect(code_of(res) == 250, "result %r" % res)
    expect(up.auth_logins == ["relay"], "logins %r" % up.auth_logins)
    expect("s3cret" not in d.log() and "czNjcmV0" not in d.log(),
           "the password is in the log")
    expect("AUTH PLAIN ********" in d.log(), "no masked AUTH line")


def t_auth_login_only():
    pw = password_file("s3cret")
    up = Upstream(tls="starttls", cert=CERT, auth={"relay": "s3cret"},
                  exclude_auth=("PLAIN",))
    d = deliverd(route(up.port, "encrypt", extra='auth_user = "relay"; '
                       'auth_password_file = "%s";' % pw))
    res, _, _ = d.deliver(["bob@b.test"], BODY)
    expect(code_of(res) == 250, "result %r" % res)
    expect(up.auth_logins == ["relay"], "logins %r" % up.auth_logins)


def t_auth_wrong_password():
    pw = password_file("wrong")
    up = Upstream(tls="starttls", cert=CERT, auth={"relay": "s3cret"})
    d = deliverd(route(up.port, "encrypt", extra='auth_user = "relay"; '
                       'auth_password_file = "%s";' % pw))
    res, _, _ = d.deliver(["bob@b.test", "c@b.test"], BODY)
    for i in (0, 1):
        expect(res[i][:2] == (535, "5.7.8"), "result %r" % res)
    expect(not up.mail_cmds, "MAIL after failed AUTH")


def t_auth_password_file_mode():
    pw = password_file("s3cret", 0o644)
    up = Upstream(tls="starttls", cert=CERT, auth={"relay": "s3cret"})
    d = deliverd(route(up.port, "encrypt", extra='auth_user = "relay"; '
                       'auth_password_file = "%s";' % pw))
    res, _, _ = d.deliver(["bob@b.test"], BODY)
    expect(res[0][:2] == (451, "4.7.0"), "result %r" % res)
    expect("group or others" in res[0][2], "text %r" % (res[0],))
    expect("group or others" in d.log(), "not logged")


def t_auth_not_in_clear():
    """tls = may, server without STARTTLS: the password stays home"""
    pw = password_file("s3cret")
    up = Upstream(auth={"relay": "s3cret"})
    d = deliverd(route(up.port, "may", extra='auth_user = "relay"; '
                       'auth_password_file = "%s";' % pw))
    res, _, _ = d.deliver(["bob@b.test"], BODY)
    expect(400 <= code_of(res) < 500, "result %r" % res)
    expect(not up.auth_logins and not up.mail_cmds, "sent in clear")


def t_size_over_limit():
    up = Upstream(size=1000)
    d = deliverd(route(up.port))
    res, _, _ = d.deliver(["bob@b.test", "c@b.test"], BODY * 20)
    for i in (0, 1):
        expect(res[i][:2] == (552, "5.3.4"), "result %r" % res)
    expect(not up.mail_cmds and not up.messages, "upstream saw MAIL")


def t_smtputf8_missing():
    up = Upstream(smtputf8=False)
    d = deliverd(route(up.port))
    res, _, _ = d.deliver(["j\u00f6rg@b.test"], BODY, flags=QP_SMTPUTF8)
    expect(res[0][:2] == (553, "5.6.7"), "result %r" % res)
    expect(not up.mail_cmds, "upstream saw MAIL")


def t_smtputf8_ok():
    up = Upstream(smtputf8=True)
    d = deliverd(route(up.port))
    res, _, _ = d.deliver(["j\u00f6rg@b.test"], BODY, sender="\u00e5sa@a.test",
                          flags=QP_SMTPUTF8 | QP_BODY_8BITMIME)
    expect(code_of(res) == 250, "result %r" % res)
    expect("SMTPUTF8" in up.mail_cmds[0].upper(), "MAIL %r" % up.mail_cmds)
    expect(up.messages[0]["to"] == ["j\u00f6rg@b.test"], "to %r" %
           up.messages)


def t_dsn_not_offered():
    up = Upstream()
    d = deliverd(route(up.port))
    res, flags, _ = d.deliver(["bob@b.test"], BODY, envid="ENV1",
                              flags=QP_RET_HDRS, notify=[N_SUCCESS | N_FAILURE],
                              orcpt=["rfc822;bob@b.test"])
    expect(code_of(res) == 250, "result %r" % res)
    expect(flags & QP_DONE_DSN == 0, "DSN flag set")
    for c in up.mail_cmds + up.rcpt_cmds:
        for p in ("RET=", "ENVID=", "NOTIFY=", "ORCPT="):
            expect(p not in c.upper(), "%s sent: %r" % (p, c))


def t_dsn_offered():
    up = Upstream(dsn=True)
    d = deliverd(route(up.port))
    res, flags, _ = d.deliver(["bob@b.test", "c@b.test"], BODY, envid="ENV+2B1",
                              flags=QP_RET_HDRS,
                              notify=[N_SUCCESS | N_FAILURE, N_NEVER],
                              orcpt=["rfc822;bob@b.test", ""])
    expect(code_of(res) == 250, "result %r" % res)
    expect(flags & QP_DONE_DSN, "no DSN flag")
    expect("RET=HDRS" in up.mail_cmds[0] and "ENVID=ENV+2B1" in
           up.mail_cmds[0], "MAIL %r" % up.mail_cmds)
    expect("NOTIFY=SUCCESS,FAILURE" in up.rcpt_cmds[0] and
           "ORCPT=rfc822;bob@b.test" in up.rcpt_cmds[0], "RCPT %r" %
           up.rcpt_cmds)
    expect("NOTIFY=NEVER" in up.rcpt_cmds[1] and "ORCPT" not in
           up.rcpt_cmds[1], "RCPT %r" % up.rcpt_cmds)


def t_connect_refused():
    port = free_port()
    d = deliverd(route(port))
    res, _, relay = d.deliver(["bob@b.test", "c@b.test"], BODY)
    for i in (0, 1):
        expect(res[i][:2] == (451, "4.4.1"), "result %r" % res)
        expect("connect to 127.0.0.1:%d: Connection refused" % port in
               res[i][2], "text %r" % res)


def t_smarthost_name_not_found():
    dns = DNS({"other.b.test": {"A": ["127.0.0.1"]}})
    d = deliverd(route(25, host="relay.b.test"), extra=dns.conf())
    res, _, relay = d.deliver(["bob@b.test"], BODY)
    expect(res[0][:2] == (451, "4.4.3"), "result %r" % res)
    expect("host not found" in res[0][2], "text %r" % res)
    expect(relay == "none", "relay %r" % relay)


def t_smarthost_name_resolves():
    up = Upstream()
    dns = DNS({"relay.b.test": {"A": ["127.0.0.1"]}})
    d = deliverd(route(up.port, host="relay.b.test"), extra=dns.conf())
    res, _, relay = d.deliver(["bob@b.test"], BODY)
    expect(code_of(res) == 250, "result %r" % res)
    expect(relay == "relay.b.test[127.0.0.1]:%d" % up.port,
           "relay %r" % relay)
    expect(len(up.messages) == 1, "upstream got %d" % len(up.messages))
    expect(("relay.b.test", "A") in dns.queries, "queries %r" % dns.queries)


def t_smarthost_next_address():
    """a name with two addresses: the first refuses, the second serves"""
    up = Upstream()
    dns = DNS({"relay.b.test": {"A": ["127.0.0.5", "127.0.0.1"]}})
    d = deliverd(route(up.port, host="relay.b.test"), extra=dns.conf())
    res, _, relay = d.deliver(["bob@b.test"], BODY)
    expect(code_of(res) == 250, "result %r" % res)
    expect(relay == "relay.b.test[127.0.0.1]:%d" % up.port,
           "relay %r" % relay)


def t_greeting_5xx_defers():
    sc = Script(greeting="554 5.7.1 go away")
    d = deliverd(route(sc.port))
    res, _, _ = d.deliver(["bob@b.test"], BODY)
    expect(res[0][:2] == (454, "4.7.1"), "result %r" % res)
    expect("go away" in res[0][2], "text %r" % res)


def t_greeting_421():
    sc = Script(greeting="421 4.3.2 busy, come back later")
    d = deliverd(route(sc.port))
    res, flags, _ = d.deliver(["bob@b.test"], BODY)
    expect(res[0][:2] == (421, "4.3.2"), "result %r" % res)
    expect(flags & QP_DONE_BACKOFF, "no back-off flag: %#x" % flags)
    expect(not flags & QP_DONE_KEPT, "a 421 connection kept")


def t_too_many_connections_backs_off():
    sc = Script(replies={"MAIL": "452 4.3.2 too many connections, slow down"})
    d = deliverd(route(sc.port))
    res, flags, _ = d.deliver(["bob@b.test"], BODY)
    expect(res[0][:2] == (452, "4.3.2"), "result %r" % res)
    expect(flags & QP_DONE_BACKOFF, "no back-off flag: %#x" % flags)


def count(sc, verb):
    return sum(1 for ln in sc.lines if ln.upper().startswith(verb))


def t_reuse_kept_connection():
    """the next job to the same destination takes the kept connection
    (RSET, no second EHLO); after idle_timeout it is closed (QUIT) and
    queued hears DLV_CLOSED"""
    sc = Script()
    d = deliverd(route(sc.port, extra='idle_timeout = "1s";'))
    dest = "127.0.0.1:%d" % sc.port
    res, flags, relay = d.deliver(["bob@b.test"], BODY, dest=dest)
    expect(code_of(res) == 250 and flags & QP_DONE_KEPT,
           "first: %r %#x" % (res, flags))
    res, flags, relay2 = d.deliver(["carol@b.test"], BODY, dest=dest)
    expect(code_of(res) == 250, "second: %r" % res)
    expect(relay2 == relay, "relay %r then %r" % (relay, relay2))
    expect(count(sc, b"EHLO") == 1 and count(sc, b"RSET") == 1,
           "EHLO %d, RSET %d" % (count(sc, b"EHLO"), count(sc, b"RSET")))
    closed = d.wait_closed()
    expect(closed == (0, dest), "DLV_CLOSED %r" % (closed,))
    H.wait_until(lambda: count(sc, b"QUIT") == 1, 5, what="the QUIT")


def t_reuse_limit_per_connection():
    sc = Script()
    d = deliverd(route(sc.port, extra="messages_per_connection = 2;"))
    flags = [d.deliver(["r%d@b.test" % i], BODY)[1] for i in range(3)]
    expect([bool(f & QP_DONE_KEPT) for f in flags] == [True, False, True],
           "kept flags %r" % flags)
    expect(count(sc, b"EHLO") == 2, "EHLO %d" % count(sc, b"EHLO"))


def t_reuse_rset_refused_reconnects():
    """a kept connection that fails before the envelope costs nothing:
    the job goes out on a new connection"""
    sc = Script(replies={"RSET": "421 4.4.2 closing, idle too long"})
    d = deliverd(route(sc.port))
    res, flags, _ = d.deliver(["bob@b.test"], BODY)
    expect(code_of(res) == 250 and flags & QP_DONE_KEPT, "first %r" % res)
    res, flags, _ = d.deliver(["carol@b.test"], BODY)
    expect(code_of(res) == 250, "second %r" % res)
    expect(count(sc, b"EHLO") == 2, "EHLO %d" % count(sc, b"EHLO"))


def t_reuse_queued_gone_while_quitting():
    """queued's channel dies while a kept connection says QUIT after its
    idle time: deliverd stays up (it must not tell a queued that is gone)
    and serves the queued that comes next"""
    def slow_quit(line):
        time.sleep(2.0)
        return "221 bye"
    sc = Script(replies={"QUIT": slow_quit})
    d = deliverd(route(sc.port, extra='idle_timeout = "1s";'))
    res, flags, _ = d.deliver(["bob@b.test"], BODY)
    expect(flags & QP_DONE_KEPT, "not kept: %#x" % flags)
    H.wait_until(lambda: count(sc, b"QUIT") == 1, 5, what="the QUIT")
    d.q.close()
    time.sleep(3.0 * H.SLOW)
    expect(d.alive(), "deliverd died: %r" % d.proc.poll())
    d.q = d.link_queued()
    res, _, _ = d.deliver(["next@b.test"], BODY)
    expect(code_of(res) == 250, "after the channel died: %r" % res)


def t_reuse_server_closed_idle():
    """the server drops a kept connection: DLV_CLOSED, and the next job
    connects anew"""
    up = Upstream()
    d = deliverd(route(up.port, extra='idle_timeout = "30s";'))
    res, flags, _ = d.deliver(["bob@b.test"], BODY)
    expect(flags & QP_DONE_KEPT, "not kept: %#x" % flags)
    up.stop()
    d.wait_closed()
    up2 = Upstream(port=up.port)
    res, _, _ = d.deliver(["carol@b.test"], BODY)
    expect(code_of(res) == 250, "after the close: %r" % res)
    expect(len(up2.messages) == 1, "upstream got %d" % len(up2.messages))


def t_helo_fallback_multiline():
    sc = Script(replies={"EHLO": "502 5.5.1 what is EHLO",
                         "HELO": "250 script.test",
                         "RCPT": "250-first line\r\n250-second line\r\n"
                                 "250 2.1.5 ok"},
                final="250-2.0.0 queued\r\n250 2.0.0 as S1")
    d = deliverd(route(sc.port))
    res, _, _ = d.deliver(["bob@b.test"], BODY, flags=QP_BODY_8BITMIME)
    expect(code_of(res) == 250, "result %r" % res)
    expect(res[0][2] == "250 2.0.0 queued as S1", "text %r" % (res[0],))
    mail = [ln for ln in sc.lines if ln.startswith(b"MAIL")]
    expect(mail == [b"MAIL FROM:<alice@example.org>\r\n"],
           "MAIL to a HELO server: %r" % mail)


def t_timeout():
    sc = Script(silent=True)
    d = deliverd(route(sc.port))
    res, _, _ = d.deliver(["bob@b.test"], BODY)
    expect(res[0][:2] == (451, "4.4.2"), "result %r" % res)
    expect("timed out" in res[0][2] and "greeting" in res[0][2],
           "text %r" % (res[0],))


def t_long_reply_line():
    sc = Script(replies={"EHLO": "250 " + "x" * 5000})
    d = deliverd(route(sc.port))
    res, _, _ = d.deliver(["bob@b.test"], BODY)
    expect(res[0][:2] == (451, "4.5.0"), "result %r" % res)
    expect("longer than" in res[0][2], "text %r" % (res[0],))
    expect(d.alive(), "deliverd died")


def t_too_many_lines():
    sc = Script(replies={"EHLO": "\r\n".join(["250-x"] * 80 + ["250 ok"])})
    d = deliverd(route(sc.port))
    res, _, _ = d.deliver(["bob@b.test"], BODY)
    expect(res[0][:2] == (451, "4.5.0"), "result %r" % res)
    expect(d.alive(), "deliverd died")


def t_concurrent_jobs():
    up = Upstream(data_delay=0.3)
    d = deliverd(route(up.port))
    rids = [d.submit(["r%d@b.test" % i], BODY) for i in range(8)]
    for rid in rids:
        res, _, _ = d.wait(rid)
        expect(code_of(res) == 250, "job %d: %r" % (rid, res))
    got = sorted(m["to"][0] for m in up.messages)
    expect(got == sorted("r%d@b.test" % i for i in range(8)), "got %r" % got)


def t_garbage_frames():
    up = Upstream()
    d = deliverd(route(up.port))
    # well framed, but not a job: logged and ignored
    d.q.send(H.T.HEARTBEAT, 7)
    # a recipient whose address length runs off the end: the job is spoilt
    d.q.send(H.T.DLV_RCPT, 900, H.u32(0) + H.u32(0) + H.u32(99999) + b"x" * 8)
    fd = H.memfd_with(BODY)
    d.q.send(H.T.DLV_JOB, 900, H.u32(0) + H.u32(0) + H.u32(1) + H.pstr("G1") +
             H.pstr("a@a.test") + H.pstr("") + H.pstr(""), fd)
    os.close(fd)
    res, _, relay = d.wait(900)
    expect(relay == "none" and not up.messages, "spoilt job went: %r" % res)
    # a job whose recipient count is wrong
    d.q.send(H.T.DLV_RCPT, 901, H.u32(0) + H.u32(0) + H.pstr("b@b.test") +
             H.pstr(""))
    fd = H.memfd_with(BODY)
    d.q.send(H.T.DLV_JOB, 901, H.u32(0) + H.u32(0) + H.u32(5) + H.pstr("G2") +
             H.pstr("a@a.test") + H.pstr("") + H.pstr(""), fd)
    os.close(fd)
    res, _, _ = d.wait(901)
    expect(res.get(0, (0,))[0] == 451, "miscounted job: %r" % res)
    # an unsealed body is refused, not mapped
    d.q.send(H.T.DLV_RCPT, 902, H.u32(0) + H.u32(0) + H.pstr("b@b.test") +
             H.pstr(""))
    fd = os.memfd_create("unsealed", os.MFD_CLOEXEC)
    os.write(fd, BODY)
    d.q.send(H.T.DLV_JOB, 902, H.u32(0) + H.u32(0) + H.u32(1) + H.pstr("G3") +
             H.pstr("a@a.test") + H.pstr("") + H.pstr(""), fd)
    os.close(fd)
    res, _, _ = d.wait(902)
    expect(res[0][:2] == (451, "4.3.0") and "sealed" in res[0][2],
           "unsealed: %r" % res)
    # the same channel still delivers
    res, _, _ = d.deliver(["ok@b.test"], BODY)
    expect(code_of(res) == 250, "after bad payloads: %r" % res)
    # a frame that is no frame at all: the channel goes, the process stays
    d.q.sock.sendmsg([H.HDR.pack(9999, 4, 1) + b"junk"])
    time.sleep(0.3)
    expect(d.alive(), "deliverd died of a garbage frame")
    d.q.close()
    d.q = d.link_queued()
    res, _, _ = d.deliver(["again@b.test"], BODY)
    expect(code_of(res) == 250, "on a new channel: %r" % res)
    expect(len(up.messages) == 2, "upstream got %d" % len(up.messages))


def t_queued_gone_midway():
    """queued's channel dies while a session waits: no crash, no report"""
    up = Upstream(data_delay=1.0)
    d = deliverd(route(up.port))
    d.submit(["slow@b.test"], BODY)
    time.sleep(0.3)
    d.q.close()
    time.sleep(1.2)
    expect(d.alive(), "deliverd died")
    d.q = d.link_queued()
    res, _, _ = d.deliver(["next@b.test"], BODY)
    expect(code_of(res) == 250, "after the channel died: %r" % res)


def t_mail_refused_pipelined():
    up = Upstream(pipelining=True, mail_code="553 5.7.1 sender not allowed")
    d = deliverd(route(up.port))
    res, _, _ = d.deliver(["a@b.test", "c@b.test"], BODY)
    for i in (0, 1):
        expect(res[i][:2] == (553, "5.7.1"), "result %r" % res)
        expect("sender not allowed" in res[i][2], "text %r" % res)
    expect(not up.messages, "a message went through")


def t_mail_refused_4xx():
    sc = Script(replies={"MAIL": "452 4.3.1 insufficient storage"})
    d = deliverd(route(sc.port))
    res, _, _ = d.deliver(["a@b.test", "c@b.test"], BODY)
    for i in (0, 1):
        expect(res[i][:2] == (452, "4.3.1"), "result %r" % res)
    expect(not [ln for ln in sc.lines if ln.startswith((b"RCPT", b"DATA"))],
           "went on after MAIL failed: %r" % sc.lines)


EHLO_TLS = "250-script.test\r\n250 STARTTLS"


def t_starttls_refused_may():
    sc = Script(replies={"EHLO": EHLO_TLS,
                         "STARTTLS": "454 4.7.0 TLS not available"})
    d = deliverd(route(sc.port, "may"))
    res, _, _ = d.deliver(["a@b.test"], BODY)
    expect(code_of(res) == 250, "result %r" % res)


def t_starttls_refused_encrypt():
    sc = Script(replies={"EHLO": EHLO_TLS,
                         "STARTTLS": "454 4.7.0 TLS not available"})
    d = deliverd(route(sc.port, "encrypt"))
    res, _, _ = d.deliver(["a@b.test"], BODY)
    expect(400 <= code_of(res) < 500 and res[0][1].startswith("4.7"),
           "result %r" % res)
    expect(not [ln for ln in sc.lines if ln.startswith(b"MAIL")],
           "downgraded to plaintext")


def t_starttls_injection():
    sc = Script(replies={"EHLO": EHLO_TLS,
                         "STARTTLS": "220 go ahead\r\n250 injected"})
    d = deliverd(route(sc.port, "encrypt"))
    res, _, _ = d.deliver(["a@b.test"], BODY)
    expect(res[0][:2] == (451, "4.7.5"), "result %r" % res)
    expect("after its STARTTLS reply" in res[0][2], "text %r" % (res[0],))


def t_may_handshake_fails_defers():
    """tls = may: a handshake that fails defers, it does not go on clear"""
    sc = Script(replies={"EHLO": EHLO_TLS, "STARTTLS": "220 go ahead"})
    d = deliverd(route(sc.port, "may"))
    res, _, _ = d.deliver(["a@b.test"], BODY)
    expect(res[0][:2] == (451, "4.7.5"), "result %r" % res)
    expect(not [ln for ln in sc.lines if ln.startswith(b"MAIL")],
           "went on in clear")


def t_reload_midway():
    """a new configuration while a session runs: both finish right"""
    up = Upstream(data_delay=1.0)
    up2 = Upstream()
    d = deliverd(route(up.port))
    rid = d.submit(["slow@b.test"], BODY)
    time.sleep(0.3)
    conf = H.make_config(d.tmp, routes="( %s )" % route(up2.port),
                         extra=TIMEOUTS)
    fd = H.memfd_with(conf)
    try:
        d.parent.send(H.T.CONF, 0, H.u32(2), fd)
    finally:
        os.close(fd)
    f = d.parent.recv()
    expect(f is not None and f.type == H.T.CONF_DONE, "no CONF_DONE: %r" % f)
    res, _, relay = d.wait(rid)
    expect(code_of(res) == 250 and str(up.port) in relay,
           "in-flight job: %r %r" % (res, relay))
    res, _, relay = d.deliver(["new@b.test"], BODY)
    expect(code_of(res) == 250 and str(up2.port) in relay,
           "after reload: %r %r" % (res, relay))


# ---------------------------------------------------------------------------
# MX delivery: our DNS server on 127.0.0.1, upstreams on 127.0.0.x:25
# (root may bind port 25; every 127.0.0.0/8 address is local on Linux)

def mx_route(tls="may"):
    return '{ domains = [ "*" ]; mx = true; tls = "%s"; }' % tls


def t_mx_delivered():
    up = Upstream(host="127.0.0.2", port=25)
    dns = DNS({"b.test": {"MX": [(10, "mx1.b.test")]},
               "mx1.b.test": {"A": ["127.0.0.2"]}})
    d = deliverd(mx_route(), extra=dns.conf())
    res, _, relay = d.deliver(["bob@b.test"], BODY, dest="b.test")
    expect(code_of(res) == 250, "result %r" % res)
    expect(relay == "mx1.b.test[127.0.0.2]:25", "relay %r" % relay)
    expect(len(up.messages) == 1 and up.messages[0]["content"] == BODY,
           "upstream got %r" % up.messages)
    expect(("b.test", "MX") in dns.queries, "queries %r" % dns.queries)


def t_mx_dead_first_host():
    """MX 10 refuses connections, MX 20 takes the message"""
    up = Upstream(host="127.0.0.3", port=25)
    dns = DNS({"b.test": {"MX": [(20, "mx2.b.test"), (10, "dead.b.test")]},
               "dead.b.test": {"A": ["127.0.0.4"]},
               "mx2.b.test": {"A": ["127.0.0.3"]}})
    d = deliverd(mx_route(), extra=dns.conf())
    res, _, relay = d.deliver(["bob@b.test", "carol@b.test"], BODY,
                              dest="b.test")
    expect(code_of(res, 0) == 250 and code_of(res, 1) == 250,
           "result %r" % res)
    expect(relay == "mx2.b.test[127.0.0.3]:25", "relay %r" % relay)
    expect(len(up.messages) == 1, "upstream got %d" % len(up.messages))
    expect(dns.queries.index(("dead.b.test", "A")) <
           dns.queries.index(("mx2.b.test", "A")),
           "preference order %r" % dns.queries)


def t_mx_4xx_greeting_next():
    """a 4xx greeting sends us on to the next MX host"""
    sc = Script(greeting="421 4.3.2 busy", host="127.0.0.2", port=25)
    up = Upstream(host="127.0.0.3", port=25)
    dns = DNS({"b.test": {"MX": [(10, "busy.b.test"), (20, "mx2.b.test")]},
               "busy.b.test": {"A": ["127.0.0.2"]},
               "mx2.b.test": {"A": ["127.0.0.3"]}})
    d = deliverd(mx_route(), extra=dns.conf())
    res, _, relay = d.deliver(["bob@b.test"], BODY, dest="b.test")
    expect(code_of(res) == 250, "result %r" % res)
    expect(relay == "mx2.b.test[127.0.0.3]:25", "relay %r" % relay)
    expect(len(up.messages) == 1, "upstream got %d" % len(up.messages))
    sc.stop()


def t_mx_all_hosts_fail():
    """every MX host refuses: the last failure defers everyone"""
    dns = DNS({"b.test": {"MX": [(10, "a.b.test"), (20, "c.b.test")]},
               "a.b.test": {"A": ["127.0.0.4"]},
               "c.b.test": {"A": ["127.0.0.5"]}})
    d = deliverd(mx_route(), extra=dns.conf())
    res, _, relay = d.deliver(["bob@b.test"], BODY, dest="b.test")
    expect(res[0][:2] == (451, "4.4.1"), "result %r" % res)
    expect("c.b.test[127.0.0.5]:25" in res[0][2], "text %r" % (res[0],))
    expect(relay == "c.b.test[127.0.0.5]:25", "relay %r" % relay)


def t_mx_equal_preference_shuffled():
    """two hosts of preference 10: both get some of 16 jobs"""
    up2 = Upstream(host="127.0.0.2", port=25)
    up3 = Upstream(host="127.0.0.3", port=25)
    dns = DNS({"b.test": {"MX": [(10, "x.b.test"), (10, "y.b.test")]},
               "x.b.test": {"A": ["127.0.0.2"]},
               "y.b.test": {"A": ["127.0.0.3"]}})
    d = deliverd(mx_route(), extra=dns.conf())
    rids = [d.submit(["bob@b.test"], BODY, dest="b.test") for _ in range(16)]
    for rid in rids:
        res, _, _ = d.wait(rid)
        expect(code_of(res) == 250, "result %r" % res)
    expect(len(up2.messages) + len(up3.messages) == 16,
           "got %d + %d" % (len(up2.messages), len(up3.messages)))
    expect(up2.messages and up3.messages,
           "not shuffled: %d + %d" % (len(up2.messages), len(up3.messages)))


def t_mx_implicit():
    """no MX records, but an A record: the domain itself (RFC 5321 5.1)"""
    up = Upstream(host="127.0.0.2", port=25)
    dns = DNS({"c.test": {"A": ["127.0.0.2"]}})
    d = deliverd(mx_route(), extra=dns.conf())
    res, _, relay = d.deliver(["bob@c.test"], BODY, dest="c.test")
    expect(code_of(res) == 250, "result %r" % res)
    expect(relay == "c.test[127.0.0.2]:25", "relay %r" % relay)
    expect(len(up.messages) == 1, "upstream got %d" % len(up.messages))


def t_mx_aaaa():
    """an MX host with only an IPv6 address"""
    up = Upstream(host="::1", port=25)
    dns = DNS({"b.test": {"MX": [(10, "six.b.test")]},
               "six.b.test": {"AAAA": ["::1"]}})
    d = deliverd(mx_route(), extra=dns.conf())
    res, _, relay = d.deliver(["bob@b.test"], BODY, dest="b.test")
    expect(code_of(res) == 250, "result %r" % res)
    expect(relay == "six.b.test[::1]:25", "relay %r" % relay)
    expect(len(up.messages) == 1, "upstream got %d" % len(up.messages))


def t_mx_no_address():
    """the name exists but has no MX, A or AAAA record: 5.4.4"""
    dns = DNS({"c.test": {"TXT": []}})
    d = deliverd(mx_route(), extra=dns.conf())
    res, _, relay = d.deliver(["bob@c.test"], BODY, dest="c.test")
    expect(res[0][:2] == (550, "5.4.4"), "result %r" % res)
    expect(relay == "none", "relay %r" % relay)


def t_mx_null():
    dns = DNS({"b.test": {"MX": [(0, ".")]}})
    d = deliverd(mx_route(), extra=dns.conf())
    res, _, relay = d.deliver(["bob@b.test", "c@b.test"], BODY,
                              dest="b.test")
    for i in (0, 1):
        expect(res[i][:2] == (556, "5.1.10"), "result %r" % res)
        expect("domain does not accept mail" in res[i][2], "text %r" % res)
    expect(relay == "none", "relay %r" % relay)


def t_mx_nxdomain():
    dns = DNS({"b.test": {"MX": [(10, "mx1.b.test")]}})
    d = deliverd(mx_route(), extra=dns.conf())
    res, _, relay = d.deliver(["bob@nowhere.test"], BODY,
                              dest="nowhere.test")
    expect(res[0][:2] == (550, "5.1.2"), "result %r" % res)
    expect("domain not found" in res[0][2], "text %r" % res)
    expect(relay == "none", "relay %r" % relay)


def t_mx_servfail():
    dns = DNS({}, servfail=["b.test"])
    d = deliverd(mx_route(), extra=dns.conf())
    res, _, relay = d.deliver(["bob@b.test"], BODY, dest="b.test")
    expect(res[0][:2] == (451, "4.4.3"), "result %r" % res)
    expect("retry later" in res[0][2], "text %r" % res)
    expect(("b.test", "MX") in dns.queries, "queries %r" % dns.queries)


def t_mx_dns_refused():
    """dns.servers names a port nobody listens on"""
    port = free_port()
    d = deliverd(mx_route(), extra='dns = { servers = [ "127.0.0.1:%d" ]; };'
                 % port)
    res, _, relay = d.deliver(["bob@b.test"], BODY, dest="b.test")
    expect(res[0][:2] == (451, "4.4.3"), "result %r" % res)
    expect(relay == "none", "relay %r" % relay)


def t_mx_dns_silent():
    """a DNS server that never answers: deferred after the time-out"""
    dns = DNS({"b.test": {"MX": [(10, "mx1.b.test")]}}, silent=True)
    d = deliverd(mx_route(), extra=dns.conf())
    t0 = time.monotonic()
    res, _, relay = d.deliver(["bob@b.test"], BODY, dest="b.test",
                              timeout=20)
    expect(res[0][:2] == (451, "4.4.3"), "result %r" % res)
    expect("timed out" in res[0][2], "text %r" % res)
    expect(time.monotonic() - t0 < 15, "took %.1f s" %
           (time.monotonic() - t0))
    expect(d.alive(), "deliverd died")


def t_mx_address_literal():
    """bob@[127.0.0.2]: no DNS at all"""
    up = Upstream(host="127.0.0.2", port=25)
    d = deliverd(mx_route(), extra='dns = { servers = [ "127.0.0.1:9" ]; };')
    res, _, relay = d.deliver(["bob@[127.0.0.2]"], BODY, dest="[127.0.0.2]")
    expect(code_of(res) == 250, "result %r" % res)
    expect(relay == "[127.0.0.2][127.0.0.2]:25", "relay %r" % relay)


def t_mx_queued_gone_during_dns():
    """queued goes away while a lookup runs: nothing breaks"""
    dns = DNS({"b.test": {"MX": [(10, "mx1.b.test")]}}, silent=True)
    d = deliverd(mx_route(), extra=dns.conf())
    d.submit(["bob@b.test"], BODY, dest="b.test")
    time.sleep(0.3)
    d.q.close()
    d.q = d.link_queued()
    time.sleep(7)
    expect(d.alive(), "deliverd died\n" + d.log_tail())
    dns.silent = False
    up = Upstream(host="127.0.0.2", port=25)
    dns.records["mx1.b.test"] = {"A": ["127.0.0.2"]}
    res, _, relay = d.deliver(["bob@b.test"], BODY, dest="b.test")
    expect(code_of(res) == 250, "result %r" % res)
    expect(len(up.messages) == 1, "upstream got %d" % len(up.messages))


def t_mx_reload_new_dns_servers():
    """dns.servers changes on reload while a lookup runs: the lookup
    ends on the old server, later ones use the new"""
    slow = DNS({"b.test": {"MX": [(10, "mx1.b.test")]}}, silent=True)
    good = DNS({"b.test": {"MX": [(10, "mx1.b.test")]},
                "mx1.b.test": {"A": ["127.0.0.2"]}})
    up = Upstream(host="127.0.0.2", port=25)
    d = deliverd(mx_route(), extra=slow.conf())
    rid = d.submit(["bob@b.test"], BODY, dest="b.test")
    time.sleep(0.5)
    conf = H.make_config(d.tmp, routes="( %s )" % mx_route(),
                         extra=TIMEOUTS + good.conf())
    fd = H.memfd_with(conf)
    try:
        d.parent.send(H.T.CONF, 0, H.u32(2), fd)
    finally:
        os.close(fd)
    f = d.parent.recv()
    expect(f is not None and f.type == H.T.CONF_DONE, "no CONF_DONE: %r" % f)
    res, _, _ = d.wait(rid, timeout=20)
    expect(res[0][:2] == (451, "4.4.3"), "in-flight job: %r" % res)
    res, _, relay = d.deliver(["bob@b.test"], BODY, dest="b.test")
    expect(code_of(res) == 250 and relay == "mx1.b.test[127.0.0.2]:25",
           "after reload: %r %r" % (res, relay))
    expect(len(up.messages) == 1, "upstream got %d" % len(up.messages))


TESTS = [(n[2:], f) for n, f in list(globals().items())
         if n.startswith("t_") and callable(f)]


def main():
    only = sys.argv[1:]
    passed = failed = 0
    for name, fn in TESTS:
        if only and name not in only:
            continue
        mark = len(H._CLEANUPS)
        try:
            fn()
            print("ok %s" % name, flush=True)
            passed += 1
        except Exception as e:
            failed += 1
            msg = str(e) or repr(e)
            print("FAIL %s: %s" % (name, msg.splitlines()[0] if msg else ""),
                  flush=True)
            for ln in msg.splitlines()[1:] + (
                    traceback.format_exc().splitlines()
                    if not isinstance(e, AssertionError) else []):
                print("    " + ln)
        # this test's processes and servers go now, by PID
        while len(H._CLEANUPS) > mark:
            try:
                H._CLEANUPS.pop()()
            except Exception:
                pass
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
