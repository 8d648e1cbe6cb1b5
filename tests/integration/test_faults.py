"""
test_faults - nothing acknowledged is lost when things break under load.

A real sluiced (with its embedded redis-server) relays to a scripted
upstream smarthost (aiosmtpd on 127.0.0.1, see faultlib.py) while client
threads submit a few thousand messages with smtplib (STARTTLS, AUTH
PLAIN, several messages per connection).  Each message carries a unique
X-Test header, and an X-Attempt header that changes with every try: a
client that gets a 4xx or loses its connection tries that message again
later, and only a `250 ... queued as ID` counts as acknowledged.  One
scenario after another, on the same gateway:

  baseline   no fault
  smtpd, authd, queued, deliverd
             kill -9 of that process (found under sluiced in /proc, killed
             by PID) at random moments of the load, three times; sluiced
             must start a new one each time
  upstream   the smarthost stops listening for a while, twice, then is back
  replies    the smarthost answers 421 (closing) or 451 twice and then
             takes the recipient, or 550 every time, per recipient
  cut        the smarthost cuts the connection in the middle of the DATA
             body, or after the final dot before its reply, once
  redis      kill -9 of the embedded redis-server, three times; sluiced
             starts it again and it loads its AOF

What each scenario proves:
  - the gateway recovered: every message was acknowledged in the end,
    and no client ever got a 5xx for a fault of the gateway's own;
  - nothing acknowledged is lost: each acknowledged message reached the
    upstream for every recipient that does not refuse it;
  - duplicates come only from a fault: a copy delivered twice had its
    first copy, or the unacknowledged submission it came from, within a
    second of a kill or an outage; any other duplicate fails;
  - every 550 produced exactly one RFC 3464 report, from <> to the
    sender, naming the original (X-Test) and the refused recipient; no
    other recipient got one; a report delivered twice is excused like
    any duplicate, but two reports for one queued message never are;
  - the queue is empty afterwards.
At the end sluiced is still running with all its children, and its log
has no sanitizer report.

The load is a fifth under AddressSanitizer (SLUICE_BUILD containing
"asan").  FAULTS_SEED=N repeats a run's random choices, FAULTS_ONLY=a,b
runs only those scenarios, FAULTS_KEEP=1 keeps the state directory (it
is kept anyway on failure).  Prints one line per scenario and PASS or
FAIL; exits non-zero on failure.  Runs with Debian's python3 (aiosmtpd is
a Debian package); every process it starts is stopped by PID.
"""
import atexit
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as F  # noqa: E402

SCALE = 0.2 if F.ASAN else 1.0
THREADS = 4                 # client threads
PER_CONN = 5                # messages per connection, at most
KILLS = 3                   # per kill scenario
SPREAD = 5.0 * F.SLOW       # seconds over which a fault scenario submits
LOAD_LIMIT = 30             # seconds (scaled) for a scenario's submissions
DRAIN_LIMIT = 30            # seconds (scaled) for its deliveries after
SUITE_LIMIT = 240           # seconds: start no scenario after this
# a duplicate is excused when it was in flight within this much of a fault
MARGIN = 1.0 * F.SLOW
SENDER = "alice@example.org"
WANTED = {"smtpd": 2, "authd": 1, "queued": 1, "deliverd": 2,
          "redis-server": 1}


def local_kind(addr):
    return F.kind_of(addr.split("@")[0])


# ---------------------------------------------------------------------------
# recipients per scenario: the local part scripts the upstream


def rcpts_plain(rng, mid):
    """one or two recipients that take it, now and then one that refuses"""
    r = ["ok-%s-a@example.net" % mid]
    if rng.random() < 0.3:
        r.append("ok-%s-b@example.com" % mid)
    if rng.random() < 0.08:
        r.append("p550-%s@example.net" % mid)
    return r


def rcpts_replies(rng, mid):
    kind = rng.choice(["t421", "t451", "p550", "ok"])
    r = ["ok-%s-a@example.net" % mid, "%s-%s@example.net" % (kind, mid)]
    if rng.random() < 0.2:
        r.append("%s-%s-c@example.com" % (rng.choice(["t451", "p550"]),
                                          mid))
    return r


def rcpts_cut(rng, mid):
    kind = rng.choice(["cut", "cutr", "ok"])
    return ["ok-%s-a@example.net" % mid, "%s-%s@example.net" % (kind, mid)]


# ---------------------------------------------------------------------------
# faults, each run in a thread beside the load


class Faults:
    """Each fault as a window (start, end), wall-clock seconds."""

    def __init__(self):
        self.windows = []
        self.errors = []
        self.during_load = 0

    def near(self, t0, t1=None):
        """does [t0, t1] come within MARGIN of a fault?"""
        t1 = t0 if t1 is None else t1
        return any(t1 >= s - MARGIN and t0 <= e + MARGIN
                   for s, e in self.windows)


def moments(rng, load, k):
    """k random points of the load, as counts of acknowledged messages"""
    n = len(load.messages)
    return sorted(rng.randint(n // 10, n * 3 // 4) for _ in range(k))


def wait_progress(load, acked):
    while load.acked < acked and not load.done() and \
            time.monotonic() < load.deadline:
        time.sleep(0.01)


def kill_fault(gw, kind):
    def run(load, faults, rng):
        for at in moments(rng, load, KILLS):
            wait_progress(load, at)
            time.sleep(rng.random() * 0.2)
            if not load.done() and time.monotonic() < load.deadline:
                faults.during_load += 1
            t0 = time.time()
            try:
                pid = gw.kill(kind, rng)
                gw.wait_replaced(kind, pid, WANTED[kind])
            finally:
                faults.windows.append((t0, time.time()))
    return run


def upstream_fault(up):
    def run(load, faults, rng):
        for at in moments(rng, load, 2):
            wait_progress(load, at)
            if not load.done() and time.monotonic() < load.deadline:
                faults.during_load += 1
            t0 = time.time()
            try:
                up.stop()
                # the outage itself: how long the smarthost stays away
                time.sleep((1.0 + rng.random() * 2.0) * F.SLOW)
                up.start()
            finally:
                faults.windows.append((t0, time.time()))
    return run


# ---------------------------------------------------------------------------
# one scenario


class Scenario:
    def __init__(self, name, n, rcpts, fault=None):
        self.name = name
        # with a fault, the load lasts long enough for all of them
        self.spread = SPREAD if fault is not None else 0.0
        self.n = max(20, int(n * SCALE))
        self.rcpts = rcpts
        self.fault = fault
        self.problems = []
        self.healthy = True       # did the gateway come through it?


class Seen:
    """What the upstream got for one scenario's messages."""

    def __init__(self, up, by_id, reports):
        messages, raw_reports, self.refused = up.snapshot()
        # (test id, rcpt) -> [(time, attempt)]
        self.got = {}
        for t, tid, attempt, rcpts in messages:
            if tid in by_id:
                for r in rcpts:
                    self.got.setdefault((tid, r), []).append((t, attempt))
        # (test id, rcpt) -> [(time, Report)]; parsed once per suite
        self.dsns = {}
        for i, (t, data, to) in enumerate(raw_reports):
            if i not in reports:
                reports[i] = F.Report(data, to)
            rep = reports[i]
            if rep.test_id in by_id:
                for r, _ in rep.rcpts:
                    self.dsns.setdefault((rep.test_id, r), []).append(
                        (t, rep))


def unacked_near_fault(m, attempt, faults):
    """was this unacknowledged submission made near a fault?"""
    spans = [(s, e) for a, s, e, _ in m.attempts if a == attempt]
    return bool(spans) and faults.near(*spans[0])


def check_messages(sc, by_id, want, seen, faults):
    """lost, stray and duplicate deliveries; returns the duplicates"""
    lost = sorted(want - seen.got.keys())
    if lost:
        sc.problems.append(
            "%d acknowledged deliveries lost, e.g. %s" % (len(lost), ", ".join(
                "%s to %s (queue id %s)" % (i, r, by_id[i].queue_id)
                for i, r in lost[:5])))
    stray = sorted(seen.got.keys() - want)
    if stray:
        sc.problems.append("%d deliveries nobody asked for, e.g. %s"
                           % (len(stray), stray[:3]))
    dups, bad = [], []
    for key, copies in sorted(seen.got.items()):
        if len(copies) < 2:
            continue
        dups.append(key)
        copies.sort()
        m = by_id[key[0]]
        ok = True
        first = copies[0]
        for t, attempt in copies[1:]:
            if attempt == first[1]:
                # the gateway delivered one submission again
                ok = ok and faults.near(first[0])
        for attempt in {a for _, a in copies if a != m.acked}:
            # a submission the client was not told about was queued too
            ok = ok and unacked_near_fault(m, attempt, faults)
        if not ok:
            bad.append((key, copies))
    if bad:
        sc.problems.append("%d duplicates away from any fault, e.g. %s"
                           % (len(bad), bad[:3]))
    return dups


def check_reports(sc, by_id, want, seen, faults):
    """one report per refused recipient; returns the extra copies"""
    missing = sorted(want - seen.dsns.keys())
    if missing:
        sc.problems.append("%d refused recipients without a report, e.g. %s"
                           % (len(missing), missing[:3]))
    stray = sorted(seen.dsns.keys() - want)
    if stray:
        sc.problems.append("%d reports for recipients that were not "
                           "refused, e.g. %s" % (len(stray), stray[:3]))
    extra = []
    for key, reps in sorted(seen.dsns.items()):
        reps.sort(key=lambda x: x[0])
        for t, rep in reps:
            if rep.to != [SENDER] or rep.type != "multipart/report" or \
                    dict(rep.rcpts).get(key[1]) != "failed":
                sc.problems.append("report %s for %s: to %s, %s, %s" % (
                    rep.id, key, rep.to, rep.type, rep.rcpts))
        if len(reps) < 2:
            continue
        extra.append(key)
        m = by_id[key[0]]
        first = {}              # report id -> first arrival
        per_queue_id = {}       # original queue id -> report ids
        for t, rep in reps:
            if rep.id in first:
                # one report delivered again
                if not faults.near(first[rep.id]):
                    sc.problems.append("report %s for %s delivered twice "
                                       "away from any fault" % (rep.id, key))
                continue
            first[rep.id] = t
            per_queue_id.setdefault(rep.queue_id, []).append(rep.id)
            if rep.attempt != m.acked and not unacked_near_fault(
                    m, rep.attempt, faults):
                sc.problems.append("report for unacknowledged %s away from "
                                   "any fault" % rep.attempt)
        for qid, ids in per_queue_id.items():
            if len(ids) > 1:
                sc.problems.append("%d different reports %s for %s of queued "
                                   "message %s" % (len(ids), ids, key[1], qid))
    return extra


def run_scenario(sc, gw, up, rng, reports):
    """run it, check it, return the line to print"""
    t_start = time.monotonic()
    msgs = [F.Message("%s-%d" % (sc.name, i), None) for i in range(sc.n)]
    for m in msgs:
        m.rcpts = sc.rcpts(rng, m.id)
    by_id = {m.id: m for m in msgs}
    load = F.Load(gw.port, "alice", "secret-pw", msgs, threads=THREADS,
                  per_conn=PER_CONN, limit=LOAD_LIMIT, spread=sc.spread)
    faults = Faults()
    ft = None
    if sc.fault is not None:
        def fault_main():
            try:
                sc.fault(load, faults, rng)
            except Exception as ex:
                faults.errors.append("%s: %s" % (type(ex).__name__, ex))
        ft = threading.Thread(target=fault_main, daemon=True)
    load.start()
    if ft is not None:
        ft.start()
    if not load.join():
        sc.problems.append("client threads still running past their limit")
    if ft is not None:
        ft.join(60 * F.SLOW)
        if ft.is_alive():
            sc.problems.append("the fault thread did not finish")
    sc.problems += faults.errors
    if not load.done():
        sc.healthy = False
        sc.problems.append("only %d of %d messages acknowledged"
                           % (load.acked, sc.n))
    if load.permanent:
        sc.problems.append("the gateway answered a client with 5xx: %s"
                           % load.permanent[:3])

    # what the upstream must get: each acknowledged message for each
    # recipient that takes it, and a report for each one that refuses it
    acked = [m for m in msgs if m.acked is not None]
    want_msgs = {(m.id, r) for m in acked for r in m.rcpts
                 if local_kind(r) != "p550"}
    want_dsns = {(m.id, r) for m in acked for r in m.rcpts
                 if local_kind(r) == "p550"}

    def drained():
        seen = Seen(up, by_id, reports)
        return (want_msgs <= seen.got.keys() and
                want_dsns <= seen.dsns.keys() and gw.queue_list() == [])
    try:
        F.wait_for("every acknowledged message upstream and an empty queue",
                   drained, DRAIN_LIMIT, step=0.2)
    except AssertionError as ex:
        sc.healthy = False
        sc.problems.append(str(ex))
        q = gw.queue_list() or []
        if q:
            sc.problems.append("%d left in the queue, e.g. %s" % (
                len(q), "; ".join("%s %s" % (e.get("id"), e.get(
                    "last_error", "")) for e in q[:3])))
    seen = Seen(up, by_id, reports)
    dups = check_messages(sc, by_id, want_msgs, seen, faults)
    extra = check_reports(sc, by_id, want_dsns, seen, faults)

    line = ("%-8s %4d/%4d acknowledged, %4d/%4d delivered, %2d duplicates, "
            "%3d/%3d reports (%d again), %3d retries, %d faults "
            "(%d in the load), %5.1fs" % (
                sc.name, len(acked), sc.n, len(want_msgs & seen.got.keys()),
                len(want_msgs), len(dups), len(want_dsns & seen.dsns.keys()),
                len(want_dsns), len(extra),
                sum(max(0, len(m.attempts) - 1) for m in msgs),
                len(faults.windows), faults.during_load,
                time.monotonic() - t_start))
    if dups:
        line += "\n         duplicates: " + ", ".join(
            "%s to %s x%d" % (k[0], k[1].split("@")[0], len(seen.got[k]))
            for k in dups[:8]) + (" ..." if len(dups) > 8 else "")
    if extra:
        line += "\n         reports again: " + ", ".join(
            "%s to %s x%d" % (k[0], k[1].split("@")[0], len(seen.dsns[k]))
            for k in extra[:8]) + (" ..." if len(extra) > 8 else "")
    if load.replies:
        line += "\n         clients saw: " + ", ".join(
            "%s x%d" % kv for kv in sorted(load.replies.items(), key=str))
    return line


# ---------------------------------------------------------------------------


def main():
    seed = int(os.environ.get("FAULTS_SEED", str(int(time.time()))))
    rng = random.Random(seed)
    random.seed(seed)
    failed = []
    tmp = tempfile.mkdtemp(prefix="sluice-faults.", dir="/tmp")
    os.chmod(tmp, 0o755)
    up = F.Upstream(F.free_port())
    gw = F.Gateway(tmp, up.port, smtpd=WANTED["smtpd"],
                   workers=WANTED["deliverd"])

    def cleanup():
        gw.stop()
        up.stop()
        if failed or os.environ.get("FAULTS_KEEP"):
            print("kept %s" % tmp)
        else:
            subprocess.run(["rm", "-rf", tmp])
    atexit.register(cleanup)
    # a SIGTERM (the timeout in tests/integration/run) still cleans up
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    t0 = time.monotonic()
    try:
        up.start()
        gw.start()
        p = gw.ctl("user", "add", "alice", "--password-stdin", "--sender",
                   "@example.org", stdin=b"secret-pw\n")
        assert p.returncode == 0, p.stderr
        scenarios = [
            Scenario("baseline", 150, rcpts_plain),
            Scenario("smtpd", 400, rcpts_plain, kill_fault(gw, "smtpd")),
            Scenario("authd", 300, rcpts_plain, kill_fault(gw, "authd")),
            Scenario("queued", 400, rcpts_plain, kill_fault(gw, "queued")),
            Scenario("deliverd", 400, rcpts_plain,
                     kill_fault(gw, "deliverd")),
            Scenario("upstream", 300, rcpts_plain, upstream_fault(up)),
            Scenario("replies", 300, rcpts_replies),
            Scenario("cut", 250, rcpts_cut),
            Scenario("redis", 400, rcpts_plain,
                     kill_fault(gw, "redis-server")),
        ]
        only = os.environ.get("FAULTS_ONLY")
        if only:
            scenarios = [s for s in scenarios if s.name in only.split(",")]
        print("test_faults: seed %d, %s build, %d messages in %d scenarios"
              % (seed, "ASan" if F.ASAN else "normal",
                 sum(s.n for s in scenarios), len(scenarios)))
        reports = {}
        for sc in scenarios:
            if time.monotonic() - t0 > SUITE_LIMIT:
                failed.append("no time left for %s" % sc.name)
                break
            line = run_scenario(sc, gw, up, rng, reports)
            print(("ok   " if not sc.problems else "FAIL ") + line)
            for p in sc.problems:
                print("         problem: " + p)
            sys.stdout.flush()
            if sc.problems:
                failed.append(sc.name)
            if not gw.alive():
                failed.append("sluiced died")
                break
            if not sc.healthy:
                failed.append("gateway stuck after %s; stopped there"
                              % sc.name)
                break

        # the gateway itself came through
        if gw.alive():
            try:
                F.wait_for("every child running", lambda: all(
                    len(gw.children(k)) == n for k, n in WANTED.items()), 20)
            except AssertionError as ex:
                failed.append(str(ex))
            q = gw.queue_list()
            if q != []:
                failed.append("the queue is not empty at the end (%s)" % (
                    "sluicectl failed" if q is None else len(q)))
        elif "sluiced died" not in failed:
            failed.append("sluiced is not running")
        log = gw.log()
        for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
            if bad in log:
                failed.append("a sanitizer report in the log (%s)" % bad)
    except Exception as ex:
        failed.append("%s: %s" % (type(ex).__name__, ex))
    if failed:
        print("the log's last lines, without the routine ones:\n" +
              "\n".join("    | " + ln for ln in gw.log_unusual(30)))
    print("%s test_faults (%.1fs, seed %d)%s" % (
        "FAIL" if failed else "PASS", time.monotonic() - t0, seed,
        ": " + "; ".join(failed) if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
