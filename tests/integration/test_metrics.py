"""
test_metrics - GET /metrics on queued's endpoint, through a real
sluiced with its embedded Redis and a real upstream (aiosmtpd).

  - the page is Prometheus text format 0.0.4, checked by a strict
    parser below (and by promtool when it is installed);
  - a message submitted with smtplib (STARTTLS, AUTH PLAIN) and
    delivered upstream, plus one failed AUTH, move the counters:
    accepted, delivered (also per route), SMTP sessions, TLS, AUTH;
  - an open SMTP session shows in sluice_smtp_sessions;
  - anything but GET /metrics is refused;
  - sluicectl stats --json shows the same counters;
  - without a metrics group queued has no listening socket at all.

Every process it starts is stopped by PID.
"""
import json
import math
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from aiosmtpd.controller import Controller
from itlib import free_port  # noqa: E402
import itlib  # noqa: E402

BUILD = os.environ.get("SLUICE_BUILD", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build"))
SLOW = 2.0 if "asan" in BUILD else 1.0


def wait_for(what, fn, limit):
    return itlib.wait_for(what, fn, limit * SLOW)


NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class Upstream:
    def __init__(self):
        self.got = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.got.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 2.0.0 Ok: upstream has it"


def parse_labels(s, where):
    """'a="x",b="y\\"z"' -> (("a", "x"), ("b", 'y"z')), strictly."""
    out = []
    i = 0
    while i < len(s):
        m = LABEL.match(s, i)
        assert m, "%s: bad label name at %r" % (where, s[i:])
        name = m.group(0)
        i = m.end()
        assert s[i:i + 2] == '="', "%s: no =\" after %s" % (where, name)
        i += 2
        val = []
        while True:
            assert i < len(s), "%s: label %s not closed" % (where, name)
            c = s[i]
            if c == "\\":
                nxt = s[i + 1:i + 2]
                assert nxt in ("\\", '"', "n"), \
                    "%s: bad escape \\%s" % (where, nxt)
                val.append("\n" if nxt == "n" else nxt)
                i += 2
            elif c == '"':
                i += 1
                break
            else:
                assert c != "\n", "%s: line feed in a label" % where
                val.append(c)
                i += 1
        assert name not in [n for n, _ in out], \
            "%s: label %s twice" % (where, name)
        out.append((name, "".join(val)))
        if i < len(s):
            assert s[i] == ",", "%s: expected , at %r" % (where, s[i:])
            i += 1
            assert i < len(s), "%s: trailing comma" % where
    return tuple(out)


def parse_value(v, where):
    if v in ("NaN", "+Inf", "-Inf"):
        return float(v.replace("Inf", "inf").replace("NaN", "nan"))
    assert re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", v), \
        "%s: bad value %r" % (where, v)
    return float(v)


def parse_exposition(text):
    """A strict reading of the text format: every family has one HELP
    and one TYPE before its samples, its samples are together, no
    sample repeats, counters end in _total and never go below zero.
    Returns {(name, labels): value} and {name: type}."""
    assert text.endswith("\n"), "the page does not end with a line feed"
    samples, types, helps = {}, {}, {}
    done = set()  # families already closed by another one
    current = None
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = "line %d" % n
        assert line and line == line.strip(), "%s: blank or padded: %r" % (
            where, line)
        if line.startswith("#"):
            parts = line.split(" ", 3)
            assert len(parts) >= 3 and parts[0] == "#" and \
                parts[1] in ("HELP", "TYPE"), "%s: stray comment %r" % (
                    where, line)
            fam = parts[2]
            assert NAME.fullmatch(fam), "%s: bad name %r" % (where, fam)
            assert fam not in done, "%s: %s comes back" % (where, fam)
            if current != fam:
                if current is not None:
                    done.add(current)
                current = fam
            if parts[1] == "HELP":
                assert fam not in helps, "%s: second HELP %s" % (where, fam)
                assert len(parts) == 4 and parts[3], \
                    "%s: empty HELP" % where
                helps[fam] = parts[3]
            else:
                assert fam not in types, "%s: second TYPE %s" % (where, fam)
                assert len(parts) == 4 and parts[3] in TYPES, \
                    "%s: bad TYPE %r" % (where, line)
                assert not any(k[0] == fam for k in samples), \
                    "%s: TYPE after samples of %s" % (where, fam)
                types[fam] = parts[3]
            continue
        m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)"
                         r"( -?\d+)?", line)
        assert m, "%s: not a sample: %r" % (where, line)
        name = m.group(1)
        labels = parse_labels(m.group(3), where) if m.group(2) else ()
        value = parse_value(m.group(4), where)
        assert name == current, "%s: %s outside its family (%s)" % (
            where, name, current)
        assert name in types and name in helps, \
            "%s: %s has no HELP or TYPE before it" % (where, name)
        key = (name, tuple(sorted(labels)))
        assert key not in samples, "%s: %r repeated" % (where, key)
        if types[name] == "counter":
            assert name.endswith("_total"), "%s: counter %s without " \
                "_total" % (where, name)
            assert value >= 0 and not math.isnan(value), \
                "%s: counter below zero" % where
        samples[key] = value
    for fam in set(types) | set(helps):
        assert fam in types and fam in helps, "%s lacks HELP or TYPE" % fam
        assert fam.startswith("sluice_"), "%s has no sluice_ prefix" % fam
    return samples, types


def check_parser():
    """The parser refuses what Prometheus would, or it proves nothing."""
    good = ("# HELP sluice_a_total A.\n# TYPE sluice_a_total counter\n"
            "sluice_a_total{x=\"a\\\"b\",y=\"\\n\"} 1\n")
    parse_exposition(good)
    bad = [
        good[:-1],  # no final line feed
        good.replace("# HELP sluice_a_total A.\n", ""),  # no HELP
        good.replace("counter", "countr"),  # bad type
        good.replace("} 1", "} one"),  # bad value
        good.replace('",y', '" ,y'),  # junk in labels
        good.replace("y=", "x="),  # label twice
        good + good.split("\n")[2] + "\n",  # sample twice
        good.replace("_total", "_count"),  # counter name
        good.replace("} 1", "} -1"),  # counter below 0
        good + "# HELP sluice_b B.\n# TYPE sluice_b gauge\nsluice_b 1\n"
        "sluice_a_total 2\n",  # family split
        good + "\n",  # blank line
        good.replace("sluice_a", "other_a"),  # prefix
    ]
    for i, text in enumerate(bad):
        try:
            parse_exposition(text)
        except AssertionError:
            continue
        raise AssertionError("the parser took bad page %d: %r" % (i, text))


def get(port, path="/metrics", method="GET"):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=10 * SLOW) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), ""


def scrape(port):
    status, headers, body = get(port)
    assert status == 200, status
    assert headers.get("Content-Type", "").startswith(
        "text/plain; version=0.0.4"), headers
    return parse_exposition(body)[0], body


def val(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def write_conf(tmp, sport, uport, mport):
    conf = os.path.join(tmp, "sluice.conf")
    with open(conf, "w") as f:
        f.write("""hostname = "mail.metrics.test";
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
        if mport is not None:
            f.write('metrics = { listen = "127.0.0.1:%d"; };\n' % mport)
    return conf


class Master:
    def __init__(self, tmp, conf):
        self.logpath = os.path.join(tmp, "sluiced.log")
        self.log = open(self.logpath, "ab")
        self.p = subprocess.Popen([os.path.join(BUILD, "sluiced"), "-d",
                                   "-c", conf, "-x", BUILD],
                                  stdout=self.log, stderr=self.log,
                                  stdin=subprocess.DEVNULL)
        self.mark = os.path.getsize(self.logpath)

    def text(self):
        return open(self.logpath, errors="replace").read()

    def wait_ready(self):
        wait_for("sluice ready", lambda: "sluice ready" in self.text(), 30)

    def child(self, name):
        out = subprocess.run(["ps", "-o", "pid=,comm=", "--ppid",
                              str(self.p.pid)], capture_output=True,
                             text=True).stdout.split("\n")
        for ln in out:
            f = ln.split()
            if len(f) == 2 and f[1] == name:
                return int(f[0])
        return None

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.log.close()


def listening_inodes():
    inodes = set()
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(f) as fh:
            next(fh)
            for ln in fh:
                c = ln.split()
                if c[3] == "0A":  # TCP_LISTEN
                    inodes.add(c[9])
    return inodes


def socket_inodes(pid):
    out = set()
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            t = os.readlink(os.path.join(d, fd))
        except OSError:
            continue
        if t.startswith("socket:["):
            out.add(t[8:-1])
    return out


def submit(sport, password):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = smtplib.SMTP("127.0.0.1", sport, timeout=30 * SLOW)
    s.starttls(context=ctx)
    s.ehlo()
    # PLAIN alone: login() would try LOGIN after a failed PLAIN
    s.user, s.password = "alice", password
    s.auth("PLAIN", s.auth_plain)
    return s


def main():
    tmp = tempfile.mkdtemp(prefix="sluice-metrics.", dir="/tmp")
    os.chmod(tmp, 0o755)
    up = Upstream()
    uport, sport, mport = free_port(), free_port(), free_port()
    ctl = Controller(up, hostname="127.0.0.1", port=uport,
                     decode_data=False)
    ctl.start()
    conf = write_conf(tmp, sport, uport, mport)
    m = None
    passed = failed = 0
    try:
        check_parser()
        m = Master(tmp, conf)
        m.wait_ready()
        before, body = scrape(mport)
        assert val(before, "sluice_redis_up") == 1, "redis down"
        assert val(before, "sluice_queued_ready") == 1, "queued not ready"
        assert val(before, "sluice_messages_accepted_total") is not None
        promtool = shutil.which("promtool")
        if promtool:
            p = subprocess.run([promtool, "check", "metrics"],
                               input=body.encode(), capture_output=True)
            assert p.returncode == 0, p.stdout + p.stderr
        print("ok the page is well-formed%s (%d samples)" % (
            " (promtool agrees)" if promtool else "", len(before)))
        passed += 1

        p = subprocess.run([os.path.join(BUILD, "sluicectl"), "-c", conf,
                            "user", "add", "alice", "--password-stdin",
                            "--sender", "@example.org"],
                           input=b"secret-pw\n", capture_output=True)
        assert p.returncode == 0, p.stderr
        try:
            submit(sport, "wrong-pw")
            raise AssertionError("a wrong password was taken")
        except smtplib.SMTPAuthenticationError:
            pass
        s = submit(sport, "secret-pw")
        s.sendmail("alice@example.org", ["bob@example.net"],
                   b"From: alice@example.org\r\nSubject: metrics\r\n\r\n"
                   b"counted\r\n")
        s.quit()
        wait_for("the message upstream", lambda: [
            g for g in up.got if g[0] == "alice@example.org"], 20)

        route = "127.0.0.1:%d" % uport
        want = [
            (("sluice_messages_accepted_total",), 1),
            (("sluice_recipients_total", ("result", "delivered")), 1),
            (("sluice_route_recipients_total", ("result", "delivered"),
              ("route", route)), 1),
            (("sluice_smtp_sessions_total",), 2),
            (("sluice_smtp_tls_total", ("result", "ok")), 2),
            (("sluice_smtp_auth_total", ("result", "ok")), 1),
            (("sluice_smtp_auth_total", ("result", "failed")), 1),
        ]

        def moved():
            now, _ = scrape(mport)
            for key, d in want:
                k = (key[0], tuple(sorted(key[1:])))
                if now.get(k, 0) - before.get(k, 0) < d:
                    return None
            if val(now, "sluice_queue_messages") != 0:
                return None
            return now
        after = wait_for("the counters to move", moved, 10)
        for key, d in want:
            k = (key[0], tuple(sorted(key[1:])))
            assert after[k] - before.get(k, 0) == d, \
                "%r moved by %r, not %d" % (k, after[k] - before.get(k, 0), d)
        assert val(after, "sluice_recipients_total", result="bounced") == 0
        assert val(after, "sluice_queue_oldest_age_seconds") == 0
        print("ok the counters moved: accepted, delivered (route %s), "
              "sessions, TLS, AUTH ok and failed" % route)
        passed += 1

        # a session held open is a gauge of this node
        s = smtplib.SMTP("127.0.0.1", sport, timeout=30 * SLOW)
        s.ehlo()
        wait_for("an open session", lambda: val(
            scrape(mport)[0], "sluice_smtp_sessions") == 1, 5)
        s.quit()
        wait_for("no open session", lambda: val(
            scrape(mport)[0], "sluice_smtp_sessions") == 0, 5)
        assert val(after, "sluice_smtpd_processes") == 1
        print("ok sluice_smtp_sessions follows an open session")
        passed += 1

        # only GET /metrics; one request per connection
        for path, method, codes in (("/", "GET", (404,)),
                                    ("/metrics/x", "GET", (404,)),
                                    ("/metrics", "POST", (405, 413, 501)),
                                    ("/metrics", "PUT", (405, 413, 501))):
            status, _, _ = get(mport, path, method)
            assert status in codes, "%s %s: %d" % (method, path, status)
        status, headers, _ = get(mport)
        assert headers.get("Connection") == "close", headers
        with socket.create_connection(("127.0.0.1", mport)) as c:
            c.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX: " +
                      b"a" * 8192 + b"\r\n\r\n")
            c.settimeout(5 * SLOW)
            assert c.recv(64).startswith(b"HTTP/1.1 400"), "huge header"
        assert scrape(mport)[0], "the endpoint died"
        print("ok anything but GET /metrics is refused")
        passed += 1

        # sluicectl reads the same counters from Redis
        p = subprocess.run([os.path.join(BUILD, "sluicectl"), "-c", conf,
                            "stats", "--json"], capture_output=True)
        assert p.returncode == 0, p.stderr
        counters = json.loads(p.stdout)["counters"]
        now, _ = scrape(mport)
        for field, key in (
                ("accepted", ("sluice_messages_accepted_total",)),
                ("delivered", ("sluice_recipients_total",
                               ("result", "delivered"))),
                ("smtp_sessions", ("sluice_smtp_sessions_total",)),
                ("smtp_tls", ("sluice_smtp_tls_total", ("result", "ok"))),
                ("auth_ok", ("sluice_smtp_auth_total", ("result", "ok"))),
                ("auth_failed", ("sluice_smtp_auth_total",
                                 ("result", "failed"))),
                ("route:%s:delivered" % route, (
                    "sluice_route_recipients_total",
                    ("result", "delivered"), ("route", route)))):
            k = (key[0], tuple(sorted(key[1:])))
            assert counters.get(field) == now[k], "%s: sluicectl %r, " \
                "metrics %r" % (field, counters.get(field), now[k])
        p = subprocess.run([os.path.join(BUILD, "sluicectl"), "-c", conf,
                            "stats"], capture_output=True, text=True)
        assert p.returncode == 0 and "counters.auth_failed 1" in p.stdout, \
            p.stdout
        print("ok sluicectl stats shows the same counters")
        passed += 1

        # without a metrics group nothing listens
        m.stop()
        write_conf(tmp, sport, uport, None)
        m = Master(tmp, conf)
        m.wait_ready()
        qpid = wait_for("queued", lambda: m.child("queued"), 10)
        time.sleep(0.3 * SLOW)
        mine = socket_inodes(qpid) & listening_inodes()
        assert not mine, "queued listens without metrics: %r" % mine
        try:
            socket.create_connection(("127.0.0.1", mport), timeout=2).close()
            raise AssertionError("something answers on the metrics port")
        except ConnectionRefusedError:
            pass
        print("ok without a metrics group queued listens on nothing")
        passed += 1
    except Exception as ex:
        failed += 1
        print("FAIL metrics: %s: %s" % (type(ex).__name__, ex))
        if m is not None:
            print("\n".join("    | " + ln for ln in
                            m.text().splitlines()[-40:]))
    finally:
        if m is not None:
            m.stop()
        ctl.stop()
        subprocess.run(["rm", "-rf", tmp])
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
