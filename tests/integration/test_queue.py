#!/usr/bin/env python3
"""test_queue - the queue manager, queued, through its real channels.

Each test starts a private redis-server and the real build/queued
(SLUICE_BUILD) and plays sluiced, smtpd and deliverd with qharness.
One function per behaviour; the runner prints `ok NAME` or
`FAIL NAME: reason` and finally `N passed, N failed`.

    python3 tests/integration/test_queue.py [NAME-SUBSTRING ...]
    python3 tests/integration/test_queue.py -q ...   (no queued log on failure)
"""

import email
import email.policy
import email.utils
import json
import subprocess
import os
import re
import sys
import threading
import time

sys.dont_write_bytecode = True     # no __pycache__ in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qharness as H                                    # noqa: E402
from qharness import wait_until, SLOW                   # noqa: E402
import itlib  # noqa: E402
from itlib import Fail, check, eq  # noqa: E402

TESTS = []
ENVS = []
QID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
ABSENT_ID = "00000000000000000000000000"
R451 = (451, "4.4.1", "451 4.4.1 try again later")
R550 = (550, "5.1.1", "550 5.1.1 <bob@b.test>: no such user")


def test(fn):
    TESTS.append(fn)
    return fn


def mkenv(name, **kw):
    e = H.Env(name, **kw)
    ENVS.append(e)
    return e


# ---------------------------------------------------------------------------
# helpers on Redis state


def qkeys(e, qid):
    return [e.key(k, qid) for k in ("msg", "rcpt", "body")]


def msg(e, qid):
    return e.redis.hgetall(e.key("msg", qid))


def rcpt(e, qid):
    return e.redis.hgetall(e.key("rcpt", qid))


def stats(e):
    return e.redis.hgetall(e.prefix + "stats")


def stat(e, name):
    return int(stats(e).get(name, "0"))


def in_ids(e, qid):
    return e.redis("ZSCORE", e.prefix + "ids", qid) is not None


def sched_score(e, qid):
    v = e.redis("ZSCORE", e.prefix + "schedule", qid)
    return None if v is None else float(v)


def events(e, qid=None):
    out = []
    for _id, fields in e.redis("XRANGE", e.prefix + "events", "-", "+") or []:
        d = {fields[i].decode(): fields[i + 1].decode("utf-8", "replace")
             for i in range(0, len(fields), 2)}
        if qid is None or d.get("id") == qid:
            out.append(d)
    return out


def event_names(e, qid):
    return [d.get("event") for d in events(e, qid)]


def gone(e, qid):
    return (e.redis("EXISTS", *qkeys(e, qid)) == 0 and not in_ids(e, qid)
            and sched_score(e, qid) is None)


def all_keys(e):
    return [k.decode() for k in e.redis("KEYS", e.prefix + "*") or []]


def msg_keys(e):
    return [k for k in all_keys(e)
            if re.match(re.escape(e.prefix) + r"(msg|rcpt|body):", k)]


def enqueue_ok(e, *a, **kw):
    r = e.q.smtpd.enqueue(*a, **kw)
    check(r[0] == "ok", "enqueue refused: %r", r)
    check(QID_RE.match(r[1]), "queue id %r is not 26 Crockford base32", r[1])
    return r[1]


def jobs_for(e, qid, qs=None):
    out = []
    for q in qs or [e.q]:
        out += [j for j in q.jobs if j.id == qid]
    return out


def is_dsn(job):
    """A report sluice made: null sender and multipart/report (a
    message the test itself sent from <> is not one)."""
    if job.sender != "":
        return False
    head = job.body.split(b"\r\n\r\n", 1)[0].lower()
    return b"multipart/report" in head


def dsn_jobs(e, to=None, qs=None):
    out = []
    for q in qs or [e.q] + e.extra:
        out += [j for j in q.jobs if is_dsn(j) and
                (to is None or to in j.recipients)]
    return out


def split_message(b):
    i = b.find(b"\r\n\r\n")
    check(i >= 0, "no empty line after the header section")
    return b[:i + 2], b[i + 4:]


def parse_dsn(job):
    m = email.message_from_bytes(job.body, policy=email.policy.compat32)
    ct = m.get_content_type()
    check(ct == "multipart/report", "DSN Content-Type is %s" % ct)
    check((m.get_param("report-type") or "").lower() == "delivery-status",
          "report-type is %r", m.get_param("report-type"))
    parts = m.get_payload()
    check(isinstance(parts, list) and len(parts) >= 2,
          "multipart/report has %s parts",
          len(parts) if isinstance(parts, list) else "no")
    check(parts[0].get_content_type() == "text/plain",
          "first part is %s, not text/plain", parts[0].get_content_type())
    ds = [p for p in parts if p.get_content_type() == "message/delivery-status"]
    check(len(ds) == 1, "no message/delivery-status part")
    blocks = ds[0].get_payload()
    check(isinstance(blocks, list) and len(blocks) >= 2,
          "delivery-status has no per-recipient block")
    return m, parts, blocks[0], blocks[1:]


def hdr(block, name):
    v = block.get(name)
    return None if v is None else " ".join(str(v).split())


class Policy:
    """A per-job scripted upstream: fn(job, rcpt, n) with n the number of
    earlier jobs for this queue id; DSN jobs (sender "") get dsn_reply."""

    def __init__(self, fn, dsn_reply=H.policy_ok):
        self.fn, self.dsn_reply = fn, dsn_reply
        self.seen = {}
        self.lock = threading.Lock()

    def __call__(self, job, r):
        with self.lock:
            key = (job.id, job.reqid, job.worker)
            if key not in self.seen:
                self.seen[key] = sum(1 for k in self.seen if k[0] == job.id)
            n = self.seen[key]
        if self.dsn_reply is not None and is_dsn(job):
            return self.dsn_reply(job, r)
        return self.fn(job, r, n)


def always(res):
    return Policy(lambda j, r, n: res)


def fail_then_ok(times, res=R451):
    return Policy(lambda j, r, n: res if n < times else
                  (250, "2.0.0", "250 2.0.0 Ok"))


# ---------------------------------------------------------------------------
# set-up and the enqueue side


@test
def test_handshake():
    e = mkenv("hs", policy=H.policy_hold)
    q = e.q
    eq(q.ready_pid, q.proc.pid, "READY pid")
    eq(q.conf_done, 1, "CONF_DONE generation")
    for p in [q.smtpd] + q.workers:
        eq(p.hello, (H.IPC_VERSION, H.PROC_QUEUED, 0), "HELLO on " +
           p.chan.name)
    q.parent.send(H.T.HEARTBEAT, 4242)
    acks = []
    orig = q._parent_frame

    def spy(f):
        if f is not None and f.type == H.T.HEARTBEAT_ACK:
            acks.append(f.reqid)
            return
        orig(f)
    q._chans[q.parent] = spy
    q.parent.send(H.T.HEARTBEAT, 4243)
    wait_until(lambda: 4243 in acks, 5, what="HEARTBEAT_ACK")
    check(q.alive(), "queued died")
    key = os.path.join(e.tmp, "state", "queue.key")
    wait_until(lambda: os.path.exists(key), 5, what="state_dir/queue.key")
    st = os.stat(key)
    eq(st.st_mode & 0o077, 0, "queue.key permissions for group/other")
    with open(key) as f:
        check(re.fullmatch(r"[0-9a-fA-F]{64}\s*", f.read()),
              "queue.key is not 64 hex digits")


@test
def test_enqueue_writes_redis_before_ok():
    e = mkenv("keys", policy=H.policy_hold)
    body = H.message("keys test", extra_headers=["X-Secret: PLAINTEXT-MARK"])
    body += b"PLAINTEXT-MARK in the body\r\n"
    t0 = time.time()
    r = e.q.smtpd.enqueue(
        "alice@example.org", ["bob@b.test", "carol@c.test"], body,
        flags=H.QP_BODY_8BITMIME | H.QP_RET_HDRS, envid="ENV+2Bid1",
        notify=[H.N_FAILURE | H.N_DELAY, 0],
        orcpt=["rfc822;bob@b.test", ""])
    # right at Q_OK, before anything else: all of it is in Redis
    check(r[0] == "ok", "enqueue refused: %r", r)
    qid = r[1]
    present = e.redis("EXISTS", *qkeys(e, qid))
    t1 = time.time()
    check(QID_RE.match(qid), "queue id %r is not 26 Crockford base32", qid)
    eq(present, 3, "msg/rcpt/body keys present at Q_OK")
    check(in_ids(e, qid), "%s not in ids at Q_OK", qid)
    check(sched_score(e, qid) is not None, "%s not in schedule at Q_OK", qid)
    eq(stat(e, "accepted"), 1, "stats accepted")
    check("queued" in event_names(e, qid), "no queued event: %r",
          events(e, qid))

    m = msg(e, qid)
    eq(m.get("id"), qid, "msg id")
    eq(m.get("from"), "alice@example.org", "msg from")
    eq(m.get("nrcpt"), "2", "msg nrcpt")
    eq(m.get("user"), "alice", "msg user")
    eq(m.get("client"), "127.0.0.1", "msg client")
    eq(m.get("helo"), "client.test", "msg helo")
    eq(m.get("proto"), "ESMTPSA", "msg proto")
    eq(m.get("tls"), "TLSv1.3 TLS_AES_256_GCM_SHA384", "msg tls")
    eq(m.get("flags"), str(H.QP_BODY_8BITMIME | H.QP_RET_HDRS), "msg flags")
    eq(m.get("envid"), "ENV+2Bid1", "msg envid")
    eq(m.get("state"), "active", "msg state")
    check(m.get("attempts") in ("0", "1"), "attempts %r", m.get("attempts"))
    check("next" in m, "no next field")
    created = float(m.get("created", "0"))
    check(int(t0) - 1 <= created <= t1 + 1, "created %r not about now (%d)",
          m.get("created"), t0)
    rc = rcpt(e, qid)
    eq(rc.get("0:to"), "bob@b.test", "rcpt 0:to")
    eq(rc.get("0:notify"), str(H.N_FAILURE | H.N_DELAY), "rcpt 0:notify")
    eq(rc.get("0:orcpt"), "rfc822;bob@b.test", "rcpt 0:orcpt")
    eq(rc.get("0:state"), "pending", "rcpt 0:state")
    eq(rc.get("1:to"), "carol@c.test", "rcpt 1:to")
    eq(rc.get("1:notify"), "0", "rcpt 1:notify")
    eq(rc.get("1:orcpt"), "", "rcpt 1:orcpt")
    eq(rc.get("1:state"), "pending", "rcpt 1:state")

    # the body is encrypted; its size is that of the stored message
    j = e.q.wait_jobs(1, 10)[0]
    stored = j.body
    eq(int(m.get("size", "-1")), len(stored), "msg size vs delivered message")
    raw = e.redis("GET", e.key("body", qid))
    check(raw is not None, "no body key")
    eq(len(raw), 24 + len(stored) + 16, "body length (nonce+ct+tag)")
    check(b"PLAINTEXT-MARK" not in raw, "the body is stored in clear")
    check(b"keys test" not in raw, "the subject is stored in clear")


@test
def test_fixup_adds_message_id_and_date():
    e = mkenv("fix", policy=H.policy_hold)
    cases = {
        "both": H.message("no id no date", msgid=False, date=False),
        "date": H.message("no date", msgid=True, date=False),
        "msgid": H.message("no id", msgid=False, date=True),
    }
    ids = {k: enqueue_ok(e, "alice@example.org", ["bob@b.test"], v)
           for k, v in cases.items()}
    e.q.wait_jobs(3, 10)
    for k, orig in cases.items():
        qid = ids[k]
        js = jobs_for(e, qid)
        check(js, "no job for %s", k)
        got = js[0].body
        oh, ob = split_message(orig)
        gh, gb = split_message(got)
        eq(gb, ob, "%s: body after the header section" % k)
        check(gh.startswith(oh), "%s: original header section is not kept "
              "byte for byte at the front:\n%r" % (k, gh))
        added = gh[len(oh):].decode()
        lines = [ln for ln in added.split("\r\n") if ln]
        want = {"both": 2, "date": 1, "msgid": 1}[k]
        eq(len(lines), want, "%s: added header lines %r" % (k, lines))
        names = sorted(ln.split(":", 1)[0].lower() for ln in lines)
        exp = {"both": ["date", "message-id"], "date": ["date"],
               "msgid": ["message-id"]}[k]
        eq(names, exp, "%s: added headers" % k)
        for ln in lines:
            name, val = ln.split(":", 1)
            val = val.strip()
            if name.lower() == "message-id":
                eq(val, "<%s@mx.test>" % qid, "%s: Message-ID" % k)
            else:
                d = email.utils.parsedate_to_datetime(val)
                check(d is not None and d.tzinfo is not None,
                      "%s: Date %r is not RFC 5322", k, val)
                check(abs(d.timestamp() - time.time()) < 120,
                      "%s: Date %r is not now", k, val)
        eq(int(msg(e, qid).get("size", "-1")), len(got), "%s: size" % k)


@test
def test_fixup_none_when_present():
    e = mkenv("nofix", policy=H.policy_hold)
    # 8-bit text, a long line, header names in odd case, folded header
    body = (b"Received: from client.test\r\n\tby mx.test; Mon, 1 Jan 2024 "
            b"00:00:00 +0000\r\nFrom: =?utf-8?q?J=C3=B6rg?= <j@example.org>"
            b"\r\nmessage-id: <x.1@example.org>\r\nDATE: Mon, 1 Jan 2024 "
            b"00:00:00 +0000\r\nSubject: a folded\r\n subject\r\n\r\n"
            b"Gr\xc3\xbc\xc3\x9fe\r\n" + b"x" * 990 + b"\r\n.\r\n..\r\nend\r\n")
    qid = enqueue_ok(e, "j@example.org", ["bob@b.test"], body,
                     flags=H.QP_BODY_8BITMIME)
    j = e.q.wait_jobs(1, 10)[0]
    eq(j.id, qid, "job id")
    eq(j.body, body, "delivered message (must be byte-identical)")
    eq(j.flags & H.QP_BODY_8BITMIME, H.QP_BODY_8BITMIME, "job flags")


@test
def test_fail_no_recipients():
    e = mkenv("norcpt")
    r = e.q.smtpd.enqueue("alice@example.org", [], H.message("x"))
    check(r[0] == "fail", "accepted without recipients: %r", r)
    eq((r[1], r[2]), (554, "5.5.1"), "code/status")
    eq(msg_keys(e), [], "keys left behind")
    enqueue_ok(e, "alice@example.org", ["bob@b.test"], H.message("after"))


@test
def test_fail_size_mismatch():
    e = mkenv("size")
    b = H.message("mismatch")
    for size in (len(b) + 7, len(b) - 1, 0):
        r = e.q.smtpd.enqueue("alice@example.org", ["bob@b.test"], b,
                              size=size)
        check(r[0] == "fail", "size %d for %d bytes accepted: %r", size,
              len(b), r)
        check(500 <= r[1] < 600 and r[2].startswith("5."),
              "size mismatch got %r, want 5xx (554 5.3.0)", r)
    eq(msg_keys(e), [], "keys left behind")
    eq(e.redis("ZCARD", e.prefix + "ids"), 0, "ids")
    enqueue_ok(e, "alice@example.org", ["bob@b.test"], b)


@test
def test_fail_message_size_limit():
    e = mkenv("big", policy=H.policy_hold)
    limit = 1024 * 1024
    head = H.message("big", body="")
    exact = head + b"a" * (limit - len(head) - 2) + b"\r\n"
    eq(len(exact), limit, "test message length")
    # queued leaves QP_HEADROOM for smtpd's Received header and its own
    # fix-ups; the body file is sealed at that length, so a write past it
    # fails and the commit's size is refused
    headroom = 64 * 1024
    over = exact + b"b" * (headroom + 1)
    r = e.q.smtpd.enqueue("alice@example.org", ["bob@b.test"], over,
                          timeout=30)
    check(r[0] == "fail", "over the limit accepted: %r", r)
    eq((r[1], r[2]), (552, "5.3.4"), "code/status over limit")
    eq(msg_keys(e), [], "keys left behind")
    r = e.q.smtpd.enqueue("alice@example.org", ["bob@b.test"], exact,
                          timeout=30)
    check(r[0] == "ok", "exactly limits.message_size refused: %r", r)
    j = e.q.wait_jobs(1, 15)[0]
    eq(j.body, exact, "delivered message")


@test
def test_fail_too_many_recipients():
    e = mkenv("rcpts", policy=H.policy_hold)
    many = ["r%d@b.test" % i for i in range(21)]
    r = e.q.smtpd.enqueue("alice@example.org", many, H.message("21"))
    check(r[0] == "fail", "21 recipients accepted: %r", r)
    eq((r[1], r[2]), (452, "4.5.3"), "code/status")
    eq(msg_keys(e), [], "keys left behind")
    qid = enqueue_ok(e, "alice@example.org", many[:20], H.message("20"))
    eq(msg(e, qid).get("nrcpt"), "20", "nrcpt")
    js = e.q.wait_jobs(1, 10)
    eq(sorted(x for j in js for x in j.recipients), sorted(many[:20]),
       "recipients handed out")


@test
def test_redis_down_then_back():
    e = mkenv("down")
    enqueue_ok(e, "alice@example.org", ["bob@b.test"], H.message("before"))
    e.redis.kill9()
    r = e.q.smtpd.enqueue("alice@example.org", ["bob@b.test"],
                          H.message("while down"), timeout=30)
    check(r[0] == "fail", "accepted with Redis down: %r", r)
    eq((r[1], r[2]), (451, "4.3.0"), "code/status with Redis down")
    check(e.q.alive(), "queued died when Redis went away")
    e.redis.start()
    got = []

    def again():
        r = e.q.smtpd.enqueue("alice@example.org", ["bob@b.test"],
                              H.message("after"), timeout=30)
        if r[0] == "ok":
            got.append(r[1])
            return True
        check(r[0] == "fail" and r[1] // 100 == 4, "while reconnecting: %r",
              r)
        time.sleep(0.3)
        return False
    wait_until(again, 15, what="a commit after Redis came back")
    e.q.wait_jobs(1, 10, pred=lambda j: j.id == got[0])
    wait_until(lambda: gone(e, got[0]), 10, what="delivered and removed")


@test
def test_redis_out_of_memory():
    e = mkenv("oom")
    qid = enqueue_ok(e, "alice@example.org", ["bob@b.test"], H.message("a"))
    wait_until(lambda: gone(e, qid), 10, what="first message delivered")
    used = int(e.redis.info("memory")["used_memory"])
    e.redis("CONFIG", "SET", "maxmemory", str(used + 1024))
    # fill what is left, so the next write has no room
    try:
        for i in range(10000):
            e.redis("SET", "filler:%d" % i, "x" * 1000)
    except H.RedisError as ex:
        check("OOM" in str(ex), "filling: %s", ex)
    r = e.q.smtpd.enqueue("alice@example.org", ["bob@b.test"],
                          H.message("full"), timeout=30)
    check(r[0] == "fail", "accepted with Redis full: %r", r)
    eq((r[1], r[2]), (452, "4.3.1"), "code/status with Redis full")
    eq(msg_keys(e), [], "keys left behind by the refused message")
    e.redis("CONFIG", "SET", "maxmemory", "0")
    qid = enqueue_ok(e, "alice@example.org", ["bob@b.test"], H.message("b"))
    wait_until(lambda: gone(e, qid), 10, what="delivered after room came")


@test
def test_redis_everysec_refused_unless_relaxed():
    e = mkenv("everysec", start_queued=False)
    e.redis("CONFIG", "SET", "appendfsync", "everysec")
    e.q.start(wait_redis=False)
    r = e.q.smtpd.enqueue("alice@example.org", ["bob@b.test"],
                          H.message("x"), timeout=30)
    check(r[0] == "fail", "accepted over appendfsync everysec: %r", r)
    eq((r[1], r[2]), (451, "4.3.0"), "code/status")
    wait_until(lambda: "appendfsync is everysec" in e.q.log(), 5,
               what="log naming appendfsync is everysec")
    eq(msg_keys(e), [], "keys written to a refused server")
    e.q.stop()
    # the same server, with durability relaxed
    conf = H.make_config(e.tmp, durability="relaxed")
    q2 = H.Queued(e.tmp, conf, name="queued-relaxed")
    e.extra.append(q2)
    q2.start()
    r = q2.smtpd.enqueue("alice@example.org", ["bob@b.test"],
                         H.message("relaxed"), timeout=30)
    check(r[0] == "ok", "relaxed durability still refused: %r", r)


@test
def test_abort_and_dropped_channel_leave_nothing():
    e = mkenv("abort")
    s = e.q.smtpd
    t = s.begin("alice@example.org", ["bob@b.test"], H.message("abort"),
                auto=False)
    check(t.opened.wait(10 * SLOW), "no Q_OPENED")
    os.write(t.fd, b"Subject: half\r\n")
    s.abort(t)
    # an abort straight after OPEN, before OPENED was seen
    t2 = s.begin("alice@example.org", ["bob@b.test"], H.message("x"),
                 auto=False)
    s.abort(t2)
    # three open transactions, then smtpd "dies"
    ts = [s.begin("alice@example.org", ["bob@b.test"], H.message("d%d" % i),
                  auto=False) for i in range(3)]
    for x in ts:
        check(x.opened.wait(10 * SLOW), "no Q_OPENED")
        os.write(x.fd, x.body)
    s2 = e.q.relink_smtpd()
    time.sleep(0.5 * SLOW)
    eq(msg_keys(e), [], "keys after abort / dropped channel")
    eq(e.redis("ZCARD", e.prefix + "ids"), 0, "ids after abort")
    eq(stat(e, "accepted"), 0, "stats accepted")
    check(e.q.alive(), "queued died")
    qid = s2.enqueue("alice@example.org", ["bob@b.test"],
                     H.message("new channel"))
    check(qid[0] == "ok", "the new smtpd channel does not work: %r", qid)
    wait_until(lambda: gone(e, qid[1]), 10, what="delivered")


@test
def test_concurrent_transactions_on_one_channel():
    e = mkenv("conc", policy=H.policy_hold)
    s = e.q.smtpd
    # interleaved by hand: B commits before A
    a = s.begin("a@example.org", ["x@b.test"], H.message("A"), auto=False)
    b = s.begin("b@example.org", ["y@b.test"], H.message("B"), auto=False)
    check(a.opened.wait(10 * SLOW) and b.opened.wait(10 * SLOW), "OPENED")
    s.write_commit(b)
    rb = b.wait()
    s.write_commit(a)
    ra = a.wait()
    check(ra[0] == "ok" and rb[0] == "ok", "results %r %r", ra, rb)
    check(ra[1] != rb[1], "same id twice")
    specs = [("s%d@example.org" % i, ["r%d@b.test" % i],
              H.message("conc %d" % i)) for i in range(100)]
    res = s.enqueue_many(specs, concurrency=50, timeout=60)
    bad = [r for r in res if r is None or r[0] != "ok"]
    check(not bad, "%d transactions failed: %r", len(bad), bad[:3])
    ids = [r[1] for r in res]
    eq(len(set(ids) | {ra[1], rb[1]}), 102, "distinct ids")
    js = e.q.wait_jobs(102, 20)
    byid = {j.id: j for j in js}
    for i, qid in enumerate(ids):
        j = byid.get(qid)
        check(j is not None, "no job for message %d", i)
        eq(j.sender, "s%d@example.org" % i, "sender of %s" % qid)
        check(b"Subject: conc %d\r\n" % i in j.body, "body of %s mixed up",
              qid)
    eq(byid[ra[1]].sender, "a@example.org", "A")
    eq(byid[rb[1]].sender, "b@example.org", "B")


@test
def test_hostile_frames_do_not_crash():
    e = mkenv("hostile", policy=H.policy_hold)
    s = e.q.smtpd
    # a COMMIT and an ABORT for transactions that never were
    s.chan.send(H.T.Q_COMMIT, 999999, H.u64(10))
    s.chan.send(H.T.Q_ABORT, 999998)
    time.sleep(0.2)
    check(e.q.alive(), "queued died on a COMMIT for an unknown transaction")
    # truncated and overlong strings: a malformed frame kills the channel
    s.chan.send(H.T.Q_OPEN, 5, b"\x00\x00")
    try:
        # queued may already have closed the channel on the first one
        s.chan.send(H.T.Q_RCPT, 6, H.u32(0) + H.u32(0xFFFFFFF0) + b"abc")
    except (BrokenPipeError, ConnectionError):
        pass
    time.sleep(0.3)
    check(e.q.alive(), "queued died on malformed smtpd frames")
    s = e.q.relink_smtpd()
    qid = enqueue_ok(e, "alice@example.org", ["bob@b.test"], H.message("h"))
    j = e.q.wait_jobs(1, 10)[0]
    eq(j.id, qid, "job")
    w = e.q.workers[j.worker]
    # results for an index the job does not have and for an unknown job
    w.chan.send(H.T.DLV_RESULT, j.reqid, H.u32(77) + H.u32(250) +
                H.pstr("2.0.0") + H.pstr("250 ok"))
    w.chan.send(H.T.DLV_DONE, 123456789, H.u32(0) + H.pstr("x[1.2.3.4]:25"))
    w.chan.send(H.T.DLV_RESULT, j.reqid, H.u32(0) + H.u32(999) +
                H.pstr("9.9.9") + H.pstr("nonsense code"))
    time.sleep(0.3)
    check(e.q.alive(), "queued died on bad deliverd frames")
    # whatever became of that job, the message gets delivered in the end
    e.q.policy = H.policy_ok
    for i in range(len(e.q.workers)):
        e.q.relink_worker(i)
    wait_until(lambda: gone(e, qid), 20, what="delivered after all that")
    check(e.q.alive(), "queued died")


# ---------------------------------------------------------------------------
# delivery


@test
def test_delivery_groups_by_route_and_removes():
    e = mkenv("route", routes=H.TWO_ROUTES)
    rc = ["x@a.test", "y@b.test", "z@A.TEST", "w@c.test"]
    t0 = time.monotonic()
    qid = enqueue_ok(e, "alice@example.org", rc, H.message("routes"),
                     envid="E1", notify=[H.N_DELAY | H.N_FAILURE, 0, 0, 0],
                     orcpt=["rfc822;x@a.test", "", "", ""])
    js = e.q.wait_jobs(2, 5)
    lat = time.monotonic() - t0
    eq(len(js), 2, "jobs (one per route/destination)")
    by = {j.route: j for j in js}
    eq(sorted(by), [0, 1], "routes")
    eq(by[0].destination, "127.0.0.1:2601", "route 0 destination")
    eq(by[1].destination, "127.0.0.1:2602", "route 1 destination")
    eq(sorted(r["index"] for r in by[0].rcpts), [0, 2], "route 0 indexes")
    eq(sorted(by[0].recipients), ["x@a.test", "z@A.TEST"], "route 0 rcpts")
    eq(sorted(by[1].recipients), ["w@c.test", "y@b.test"], "route 1 rcpts")
    r0 = [r for r in by[0].rcpts if r["index"] == 0][0]
    eq((r0["notify"], r0["orcpt"]), (H.N_DELAY | H.N_FAILURE,
                                     "rfc822;x@a.test"), "notify/orcpt")
    for j in js:
        eq((j.id, j.sender, j.envid), (qid, "alice@example.org", "E1"),
           "job envelope")
        eq(j.nrcpt, len(j.rcpts), "nrcpt")
        if j.sealed is not None:
            import fcntl
            check(j.sealed & fcntl.F_SEAL_WRITE, "job memfd not sealed "
                  "against writes (seals %#x)", j.sealed)
    wait_until(lambda: gone(e, qid), 10, what="message removed")
    eq(stat(e, "delivered"), 4, "stats delivered")
    eq(stat(e, "route:127.0.0.1:2601:delivered"), 2, "per-route counter")
    ev = event_names(e, qid)
    eq(ev.count("sent"), 4, "sent events %r" % ev)
    check("removed" in ev, "no removed event: %r", ev)
    log = e.q.log()
    check(re.search(re.escape(qid) + r": from=<alice@example.org>, size=\d+,"
                    r" nrcpt=4", log), "no from= log line")
    for r in rc:
        check(re.search(re.escape(qid) + r": to=<" + re.escape(r) +
                        r">, relay=[^,]+, delay=[^,]+, .*dsn=2\.0\.0, "
                        r"status=sent \(250 ", log),
              "no status=sent log line for %s", r)
    check(re.search(re.escape(qid) + r": removed", log), "no removed line")
    print("    (first job after %.2fs)" % lat)


@test
def test_deferred_state_and_schedule():
    e = mkenv("defer", retry_min="10s", retry_max="40s", lifetime="1h",
              policy=always(R451))
    qid = enqueue_ok(e, "alice@example.org", ["bob@b.test"], H.message("d"))
    e.q.wait_jobs(1, 10)
    t0 = time.time()
    wait_until(lambda: msg(e, qid).get("state") == "deferred", 10,
               what="state deferred")
    t1 = time.time()
    m = msg(e, qid)
    eq(m.get("attempts"), "1", "attempts")
    check("4.4.1" in m.get("last_error", "") or "try again" in
          m.get("last_error", ""), "last_error %r", m.get("last_error"))
    nxt = float(m.get("next", "0"))
    check(int(t0) - 1 + 9 <= nxt <= t1 + 10 + 1, "next %r not in [now+9s, "
          "now+10s] (now %.0f)", m.get("next"), t0)
    sc = sched_score(e, qid)
    check(sc is not None, "deferred message not in schedule")
    check((t0 - 1.0 + 9) * 1000 <= sc <= (t1 + 10 + 0.5) * 1000,
          "schedule score %.0f not in [now+0.9*retry_min, now+retry_min] "
          "(now %.0f ms)", sc, t0 * 1000)
    rc = rcpt(e, qid)
    eq(rc.get("0:state"), "pending", "rcpt state")
    eq(rc.get("0:dsn"), "4.4.1", "rcpt dsn")
    eq(stat(e, "deferred"), 1, "stats deferred")
    check("deferred" in event_names(e, qid), "no deferred event")
    check(re.search(re.escape(qid) + r": to=<bob@b.test>, .*status=deferred",
                    e.q.log()), "no status=deferred log line")
    time.sleep(1.5)
    eq(len(jobs_for(e, qid)), 1, "jobs before next is due")


@test
def test_retry_backoff_doubles_to_max():
    e = mkenv("backoff", retry_min="1s", retry_max="2s", lifetime="1h",
              policy=fail_then_ok(3))
    qid = enqueue_ok(e, "alice@example.org", ["bob@b.test"], H.message("b"))
    js = e.q.wait_jobs(4, 20, pred=lambda j: j.id == qid)
    ts = [j.t for j in js[:4]]
    gaps = [b - a for a, b in zip(ts, ts[1:])]
    sl = 0.8 * SLOW
    check(0.85 <= gaps[0] <= 1.0 + sl, "first retry after %.2fs (want "
          "0.9..1s)", gaps[0])
    check(1.75 <= gaps[1] <= 2.0 + sl, "second retry after %.2fs (want "
          "1.8..2s)", gaps[1])
    check(1.75 <= gaps[2] <= 2.0 + sl, "third retry after %.2fs (capped at "
          "retry_max 2s)", gaps[2])
    wait_until(lambda: gone(e, qid), 10, what="delivered on attempt 4")
    eq(stat(e, "deferred"), 3, "stats deferred")
    print("    (gaps %s)" % ", ".join("%.2f" % g for g in gaps))


@test
def test_expiry_bounces_to_sender():
    e = mkenv("expire", retry_min="1s", retry_max="2s", lifetime="6s",
              policy=always(R451))
    t0 = time.time()
    qid = enqueue_ok(e, "alice@example.org", ["bob@b.test"],
                     H.message("expire me"))
    dj = wait_until(lambda: dsn_jobs(e, "alice@example.org"), 20,
                    what="the expiry DSN")
    t1 = time.time()
    check(t1 - t0 >= 5.0, "bounced after %.1fs, lifetime is 6s", t1 - t0)
    j = dj[0]
    eq(j.sender, "", "DSN sender")
    eq(j.recipients, ["alice@example.org"], "DSN recipients")
    m, parts, per_msg, per_rcpt = parse_dsn(j)
    eq(hdr(per_rcpt[0], "Action"), "failed", "Action")
    check(re.search(r"bob@b\.test", hdr(per_rcpt[0], "Final-Recipient") or
                    ""), "Final-Recipient %r",
          hdr(per_rcpt[0], "Final-Recipient"))
    wait_until(lambda: gone(e, qid), 10, what="expired message removed")
    eq(stat(e, "expired"), 1, "stats expired")
    check("expired" in event_names(e, qid), "no expired event")


@test
def test_permanent_failure_bounces_with_rfc3464_dsn():
    e = mkenv("bounce", policy=always(R550))
    # hold the DSN so its record can be looked at
    e.q.policy.dsn_reply = H.policy_hold
    orig = H.message("bounce subject 123", body="secret body text\r\n")
    qid = enqueue_ok(e, "alice@example.org", ["bob@b.test"], orig,
                     envid="ENVID42", orcpt=["rfc822;bob@b.test"])
    dj = wait_until(lambda: dsn_jobs(e, "alice@example.org"), 10,
                    what="the bounce")
    j = dj[0]
    eq(j.sender, "", "DSN sender")
    eq(j.recipients, ["alice@example.org"], "DSN recipients")
    dm = msg(e, j.id)
    eq(dm.get("bounce"), "1", "DSN record bounce field")
    eq(dm.get("from"), "", "DSN record from")
    m, parts, per_msg, per_rcpt = parse_dsn(j)
    eq(hdr(per_msg, "Reporting-MTA"), "dns; mx.test", "Reporting-MTA")
    check(per_msg.get("Arrival-Date"), "no Arrival-Date")
    check(email.utils.parsedate_tz(per_msg.get("Arrival-Date")),
          "Arrival-Date %r", per_msg.get("Arrival-Date"))
    eq(hdr(per_msg, "Original-Envelope-Id"), "ENVID42", "Original-Envelope-Id")
    eq(len(per_rcpt), 1, "per-recipient blocks")
    pr = per_rcpt[0]
    eq((hdr(pr, "Final-Recipient") or "").replace("; ", ";").lower(),
       "rfc822;bob@b.test", "Final-Recipient")
    eq((hdr(pr, "Original-Recipient") or "").replace("; ", ";").lower(),
       "rfc822;bob@b.test", "Original-Recipient")
    eq(hdr(pr, "Action"), "failed", "Action")
    eq(hdr(pr, "Status"), "5.1.1", "Status")
    dc = hdr(pr, "Diagnostic-Code") or ""
    check(dc.lower().startswith("smtp;") and "550 5.1.1" in dc and
          "no such user" in dc, "Diagnostic-Code %r", dc)
    third = parts[2] if len(parts) > 2 else None
    check(third is not None and third.get_content_type() ==
          "text/rfc822-headers", "third part is %s, want text/rfc822-headers",
          third and third.get_content_type())
    th = third.get_payload(decode=True) or b""
    check(b"Subject: bounce subject 123" in th, "original headers missing")
    check(b"secret body text" not in j.body, "the body was returned without "
          "RET=FULL")
    wait_until(lambda: gone(e, qid), 10, what="bounced message removed")
    eq(stat(e, "bounced"), 1, "stats bounced")
    eq(stat(e, "dsn"), 1, "stats dsn")
    ev = event_names(e, qid)
    check("bounced" in ev and "dsn" in ev, "events %r", ev)
    check(re.search(re.escape(qid) + r": to=<bob@b\.test>, .*dsn=5\.1\.1, "
                    r"status=bounced", e.q.log()),
          "no status=bounced log line")
    # the DSN, answered, leaves too
    e.q.answer_held()
    wait_until(lambda: gone(e, j.id), 10, what="DSN delivered and removed")


@test
def test_bounce_ret_full_returns_whole_message():
    e = mkenv("retfull", policy=always(R550))
    orig = H.message("full return", body="the whole body\r\n")
    enqueue_ok(e, "alice@example.org", ["bob@b.test"], orig,
               flags=H.QP_RET_FULL)
    j = wait_until(lambda: dsn_jobs(e, "alice@example.org"), 10,
                   what="the bounce")[0]
    m, parts, _pm, _pr = parse_dsn(j)
    rf = [p for p in parts if p.get_content_type() == "message/rfc822"]
    check(rf, "no message/rfc822 part with RET=FULL: %s",
          [p.get_content_type() for p in parts])
    inner = rf[0].get_payload()
    inner = inner[0] if isinstance(inner, list) else inner
    eq(inner.get("Subject"), "full return", "returned Subject")
    check(b"the whole body" in j.body, "returned body missing")


@test
def test_no_dsn_for_null_sender_or_notify():
    e = mkenv("nodsn", policy=always(R550))
    cases = [("", 0), ("never@example.org", H.N_NEVER),
             ("success@example.org", H.N_SUCCESS),
             ("delay@example.org", H.N_DELAY)]
    ids = [enqueue_ok(e, s, ["bob@b.test"], H.message("n%d" % i),
                      notify=[n]) for i, (s, n) in enumerate(cases)]
    for qid in ids:
        wait_until(lambda: gone(e, qid), 10, what="bounced message removed")
    # a control that does want one, after the others
    enqueue_ok(e, "control@example.org", ["bob@b.test"], H.message("c"),
               notify=[H.N_FAILURE])
    wait_until(lambda: dsn_jobs(e, "control@example.org"), 10,
               what="the control DSN")
    time.sleep(0.5)
    extra = [j for j in dsn_jobs(e) if j.recipients != ["control@example."
                                                        "org"]]
    check(not extra, "DSNs that must not exist: %r", extra)
    eq(len(dsn_jobs(e)), 1, "DSN jobs")
    eq(stat(e, "bounced"), 5, "stats bounced")


@test
def test_success_dsn_when_upstream_lacks_dsn():
    e = mkenv("sdsn")
    e.q.done_flags = 0
    a = enqueue_ok(e, "s1@example.org", ["bob@b.test"], H.message("s1"),
                   notify=[H.N_SUCCESS])
    j = wait_until(lambda: dsn_jobs(e, "s1@example.org"), 10,
                   what="the success DSN")[0]
    _m, _p, _pm, pr = parse_dsn(j)
    check(hdr(pr[0], "Action") in ("relayed", "delivered"),
          "Action %r", hdr(pr[0], "Action"))
    check((hdr(pr[0], "Status") or "").startswith("2."),
          "Status %r", hdr(pr[0], "Status"))
    wait_until(lambda: gone(e, a), 10, what="removed")
    # the upstream took the DSN request itself: it reports, we do not
    e.q.done_flags = H.QP_DONE_DSN
    b = enqueue_ok(e, "s2@example.org", ["bob@b.test"], H.message("s2"),
                   notify=[H.N_SUCCESS])
    wait_until(lambda: gone(e, b), 10, what="removed")
    # and NOTIFY without SUCCESS never gets one
    e.q.done_flags = 0
    c = enqueue_ok(e, "s3@example.org", ["bob@b.test"], H.message("s3"),
                   notify=[H.N_FAILURE])
    wait_until(lambda: gone(e, c), 10, what="removed")
    time.sleep(1.0)
    eq([j.recipients for j in dsn_jobs(e)], [["s1@example.org"]],
       "success DSNs")


@test
def test_delay_warning_once():
    e = mkenv("delay", retry_min="1s", retry_max="2s", lifetime="30s",
              delay_warning="2s", policy=always(R451))
    a = enqueue_ok(e, "w0@example.org", ["bob@b.test"], H.message("w0"))
    b = enqueue_ok(e, "w8@example.org", ["bob@b.test"], H.message("w8"),
                   notify=[H.N_DELAY | H.N_FAILURE])
    c = enqueue_ok(e, "w4@example.org", ["bob@b.test"], H.message("w4"),
                   notify=[H.N_FAILURE])
    for s in ("w0@example.org", "w8@example.org"):
        j = wait_until(lambda: dsn_jobs(e, s), 15,
                       what="a delay warning to " + s)[0]
        _m, _p, _pm, pr = parse_dsn(j)
        eq(hdr(pr[0], "Action"), "delayed", "Action")
        check((hdr(pr[0], "Status") or "").startswith("4."), "Status %r",
              hdr(pr[0], "Status"))
    n_a = len(jobs_for(e, a))
    # two more attempts after the warning, and still one warning each
    e.q.wait_jobs(n_a + 2, 15, pred=lambda j: j.id == a)
    eq(len(dsn_jobs(e, "w0@example.org")), 1, "warnings for notify 0")
    eq(len(dsn_jobs(e, "w8@example.org")), 1, "warnings for NOTIFY=DELAY")
    eq(len(dsn_jobs(e, "w4@example.org")), 0, "warnings for NOTIFY=FAILURE")
    eq(msg(e, a).get("warned"), "1", "warned field")
    eq(msg(e, a).get("state") in ("deferred", "active"), True,
       "still queued")
    check("delayed" in event_names(e, a), "no delayed event")
    check(len(jobs_for(e, c)) >= 2, "the FAILURE-only message stopped")


# ---------------------------------------------------------------------------
# crashes and durability


@test
def test_queued_crash_redelivers_after_lease():
    e = mkenv("crash", policy=H.policy_hold)
    ids = [enqueue_ok(e, "alice@example.org", ["r%d@b.test" % i],
                      H.message("c%d" % i)) for i in range(10)]
    e.q.wait_jobs(10, 10)
    e.q.policy = H.policy_ok
    e.q.kill9()
    tk = time.monotonic()
    n0 = len(e.q.jobs)
    e.q.start()
    for qid in ids:
        wait_until(lambda: gone(e, qid), 20, what="%s delivered after the "
                   "restart" % qid)
    later = e.q.jobs[n0:]
    eq(sorted({j.id for j in later}), sorted(ids), "ids handed out again")
    first = min(j.t for j in later)
    check(first - tk >= 1.0, "handed out %.2fs after the crash, before the "
          "2s lease ended", first - tk)
    eq(e.redis("ZCARD", e.prefix + "ids"), 0, "ids left")
    eq(stat(e, "delivered"), 10, "stats delivered")


@test
def test_worker_death_retries_elsewhere():
    e = mkenv("wdeath", policy=H.policy_hold)
    ids = [enqueue_ok(e, "alice@example.org", ["r%d@b.test" % i],
                      H.message("w%d" % i)) for i in range(6)]
    e.q.wait_jobs(6, 10)
    victim = 0 if e.q.workers[0].held else 1
    lost = {j.id for j in e.q.workers[victim].held}
    n0 = len(e.q.jobs)
    e.q.policy = H.policy_ok
    e.q.close_worker(victim)
    e.q.answer_held()           # the other worker's jobs go through
    for qid in ids:
        wait_until(lambda: gone(e, qid), 20, what="%s delivered" % qid)
    later = [j for j in e.q.jobs[n0:] if j.id in lost]
    eq({j.id for j in later}, lost, "lost jobs handed out again")
    check(all(j.worker != victim for j in later), "handed to the dead worker")
    for qid in lost:
        check("deferred" in event_names(e, qid), "%s: no deferred event "
              "after its worker died: %r", qid, event_names(e, qid))
    check(e.q.alive(), "queued died")


@test
def test_redis_crash_after_ok_keeps_message():
    e = mkenv("durable", policy=H.policy_hold)
    res = e.q.smtpd.enqueue_many(
        [("alice@example.org", ["r%d@b.test" % i], H.message("d%d" % i))
         for i in range(20)], concurrency=20)
    check(all(r and r[0] == "ok" for r in res), "enqueue: %r", res)
    e.redis.kill9()             # right after the last Q_OK
    e.redis.start()
    ids = [r[1] for r in res]
    for qid in ids:
        eq(e.redis("EXISTS", *qkeys(e, qid)), 3, "keys of %s after the "
           "Redis crash" % qid)
        check(in_ids(e, qid), "%s not in ids after the crash", qid)
    e.q.policy = H.policy_ok
    time.sleep(0.5)
    e.q.answer_held()
    for qid in ids:
        wait_until(lambda: gone(e, qid), 20, what="%s delivered" % qid)


@test
def test_corrupt_record_is_held():
    e = mkenv("corrupt", retry_min="1s", retry_max="2s", lifetime="1h",
              policy=always(R451))
    a = enqueue_ok(e, "alice@example.org", ["bob@b.test"], H.message("ca"))
    b = enqueue_ok(e, "alice@example.org", ["bob@b.test"], H.message("cb"))
    for qid in (a, b):
        wait_until(lambda: msg(e, qid).get("state") == "deferred", 10,
                   what="deferred")
    e.redis("SET", e.key("body", a), b"\x00garbage" * 20)
    e.redis("DEL", e.key("rcpt", b))
    tc = time.monotonic()
    for qid in (a, b):
        wait_until(lambda: msg(e, qid).get("state") == "held", 10,
                   what="%s held as corrupt" % qid)
        m = msg(e, qid)
        check(m.get("corrupt"), "%s: no corrupt reason: %r", qid, m)
        check(sched_score(e, qid) is None, "%s still scheduled", qid)
        check(qid in e.q.log(), "the log does not name %s", qid)
        check("corrupt" in event_names(e, qid), "no corrupt event")
    late = [j for j in e.q.jobs if j.id in (a, b) and j.t > tc + 0.2]
    check(not late, "corrupt messages handed out: %r", late)
    check(e.q.alive(), "queued died")
    e.q.policy = H.policy_ok
    qid = enqueue_ok(e, "alice@example.org", ["bob@b.test"], H.message("ok"))
    wait_until(lambda: gone(e, qid), 10, what="new mail delivered")


# ---------------------------------------------------------------------------
# sluicectl


def ctl(e, *args):
    return H.sluicectl(e.q.confpath, *args)


def ctl_json(e, *args):
    rc, out, err = ctl(e, *args)
    check(rc == 0, "sluicectl %s: exit %d: %s", " ".join(args), rc, err)
    try:
        return json.loads(out)
    except ValueError as ex:
        raise Fail("sluicectl %s: not JSON (%s): %r" % (" ".join(args), ex,
                                                       out[:300]))


def find_dicts(obj, key):
    """Every dict anywhere in obj that has key."""
    out = []
    if isinstance(obj, dict):
        if key in obj:
            out.append(obj)
        for v in obj.values():
            out += find_dicts(v, key)
    elif isinstance(obj, list):
        for v in obj:
            out += find_dicts(v, key)
    return out


def addrs(v):
    s = json.dumps(v)
    return set(re.findall(r"[\w.+-]+@[\w.-]+", s))


def ctl_env(name, **kw):
    kw.setdefault("policy", always(R451))
    kw.setdefault("retry_min", "1h")
    kw.setdefault("retry_max", "2h")
    kw.setdefault("lifetime", "1d")
    return mkenv(name, **kw)


def deferred(e, *ids):
    for qid in ids:
        wait_until(lambda: msg(e, qid).get("state") == "deferred", 10,
                   what="%s deferred" % qid)


@test
def test_ctl_list_and_show():
    e = ctl_env("ctl-ls")
    a = enqueue_ok(e, "alice@example.org", ["bob@b.test", "c@c.test"],
                   H.message("List Subject A"))
    b = enqueue_ok(e, "", ["d@b.test"], H.message("List Subject B"))
    deferred(e, a, b)
    data = ctl_json(e, "queue", "list", "--json")
    rows = {d["id"]: d for d in find_dicts(data, "id")}
    check(a in rows and b in rows, "list misses ids: %r", list(rows))
    for f in ("id", "sender", "recipients", "state", "next_attempt",
              "last_error"):
        check(f in rows[a], "list entry lacks %s: %r", f, rows[a])
    eq(rows[a]["sender"], "alice@example.org", "list sender")
    eq(rows[b]["sender"], "", "list null sender")
    check({"bob@b.test", "c@c.test"} <= addrs(rows[a]["recipients"]),
          "list recipients %r", rows[a]["recipients"])
    eq(rows[a]["state"], "deferred", "list state")
    check("4.4.1" in json.dumps(rows[a]["last_error"]), "list last_error %r",
          rows[a]["last_error"])
    check(rows[a]["next_attempt"], "list next_attempt empty")
    rc, out, err = ctl(e, "queue", "list")
    check(rc == 0 and a in out and b in out, "plain list: %d %r %r", rc,
          out[:200], err)
    s = ctl_json(e, "queue", "show", a, "--json")
    for f in ("envelope", "recipients", "headers"):
        check(isinstance(s, dict) and f in s, "show lacks %s: %r", f,
              str(s)[:300])
    check("List Subject A" in json.dumps(s["headers"]),
          "show headers lack the Subject: %r", str(s["headers"])[:300])
    check("alice@example.org" in json.dumps(s["envelope"]), "show envelope")
    check({"bob@b.test", "c@c.test"} <= addrs(s["recipients"]),
          "show recipients")
    rc, out, err = ctl(e, "queue", "show", a)
    check(rc == 0 and "List Subject A" in out, "plain show: %d %r", rc, err)
    # cat: the whole stored message, as it will be delivered
    exe = os.path.join(H.BUILD, "sluicectl")
    p = subprocess.run([exe, "-c", e.q.confpath, "queue", "cat", a],
                       capture_output=True, timeout=15 * H.SLOW)
    eq(p.returncode, 0, "cat exit (%r)" % p.stderr)
    check(p.stdout.endswith(H.message("List Subject A").split(b"\r\n\r\n", 1)[1]),
          "cat body differs: %r", p.stdout[-200:])
    check(b"Subject: List Subject A" in p.stdout, "cat lacks the header")
    rc, out, err = ctl(e, "queue", "cat", "00000000000000000000000000")
    check(rc == 1 and "no such message" in err, "cat unknown: %d %r", rc, err)


@test
def test_ctl_hold_release():
    e = ctl_env("ctl-hold", retry_min="1s", retry_max="2s", lifetime="1h")
    qid = enqueue_ok(e, "alice@example.org", ["bob@b.test"], H.message("h"))
    deferred(e, qid)
    rc, out, err = ctl(e, "queue", "hold", qid)
    eq(rc, 0, "hold exit (%s)" % err)
    eq(msg(e, qid).get("state"), "held", "state after hold")
    check(sched_score(e, qid) is None, "held message still scheduled")
    n = len(jobs_for(e, qid))
    time.sleep(2.5)
    eq(len(jobs_for(e, qid)), n, "jobs for a held message")
    eq(stat(e, "held"), 1, "stats held")
    e.q.policy = H.policy_ok
    rc, out, err = ctl(e, "queue", "release", qid)
    eq(rc, 0, "release exit (%s)" % err)
    wait_until(lambda: gone(e, qid), 10, what="delivered after release")
    eq(stat(e, "released"), 1, "stats released")


@test
def test_ctl_flush():
    e = ctl_env("ctl-flush")
    a = enqueue_ok(e, "alice@example.org", ["bob@b.test"], H.message("fa"))
    b = enqueue_ok(e, "alice@example.org", ["bob@b.test"], H.message("fb"))
    deferred(e, a, b)
    rc, _o, err = ctl(e, "queue", "flush", a)
    eq(rc, 0, "flush ID exit (%s)" % err)
    e.q.wait_jobs(2, 5, pred=lambda j: j.id == a)
    eq(len(jobs_for(e, b)), 1, "jobs for the message not flushed")
    rc, _o, err = ctl(e, "queue", "flush")
    eq(rc, 0, "flush exit (%s)" % err)
    e.q.wait_jobs(2, 5, pred=lambda j: j.id == b)
    check("flushed" in event_names(e, a), "no flushed event")


@test
def test_ctl_delete():
    e = ctl_env("ctl-del")
    a = enqueue_ok(e, "alice@example.org", ["bob@b.test"], H.message("da"))
    b = enqueue_ok(e, "alice@example.org", ["bob@b.test"], H.message("db"))
    deferred(e, a, b)
    rc, _o, err = ctl(e, "queue", "delete", a, b)
    eq(rc, 0, "delete exit (%s)" % err)
    for qid in (a, b):
        check(gone(e, qid), "%s still there after delete", qid)
        check("deleted" in event_names(e, qid), "no deleted event")
    eq(stat(e, "deleted"), 2, "stats deleted")
    eq(len(dsn_jobs(e)), 0, "delete sent a DSN")


@test
def test_ctl_unknown_id():
    e = ctl_env("ctl-unk")
    for verb in ("show", "hold", "release", "delete", "flush"):
        rc, out, err = ctl(e, "queue", verb, ABSENT_ID)
        eq(rc, 1, "queue %s of an absent id: exit" % verb)
        check("no such message" in err, "queue %s: stderr %r", verb, err)
    rc, out, err = ctl(e, "queue", "show", "not-an-id")
    check(rc != 0, "show of a malformed id succeeded")
    check(e.q.alive(), "queued died")


@test
def test_ctl_stats():
    e = ctl_env("ctl-stats", policy=fail_then_ok(1, R451))
    e.q.policy.dsn_reply = H.policy_ok
    ids = [enqueue_ok(e, "alice@example.org", ["bob@b.test"],
                      H.message("s%d" % i)) for i in range(3)]
    deferred(e, *ids)
    ctl(e, "queue", "flush")
    for qid in ids:
        wait_until(lambda: gone(e, qid), 10, what="delivered")
    data = ctl_json(e, "stats", "--json")
    ds = find_dicts(data, "accepted")
    check(ds, "stats --json has no accepted counter: %r", str(data)[:300])
    d = ds[0]
    st = stats(e)
    for k in ("accepted", "delivered", "deferred"):
        check(k in d, "stats --json lacks %s", k)
        eq(int(d[k]), int(st.get(k, "0")), "stats %s vs Redis" % k)
    eq(int(d["accepted"]), 3, "accepted")
    eq(int(d["delivered"]), 3, "delivered")
    eq(int(d["deferred"]), 3, "deferred")
    rc, out, err = ctl(e, "stats")
    check(rc == 0 and "accepted" in out, "plain stats: %d %r", rc, err)


# ---------------------------------------------------------------------------
# several nodes


@test
def test_two_queued_share_redis():
    e = mkenv("multi")
    q2 = e.another_queued("mx2.test")
    q2.start()
    n = 100
    specs = lambda tag: [("%s%d@example.org" % (tag, i), ["r%d@b.test" % i],
                          H.message("%s %d" % (tag, i))) for i in range(n)]
    out = {}

    def run(q, tag):
        out[tag] = q.smtpd.enqueue_many(specs(tag), concurrency=25,
                                        timeout=60)
    th = [threading.Thread(target=run, args=(e.q, "a")),
          threading.Thread(target=run, args=(q2, "b"))]
    for t in th:
        t.start()
    for t in th:
        t.join(90 * SLOW)
    res = out.get("a", []) + out.get("b", [])
    eq(len(res), 2 * n, "results")
    check(all(r and r[0] == "ok" for r in res), "refused: %r",
          [r for r in res if not r or r[0] != "ok"][:3])
    ids = [r[1] for r in res]
    eq(len(set(ids)), 2 * n, "distinct ids across the two nodes")
    wait_until(lambda: e.redis("ZCARD", e.prefix + "ids") == 0, 40,
               what="the queue to drain")
    time.sleep(1.0)
    seen = {}
    for q in (e.q, q2):
        for j in q.jobs:
            for r in j.rcpts:
                seen.setdefault((j.id, r["address"]), []).append(q.name)
    missing = [i for i in ids if not any(k[0] == i for k in seen)]
    eq(missing, [], "messages never delivered")
    dup = {k: v for k, v in seen.items() if len(v) > 1}
    eq(dup, {}, "recipients delivered more than once")
    eq(stat(e, "delivered"), 2 * n, "stats delivered")
    print("    (delivered by %s: %d, %s: %d)" % (
        e.q.name, len(e.q.jobs), q2.name, len(q2.jobs)))


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
        (q.name, q.log_tail(40), q.errors())
        for env in ENVS for q in [env.q] + env.extra], after=close_envs)


def main(argv):
    verbose = "-q" not in argv
    pats = [a for a in argv if a not in ("-v", "-q")]
    exe = os.path.join(H.BUILD, "queued")
    if not os.access(exe, os.X_OK):
        print("FAIL setup: no %s (set SLUICE_BUILD)" % exe)
        print("0 passed, 1 failed")
        return 1
    sel = [f for f in TESTS if not pats or any(p in f.__name__
                                                for p in pats)]
    npass = nfail = 0
    limit = 60 * SLOW
    for fn in sel:
        if run_one(fn, limit, verbose):
            npass += 1
        else:
            nfail += 1
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
