"""dnsserver - a small authoritative DNS server over UDP on loopback, for
the integration tests (test_delivery, test_e2e).  Standard library only:
dnsmasq cannot say SERVFAIL or a null MX on demand.

Importing this module starts nothing; a DNS() starts its own server
thread, and stop() ends it.  Whoever makes one stops it.
"""

import socket
import threading


class DNS:
    """A small authoritative DNS server over UDP, by default on 127.0.0.1
    and a free port.
    records: {name: {"A": [ip], "AAAA": [ip], "MX": [(pref, host)]}};
    a name in records without the type asked is NODATA, a name in
    servfail gets SERVFAIL, any other NXDOMAIN.  silent: read every
    query and answer none."""

    TYPES = {1: "A", 28: "AAAA", 15: "MX"}

    def __init__(self, records=None, servfail=(), silent=False,
                 host="127.0.0.1", port=0):
        self.records = {k.lower().rstrip("."): v
                        for k, v in (records or {}).items()}
        self.servfail = {n.lower() for n in servfail}
        self.silent = silent
        self.queries = []         # (name, type name)
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind((host, port))
        # stop() wakes the thread with a datagram (close() alone does
        # not wake a thread in recvfrom); the time-out is a fallback
        self.s.settimeout(1.0)
        self.host = host
        self.port = self.s.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def conf(self):
        """The dns group of sluice.conf naming this server."""
        return 'dns = { servers = [ "%s:%d" ]; };\n' % (self.host, self.port)

    def stop(self):
        self.stopped = True
        try:
            w = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                w.sendto(b"", (self.host, self.port))
            finally:
                w.close()
        except OSError:
            pass
        if self.thread.is_alive() and \
                self.thread is not threading.current_thread():
            self.thread.join(2)
        try:
            self.s.close()
        except OSError:
            pass

    @staticmethod
    def _name(n):
        out = b""
        for label in n.rstrip(".").split("."):
            if label:
                out += bytes([len(label)]) + label.encode()
        return out + b"\0"

    def _serve(self):
        while not self.stopped:
            try:
                q, peer = self.s.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if not q:
                continue          # stop() wakes us so
            try:
                r = self._answer(q)
            except (IndexError, ValueError):
                continue
            if r is not None and not self.silent:
                try:
                    self.s.sendto(r, peer)
                except OSError:
                    pass

    def _answer(self, q):
        qid, flags = q[0:2], int.from_bytes(q[2:4], "big")
        i, labels = 12, []
        while q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode("ascii"))
            i += 1 + q[i]
        qtype = int.from_bytes(q[i + 1:i + 3], "big")
        question = q[12:i + 5]
        name = ".".join(labels).lower()
        tname = self.TYPES.get(qtype, str(qtype))
        self.queries.append((name, tname))
        answers, rcode = [], 0
        if name in self.servfail:
            rcode = 2
        elif name not in self.records:
            rcode = 3
        else:
            for v in self.records[name].get(tname, []):
                if tname == "A":
                    rd = socket.inet_pton(socket.AF_INET, v)
                elif tname == "AAAA":
                    rd = socket.inet_pton(socket.AF_INET6, v)
                else:
                    rd = v[0].to_bytes(2, "big") + self._name(v[1])
                answers.append(b"\xc0\x0c" + qtype.to_bytes(2, "big") +
                               b"\x00\x01" + (60).to_bytes(4, "big") +
                               len(rd).to_bytes(2, "big") + rd)
        # QR, AA, RD as asked, RA
        rflags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | rcode
        return (qid + rflags.to_bytes(2, "big") + b"\x00\x01" +
                len(answers).to_bytes(2, "big") + b"\x00\x00\x00\x00" +
                question + b"".join(answers))
