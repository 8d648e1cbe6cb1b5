"""
test_e2e - one message through the whole gateway: Python smtplib submits
on the STARTTLS port with AUTH PLAIN; smtpd, authd, queued and deliverd
(started by a real sluiced with its embedded Redis) carry it to a real
upstream SMTP server (aiosmtpd on 127.0.0.1) as the smarthost.  The
upstream must get the envelope intact and the message byte for byte as
sent, behind one Received header; a recipient the upstream refuses with
550 must come back to the sender as exactly one RFC 3464 report.

Runs with Debian's python3 (aiosmtpd is a Debian package).  Every
process it starts is stopped by PID.
"""
import email
import email.policy
import json
import os
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

from aiosmtpd.controller import Controller

BUILD = os.environ.get("SLUICE_BUILD", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build"))
SLOW = 2.0 if "asan" in BUILD else 1.0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Upstream:
    """Records every message; refuses recipients whose local part is
    "refuse" with 550."""

    def __init__(self):
        self.got = []
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, opts):
        if address.startswith("refuse@"):
            return "550 5.1.1 <%s>: no such user here" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.got.append((envelope.mail_from, list(envelope.rcpt_tos),
                             bytes(envelope.original_content or
                                   envelope.content)))
        return "250 2.0.0 Ok: upstream has it"


def wait_for(what, fn, limit):
    deadline = time.monotonic() + limit * SLOW
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def main():
    tmp = tempfile.mkdtemp(prefix="sluice-e2e.", dir="/tmp")
    os.chmod(tmp, 0o755)
    up = Upstream()
    uport, sport = free_port(), free_port()
    ctl = Controller(up, hostname="127.0.0.1", port=uport,
                     decode_data=False)
    ctl.start()
    conf = os.path.join(tmp, "sluice.conf")
    with open(conf, "w") as f:
        f.write("""hostname = "mail.e2e.test";
state_dir = "%s/state";
pid_file = "%s/sluiced.pid";
smtpd_processes = 1;
listen = ( { address = "127.0.0.1"; port = %d; tls = "starttls";
             auth = "required"; } );
redis = { embedded = true; };
queue = { retry_min = "1s"; retry_max = "2s"; };
delivery = { workers = 1; routes = (
  { domains = [ "*" ]; smarthost = "127.0.0.1:%d"; tls = "none"; } ); };
""" % (tmp, tmp, sport, uport))
    logpath = os.path.join(tmp, "sluiced.log")
    log = open(logpath, "ab")
    master = subprocess.Popen([os.path.join(BUILD, "sluiced"), "-d", "-c",
                               conf, "-x", BUILD], stdout=log, stderr=log,
                              stdin=subprocess.DEVNULL)
    passed = failed = 0
    try:
        wait_for("sluice ready", lambda: "sluice ready" in open(
            logpath, errors="replace").read(), 30)
        p = subprocess.run([os.path.join(BUILD, "sluicectl"), "-c", conf,
                            "user", "add", "alice", "--password-stdin",
                            "--sender", "@example.org"],
                           input=b"secret-pw\n", capture_output=True)
        assert p.returncode == 0, p.stderr

        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        body = (b"From: Alice <alice@example.org>\r\n"
                b"To: <bob@example.net>\r\n"
                b"Subject: end to end\r\n"
                b"Message-ID: <e2e.1@example.org>\r\n"
                b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
                b"MIME-Version: 1.0\r\n"
                b"Content-Type: text/plain; charset=utf-8\r\n"
                b"Content-Transfer-Encoding: 8bit\r\n"
                b"\r\n"
                b"Gr\xc3\xbc\xc3\x9fe.\r\n"
                b".a line that starts with a dot\r\n"
                b"..two dots\r\n"
                b".\r\n"
                b"the end\r\n")
        s = smtplib.SMTP("127.0.0.1", sport, timeout=30 * SLOW)
        s.starttls(context=ctx)
        s.login("alice", "secret-pw")
        refused = s.sendmail("alice@example.org",
                             ["bob@example.net", "carol@example.com",
                              "refuse@example.net"], body,
                             mail_options=["BODY=8BITMIME"])
        s.quit()
        assert refused == {}, refused

        # the two good recipients in one transaction, the bytes intact
        got = wait_for("the message upstream", lambda: [
            g for g in up.got if g[0] == "alice@example.org"], 20)
        frm, rcpts, data = got[0]
        assert sorted(rcpts) == ["bob@example.net", "carol@example.com"], \
            rcpts
        assert data.startswith(b"Received: from "), data[:80]
        i = data.index(b"\r\nFrom: Alice")
        received = data[:i + 2]
        assert data[i + 2:] == body, (data[i + 2:][:200], body[:200])
        assert b"ESMTPSA" in received and b"Authenticated sender: alice" \
            in received, received
        print("ok delivered upstream byte for byte (%d bytes)" % len(data))
        passed += 1

        # the refused recipient comes back as one report to the sender
        dsn = wait_for("the bounce upstream", lambda: [
            g for g in up.got if g[0] in ("", "<>")], 20)
        time.sleep(1.5 * SLOW)
        dsn = [g for g in up.got if g[0] in ("", "<>")]
        assert len(dsn) == 1, "%d reports" % len(dsn)
        frm, rcpts, data = dsn[0]
        assert rcpts == ["alice@example.org"], rcpts
        m = email.message_from_bytes(data, policy=email.policy.default)
        assert m.get_content_type() == "multipart/report", \
            m.get_content_type()
        parts = [p.get_content_type() for p in m.walk()]
        assert "message/delivery-status" in parts, parts
        assert b"Final-Recipient: rfc822; refuse@example.net" in data
        assert b"Action: failed" in data and b"Status: 5.1.1" in data
        print("ok one RFC 3464 report for the refused recipient")
        passed += 1

        # nothing is left in the queue
        def empty():
            p = subprocess.run([os.path.join(BUILD, "sluicectl"), "-c",
                                conf, "queue", "list", "--json"],
                               capture_output=True)
            return p.returncode == 0 and json.loads(p.stdout) == []
        wait_for("an empty queue", empty, 20)
        print("ok the queue is empty")
        passed += 1
    except Exception as ex:
        failed += 1
        print("FAIL e2e: %s: %s" % (type(ex).__name__, ex))
        print("\n".join("    | " + ln for ln in open(
            logpath, errors="replace").read().splitlines()[-40:]))
    finally:
        if master.poll() is None:
            master.send_signal(signal.SIGTERM)
            try:
                master.wait(15)
            except subprocess.TimeoutExpired:
                master.kill()
                master.wait(5)
        ctl.stop()
        log.close()
        subprocess.run(["rm", "-rf", tmp])
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
