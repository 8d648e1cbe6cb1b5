"""qharness - drive the real queued over its real IPC channels.

The harness plays every process queued talks to:

  sluiced   the parent channel on queued's descriptor 3: HELLO, CONF (a
            memfd with the configuration text), PEER frames, START; it
            answers HEARTBEAT;
  smtpd[0]  the enqueue side (Q_OPEN, Q_RCPT, body into the Q_OPENED
            memfd, Q_COMMIT -> Q_OK / Q_FAIL);
  deliverd  one FakeDeliverd per worker channel that collects DLV_RCPT +
            DLV_JOB and answers DLV_RESULT + DLV_DONE by a policy, as a
            scripted upstream server would.

and it runs a private redis-server on a unix socket in a temp dir.

Python 3.11 standard library only.  Every process started here is
recorded by PID and killed by that PID (never by name); every wait is
bounded in time.  All I/O on queued's channels runs in one background
thread per Queued instance (selectors); the test thread sends frames
directly (one frame per sendmsg on SOCK_SEQPACKET is atomic) and waits on
condition variables with timeouts.
"""

import atexit
import os
import re
import selectors
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("SLUICE_BUILD", os.path.join(TOP, "build"))

# Under AddressSanitizer everything is slower: scale the waits.
SLOW = 2.0 if ("asan" in BUILD or os.environ.get("SLUICE_SLOW")) else 1.0

# ---------------------------------------------------------------------------
# The wire: types parsed from lib/ipc.h so a renumbering cannot skew us.


def _parse_enum(text, name):
    m = re.search(r"enum\s+" + name + r"\s*\{(.*?)\};", text, re.S)
    if m is None:
        raise RuntimeError("enum %s not found in lib/ipc.h" % name)
    body = re.sub(r"/\*.*?\*/", "", m.group(1), flags=re.S)
    body = re.sub(r"//[^\n]*", "", body)
    out, val = {}, 0
    for item in body.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" in item:
            k, v = item.split("=", 1)
            k, val = k.strip(), int(v.strip(), 0)
        else:
            k = item
        out[k] = val
        val += 1
    return out


with open(os.path.join(TOP, "lib", "ipc.h")) as _f:
    _IPC_H = _f.read()
IPC = _parse_enum(_IPC_H, "ipc_type")
PROC = _parse_enum(_IPC_H, "ipc_proc")
T = type("T", (), {k[4:]: v for k, v in IPC.items()})  # T.HELLO, T.Q_OPEN...
TYPE_NAME = {v: k[4:] for k, v in IPC.items()}
IPC_VERSION = int(re.search(r"#define\s+IPC_VERSION\s+(\d+)", _IPC_H).group(1))
PROC_SLUICED = PROC["PROC_SLUICED"]
PROC_SMTPD = PROC["PROC_SMTPD"]
PROC_QUEUED = PROC["PROC_QUEUED"]
PROC_DELIVERD = PROC["PROC_DELIVERD"]
HDR = struct.Struct("=IIQ")

# lib/queue_proto.h
QP_BODY_8BITMIME, QP_RET_FULL, QP_RET_HDRS = 0x01, 0x08, 0x10
N_NEVER, N_SUCCESS, N_FAILURE, N_DELAY = 1, 2, 4, 8
QP_DONE_DSN = 1


def u32(v):
    return struct.pack("=I", v)


def u64(v):
    return struct.pack("=Q", v)


def pstr(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack("=I", len(s)) + s


class Reader:
    def __init__(self, data):
        self.d, self.p = data, 0

    def u32(self):
        v, = struct.unpack_from("=I", self.d, self.p)
        self.p += 4
        return v

    def u64(self):
        v, = struct.unpack_from("=Q", self.d, self.p)
        self.p += 8
        return v

    def str(self):
        n = self.u32()
        if self.p + n > len(self.d):
            raise ValueError("short string")
        s = self.d[self.p:self.p + n]
        self.p += n
        return s.decode("utf-8", "replace")

    def end(self):
        if self.p != len(self.d):
            raise ValueError("%d bytes left over" % (len(self.d) - self.p))


class Frame:
    __slots__ = ("type", "reqid", "payload", "fd")

    def __init__(self, type_, reqid, payload, fd):
        self.type, self.reqid, self.payload, self.fd = type_, reqid, payload, fd

    def r(self):
        return Reader(self.payload)

    def __repr__(self):
        return "<%s reqid=%d len=%d fd=%s>" % (
            TYPE_NAME.get(self.type, self.type), self.reqid,
            len(self.payload), self.fd)


class Channel:
    """One end of a SOCK_SEQPACKET socketpair."""

    def __init__(self, sock, name):
        self.sock, self.name = sock, name
        self.lock = threading.Lock()
        self.dead = False
        sock.settimeout(10 * SLOW)

    def send(self, type_, reqid=0, payload=b"", fd=None):
        msg = HDR.pack(type_, len(payload), reqid) + payload
        with self.lock:
            if self.dead:
                raise ConnectionError("%s: channel closed" % self.name)
            if fd is None:
                self.sock.sendmsg([msg])
            else:
                socket.send_fds(self.sock, [msg], [fd])

    def recv(self):
        """One frame, or None at end of file."""
        data, fds, _flags, _addr = socket.recv_fds(self.sock, 65536, 4)
        if not data:
            for fd in fds:
                os.close(fd)
            return None
        if len(data) < HDR.size:
            raise ValueError("%s: short frame" % self.name)
        t, n, reqid = HDR.unpack_from(data)
        if n != len(data) - HDR.size:
            raise ValueError("%s: length %d, got %d" % (self.name, n,
                                                        len(data) - 16))
        for fd in fds[1:]:
            os.close(fd)
        return Frame(t, reqid, data[HDR.size:], fds[0] if fds else None)

    def close(self):
        with self.lock:
            if not self.dead:
                self.dead = True
                try:
                    self.sock.close()
                except OSError:
                    pass


def pair(name):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    return Channel(a, name), b


# ---------------------------------------------------------------------------
# Cleanup: every PID we start, killed by PID at exit.

_PIDS = set()
_CLEANUPS = []


def _atexit():
    for fn in reversed(_CLEANUPS):
        try:
            fn()
        except Exception:
            pass
    for pid in list(_PIDS):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


atexit.register(_atexit)


def _reap(proc, timeout):
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    _PIDS.discard(proc.pid)


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Poll pred() until true (returns its value) or raise TimeoutError."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s" %
                               (timeout * SLOW, what))
        time.sleep(interval)


# ---------------------------------------------------------------------------
# Redis


class RedisError(Exception):
    pass


class RespClient:
    """A minimal blocking RESP2 client over a unix socket."""

    def __init__(self, path, timeout=10):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout * SLOW)
        self.s.connect(path)
        self.f = self.s.makefile("rb")

    def close(self):
        try:
            self.f.close()
            self.s.close()
        except OSError:
            pass

    def _enc(self, args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode()
            elif isinstance(a, (int, float)):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def _read(self):
        line = self.f.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        k, rest = line[:1], line[1:-2]
        if k == b"+":
            return rest.decode()
        if k == b"-":
            return RedisError(rest.decode())
        if k == b":":
            return int(rest)
        if k == b"$":
            n = int(rest)
            if n < 0:
                return None
            d = self.f.read(n + 2)
            return d[:-2]
        if k == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self._read() for _ in range(n)]
        raise ValueError("bad RESP line %r" % line)

    def call(self, *args):
        self.s.sendall(self._enc(args))
        v = self._read()
        if isinstance(v, RedisError):
            raise v
        return v


class Redis:
    def __init__(self, dir_, extra=()):
        self.dir = dir_
        self.sock = os.path.join(dir_, "redis.sock")
        self.extra = list(extra)
        self.proc = None
        self.logf = os.path.join(dir_, "redis.log")
        self._c = None
        _CLEANUPS.append(self.kill9)

    def start(self):
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        args = ["redis-server", "--port", "0", "--unixsocket", self.sock,
                "--unixsocketperm", "700", "--dir", self.dir,
                "--appendonly", "yes", "--appendfsync", "always",
                "--save", "", "--maxmemory-policy", "noeviction",
                "--daemonize", "no", "--logfile", self.logf] + self.extra
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        _PIDS.add(self.proc.pid)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited %s" %
                                   self.proc.returncode)
            try:
                c = RespClient(self.sock)
                # LOADING while the AOF replays
                c.call("PING")
                c.close()
                return True
            except (OSError, RedisError):
                return False
        wait_until(up, 10, what="redis-server")
        return self

    def client(self):
        if self._c is None:
            self._c = RespClient(self.sock)
        return self._c

    def __call__(self, *args):
        """One command; reconnects once when the server was restarted."""
        for attempt in (0, 1):
            try:
                return self.client().call(*args)
            except (OSError, ConnectionError):
                if self._c is not None:
                    self._c.close()
                self._c = None
                if attempt:
                    raise

    def kill9(self):
        if self._c is not None:
            self._c.close()
            self._c = None
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            _reap(self.proc, 5)

    def restart(self):
        self.kill9()
        return self.start()

    def stop(self):
        if self._c is not None:
            self._c.close()
            self._c = None
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            _reap(self.proc, 10)

    def info(self, section):
        text = self("INFO", section).decode()
        out = {}
        for line in text.splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                out[k] = v
        return out

    def hgetall(self, key):
        v = self("HGETALL", key) or []
        return {v[i].decode(): v[i + 1].decode("utf-8", "replace")
                for i in range(0, len(v), 2)}


# ---------------------------------------------------------------------------
# Configuration

DEFAULT_ROUTES = ('( { domains = [ "*" ]; smarthost = "127.0.0.1:2602"; '
                  'tls = "none"; } )')
TWO_ROUTES = ('( { domains = [ "a.test" ]; smarthost = "127.0.0.1:2601"; '
              'tls = "none"; }, { domains = [ "*" ]; smarthost = '
              '"127.0.0.1:2602"; tls = "none"; } )')


def make_config(tmpdir, hostname="mx.test", workers=2, routes=DEFAULT_ROUTES,
                message_size="1M", recipients=20, retry_min="1s",
                retry_max="2s", lifetime="6s", lease="2s", delay_warning=None,
                prefix=None, durability=None, redis_sock=None,
                state_dir=None, extra=""):
    state = state_dir or os.path.join(tmpdir, "state")
    os.makedirs(state, exist_ok=True)
    r = ['address = "unix:%s";' % (redis_sock or
                                    os.path.join(tmpdir, "redis.sock"))]
    if prefix is not None:
        r.append('prefix = "%s";' % prefix)
    if durability is not None:
        r.append('durability = "%s";' % durability)
    q = ['retry_min = "%s";' % retry_min, 'retry_max = "%s";' % retry_max,
         'lifetime = "%s";' % lifetime, 'lease = "%s";' % lease]
    if delay_warning is not None:
        q.append('delay_warning = "%s";' % delay_warning)
    # queued never binds it, but a configuration needs a listener
    return ('hostname = "%s";\nstate_dir = "%s";\nredis = { %s };\n'
            'listen = ( { address = "127.0.0.1"; port = 2587; '
            'tls = "starttls"; auth = "required"; } );\n'
            'limits = { message_size = "%s"; recipients = %d; };\n'
            'queue = { %s };\n'
            'delivery = { workers = %d; routes = %s; };\n%s\n') % (
                hostname, state, " ".join(r), message_size, recipients,
                " ".join(q), workers, routes, extra)


def memfd_with(text, name="sluice.conf"):
    if isinstance(text, str):
        text = text.encode()
    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.write(fd, text)
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        import fcntl
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL |
                    fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW |
                    fcntl.F_SEAL_WRITE)
    except (AttributeError, OSError):
        pass
    return fd


# ---------------------------------------------------------------------------
# smtpd side


class Txn:
    """One enqueue transaction (reqid = txn id)."""

    def __init__(self, reqid, body, size=None, auto=True):
        self.reqid = reqid
        self.body = body
        self.size = len(body) if size is None else size
        self.auto = auto          # write the body and COMMIT on OPENED
        self.opened = threading.Event()
        self.done = threading.Event()
        self.fd = None
        self.result = None        # ('ok', id) | ('fail', code, st, text)
        self.write_error = None
        self.rcpts_sent = False
        self.committed = False
        self.t_start = time.monotonic()

    def wait(self, timeout=15):
        if not self.done.wait(timeout * SLOW):
            raise TimeoutError("txn %d: no Q_OK/Q_FAIL within %.0fs" %
                               (self.reqid, timeout * SLOW))
        return self.result


class Smtpd:
    def __init__(self, q, chan):
        self.q, self.chan = q, chan
        self.txns = {}
        self.lock = threading.Lock()
        self.greeted = threading.Event()
        self.hello = None
        self.errors = []

    def _frame(self, f):
        if f.type == T.HELLO:
            r = f.r()
            self.hello = (r.u32(), r.u32(), r.u32())
            self.greeted.set()
            return
        with self.lock:
            t = self.txns.get(f.reqid)
        if t is None:
            self.errors.append("frame for unknown txn %r" % f)
            if f.fd is not None:
                os.close(f.fd)
            return
        if f.type == T.Q_OPENED:
            t.fd = f.fd
            t.opened.set()
            self._maybe_commit(t)
        elif f.type == T.Q_OK:
            t.result = ("ok", f.r().str())
            self._finish(t)
        elif f.type == T.Q_FAIL:
            r = f.r()
            t.result = ("fail", r.u32(), r.str(), r.str())
            self._finish(t)
        else:
            self.errors.append("unexpected %r" % f)
            if f.fd is not None:
                os.close(f.fd)

    def _finish(self, t):
        if t.fd is not None:
            os.close(t.fd)
            t.fd = None
        with self.lock:
            self.txns.pop(t.reqid, None)
        t.done.set()

    def _maybe_commit(self, t):
        # COMMIT must not overtake the RCPTs the test thread is still
        # sending: commit once both OPENED came and all RCPTs are out.
        with self.lock:
            go = (t.auto and t.opened.is_set() and t.rcpts_sent and
                  not t.committed)
            if go:
                t.committed = True
        if go:
            self.write_commit(t)

    def write_commit(self, t):
        try:
            off = 0
            view = memoryview(t.body)
            while off < len(view):
                off += os.write(t.fd, view[off:off + 1 << 20])
        except OSError as e:
            t.write_error = e
        try:
            self.chan.send(T.Q_COMMIT, t.reqid, u64(t.size))
        except (OSError, ConnectionError) as e:
            t.write_error = e

    def begin(self, sender, rcpts, body, flags=0, envid="", user="alice",
              client="127.0.0.1", helo="client.test", proto="ESMTPSA",
              tls="TLSv1.3 TLS_AES_256_GCM_SHA384", notify=None, orcpt=None,
              size=None, auto=True):
        """Send Q_OPEN + Q_RCPT...; the body goes in when OPENED comes."""
        if isinstance(body, str):
            body = body.encode()
        t = Txn(self.q.next_reqid(), body, size, auto)
        with self.lock:
            self.txns[t.reqid] = t
        self.chan.send(T.Q_OPEN, t.reqid, u32(flags) + pstr(sender) +
                       pstr(envid) + pstr(user) + pstr(client) + pstr(helo) +
                       pstr(proto) + pstr(tls))
        for i, r in enumerate(rcpts):
            n = notify[i] if notify else 0
            o = orcpt[i] if orcpt else ""
            self.chan.send(T.Q_RCPT, t.reqid, u32(n) + pstr(r) + pstr(o))
        t.rcpts_sent = True
        self._maybe_commit(t)
        return t

    def enqueue(self, sender, rcpts, body, timeout=15, **kw):
        return self.begin(sender, rcpts, body, **kw).wait(timeout)

    def abort(self, t):
        self.chan.send(T.Q_ABORT, t.reqid)
        with self.lock:
            self.txns.pop(t.reqid, None)
        if t.fd is not None:
            os.close(t.fd)
            t.fd = None

    def enqueue_many(self, specs, concurrency=50, timeout=60):
        """specs: list of (sender, rcpts, body[, kw]); returns results in
        order, keeping at most `concurrency` transactions open."""
        results = [None] * len(specs)
        inflight = {}
        i = 0
        deadline = time.monotonic() + timeout * SLOW
        while i < len(specs) or inflight:
            while i < len(specs) and len(inflight) < concurrency:
                s = specs[i]
                kw = s[3] if len(s) > 3 else {}
                inflight[i] = self.begin(s[0], s[1], s[2], **kw)
                i += 1
            for k, t in list(inflight.items()):
                if t.done.is_set():
                    results[k] = t.result
                    del inflight[k]
            if inflight:
                first = next(iter(inflight.values()))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("enqueue_many: %d transactions "
                                       "unanswered" % len(inflight))
                first.done.wait(min(left, 0.05))
        return results


# ---------------------------------------------------------------------------
# deliverd side


class Job:
    def __init__(self, worker, reqid):
        self.worker, self.reqid = worker, reqid
        self.rcpts = []           # dicts: index, notify, address, orcpt
        self.route = self.flags = self.nrcpt = None
        self.id = self.sender = self.envid = self.destination = None
        self.body = b""
        self.sealed = None
        self.t = time.monotonic()
        self.answered = False

    @property
    def recipients(self):
        return [r["address"] for r in self.rcpts]

    def __repr__(self):
        return "<Job %s from=<%s> to=%s route=%s dest=%s>" % (
            self.id, self.sender, self.recipients, self.route,
            self.destination)


def policy_ok(job, rcpt):
    return (250, "2.0.0", "250 2.0.0 Ok: queued as UP%s" % job.id[-6:])


def policy_hold(job, rcpt):
    return None


class FakeDeliverd:
    def __init__(self, q, instance, chan):
        self.q, self.instance, self.chan = q, instance, chan
        self.pending = {}         # reqid -> Job being built
        self.held = []            # jobs unanswered (policy said None)
        self.greeted = threading.Event()
        self.hello = None
        self.errors = []

    def _frame(self, f):
        if f.type == T.HELLO:
            r = f.r()
            self.hello = (r.u32(), r.u32(), r.u32())
            self.greeted.set()
            return
        if f.type == T.DLV_RCPT:
            r = f.r()
            j = self.pending.setdefault(f.reqid, Job(self.instance, f.reqid))
            j.rcpts.append({"index": r.u32(), "notify": r.u32(),
                            "address": r.str(), "orcpt": r.str()})
            r.end()
            return
        if f.type == T.DLV_JOB:
            j = self.pending.pop(f.reqid, None) or Job(self.instance, f.reqid)
            r = f.r()
            j.route, j.flags, j.nrcpt = r.u32(), r.u32(), r.u32()
            j.id, j.sender, j.envid, j.destination = (r.str(), r.str(),
                                                      r.str(), r.str())
            r.end()
            if f.fd is None:
                self.errors.append("DLV_JOB %s without a descriptor" % j.id)
            else:
                try:
                    import fcntl
                    j.sealed = fcntl.fcntl(f.fd, fcntl.F_GET_SEALS)
                except (AttributeError, OSError):
                    j.sealed = None
                size = os.fstat(f.fd).st_size
                chunks, off = [], 0
                while off < size:
                    b = os.pread(f.fd, min(1 << 20, size - off), off)
                    if not b:
                        break
                    chunks.append(b)
                    off += len(b)
                j.body = b"".join(chunks)
                os.close(f.fd)
            if j.nrcpt != len(j.rcpts):
                self.errors.append("DLV_JOB %s: nrcpt %d, got %d DLV_RCPT" %
                                   (j.id, j.nrcpt, len(j.rcpts)))
            self.q._job(self, j)
            return
        self.errors.append("unexpected %r" % f)
        if f.fd is not None:
            os.close(f.fd)

    def answer(self, job, results, flags=None, relay=None):
        """results: list of (code, status, text) per job.rcpts entry."""
        if flags is None:
            flags = self.q.done_flags
        if relay is None:
            relay = self.q.relay
        try:
            for rc, res in zip(job.rcpts, results):
                if res is None:
                    continue
                code, st, text = res
                self.chan.send(T.DLV_RESULT, job.reqid, u32(rc["index"]) +
                               u32(code) + pstr(st) + pstr(text))
            self.chan.send(T.DLV_DONE, job.reqid,
                           u32(flags) + pstr(relay) + u32(0) + u32(0))
        except (OSError, ConnectionError):
            return False
        job.answered = True
        return True


# ---------------------------------------------------------------------------
# queued


class Queued:
    """One queued process and the channels of its fake neighbours."""

    def __init__(self, tmpdir, config, workers=None, name="queued",
                 policy=policy_ok, binary=None):
        self.dir = tmpdir
        self.config = config
        self.name = name
        self.binary = binary or os.path.join(BUILD, "queued")
        m = re.search(r"workers\s*=\s*(\d+)", config)
        self.nworkers = workers if workers is not None else (
            int(m.group(1)) if m else 2)
        self.policy = policy
        self.done_flags = 0
        self.relay = "upstream.test[127.0.0.1]:25"
        self.logpath = os.path.join(tmpdir, name + ".log")
        self.confpath = os.path.join(tmpdir, name + ".conf")
        with open(self.confpath, "w") as f:
            f.write(config)
        self.proc = None
        self.parent = None
        self.smtpd = None
        self.workers = []
        self.jobs = []            # every DLV_JOB received, in order
        self.cv = threading.Condition()
        self.ready_pid = None
        self.conf_done = None
        self.parent_eof = False
        self._reqid = 0
        self._rlock = threading.Lock()
        self._sel = None
        self._thread = None
        self._stop = False
        self._wake_r = self._wake_w = None
        self._chans = {}          # Channel -> handler
        self._pending_reg = []
        self.io_errors = []
        self.starts = 0
        self._logoff = 0
        _CLEANUPS.append(self.kill9)

    # -- bookkeeping
    def next_reqid(self):
        with self._rlock:
            self._reqid += 1
            return self._reqid

    def log(self):
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=30):
        return "\n".join(self.log().splitlines()[-n:])

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # -- I/O thread
    def _register(self, chan, handler):
        with self.cv:
            self._chans[chan] = handler
            self._pending_reg.append(chan)
        os.write(self._wake_w, b"x")

    def _io(self):
        sel = self._sel
        while not self._stop:
            with self.cv:
                regs, self._pending_reg = self._pending_reg, []
            for ch in regs:
                if ch.dead:
                    continue
                fd = ch.sock.fileno()
                # a channel the test closed may have left its number
                # behind in the selector's map
                if fd in sel.get_map():
                    try:
                        sel.unregister(fd)
                    except (KeyError, ValueError, OSError):
                        pass
                try:
                    sel.register(fd, selectors.EVENT_READ, ch)
                except (ValueError, KeyError, OSError) as e:
                    self.io_errors.append("register %s: %s" % (ch.name, e))
            for key, _ in sel.select(0.2):
                if key.data is None:
                    try:
                        os.read(self._wake_r, 4096)
                    except OSError:
                        pass
                    continue
                ch = key.data
                handler = self._chans.get(ch)
                try:
                    if ch.dead:
                        raise EOFError
                    f = ch.recv()
                except (OSError, ValueError, EOFError) as e:
                    if not isinstance(e, EOFError) and not ch.dead:
                        self.io_errors.append("%s: %s" % (ch.name, e))
                    f = None
                if f is None:
                    try:
                        sel.unregister(key.fd)
                    except (KeyError, ValueError, OSError):
                        pass
                    ch.close()
                    if handler is not None:
                        try:
                            handler(None)
                        except Exception as e:   # noqa: keep the loop up
                            self.io_errors.append("%s: %r" % (ch.name, e))
                    continue
                try:
                    handler(f)
                except Exception as e:            # noqa
                    self.io_errors.append("%s: %s: %r" % (ch.name, f, e))
                    if f.fd is not None:
                        try:
                            os.close(f.fd)
                        except OSError:
                            pass

    def _io_start(self):
        """The selector, its wake-up pipe and the I/O thread."""
        self._stop = False
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._chans = {}
        self._pending_reg = []
        self._thread = threading.Thread(target=self._io, daemon=True)
        self._thread.start()

    def _parent_frame(self, f):
        if f is None:
            with self.cv:
                self.parent_eof = True
                self.cv.notify_all()
            return
        if f.type == T.HEARTBEAT:
            self.parent.send(T.HEARTBEAT_ACK, f.reqid)
        elif f.type == T.READY:
            with self.cv:
                self.ready_pid = f.r().u32()
                self.cv.notify_all()
        elif f.type == T.CONF_DONE:
            with self.cv:
                self.conf_done = f.r().u32()
                self.cv.notify_all()
        else:
            self.io_errors.append("parent: unexpected %r" % f)
        if f.fd is not None:
            os.close(f.fd)

    def _job(self, w, job):
        with self.cv:
            self.jobs.append(job)
            self.cv.notify_all()
        try:
            res = [self.policy(job, r) for r in job.rcpts]
        except Exception as e:               # noqa
            self.io_errors.append("policy: %r" % e)
            res = [None]
        if any(r is None for r in res):
            w.held.append(job)
        else:
            w.answer(job, res)

    # -- process control
    def start(self, wait_ready=True, wait_redis=True, extra_args=()):
        """Spawn queued with a fresh parent channel, do the set-up.
        With wait_redis, return only once queued says its Redis
        connection is up (a commit before that is refused with 451)."""
        try:
            self._logoff = os.path.getsize(self.logpath)
        except OSError:
            self._logoff = 0
        self._io_start()
        self.ready_pid = None
        self.conf_done = None
        self.parent_eof = False
        self.parent, child_end = pair(self.name + ":parent")
        logf = open(self.logpath, "ab")
        cfd = child_end.fileno()

        # The channel must be descriptor 3 in queued.  No preexec_fn
        # (unsafe with threads): bash moves it there and execs queued, so
        # the PID we record is queued's.
        if cfd == 3:
            script = 'exec "$0" "$@"'
        else:
            script = 'exec 3<&%d %d<&- && exec "$0" "$@"' % (cfd, cfd)
        args = ["/bin/bash", "-c", script, self.binary, "-i", "0", "-d",
                "-f"] + list(extra_args)
        env = dict(os.environ)
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=logf,
                                     pass_fds=(cfd,), cwd=self.dir, env=env)
        _PIDS.add(self.proc.pid)
        child_end.close()
        logf.close()
        self.starts += 1
        self._register(self.parent, self._parent_frame)

        p = self.parent
        p.send(T.HELLO, 0, u32(IPC_VERSION) + u32(PROC_SLUICED) + u32(0))
        fd = memfd_with(self.config)
        try:
            p.send(T.CONF, 0, u32(1), fd)
        finally:
            os.close(fd)
        self.smtpd = self._link_smtpd()
        self.workers = [self._link_deliverd(i) for i in range(self.nworkers)]
        p.send(T.START)
        if wait_ready:
            self.wait_ready()
            if wait_redis:
                self.wait_redis()
        return self

    def this_log(self):
        """The log of the current process only."""
        try:
            with open(self.logpath, "rb") as f:
                f.seek(self._logoff)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def wait_redis(self, timeout=10):
        """Until the log shows the Redis connection up (lib/redis_ev's
        "PATH: connected; noeviction, ..." line).  Gives up quietly: a
        test that needs Redis then fails on its own terms."""
        pat = re.compile(r"redis .*: connected;|redis up")
        try:
            wait_until(lambda: pat.search(self.this_log()) or
                       not self.alive(), timeout, what="redis up")
        except TimeoutError:
            pass
        time.sleep(0.02)

    def wait_ready(self, timeout=15):
        with self.cv:
            ok = self.cv.wait_for(lambda: self.ready_pid is not None or
                                  self.parent_eof or not self.alive(),
                                  timeout * SLOW)
        if not ok or self.ready_pid is None:
            raise RuntimeError("queued did not send READY (alive=%s)\n%s" %
                               (self.alive(), self.log_tail()))
        if self.ready_pid != self.proc.pid:
            raise RuntimeError("READY names pid %d, queued is %d" %
                               (self.ready_pid, self.proc.pid))
        # the greetings on the peer channels
        for peer in [self.smtpd] + self.workers:
            if not peer.greeted.wait(10 * SLOW):
                raise RuntimeError("no HELLO from queued on %s\n%s" %
                                   (peer.chan.name, self.log_tail()))
            if peer.hello != (IPC_VERSION, PROC_QUEUED, 0):
                raise RuntimeError("%s: queued greeted with %r" %
                                   (peer.chan.name, peer.hello))

    def _peer(self, kind, instance, name):
        ours, theirs = pair("%s:%s" % (self.name, name))
        try:
            self.parent.send(T.PEER, 0, u32(kind) + u32(instance),
                             theirs.fileno())
        finally:
            theirs.close()
        ours.send(T.HELLO, 0, u32(IPC_VERSION) + u32(kind) + u32(instance))
        return ours

    def _link_smtpd(self):
        return self.attach_smtpd(self._peer(PROC_SMTPD, 0, "smtpd[0]"))

    def attach_smtpd(self, ch):
        """Play smtpd on channel ch (served by the I/O thread)."""
        s = Smtpd(self, ch)

        def h(f):
            if f is None:
                for t in list(s.txns.values()):
                    t.result = ("eof",)
                    t.done.set()
                return
            s._frame(f)
        self._register(ch, h)
        return s

    def _link_deliverd(self, i):
        ch = self._peer(PROC_DELIVERD, i, "deliverd[%d]" % i)
        w = FakeDeliverd(self, i, ch)
        self._register(ch, lambda f: w._frame(f) if f is not None else None)
        return w

    def relink_smtpd(self):
        """Drop the smtpd channel (as if smtpd died) and send a new one."""
        old = self.smtpd
        old.chan.close()
        os.write(self._wake_w, b"x")
        self.smtpd = self._link_smtpd()
        if not self.smtpd.greeted.wait(10 * SLOW):
            raise RuntimeError("no HELLO on the new smtpd channel")
        return self.smtpd

    def relink_worker(self, i):
        """A fresh channel for deliverd[i] (as if it was restarted)."""
        self.workers[i].chan.close()
        os.write(self._wake_w, b"x")
        self.workers[i] = self._link_deliverd(i)
        if not self.workers[i].greeted.wait(10 * SLOW):
            raise RuntimeError("no HELLO on the new deliverd channel")
        return self.workers[i]

    def close_worker(self, i):
        """Kill deliverd[i]'s channel (as if that worker died)."""
        self.workers[i].chan.close()
        os.write(self._wake_w, b"x")

    def _teardown_io(self):
        self._stop = True
        if self._wake_w is not None:
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(5)
        self._thread = None
        for ch in list(self._chans):
            ch.close()
        if self._sel is not None:
            self._sel.close()
            self._sel = None
        for fd in (self._wake_r, self._wake_w):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._wake_r = self._wake_w = None

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            _reap(self.proc, 5)
        self._teardown_io()

    def stop(self, timeout=10):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            _reap(self.proc, timeout * SLOW)
        self._teardown_io()

    def restart(self, **kw):
        """A new process with new channels and the same configuration.
        Jobs seen so far stay in self.jobs."""
        self.kill9()
        return self.start(**kw)

    # -- waiting for deliveries
    def wait_jobs(self, n, timeout=10, pred=None):
        """Wait until at least n jobs (matching pred) arrived; returns them."""
        def sel():
            return [j for j in self.jobs if pred is None or pred(j)]
        with self.cv:
            self.cv.wait_for(lambda: len(sel()) >= n, timeout * SLOW)
            got = sel()
        if len(got) < n:
            raise TimeoutError("%d of %d jobs arrived within %.0fs" %
                               (len(got), n, timeout * SLOW))
        return got

    def held_jobs(self):
        return [j for w in self.workers for j in w.held if not j.answered]

    def answer_held(self, policy=policy_ok):
        n = 0
        for w in self.workers:
            held, w.held = w.held, []
            for j in held:
                if not j.answered and w.answer(j, [policy(j, r)
                                                   for r in j.rcpts]):
                    n += 1
        return n

    def errors(self):
        out = list(self.io_errors)
        if self.smtpd:
            out += self.smtpd.errors
        for w in self.workers:
            out += w.errors
        return out


# ---------------------------------------------------------------------------
# sluicectl


def sluicectl(conf_path, *args, timeout=15):
    exe = os.path.join(BUILD, "sluicectl")
    p = subprocess.run([exe, "-c", conf_path] + list(args),
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout * SLOW)
    return p.returncode, p.stdout.decode(errors="replace"), \
        p.stderr.decode(errors="replace")


# ---------------------------------------------------------------------------
# Convenience: one environment (temp dir, redis, queued) for a test


class Env:
    def __init__(self, name="q", redis_extra=(), start_queued=True,
                 policy=policy_ok, **confkw):
        self.tmp = tempfile.mkdtemp(prefix="sluice-q-%s." % name,
                                    dir="/tmp")
        os.chmod(self.tmp, 0o755)
        self.redis = self.q = None
        self.extra = []
        self.confkw = confkw
        try:
            self.redis = Redis(self.tmp, redis_extra).start()
            self.config = make_config(self.tmp, **confkw)
            self.q = Queued(self.tmp, self.config, policy=policy)
            if start_queued:
                self.q.start()
        except BaseException:
            self.close()
            raise

    @property
    def prefix(self):
        return self.confkw.get("prefix") or "sluice:"

    def key(self, kind, qid):
        return "%s%s:{%s}" % (self.prefix, kind, qid)

    def another_queued(self, hostname, policy=policy_ok, **kw):
        d = os.path.join(self.tmp, hostname)
        os.makedirs(d, exist_ok=True)
        ck = dict(self.confkw)
        ck.update(kw)
        ck["hostname"] = hostname
        ck["redis_sock"] = self.redis.sock
        # Nodes sharing a Redis must share the queue key (a message
        # sealed by one must open on the other): same state_dir here,
        # so the same state_dir/queue.key.
        ck["state_dir"] = os.path.join(self.tmp, "state")
        conf = make_config(d, **ck)
        q = Queued(d, conf, policy=policy, name="queued-" + hostname)
        self.extra.append(q)
        return q

    def close(self):
        for q in self.extra + ([self.q] if self.q else []):
            try:
                q.stop(5)
            except Exception:
                q.kill9()
        if self.redis is not None:
            self.redis.kill9()
        subprocess.run(["rm", "-rf", self.tmp], timeout=30)


def message(subject="test", msgid=True, date=True, body="Hello.\r\n",
            sender="alice@example.org", to="bob@b.test", extra_headers=()):
    h = ["Received: from client.test (client.test [127.0.0.1])\r\n"
         "\tby mx.test with ESMTPSA id 1; Mon, 1 Jan 2024 00:00:00 +0000"]
    h.append("From: <%s>" % sender)
    h.append("To: <%s>" % to)
    h.append("Subject: %s" % subject)
    if msgid:
        h.append("Message-ID: <%s.%f@example.org>" % (subject.replace(
            " ", "-"), time.time()))
    if date:
        h.append("Date: Mon, 1 Jan 2024 00:00:00 +0000")
    h += list(extra_headers)
    return ("\r\n".join(h) + "\r\n\r\n" + body).encode()
