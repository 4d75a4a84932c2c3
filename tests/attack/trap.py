"""The third-address trap of make attack.

One job: own a few UDP sockets and TCP listeners on a loopback address that
no legitimate flow ever addresses (127.0.0.9), and hand every SIP message
that arrives there to a callback. The harness names this address in
Request-URIs, Route headers, spliced headers and SIP-Version junk of the
messages it sends; Kamailio must never send anything there, so every
message the trap receives is a finding ("relay").

TCP: cfg-examples/kamailio.cfg listens on UDP only, so Kamailio has no
socket to send TCP from; the listeners are there so that a config or a
module that does open a connection (a `;transport=tcp` Request-URI or
Route) is caught too. Connections are read without blocking and split
into messages by their Content-Length.
"""

import re
import socket

TRAP_IP = "127.0.0.9"
TRAP_PORTS = (5060, 5061, 5062, 5080)
TRAP_HPS = tuple(f"{TRAP_IP}:{p}" for p in TRAP_PORTS)
_MAX_STREAM = 1 << 20  # bytes kept per connection without a complete message
_CL = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\d+)", re.I | re.M)


class Trap:
    def __init__(self):
        self.udp = {}  # fileno -> (socket, "udp 127.0.0.9:port")
        self.listeners = {}  # fileno -> (socket, "tcp 127.0.0.9:port")
        self.conns = {}  # fileno -> [socket, where, buffered bytes]
        for port in TRAP_PORTS:
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            u.bind((TRAP_IP, port))
            u.setblocking(False)
            self.udp[u.fileno()] = (u, f"udp {TRAP_IP}:{port}")
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            t.bind((TRAP_IP, port))
            t.listen(16)
            t.setblocking(False)
            self.listeners[t.fileno()] = (t, f"tcp {TRAP_IP}:{port}")

    def sockets(self):
        return ([s for s, _ in self.udp.values()] + [s for s, _ in self.listeners.values()]
                + [c[0] for c in self.conns.values()])

    def owns(self, fileno):
        return fileno in self.udp or fileno in self.listeners or fileno in self.conns

    def readable(self, fileno, deliver):
        """Reads what is waiting on one of the trap's sockets; calls
        deliver(data, where) for every complete message."""
        if fileno in self.udp:
            s, where = self.udp[fileno]
            for _ in range(200):
                try:
                    data, src = s.recvfrom(70000)
                except OSError:
                    break
                deliver(data, f"{where} from {src[0]}:{src[1]}")
        elif fileno in self.listeners:
            s, where = self.listeners[fileno]
            while True:
                try:
                    c, src = s.accept()
                except OSError:
                    break
                c.setblocking(False)
                self.conns[c.fileno()] = [c, f"{where} from {src[0]}:{src[1]}", b""]
        elif fileno in self.conns:
            entry = self.conns[fileno]
            c, where = entry[0], entry[1]
            closed = False
            while True:
                try:
                    chunk = c.recv(65536)
                except BlockingIOError:
                    break
                except OSError:
                    closed = True
                    break
                if not chunk:
                    closed = True
                    break
                entry[2] += chunk
            entry[2] = self._split(entry[2], where, deliver, closed)
            if closed:
                del self.conns[fileno]
                c.close()

    @staticmethod
    def _split(buf, where, deliver, closed):
        while buf:
            buf = buf.lstrip(b"\r\n")
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            m = _CL.search(buf[:end])
            size = end + 4 + (int(m.group(1)) if m else 0)
            if len(buf) < size and not closed:
                break
            deliver(buf[:size], where)
            buf = buf[size:]
        if buf and (closed or len(buf) > _MAX_STREAM):
            deliver(buf[:65536], where + " (incomplete)")
            return b""
        return buf

    def close(self):
        for s in self.sockets():
            s.close()
        self.udp, self.listeners, self.conns = {}, {}, {}
