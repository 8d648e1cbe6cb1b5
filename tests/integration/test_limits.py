"""
test_limits - the per-destination limits and connection reuse, through
the whole gateway: smtplib submits on a STARTTLS port with AUTH; a real
sluiced (embedded Redis, smtpd, authd, queued, two deliverd) carries the
mail to real upstream servers (aiosmtpd on 127.0.0.1), one per route,
each counting the connections it sees and how many are open at once.

  reuse        messages to one smarthost share kept connections (RSET
               between), at most messages_per_connection on each, and a
               kept connection is closed after idle_timeout
  rate         rate = "5/s": 50 messages cannot reach the upstream in
               under 9.8 s (GCRA in Redis, one interval apart) and all
               of them do arrive
  concurrency  concurrency = 2 against a slow upstream: it never sees a
               third connection open at once
  backoff      an upstream that greets with 421 "too many connections"
               pauses its destination for the route's backoff; the mail
               is delivered afterwards
  reload       a reload while jobs wait for the rate: they are routed
               again, each delivered once

A lower bound on time is a property of the limit, not of the machine's
speed; upper bounds here are only generous deadlines.  Runs with
Debian's python3 (aiosmtpd).  Every process it starts is stopped by PID.
"""
import asyncio
import logging
import os
import signal
import smtplib
import ssl
import subprocess
import sys
import tempfile
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from itlib import free_port  # noqa: E402
import itlib  # noqa: E402

logging.getLogger("mail.log").setLevel(logging.CRITICAL)

BUILD = os.environ.get("SLUICE_BUILD", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build"))
SLOW = 2.0 if "asan" in BUILD else 1.0


def wait_for(what, fn, limit):
    return itlib.wait_for(what, fn, limit * SLOW)


class Counting(SMTP):
    """aiosmtpd's server, counting connections and refusing the first
    `refuse` of them with a 421 greeting."""

    def connection_made(self, transport):
        up = self.event_handler
        with up.lock:
            up.connections += 1
            up.open += 1
            up.max_open = max(up.max_open, up.open)
            refuse = up.refuse > 0
            if refuse:
                up.refuse -= 1
        if refuse:
            self._counted_closed = False
            transport.write(b"421 4.7.0 too many connections from you\r\n")
            transport.close()
            return
        super().connection_made(transport)

    def connection_lost(self, exc):
        up = self.event_handler
        with up.lock:
            up.open -= 1
        try:
            super().connection_lost(exc)
        except Exception:
            pass


class Upstream:
    def __init__(self, delay=0.0, refuse=0):
        self.lock = threading.Lock()
        self.got = []               # (time, subject)
        self.connections = 0
        self.open = 0
        self.max_open = 0
        self.delay = delay
        self.refuse = refuse
        self.resets = 0

    async def handle_RSET(self, server, session, envelope):
        with self.lock:
            self.resets += 1
        return "250 2.0.0 Ok"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        data = bytes(envelope.original_content or envelope.content)
        subject = b""
        for line in data.split(b"\r\n"):
            if line.startswith(b"Subject: "):
                subject = line[9:]
                break
        with self.lock:
            self.got.append((time.monotonic(), subject.decode()))
        return "250 2.0.0 Ok: upstream has it"


class CountingController(Controller):
    def factory(self):
        return Counting(self.handler, decode_data=False)


class Gateway:
    def __init__(self, tmp, routes):
        self.tmp = tmp
        self.port = free_port()
        self.mport = free_port()
        self.conf = os.path.join(tmp, "sluice.conf")
        with open(self.conf, "w") as f:
            f.write("""hostname = "mail.limits.test";
state_dir = "%s/state";
pid_file = "%s/sluiced.pid";
smtpd_processes = 1;
listen = ( { address = "127.0.0.1"; port = %d; tls = "starttls";
             auth = "required"; } );
redis = { embedded = true; };
metrics = { listen = "127.0.0.1:%d"; };
limits = { user_messages_per_hour = 100000;
           user_recipients_per_hour = 100000; };
queue = { retry_min = "1s"; retry_max = "2s"; };
delivery = { workers = 2; routes = (
%s
); };
""" % (tmp, tmp, self.port, self.mport, ",\n".join(routes)))
        self.logpath = os.path.join(tmp, "sluiced.log")
        self.log = open(self.logpath, "ab")
        self.proc = subprocess.Popen(
            [os.path.join(BUILD, "sluiced"), "-d", "-c", self.conf, "-x",
             BUILD], stdout=self.log, stderr=self.log,
            stdin=subprocess.DEVNULL)
        wait_for("sluice ready", lambda: "sluice ready" in self.logtext(), 30)
        p = subprocess.run([os.path.join(BUILD, "sluicectl"), "-c",
                            self.conf, "user", "add", "alice",
                            "--password-stdin", "--sender", "@example.org"],
                           input=b"secret-pw\n", capture_output=True)
        assert p.returncode == 0, p.stderr

    def logtext(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def submit(self, rcpt, subjects, per_conn=50):
        """Send one message per subject; each must get its 250."""
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        for k in range(0, len(subjects), per_conn):
            s = smtplib.SMTP("127.0.0.1", self.port, timeout=30 * SLOW)
            s.starttls(context=ctx)
            s.login("alice", "secret-pw")
            for subj in subjects[k:k + per_conn]:
                body = ("From: <alice@example.org>\r\nTo: <%s>\r\n"
                        "Subject: %s\r\n\r\nlimits test\r\n" %
                        (rcpt, subj)).encode()
                s.sendmail("alice@example.org", [rcpt], body)
            s.quit()

    def metrics(self):
        import urllib.request
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" %
                                    self.mport, timeout=5) as r:
            return r.read().decode()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


def t_reuse(gw, up):
    subjects = ["reuse-%d" % i for i in range(9)]
    # one at a time, so that each can take the connection the last kept
    for s in subjects:
        gw.submit("bob@reuse.test", [s])
        wait_for(s, lambda: s in [g[1] for g in up.got], 15)
    with up.lock:
        conns, resets = up.connections, up.resets
    # messages_per_connection = 3: nine messages, three connections
    assert conns == 3, "%d connections for 9 messages" % conns
    assert resets >= 6, "%d RSETs" % resets
    # idle_timeout = 1s: the last kept connection goes away by itself
    wait_for("the idle connection closed", lambda: up.open == 0, 10)
    assert "delays=" in gw.logtext()
    print("ok reuse: 9 messages on %d connections, %d RSETs; the idle one "
          "closed" % (conns, resets))


def t_rate(gw, up):
    subjects = ["rate-%d" % i for i in range(50)]
    t0 = time.monotonic()
    gw.submit("bob@rate.test", subjects)
    # while they trickle out, the metrics show them waiting in line
    waiting = wait_for("jobs waiting in the metrics", lambda: [
        ln for ln in gw.metrics().splitlines()
        if ln.startswith("sluice_destination_waiting{destination=\"%s\"}"
                         % up.dest) and int(ln.split()[-1]) > 0], 10)
    wait_for("50 messages at 5/s", lambda: len(up.got) >= 50, 60)
    times = sorted(g[0] for g in up.got)
    span = times[-1] - times[0]
    got = sorted(g[1] for g in up.got)
    assert got == sorted(subjects), "missing or doubled: %r" % got
    # 49 intervals of 200 ms lie between the first and the last
    assert span >= 9.3, "50 messages in %.2f s at 5/s" % span
    print("ok rate: 50 messages at 5/s arrived over %.1f s (%.1f s after "
          "the first submission; %s)" % (span, times[-1] - t0, waiting[0]))


def t_concurrency(gw, up):
    subjects = ["conc-%d" % i for i in range(24)]
    threads = [threading.Thread(target=gw.submit,
                                args=("bob@conc.test", subjects[k::4]))
               for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    wait_for("24 messages", lambda: len(up.got) >= 24, 60)
    with up.lock:
        mx, conns = up.max_open, up.connections
    assert mx <= 2, "%d connections open at once with concurrency = 2" % mx
    assert sorted(g[1] for g in up.got) == sorted(subjects)
    print("ok concurrency: at most %d open at once (%d connections for 24 "
          "messages)" % (mx, conns))


def t_reload(gw, up):
    """a reload while jobs wait for their destination's rate: they go
    back to the schedule and are routed again, none lost or doubled"""
    with up.lock:
        up.got.clear()
    subjects = ["reload-%d" % i for i in range(20)]
    gw.submit("bob@rate.test", subjects)
    wait_for("the first arrivals", lambda: len(up.got) >= 2, 10)
    gw.proc.send_signal(signal.SIGHUP)
    wait_for("20 messages after the reload", lambda: len(up.got) >= 20, 60)
    time.sleep(0.5 * SLOW)
    got = sorted(g[1] for g in up.got)
    assert got == sorted(subjects), "missing or doubled: %r" % got
    assert "the configuration was reloaded" in gw.logtext(), \
        "nothing was waiting at the reload"
    print("ok reload: 20 rate-limited messages, a reload among them, each "
          "delivered once")


def t_backoff(gw, up):
    t0 = time.monotonic()
    gw.submit("bob@backoff.test", ["backoff-1", "backoff-2"])
    wait_for("delivery after the pause", lambda: len(up.got) >= 2, 30)
    took = time.monotonic() - t0
    text = gw.logtext()
    assert "asked for fewer connections; pausing it for 2 s" in text, \
        "no pause in the log"
    assert took >= 1.5, "delivered %.2f s after a 421" % took
    print("ok backoff: paused 2 s after a 421 greeting, delivered after "
          "%.1f s" % took)


def main():
    tmp = tempfile.mkdtemp(prefix="sluice-limits.", dir="/tmp")
    os.chmod(tmp, 0o755)
    ups = {"reuse": Upstream(), "rate": Upstream(),
           "conc": Upstream(delay=0.3), "backoff": Upstream()}
    ctls, routes = [], []
    extra = {"reuse": 'messages_per_connection = 3; idle_timeout = "1s";',
             "rate": 'rate = "5/s";',
             "conc": 'concurrency = 2;',
             "backoff": 'backoff = "2s";'}
    for name, up in ups.items():
        port = free_port()
        c = CountingController(up, hostname="127.0.0.1", port=port)
        c.start()           # which makes a connection of its own
        up.dest = "127.0.0.1:%d" % port
        ctls.append(c)
        routes.append('  { domains = [ "%s.test" ]; smarthost = '
                      '"127.0.0.1:%d"; tls = "none"; %s }' %
                      (name, port, extra[name]))
    routes.append('  { domains = [ "*" ]; smarthost = "127.0.0.1:%d"; '
                  'tls = "none"; }' % free_port())
    for up in ups.values():
        up.connections = 0
    ups["backoff"].refuse = 1
    passed = failed = 0
    gw = None
    try:
        gw = Gateway(tmp, routes)
        for name, fn in (("reuse", t_reuse), ("rate", t_rate),
                         ("concurrency", t_concurrency),
                         ("backoff", t_backoff), ("reload", t_reload)):
            try:
                fn(gw, ups[{"concurrency": "conc",
                            "reload": "rate"}.get(name, name)])
                passed += 1
            except Exception as ex:
                failed += 1
                print("FAIL %s: %s: %s" % (name, type(ex).__name__, ex))
                print("\n".join("    | " + ln for ln in
                                gw.logtext().splitlines()[-30:]))
    except Exception as ex:
        failed += 1
        print("FAIL setup: %s: %s" % (type(ex).__name__, ex))
    finally:
        if gw is not None:
            gw.stop()
        for c in ctls:
            c.stop()
        subprocess.run(["rm", "-rf", tmp])
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
