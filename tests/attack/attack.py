#!/usr/bin/env python3
"""make attack: a live attack on Kamailio running cfg-examples/kamailio.cfg
with topos_rs (issue 13). Python 3, standard library only.

Everything runs in a private network namespace (the script re-executes
itself under `unshare -n` and brings up `lo`), so no fuzzed host name can be
resolved and no packet can leave the machine. Kamailio listens on
127.0.0.1:5060; caller-side peers are on 127.0.0.2 ("side A"), callee-side
peers on 127.0.0.3 ("side B"). Calls go both ways.

The harness drives real call flows (INVITE/100/180/200/ACK/BYE, CANCEL/487,
486/603/302/503, re-INVITE, OPTIONS, INFO, BYE from either side) and, mixed
into them, a seeded stream of mutated messages: 18x/2xx replies inside live
INVITE transactions (real Via branch), in-dialog requests carrying the real
token, tags and Call-ID, mutated out-of-dialog INVITEs and OPTIONS replies,
stray/forged replies, huge ACKs, forged and replayed tokens.

The classes of issue 24, each counted on its own in the report:
  ACK/CANCEL after a negative final (486, 603, CANCEL then 487) and after
            a 2xx (call up, after the BYE): from either side, with the
            INVITE's branch, another one or one without z9hG4bK; Request-URI
            the other side's address, a third address (the trap; also
            ;transport=tcp), the sender's own, the INVITE's, the real token;
            no Route, the proper one, one elsewhere (trap or other side),
            both orders; with or without To-tag
  proper hop-by-hop ACK after a negative final (must be absorbed: it must
            reach no one) and proper e2e ACK with the real token (must reach
            the callee, hidden)
  spliced headers: `\\r\\nRoute: <sip:ADDR;lr>` (or Via, Record-Route,
            Contact) inserted in the middle of a From, To, Subject, Call-ID
            or Via value of requests and replies, ADDR the sender's own
            address, an upstream proxy of its side, or the trap (Route, and
            a request's non-top Via, only)
  bad SIP-Version: SIP/2.0 followed by junk (SIP/2.0127.0.0.2:5060,
            SIP/2.0;received=...), SIP/2.1, lower case, missing
(both mutations are also part of the general mix).

The third-address trap: UDP sockets and TCP listeners on 127.0.0.9 (ports
5060, 5061, 5062, 5080), an address no legitimate flow ever sends to.
Every socket the harness owns (all peers of both sides, the trap, the
start-up probe, the sockets drained during crash triage) is read all the
time and every message is checked, whether a flow waits for it or not.

It fails (exit 1) on any finding:
  crash     a Kamailio process died (or the log says stack smashing /
            killed by signal / shutting down)
  panic     the module logged a panic or an "internal error"
  leak      a message reaching one side carries the other side's address
            in a Via, Record-Route, Route or Contact header (any case,
            compact forms, folded lines), in a request line (SIP-Version
            junk) or in a header line without a colon (tests/attack/
            leak_scan.py); a reply carrying the receiver's own Vias, and
            Kamailio's own replies to a refused request (sent to its top
            Via with the sender's own stack), are not leaks
  relay     Kamailio sent a message to the trap ("relayed a message to an
            address no call uses"), or relayed an ACK/CANCEL of the
            after-final classes that it must absorb or refuse (no valid
            token; an ACK with the real token may reach only the side the
            token addresses; an ACK without To-tag is outside any dialog
            and may be relayed, hidden)
  lost      a proper e2e ACK with the real token did not reach the callee
  forged    a request with a forged or foreign token reached a peer
  memory    pkg (kamcmd pkg.stats, summed) or shm (core.shmmem real_used)
            grew by more than ATTACK_MEM_TOLERANCE_KIB between the warm-up
            sample and the sample after every dialog ended and expired
  records   topos_rs.records shows dialogs or bills once every call ended
            and the grace time (32 s) plus an LMDB sweep (10 s) passed

Knobs (environment): ATTACK_MESSAGES (default 100000), ATTACK_SEED
(default 1), ATTACK_SECONDS (traffic time limit, default 480),
ATTACK_RESTARTS (restart Kamailio after a crash and go on, at most this
many times; default 10; 0 stops at the first crash),
ATTACK_MEM_TOLERANCE_KIB (default 256), ATTACK_GRACE (seconds waited after
the traffic, default 45), ATTACK_OUT (output directory, default
target/attack), ATTACK_AVOID_HUGE_ACK=1 (never send an ACK whose Call-ID or
CSeq number exceeds 1000 bytes: the known crash of issue 13 #1, so that a
run against a module that still has it goes on finding the rest).

The report (ATTACK_OUT/run-*/report.txt) gives the messages sent and the
findings per class, and for each finding its first line and offending
header, the message received and the one that triggered it (.sip files),
and the seed to reproduce it.
"""

import collections
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from leak_scan import scan  # noqa: E402  (a sibling file, found from here)
from trap import TRAP_HPS, Trap  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KIP, KPORT = "127.0.0.1", 5060
KADDR = (KIP, KPORT)


def env_int(name, default):
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        sys.exit(f"{name} must be an integer")


MESSAGES = env_int("ATTACK_MESSAGES", 100000)
SEED = env_int("ATTACK_SEED", 1)
SECONDS = env_int("ATTACK_SECONDS", 480)
RESTARTS = env_int("ATTACK_RESTARTS", 10)
MEM_TOL_KIB = env_int("ATTACK_MEM_TOLERANCE_KIB", 256)
GRACE = env_int("ATTACK_GRACE", 45)
AVOID_HUGE_ACK = env_int("ATTACK_AVOID_HUGE_ACK", 0)
OUT = os.environ.get("ATTACK_OUT", os.path.join(ROOT, "target", "attack"))

# What each side must never learn about the other. Side A: caller peers on
# 127.0.0.2 and the fake upstream proxies they put in Via (192.168.x.x,
# 10.10.x.x). Side B: callee peers on 127.0.0.3 and 172.16.x.x. Each side's
# Record-Route names the peer itself (in-dialog requests must reach it, and
# only loopback addresses exist in the namespace).
SIDES = {
    "A": {
        "ip": "127.0.0.2",
        "user": "01089672389",
        "vias": ["SIP/2.0/UDP 192.168.1.100:5060;branch=z9hG4bK111111",
                 "SIP/2.0/UDP 10.10.10.1:5060;branch=z9hG4bK222222"],
        "rr": "<sip:{hp};lr>",
        "secrets": [b"127.0.0.2", b"192.168.", b"10.10."],
    },
    "B": {
        "ip": "127.0.0.3",
        "user": "13545769997",
        "vias": ["SIP/2.0/UDP 172.16.0.10:5060;branch=z9hG4bK333333"],
        "rr": "<sip:{hp};lr>",
        "secrets": [b"127.0.0.3", b"172.16."],
    },
}
OTHER = {"A": "B", "B": "A"}
COMPACT = {b"v": b"via", b"m": b"contact", b"i": b"call-id", b"f": b"from",
           b"t": b"to", b"l": b"content-length"}
CRASH_RE = re.compile(rb"stack smashing|exited by a signal|killed by signal|signal [0-9]+ received|"
                      rb"shutting down|core dumped|segmentation fault", re.I)
PANIC_RE = re.compile(rb"internal error|panic", re.I)


def log(*a):
    print(*a, flush=True)


# ---------------------------------------------------------------- network


def enter_netns():
    """Re-run this script in a private network namespace with lo up."""
    if os.environ.get("ATTACK_IN_NETNS") != "1":
        env = dict(os.environ, ATTACK_IN_NETNS="1")
        cmd = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-r", "-n"]
        os.execvpe(cmd[0], cmd + ["--", sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    names = [l.split(":")[1].strip() for l in links.splitlines() if l.strip()]
    if names != ["lo"]:
        sys.exit(f"attack: not in a private network namespace (links: {names})")
    route = subprocess.run(["ip", "route", "get", "8.8.8.8"], capture_output=True, text=True)
    if route.returncode == 0:
        sys.exit("attack: a route off the machine exists inside the namespace")


# ---------------------------------------------------------------- SIP text


class Msg:
    """A received (or built) SIP message, parsed leniently."""

    __slots__ = ("raw", "first", "hdrs", "method", "status", "callid", "cseq_method", "totag",
                 "branch")

    def __init__(self, raw):
        self.raw = raw
        head = raw.lstrip(b"\r\n").split(b"\r\n\r\n", 1)[0]
        lines = head.split(b"\n")
        self.first = lines[0].rstrip(b"\r")
        self.hdrs = []  # (lower-case long name, value, raw line)
        for line in lines[1:]:
            line = line.rstrip(b"\r")
            if line[:1] in (b" ", b"\t") and self.hdrs:
                n, v, r = self.hdrs[-1]
                self.hdrs[-1] = (n, v + b" " + line.strip(), r + b"\r\n" + line)
                continue
            if b":" not in line:
                continue
            n, v = line.split(b":", 1)
            n = n.strip().lower()
            self.hdrs.append((COMPACT.get(n, n), v.strip(), line))
        self.method = self.status = None
        if self.first[:4].upper() == b"SIP/":
            # A reply, whatever its version: Kamailio copies a request's
            # SIP-Version junk into its own replies ("SIP/2.0127.0.0.9:5062
            # 404 Not Found"), and a peer must never answer those.
            parts = self.first.split(b" ", 2)
            try:
                self.status = int(parts[1][:3]) if len(parts) > 1 else -1
            except ValueError:
                self.status = -1
        else:
            self.method = self.first.split(b" ", 1)[0]
        self.callid = self.h(b"call-id") or b""
        cseq = (self.h(b"cseq") or b"").split()
        self.cseq_method = cseq[1] if len(cseq) > 1 else b""
        to = self.h(b"to") or b""
        m = re.search(rb";\s*tag=([^;>\s]+)", to)
        self.totag = m.group(1) if m else None
        via = self.h(b"via") or b""
        m = re.search(rb"branch=([^;,\s]+)", via)
        self.branch = m.group(1) if m else b""

    def h(self, name):
        for n, v, _ in self.hdrs:
            if n == name:
                return v
        return None

    def all(self, name):
        return [v for n, v, _ in self.hdrs if n == name]

    def raws(self, name):
        return [r for n, _, r in self.hdrs if n == name]


def uri_of(nameaddr):
    """The URI inside <...> of a name-addr, else the value up to ';'."""
    s = nameaddr.decode("latin-1") if isinstance(nameaddr, bytes) else nameaddr
    if "<" in s:
        return s.split("<", 1)[1].split(">", 1)[0]
    return s.split(";", 1)[0].strip()


def split_commas(values):
    out = []
    for v in values:
        out += [p.strip() for p in v.decode("latin-1").split(",") if p.strip()]
    return out


class Peer:
    def __init__(self, side, idx):
        self.side = side
        self.idx = idx
        self.ip = SIDES[side]["ip"]
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((self.ip, 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.hp = f"{self.ip}:{self.port}"
        self.name = f"{side}{idx}({self.hp})"


def build_request(p, method, ruri, callid, cseq, frm, to, branch, routes=(), contact=True,
                  rr=False, upstream=True, extra=()):
    s = SIDES[p.side]
    lines = [f"{method} {ruri} SIP/2.0", f"Via: SIP/2.0/UDP {p.hp};branch={branch};rport"]
    if upstream:
        lines += [f"Via: {v}" for v in s["vias"]]
    if rr:
        lines.append("Record-Route: " + s["rr"].format(hp=p.hp))
    lines += [f"Route: {r}" for r in routes]
    lines += ["Max-Forwards: 70", f"From: {frm}", f"To: {to}", f"Call-ID: {callid}",
              f"CSeq: {cseq} {method}"]
    if contact:
        lines.append(f"Contact: <sip:{s['user']}@{p.hp}>")
    lines += list(extra)
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def build_reply(p, req, code, reason, totag=None, contact=True, rr=True):
    """A reply of peer p to the request it received: Vias, From, Call-ID,
    CSeq (and Record-Route, its own side's on top) copied; To-tag added."""
    s = SIDES[p.side]
    out = [f"SIP/2.0 {code} {reason}".encode()]
    out += [b"Via: " + v for v in req.all(b"via")]
    if rr and code > 100:
        out.append(("Record-Route: " + s["rr"].format(hp=p.hp)).encode())
        out += [b"Record-Route: " + v for v in req.all(b"record-route")]
    out += [b"From: " + (req.h(b"from") or b"")]
    to = req.h(b"to") or b""
    if code > 100 and req.totag is None and totag:
        to += b";tag=" + totag.encode()
    out += [b"To: " + to, b"Call-ID: " + req.callid, b"CSeq: " + (req.h(b"cseq") or b"")]
    if contact and code > 100:
        out.append(f"Contact: <sip:{s['user']}@{p.hp}>".encode())
    mark = req.h(b"x-attack-id")
    if mark:
        out.append(b"X-Attack-Id: " + mark)
    out.append(b"Content-Length: 0")
    return b"\r\n".join(out) + b"\r\n\r\n"


# ---------------------------------------------------------------- mutations

HUGE = [3000, 3100, 4096, 8192, 16384, 30000, 60000]


def _lines(data):
    head, sep, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n"), sep, body


def _join(lines, sep, body):
    return b"\r\n".join(lines) + sep + body


def _room(data, want):
    return max(16, min(want, 64000 - len(data)))


def _pick(rng, lines, names):
    idx = [i for i, l in enumerate(lines[1:], 1)
           if l.split(b":", 1)[0].strip().lower() in names]
    return rng.choice(idx) if idx else None


def m_flip(rng, d, p):
    b = bytearray(d)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(b))
        b[i] ^= rng.randint(1, 255)
    return bytes(b), "byte flip"


def m_inject(rng, d, p):
    what = rng.choice([b"\xff", b"\x00", b"\r", b"\xff\xfe", b"\x00\x00\x00", b"\r\r", b"\n"])
    end = d.find(b"\r\n\r\n")
    i = rng.randrange(len(d) if end < 0 else end + 1)
    return d[:i] + what + d[i:], f"inject {what!r}"


def m_huge_value(rng, d, p):
    lines, sep, body = _lines(d)
    n = _room(d, rng.choice(HUGE))
    i = _pick(rng, lines, {b"from", b"f", b"to", b"t", b"contact", b"m", b"via", b"v",
                           b"record-route", b"route", b"subject", b"user-agent"})
    if i is None or rng.random() < 0.3:
        lines.insert(1 + rng.randrange(len(lines)), b"X-Huge: " + b"h" * n)
        return _join(lines, sep, body), f"{n}-byte X-Huge header"
    lines[i] += b";x=" + b"a" * n
    return _join(lines, sep, body), f"{n}-byte value on {lines[i][:12]!r}"


def m_huge_callid(rng, d, p):
    lines, sep, body = _lines(d)
    n = _room(d, rng.choice(HUGE))
    for i, l in enumerate(lines):
        if l.lower().startswith((b"call-id:", b"i:")):
            lines[i] = l + b"c" * n
            return _join(lines, sep, body), f"{n}-byte longer Call-ID"
    return m_huge_value(rng, d, p)


def m_huge_cseq(rng, d, p):
    lines, sep, body = _lines(d)
    n = rng.choice([3000, 3100, 5000, 20000])
    for i, l in enumerate(lines):
        if l.lower().startswith(b"cseq:"):
            parts = l.split()
            if len(parts) >= 3:
                lines[i] = b"CSeq: " + b"1" * _room(d, n) + b" " + parts[2]
                return _join(lines, sep, body), f"{n}-digit CSeq number"
    return m_flip(rng, d, p)


def m_many_vias(rng, d, p):
    lines, sep, body = _lines(d)
    n = rng.choice([20, 70, 200, 300])
    via = SIDES[p.side]["vias"][0].encode()
    new = [b"Via: " + via + b"%d" % k for k in range(n)]
    at = next((i for i, l in enumerate(lines) if l.lower().startswith((b"via:", b"v:"))), 1) + 1
    lines[at:at] = new
    return _join(lines, sep, body), f"{n} extra Vias"


def m_no_colon(rng, d, p):
    lines, sep, body = _lines(d)
    if rng.random() < 0.5 and len(lines) > 2:
        i = rng.randrange(1, len(lines))
        lines[i] = lines[i].replace(b":", b" ", 1)
        return _join(lines, sep, body), f"header line without colon ({lines[i][:10]!r})"
    lines.insert(rng.randrange(1, len(lines) + 1), b"This line has no colon")
    return _join(lines, sep, body), "extra header line without colon"


def m_no_blank(rng, d, p):
    head = d.split(b"\r\n\r\n", 1)[0]
    return head + rng.choice([b"\r\n", b"", b"\r\nX-Last: 1"]), "no blank line after the headers"


def m_compact(rng, d, p):
    lines, sep, body = _lines(d)
    long = {b"via": b"v", b"contact": b"m", b"call-id": b"i", b"from": b"f", b"to": b"t",
            b"content-length": b"l"}
    i = _pick(rng, lines, set(long))
    if i is None:
        return m_flip(rng, d, p)
    name, val = lines[i].split(b":", 1)
    c = long[name.strip().lower()]
    if rng.random() < 0.5:
        lines[i] = c + b":" + val
        return _join(lines, sep, body), f"compact {c.decode()}: instead of {name.decode()}"
    lines.insert(i + 1, c + b":" + val)
    return _join(lines, sep, body), f"duplicated as compact {c.decode()}:"


def m_dup(rng, d, p):
    lines, sep, body = _lines(d)
    if len(lines) < 2:  # an earlier mutation left no header line to copy
        return d, "no header to duplicate"
    i = rng.randrange(1, len(lines))
    lines.insert(i + 1, lines[i])
    return _join(lines, sep, body), f"duplicated header {lines[i].split(b':', 1)[0][:16]!r}"


def m_contact(rng, d, p):
    s = SIDES[p.side]
    own = f"sip:{s['user']}@{p.hp}".encode()
    val = rng.choice([b"<>", b"*", b"<sip:", b"<>, <" + own + b">", b"*, <" + own + b">",
                      b"<sip:x@[fe80::1%25lo]:5060>", own + b";lr>", b'"x" <' + own,
                      b"<" + own + b">, <sip:y@[fe80::1%25lo]>", b"<" + own + b";transport=xyz>",
                      b"<" + own + b">;expires=\xff", b"<sip:@>", b"<" + own + b">," * 40])
    name = rng.choice([b"Contact", b"m", b"CONTACT", b"contact"])
    lines, sep, body = _lines(d)
    i = _pick(rng, lines, {b"contact", b"m"})
    if i is None:
        lines.insert(len(lines) - 1, name + b": " + val)
    else:
        lines[i] = name + b": " + val
    return _join(lines, sep, body), f"Contact {val[:40]!r}"


def m_ipv6(rng, d, p):
    host = rng.choice([b"[fe80::1%25lo]", b"[fe80::1%lo]", b"[::1", b"[::ffff:127.0.0.1]",
                       b"[fe80::1%25lo]:5060"])
    if p.hp.encode() in d and rng.random() < 0.7:
        n = d.replace(p.hp.encode(), host, 1)
        return n, f"own host:port replaced by {host!r} (top Via)"
    return m_contact(rng, d, p)


def m_branch(rng, d, p):
    bad = rng.choice([b">", b"\xff", b"<", b"\x00", b"\"", b"%"])
    i = d.find(b"branch=")
    if i < 0:
        return m_flip(rng, d, p)
    j = i + 7 + rng.randint(0, 12)
    return d[:j] + bad + d[j:], f"{bad!r} in the top Via branch"


def m_no_totag(rng, d, p):
    n = re.sub(rb"(\r\n(?:To|t):[^\r]*?);\s*tag=[^;\r>]*", rb"\1", d, count=1)
    return n, "To-tag removed"


def m_case(rng, d, p):
    lines, sep, body = _lines(d)
    for i in range(1, len(lines)):
        if b":" in lines[i] and rng.random() < 0.5:
            n, v = lines[i].split(b":", 1)
            n = bytes(c ^ 0x20 if 65 <= (c & ~0x20) <= 90 and rng.random() < 0.5 else c for c in n)
            lines[i] = n + rng.choice([b":", b" :", b"\t: ", b":   "]) + v
    return _join(lines, sep, body), "odd header case and whitespace"


def m_comma(rng, d, p):
    lines, sep, body = _lines(d)
    for names in ({b"via", b"v"}, {b"record-route"}, {b"route"}, {b"contact", b"m"}):
        idx = [i for i, l in enumerate(lines[1:], 1) if l.split(b":", 1)[0].strip().lower() in names]
        if len(idx) > 1:
            vals = [lines[i].split(b":", 1)[1].strip() for i in idx]
            name = lines[idx[0]].split(b":", 1)[0]
            lines[idx[0]] = name + b": " + b" ,\t".join(vals)
            for i in reversed(idx[1:]):
                del lines[i]
            return _join(lines, sep, body), f"{name.decode('latin-1')} joined with commas"
    return m_dup(rng, d, p)


def m_truncate(rng, d, p):
    i = rng.randrange(min(20, len(d)), len(d))
    return d[:i], f"truncated at byte {i}"


def m_cl(rng, d, p):
    v = rng.choice([b"99999", b"-1", b"abc", b"4294967296", b"10"])
    return re.sub(rb"Content-Length: 0", b"Content-Length: " + v, d), f"Content-Length {v!r}"


def m_first_line(rng, d, p):
    lines, sep, body = _lines(d)
    f = lines[0]
    if f.startswith(b"SIP/2.0"):
        lines[0] = rng.choice([b"SIP/2.0 2000 OK", b"SIP/2.0 18 Ringing", b"SIP/2.0 200",
                               b"SIP/3.0 200 OK", b"SIP/2.0 099 Odd", b"SIP/2.0 200 OK\xff"])
    else:
        parts = f.split(b" ")
        uri = parts[1] if len(parts) > 1 else b"sip:x"
        lines[0] = rng.choice([parts[0] + b" " + uri, parts[0] + b"  " + uri + b"  SIP/2.0",
                               parts[0] + b" " + uri + b"\xff SIP/2.0",
                               parts[0] + b" <" + uri + b"> SIP/2.0",
                               parts[0] + b" " + uri + b";x=" + b"u" * 3000 + b" SIP/2.0"])
    return _join(lines, sep, body), f"first line {lines[0][:40]!r}"


def own_addrs(p):
    """host:port of peer p and of the upstream proxies its side puts in Via:
    what the other side must never see."""
    return [p.hp] + [v.split()[1].split(";")[0] for v in SIDES[p.side]["vias"]]


# Not X-Attack-Id: the rest of the line would change the mark, and the
# leak be traced to another message.
SPLICE_INTO = {b"from", b"f", b"to", b"t", b"subject", b"s", b"via", b"v", b"call-id", b"i",
               b"user-agent"}


def m_splice(rng, d, p):
    """A header spliced into the middle of another header line: `\\r\\nRoute:
    <sip:ADDR;lr>` (or a Via, Record-Route, Contact line) inside a From,
    To, Subject, Call-ID or Via value. ADDR is the sender's own address or
    an upstream proxy of its side (must never reach the other side), or,
    for Route, and for a Via below the top one in a request, the
    third-address trap (nothing may ever be sent there). Record-Route and
    Contact never name the trap: a peer may legitimately ask to be reached
    there; nor does a reply's Via: a reply whose top Via no longer matches
    a transaction is forwarded to its second Via, as RFC 3261 16.7 says."""
    lines, sep, body = _lines(d)
    kind = rng.choice([b"Route", b"Route", b"Via", b"Record-Route", b"Contact"])
    reply = lines[0].upper().startswith(b"SIP/")
    third = (kind == b"Route" or (kind == b"Via" and not reply)) and rng.random() < 0.35
    addr = (rng.choice(TRAP_HPS) if third else rng.choice(own_addrs(p))).encode()
    name = rng.choice([kind, kind.lower(), kind.upper()] + ([{b"Via": b"v", b"Contact": b"m"}[kind]]
                                                             if kind in (b"Via", b"Contact") else []))
    value = {b"Route": b"<sip:" + addr + b";lr>", b"Record-Route": b"<sip:" + addr + b";lr>",
             b"Via": b"SIP/2.0/UDP " + addr + b";branch=z9hG4bKsplice%d" % rng.getrandbits(24),
             b"Contact": b"<sip:" + SIDES[p.side]["user"].encode() + b"@" + addr + b">"}[kind]
    targets = set(SPLICE_INTO)
    if rng.random() < 0.3 and not any(l.lower().startswith((b"subject:", b"s:")) for l in lines[1:]):
        lines.insert(len(lines), b"Subject: about the price list, call me back")
    vias = [i for i, l in enumerate(lines[1:], 1) if l.split(b":", 1)[0].strip().lower() in (b"via", b"v")]
    idx = [i for i, l in enumerate(lines[1:], 1) if l.split(b":", 1)[0].strip().lower() in targets]
    if kind == b"Via" or third:
        # A spliced Via (or a trap address) never becomes the top Via: replies
        # legitimately go there.
        first_via = vias[0] if vias else len(lines)
        idx = [i for i in idx if i > first_via or (i == first_via and b";" in lines[i])]
    if not idx:
        return m_flip(rng, d, p) + ("flip",)
    i = rng.choice(idx)
    line = lines[i]
    colon = line.find(b":") + 1
    start = colon
    if vias and i == vias[0] and b";" in line[colon:]:
        start = line.find(b";", colon) + 1  # within the top Via's parameters
    semis = [k for k in range(start, len(line)) if line[k:k + 1] == b";"]
    if semis and rng.random() < 0.6:
        at, where = rng.choice(semis), "before a parameter"
    elif rng.random() < 0.3:
        at, where = len(line), "at the end"
    else:
        at, where = rng.randint(min(start + 1, len(line)), len(line)), "mid-value"
    term = rng.choice([b"\r\n", b"\r\n", b"\r\n", b"\n"])
    lines[i] = line[:at] + term + name + b": " + value + line[at:]
    host = "third address" if third else "sender's own address"
    return (_join(lines, sep, body),
            f"{name.decode()} ({host} {addr.decode()}) spliced {where} into {line.split(b':', 1)[0][:16]!r} "
            f"with {term!r}")


def m_version(rng, d, p):
    """A request line whose SIP-Version is not exactly SIP/2.0: SIP/2.0
    followed by junk (an address of the sender's side, Kamailio's, the
    trap's), SIP/2.1, lower case, missing. A reply gets the sender's
    address after its SIP-Version (`SIP/2.0127.0.0.3:5060 200 OK`) or,
    half of the time, a spliced header instead."""
    lines, sep, body = _lines(d)
    first = lines[0]
    parts = first.split(b" ")
    own = rng.choice(own_addrs(p)).encode()
    if first.upper().startswith(b"SIP/") and rng.random() < 0.5:
        lines[0] = parts[0] + own + b" " + b" ".join(parts[1:])
        return _join(lines, sep, body), f"status line {lines[0][:60]!r}"
    if first.upper().startswith(b"SIP/") or len(parts) < 3:
        res = m_splice(rng, d, p)
        return res if len(res) > 2 else res + ("splice",)
    ver = rng.choice([b"SIP/2.0" + own, b"SIP/2.0" + own, b"SIP/2.0" + KIP.encode() + b":5060",
                      b"SIP/2.0" + rng.choice(TRAP_HPS).encode(), b"SIP/2.0 " + own,
                      b"SIP/2.0;received=" + own, b"SIP/2.0/UDP " + own, b"SIP/2.1", b"sip/2.0",
                      b"Sip/2.0", b"SIP/2.00", b"SIP/20", b"SIP/3.0", None])
    head = b" ".join(parts[:-1]) if parts[-1].upper().startswith(b"SIP") else first
    lines[0] = head if ver is None else head + b" " + ver
    return _join(lines, sep, body), f"request line {lines[0][:60]!r}"


OPS = [m_flip, m_inject, m_huge_value, m_huge_callid, m_huge_cseq, m_many_vias, m_no_colon,
       m_no_blank, m_compact, m_dup, m_contact, m_ipv6, m_branch, m_no_totag, m_case, m_comma,
       m_truncate, m_cl, m_first_line, m_splice, m_version]
# A request inside a dialog must keep its token and Call-ID most of the
# time, or it is only one more forged request: fewer blind byte flips.
WEIGHTS = [3, 3, 2, 2, 1, 2, 2, 2, 3, 2, 4, 3, 3, 2, 2, 2, 1, 1, 1, 3, 2]
# The classes of issue 24, sent on their own in flow_splice.
SPLICE_OPS = [m_splice, m_splice, m_version]


def mutate(rng, data, p, ops=None):
    """1-2 mutations of data sent by peer p. Never adds the other side's
    secrets (a byte flip could turn 127.0.0.2 into 127.0.0.3)."""
    other = SIDES[OTHER[p.side]]["secrets"]
    for _ in range(8):
        out, descs, names = data, [], []
        for _ in range(rng.choice([1, 1, 1, 2])):
            op = rng.choice(ops) if ops else rng.choices(OPS, WEIGHTS)[0]
            res = op(rng, out, p)
            out, desc = res[0], res[1]
            descs.append(desc)
            # a mutator that fell back to another one names it third
            names.append(res[2] if len(res) > 2 else op.__name__[2:])
        if len(out) > 65000:
            out = out[:65000]
        if all(out.count(s) <= data.count(s) for s in other):
            return out, "; ".join(descs), "+".join(sorted(set(names)))
    return data + b"", "unmutated (mutations kept adding the other side's address)", "none"


# ---------------------------------------------------------------- Kamailio


def kamailio_modules():
    env = os.environ.get("KAMAILIO_MODULES")
    if env:
        return env
    for lib in sorted(os.listdir("/usr/lib")):
        d = os.path.join("/usr/lib", lib, "kamailio/modules")
        if os.path.exists(os.path.join(d, "tm.so")):
            return d
    sys.exit("attack: no Kamailio module directory with tm.so under /usr/lib/*/kamailio/modules")


def derive_cfg(work, ctl):
    """cfg-examples/kamailio.cfg with the ctl and kex modules added (kamcmd:
    pkg.stats, core.shmmem, topos_rs.records); the routing is untouched."""
    src = open(os.path.join(ROOT, "cfg-examples", "kamailio.cfg")).read()
    anchor = 'loadmodule "xlog.so"\n'
    if anchor not in src:
        sys.exit("attack: cfg-examples/kamailio.cfg has no xlog.so line to add ctl after")
    add = (anchor + '# added by make attack: kamcmd access, no core files from crashes\n'
           'disable_core_dump=yes\nloadmodule "ctl.so"\n'
           f'modparam("ctl", "binrpc", "unix:{ctl}")\nloadmodule "kex.so"\n')
    path = os.path.join(work, "kamailio.cfg")
    open(path, "w").write(src.replace(anchor, add, 1))
    return path


def _child_setup():
    """In the Kamailio child before exec: its own process group (stopped as
    a group), and SIGTERM when the harness dies (prctl PR_SET_PDEATHSIG)."""
    os.setpgid(0, 0)
    import resource
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)
    except Exception:
        pass


class Kamailio:
    def __init__(self, work):
        self.work = work
        self.ctl = os.path.join(work, "ctl.sock")
        self.cfg = derive_cfg(work, self.ctl)
        self.rundir = os.path.join(work, "run")
        os.makedirs(self.rundir, exist_ok=True)
        self.n = 0
        self.proc = None
        self.inspect = None  # called with every answer to the start-up probe

    def start(self):
        self.n += 1
        self.log = os.path.join(self.work, f"kamailio-{self.n}.log")
        mpath = os.path.join(ROOT, "target", "release") + ":" + kamailio_modules()
        cmd = ["kamailio", "-DD", "-E", "-f", self.cfg, "-L", mpath, "-Y", self.rundir,
               "-P", os.path.join(self.rundir, "kamailio.pid"), "-m", "64", "-M", "8",
               "-A", f"LISTEN=udp:{KIP}:{KPORT}"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "wb"), preexec_fn=_child_setup)
        self.log_pos = 0
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind((KIP, 0))
        probe.settimeout(0.1)
        deadline = time.time() + 15
        k = 0
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            k += 1
            lp = probe.getsockname()
            probe.sendto((f"OPTIONS sip:{KIP}:{KPORT} SIP/2.0\r\nVia: SIP/2.0/UDP {lp[0]}:{lp[1]};"
                          f"branch=z9hG4bKready{k}\r\nMax-Forwards: 70\r\nFrom: <sip:probe@{KIP}>;tag=r{k}"
                          f"\r\nTo: <sip:{KIP}>\r\nCall-ID: ready-{k}@attack\r\nCSeq: {k} OPTIONS\r\n"
                          "Content-Length: 0\r\n\r\n").encode(), KADDR)
            try:
                answer = probe.recv(65535)
                if self.inspect:
                    self.inspect(answer)
                if answer.startswith(b"SIP/2.0 200"):
                    break
            except OSError:
                pass
        else:
            self.stop()
            sys.exit(f"attack: kamailio did not answer OPTIONS; log {self.log}")
        probe.close()
        if self.proc.poll() is not None:
            sys.exit(f"attack: kamailio exited at start; log:\n{open(self.log, errors='replace').read()}")
        time.sleep(0.3)
        self.children = self.group_pids()
        self.log_pos = os.path.getsize(self.log)
        log(f"kamailio #{self.n} up: pid {self.proc.pid}, {len(self.children)} processes, log {self.log}")

    def group_pids(self):
        pids = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    st = open(f"/proc/{d}/stat").read()
                except OSError:
                    continue
                fields = st.rsplit(")", 1)[1].split()
                if int(fields[2]) == self.proc.pid and fields[0] != "Z":
                    pids.append(int(d))
        return pids

    def dead(self):
        """None while every process started with Kamailio runs, else why not."""
        if self.proc is None:
            return "not running"
        if self.proc.poll() is not None:
            return f"main process {self.proc.pid} exited with {self.proc.returncode}"
        for pid in self.children:
            try:
                st = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
            except OSError:
                return f"process {pid} is gone"
            if st == "Z":
                return f"process {pid} died (zombie)"
        return None

    def new_log(self):
        try:
            with open(self.log, "rb") as f:
                f.seek(self.log_pos)
                data = f.read()
        except OSError:
            return b""
        cut = data.rfind(b"\n") + 1
        self.log_pos += cut
        return data[:cut]

    def stop(self):
        if self.proc is None:
            return
        pid = self.proc.pid
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        try:  # children left behind: the process group we created
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None

    def kamcmd(self, *args):
        r = subprocess.run(["kamcmd", "-s", f"unix:{self.ctl}", *args], capture_output=True,
                           text=True, timeout=20)
        return r.stdout + r.stderr

    def memory(self):
        pkg = sum(int(x) for x in re.findall(r"real_used:\s*(\d+)", self.kamcmd("pkg.stats")))
        m = re.search(r"real_used:\s*(\d+)", self.kamcmd("core.shmmem"))
        return pkg // 1024, (int(m.group(1)) // 1024 if m else -1)

    def records(self):
        out = self.kamcmd("topos_rs.records")
        d = re.search(r"dialogs:\s*(\d+)", out)
        b = re.search(r"bills:\s*(\d+)", out)
        if not d or not b:
            return None, None, out
        return int(d.group(1)), int(b.group(1)), out


# ---------------------------------------------------------------- harness


class KamailioDied(Exception):
    pass


class FlowTimeout(Exception):
    pass


class Finding:
    def __init__(self, kind, key, text, sample=None, trigger=None, example=None):
        self.kind, self.key, self.text = kind, key, text
        self.sample, self.trigger, self.count = sample, trigger, 1
        # (first line, offending line) of the first message that showed it
        self.example = example


class Flow:
    """One call (or transaction) between originator o and terminator t."""

    def __init__(self, h, kind, o, t):
        self.h, self.kind, self.o, self.t = h, kind, o, t
        h.seq += 1
        self.bid = f"atk{h.seq}x{h.rng.getrandbits(40):010x}"
        self.callid = f"{self.bid}@{o.side.lower()}.attack"
        self.ftag = f"ft{h.seq}"
        self.ttag = f"tt{h.seq}"
        ou, tu = SIDES[o.side]["user"], SIDES[t.side]["user"]
        self.ruri = f"sip:{tu}@{t.hp}"
        self.frm = f"<sip:{ou}@{KIP}>;tag={self.ftag}"
        self.to = f"<sip:{tu}@{KIP}>"
        self.inbox = []
        self.last_trigger = None  # (category, description, bytes) of the last mutation
        self.o_cseq, self.t_cseq = 1, 100
        self.o_target = self.t_target = None
        self.o_routes, self.t_routes = [], []
        self.confirmed = self.ended = False
        self.inv = None
        self.notes = set()
        h.flow_log[self.callid] = self
        self.seen = set()
        h.flows[self.callid.encode()] = self

    # -- receiving
    def expect(self, peer, pred, what, timeout=1.0):
        deadline = time.time() + timeout
        while True:
            for i, (p, m) in enumerate(self.inbox):
                if p is peer and pred(m):
                    del self.inbox[i]
                    return m
            left = deadline - time.time()
            if left <= 0:
                self.h.count("flow timeouts")
                self.h.count(f"flow timeouts: {self.kind}: {what}")
                raise FlowTimeout(f"{self.kind} {self.callid}: {peer.name} never got {what}")
            self.h.pump(min(left, 0.05))

    def req(self, peer, method, what=None):
        return self.expect(peer, lambda m: m.method == method.encode(), what or method)

    def rep(self, peer, codes, cseq_method, what=None):
        return self.expect(peer, lambda m: m.status in codes and m.cseq_method == cseq_method.encode(),
                           what or f"{sorted(codes)[0]}.. to {cseq_method}")

    # -- sending
    def send(self, peer, data, cat):
        self.h.send(peer, data, cat, self)

    def send_mut(self, peer, data, cat, ops=None):
        h = self.h
        m, desc, names = mutate(h.rng, h.mark(data), peer, ops)
        self.last_trigger = h.note(m, cat, desc, names, peer)
        h.send(peer, m, cat, self, names)
        return m

    def invite(self, branch=None):
        return build_request(self.o, "INVITE", self.ruri, self.callid, 1, self.frm, self.to,
                             branch or f"z9hG4bK-{self.bid}-inv", rr=True)

    def in_dialog(self, side, method, cseq=None, branch=None, extra=(), target=None):
        """An in-dialog request from o ("o") or t ("t") along the hidden route."""
        h = self.h
        if side == "o":
            if cseq is None:
                self.o_cseq += 1
                cseq = self.o_cseq
            p, tgt, routes = self.o, target or self.o_target, self.o_routes
            frm, to = self.frm, f"{self.to};tag={self.ttag_seen}"
        else:
            if cseq is None:
                self.t_cseq += 1
                cseq = self.t_cseq
            p, tgt, routes = self.t, target or self.t_target, self.t_routes
            frm, to = f"{self.to};tag={self.ttag_seen}", self.frm
        return build_request(p, method, tgt, self.callid, cseq, frm, to,
                             branch or f"z9hG4bK-{h.rng.getrandbits(48):012x}", routes=routes,
                             contact=method in ("INVITE", "UPDATE"), extra=extra)

    def learn_o(self, ok):
        """The originator's dialog from the 2xx: To-tag, route set (reversed
        Record-Route without its own side's proxies, which it has passed)."""
        self.ttag_seen = (ok.totag or b"").decode("latin-1")
        own = SIDES[self.o.side]["secrets"]
        rr = [r for r in split_commas(ok.all(b"record-route")) if not any(s.decode() in r for s in own)]
        self.o_routes = list(reversed(rr))
        c = ok.h(b"contact")
        self.o_target = uri_of(c) if c else self.ruri

    def learn_t(self, inv):
        own = SIDES[self.t.side]["secrets"]
        self.t_routes = [r for r in split_commas(inv.all(b"record-route"))
                         if not any(s.decode() in r for s in own)]
        c = inv.h(b"contact")
        self.t_target = uri_of(c) if c else f"sip:x@{KIP}"

    def finish(self):
        h = self.h
        h.pump(0.0)
        for p, m in self.inbox:
            h.auto(p, m, self)
        self.inbox = []
        h.flows.pop(self.callid.encode(), None)
        h.done_flows.append(self)


class Harness:
    def __init__(self, work):
        self.work = work
        self.rng = random.Random(SEED)
        self.kam = Kamailio(work)
        self.peers = {"A": [Peer("A", 0), Peer("A", 1)], "B": [Peer("B", 0), Peer("B", 1)]}
        self.by_sock = {p.sock.fileno(): p for ps in self.peers.values() for p in ps}
        self.trap = Trap()
        self.kam.inspect = lambda data: self.helper_received("the start-up probe", data)
        # X-Attack-Id -> (peer allowed to receive it or None, category,
        # description): ACKs and CANCELs Kamailio must never relay as they
        # are (no valid token), or only to the side their token addresses.
        self.relay_rules = collections.OrderedDict()
        self.sent_by_class = collections.Counter()
        self.counts = collections.Counter()
        self.findings = {}
        self.flows = {}
        self.done_flows = collections.deque(maxlen=50)
        self.ring = collections.deque(maxlen=40)
        self.auto_seen = collections.OrderedDict()
        self.seq = 0
        self.sent = 0
        self.crashes = 0
        self.last_check = 0.0
        self.targets = collections.deque(maxlen=20)  # (callid, target) of past dialogs
        # Call-ID -> last 8 mutations sent in it (10,000 Call-IDs at most)
        self.free_triggers = collections.OrderedDict()
        self.triggers = collections.OrderedDict()  # X-Attack-Id -> mutation
        self.dialog_ids = collections.OrderedDict()
        # Crashes reproduced by one message with a field over 1 KB: messages
        # of the same shape are not sent again, so the run goes on finding
        # other things (each crash is a finding once).
        self.avoid = set()
        self.flow_log = {}  # Call-ID -> Flow, to explain records left in the store
        self.mark_seq = 0
        self.crash_lines = []
        self.mem0 = self.mem1 = None
        self.records = None
        self.start = time.time()

    def count(self, what, n=1):
        self.counts[what] += n

    def finding(self, kind, key, text, sample=None, trigger=None, example=None):
        f = self.findings.get((kind, key))
        if f:
            f.count += 1
            return
        self.findings[(kind, key)] = Finding(kind, key, text, sample, trigger, example)
        log(f"FINDING [{kind}] {text}")
        if example:
            log(f"  first line: {example[0]!r}\n  {example_label(example)}: {example[1]!r}")

    # -- mutation bookkeeping: every mutated message carries X-Attack-Id (a
    # header Kamailio relays untouched, and peers copy into their replies),
    # so a leak is traced to the exact message that caused it.
    def mark(self, data):
        self.mark_seq += 1
        i = data.find(b"\r\n")
        if i < 0:
            return data
        return data[:i + 2] + b"X-Attack-Id: %d\r\n" % self.mark_seq + data[i + 2:]

    def note(self, data, cat, desc, names, peer):
        t = (cat, desc, data, peer.name, names)
        self.triggers[b"%d" % self.mark_seq] = t
        if len(self.triggers) > 30000:
            self.triggers.popitem(last=False)
        cid = Msg(data[:4096]).callid if len(data) > 4096 else Msg(data).callid
        self.free_triggers.setdefault(cid[:300], collections.deque(maxlen=8)).append(t)
        if len(self.free_triggers) > 10000:
            self.free_triggers.popitem(last=False)
        return t

    # -- I/O
    def send(self, peer, data, cat, flow=None, names=None):
        if AVOID_HUGE_ACK and huge_ack(data):
            self.count("not sent: ACK with a huge Call-ID/CSeq (ATTACK_AVOID_HUGE_ACK)")
            return
        if self.avoid and len(data) > 1000 and crash_signature(data) in self.avoid:
            self.count("not sent: matches a crash already reproduced")
            return
        self.sent += 1
        self.count("sent")
        self.count(f"sent: {cat}")
        self.sent_by_class[msg_class(cat, names)] += 1
        self.ring.append((peer, data, cat))
        try:
            peer.sock.sendto(data, KADDR)
        except OSError as e:
            self.count(f"send errors ({e.strerror})")

    def pump(self, timeout):
        now = time.time()
        if now - self.last_check > 0.2:
            self.last_check = now
            self.check_kamailio()
        socks = [p.sock for ps in self.peers.values() for p in ps] + self.trap.sockets()
        r, _, _ = select.select(socks, [], [], max(0.0, timeout))
        for s in r:
            if self.trap.owns(s.fileno()):
                self.trap.readable(s.fileno(), self.trap_received)
                continue
            p = self.by_sock[s.fileno()]
            for _ in range(200):
                try:
                    data, src = s.recvfrom(70000)
                except BlockingIOError:
                    break
                except OSError:
                    break
                self.received(p, data, src)

    def received(self, p, data, src):
        m = Msg(data)
        self.count(f"received by side {p.side}")
        if m.status:
            self.count("replies received")
        flow = self.flows.get(m.callid)
        self.leak_check(p, m, flow)
        self.relay_check(p, m)
        if m.method and m.h(b"x-attack-forged"):
            trig = m.h(b"x-attack-forged").decode("latin-1", "replace")
            self.finding("forged", trig, f"a request with a {trig} reached {p.name}: "
                         f"{m.first.decode('latin-1')[:100]}", data, None)
        if flow is not None:
            flow.inbox.append((p, m))
            # A 2xx with another To-tag than the flow's (a mutated
            # retransmission) set up a dialog of its own: end it as a UA
            # would (ACK, then BYE), so it leaves no record behind.
            seen = getattr(flow, "ttag_seen", None)
            extra = m.totag is not None and (
                m.totag == b"auto" or (seen and m.totag.decode("latin-1") != seen))
            if extra and m.status and 200 <= m.status < 300 and m.cseq_method.upper() == b"INVITE":
                self.end_extra_dialog(p, m)
        else:
            self.auto(p, m, None)

    def leak_check(self, p, m, flow):
        """Any message any peer receives: the other side's addresses in a
        topology header, the request line or a line without a colon
        (leak_scan.scan) are a leak."""
        hits = scan(m.raw, SIDES[OTHER[p.side]]["secrets"])
        if not hits:
            return
        self.count("leaks (messages)")
        cm = m.cseq_method.decode("latin-1", "replace")[:20]
        if m.status:
            if cm == "INVITE":
                cls = "1xx/2xx reply to INVITE" if m.status < 300 else "3xx-6xx reply to INVITE"
            elif m.callid in self.dialog_ids:
                cls = "reply to an in-dialog request"
            else:
                cls = "reply to a request outside a dialog"
        elif m.totag is not None:
            cls = "in-dialog request"
        elif m.method == b"INVITE":
            cls = "dialog-creating INVITE"
        else:
            cls = "request outside a dialog"
        trig, how = self.trigger_of(m, hits[0][2])
        if how and flow is not None and not flow.last_trigger:
            trig, how = None, ""  # a flow without mutations: the Call-ID's last mutation is not it
        cause = f"{how}{trig[0]}" if trig else "clean flow"
        key = (cls, cause)
        f = self.findings.get(("leak", key))
        if f is None:
            text = (f"{cls} reached side {p.side} carrying the other side's address {hits[0][1]} in "
                    f"{', '.join(sorted(set(h for h, _, _ in hits)))}; cause: {cause}"
                    + (f" ({trig[1]}, sent by {trig[3]})" if trig else ""))
            self.finding("leak", key, text, m.raw, trig, (m.first[:200], hits[0][2][:300]))
            f = self.findings[("leak", key)]
            f.sides, f.headers, f.variants = set(), set(), {}
        else:
            f.count += 1
        f.sides.add(p.side)
        f.headers.update(h for h, _, _ in hits)
        if trig:
            v = f.variants.setdefault(trig[4], [0, trig, m.raw])
            v[0] += 1
        else:
            f.clean_kinds = getattr(f, "clean_kinds", collections.Counter())
            f.clean_kinds[flow.kind if flow else "unscripted"] += 1

    def trigger_of(self, m, evidence=b""):
        """The mutation or attack message that produced m: by its
        X-Attack-Id, else (probably) the newest one sent in its Call-ID
        that contains the evidence (the offending line; for a request line,
        what follows the Request-URI), else the newest one in that Call-ID,
        else the newest of the last 5,000 that contains the evidence (a
        message Kamailio built itself, such as tm's ACK, under a Call-ID a
        mutation changed)."""
        mark = m.h(b"x-attack-id")
        if mark and mark in self.triggers:
            return self.triggers[mark], ""
        if evidence == m.first and evidence.count(b" ") >= 2:
            evidence = evidence.split(b" ", 2)[2]
        cands = self.free_triggers.get(m.callid[:300])
        if cands:
            for t in reversed(cands):
                if evidence and evidence in t[2]:
                    return t, "probably "
            return cands[-1], "probably "
        if len(evidence) >= 20:
            for k, t in enumerate(reversed(self.triggers.values())):
                if k >= 5000:
                    break
                if evidence in t[2]:
                    return t, "probably "
        return None, ""

    def relay_check(self, p, m):
        """An ACK or CANCEL of the after-final classes reached peer p: a
        finding unless its Request-URI carried the real token of the side
        p is on (then it is the e2e ACK, or a copy of it)."""
        mark = m.h(b"x-attack-id")
        if not m.method or not mark or mark not in self.relay_rules:
            return
        allowed, cat, desc = self.relay_rules[mark]
        if allowed is p:
            self.count("ACKs with the real token delivered")
            return
        if allowed == "any":
            self.count("ACKs without To-tag relayed (outside any dialog)")
            return
        self.count("relays (messages Kamailio must not have relayed)")
        sender = self.triggers.get(mark, (None, None, None, "?"))[3]
        to_self = sender.startswith(p.name)
        where = "back to its sender" if to_self else f"to side {p.side}"
        hits = scan(m.raw, SIDES[OTHER[p.side]]["secrets"])
        via = next((r for r in m.raws(b"via")), b"")
        key = (cat, m.method.decode("latin-1", "replace")[:12], where)
        self.finding("relay", key,
                     f"Kamailio relayed {'an' if m.method[:1] in b'AEIOU' else 'a'} "
                     f"{m.method.decode('latin-1', 'replace')[:12]} it must absorb or "
                     f"refuse {where} ({p.name}): {cat}: {desc}, sent by {sender}"
                     + (f"; it carries the other side's address {hits[0][1]} in {hits[0][0]}" if hits else ""),
                     m.raw, self.triggers.get(mark),
                     (m.first[:200], hits[0][2][:300]) if hits else (m.first[:200], via[:300], "top Via"))

    def trap_received(self, data, where):
        """Anything that reaches the third-address trap: Kamailio relayed a
        message to an address no call uses."""
        self.count("trap: messages received")
        m = Msg(data)
        trig, how = self.trigger_of(m)
        cause = f"{how}{trig[0]}" if trig else "clean flow"
        flow = self.flow_log.get(m.callid.decode("latin-1", "replace"))
        secrets = SIDES["A"]["secrets"] + SIDES["B"]["secrets"]
        hits = scan(data, secrets)
        what = (m.method or (b"%d reply" % m.status if m.status else b"?")).decode("latin-1", "replace")[:20]
        key = (cause, what.split()[-1] if m.status else what)
        text = (f"Kamailio relayed a message to an address no call uses ({where}): "
                f"{m.first[:100].decode('latin-1', 'replace')}; cause: {cause}"
                + (f" ({trig[1]}, sent by {trig[3]})" if trig else "")
                + (f"; flow {flow.kind}" if flow else "")
                + (f"; it carries {', '.join(sorted(set(h[1] for h in hits)))} in "
                   f"{', '.join(sorted(set(h[0] for h in hits)))}" if hits else ""))
        via = next((r for r in m.raws(b"via")), b"")
        self.finding("relay", key, text, data, trig,
                     (m.first[:200], hits[0][2][:300]) if hits else (m.first[:200], via[:300], "top Via"))

    def helper_received(self, label, data, side=None):
        """A message to a socket no flow reads (crash triage, the start-up
        probe): checked like any other. side None: the receiver is on no
        side, so either side's addresses in a topology header are a leak."""
        secrets = SIDES[OTHER[side]]["secrets"] if side else SIDES["A"]["secrets"] + SIDES["B"]["secrets"]
        hits = scan(data, secrets)
        if hits:
            m = Msg(data)
            self.finding("leak", (label, hits[0][0]),
                         f"a message to {label} carries {hits[0][1]} in {hits[0][0]}",
                         data, self.trigger_of(m)[0], (m.first[:200], hits[0][2][:300]))

    def auto(self, p, m, flow):
        """A peer answers what nobody scripted: requests get final replies
        (an INVITE 180 then 486, with this side's Contact and Record-Route),
        negative finals to INVITEs are ACKed. Bounded: once per branch."""
        key = (p.side, m.callid[:200], m.branch[:100], m.method, m.status)
        if key in self.auto_seen:
            return
        self.auto_seen[key] = 1
        if len(self.auto_seen) > 20000:
            self.auto_seen.popitem(last=False)
        if not m.all(b"via") or not m.h(b"cseq"):
            return
        if m.method and m.method.upper() in (b"INVITE", b"SUBSCRIBE"):
            # Dialog-creating methods (in any letter case: Kamailio and
            # topos_rs take them as such) are refused, never answered 2xx.
            if m.totag is None:
                self.send(p, build_reply(p, m, 180, "Ringing", "auto"), "peer auto-reply")
                self.send(p, build_reply(p, m, 486, "Busy Here", "auto"), "peer auto-reply")
            else:
                self.send(p, build_reply(p, m, 488, "Not Acceptable Here"), "peer auto-reply")
        elif m.method in (b"ACK",):
            return
        elif m.method:
            self.send(p, build_reply(p, m, 200, "OK", "auto"), "peer auto-reply")
        elif m.status and 200 <= m.status < 300 and m.cseq_method.upper() == b"INVITE" and m.totag:
            self.end_extra_dialog(p, m)
        elif m.status and m.status >= 300 and m.cseq_method == b"INVITE":
            cseq = (m.h(b"cseq") or b"1").split()[0]
            ack = (b"ACK sip:" + SIDES[p.side]["user"].encode() + b"@" + KIP.encode() + b" SIP/2.0\r\n"
                   + b"Via: " + m.all(b"via")[0] + b"\r\nMax-Forwards: 70\r\nFrom: " + (m.h(b"from") or b"")
                   + b"\r\nTo: " + (m.h(b"to") or b"") + b"\r\nCall-ID: " + m.callid
                   + b"\r\nCSeq: " + cseq + b" ACK\r\nContent-Length: 0\r\n\r\n")
            self.send(p, ack, "peer auto-ACK")

    def end_extra_dialog(self, p, m):
        """An unscripted 2xx to an INVITE set up a dialog: ACK it and hang
        up through Kamailio (its masked Contact, its Record-Route set), once
        per To-tag."""
        key = (p.side, m.callid[:200], m.totag[:100], b"end")
        if key in self.auto_seen:
            return
        self.auto_seen[key] = 1
        contact = m.h(b"contact")
        if not contact or not m.h(b"from") or not m.h(b"to"):
            return
        target = uri_of(contact).encode("latin-1")
        routes = list(reversed(split_commas(m.all(b"record-route"))))
        cseq = (m.h(b"cseq") or b"1").split()[0]
        try:
            n = int(cseq)
        except ValueError:
            return
        for method, num in ((b"ACK", n), (b"BYE", n + 1)):
            lines = [method + b" " + target + b" SIP/2.0",
                     b"Via: SIP/2.0/UDP " + p.hp.encode() + b";branch=z9hG4bKend" + str(self.seq).encode()
                     + method.lower() + b";rport",
                     b"Max-Forwards: 70"]
            lines += [b"Route: " + r.encode("latin-1") for r in routes]
            lines += [b"From: " + m.h(b"from"), b"To: " + m.h(b"to"), b"Call-ID: " + m.callid,
                      b"CSeq: " + str(num).encode() + b" " + method, b"Content-Length: 0"]
            self.seq += 1
            self.send(p, b"\r\n".join(lines) + b"\r\n\r\n", "peer ends an extra dialog")

    def explain_records_safe(self):
        try:
            return self.explain_records()
        except Exception as e:  # a diagnosis, never a reason to lose the report
            return f"(could not list them: {e})"

    def explain_records(self):
        """Which of our calls still have dialog records (topos_rs.dialog on
        up to 400 Call-IDs), and what those calls went through."""
        flows = list(self.flow_log.values())
        self.rng.shuffle(flows)
        flows.sort(key=lambda f: -len(f.notes))
        replayed = [f for f in flows if any(n.startswith("replayed") for n in f.notes)][:200]
        others = [f for f in flows if f.kind == "call" and f not in replayed][:200]
        out = []
        for label, group in (("with a token replayed after the BYE", replayed),
                             ("without a replay", others)):
            real = extra = 0
            for f in group:
                tags = re.findall(r"callee_tag:\s*(\S*)", self.kam.kamcmd("topos_rs.dialog", f.callid))
                real += f.ttag in tags
                extra += len([t for t in tags if t != f.ttag])
            out.append(f"of {len(group)} calls {label}: {real} still have the record of the real "
                       f"dialog (ended by its BYE), plus {extra} records of other To-tags "
                       f"(dialogs created by mutated 2xx retransmissions, never ACKed or ended)")
        return "; ".join(out)

    def wait(self, seconds):
        end = time.time() + seconds
        while time.time() < end:
            self.pump(min(0.2, end - time.time()))

    # -- Kamailio health
    def check_kamailio(self):
        text = self.kam.new_log()
        if text:
            for line in text.splitlines():
                if PANIC_RE.search(line):
                    self.finding("panic", re.sub(rb"[0-9]+", b"N", line)[-120:],
                                 "module panic/internal error logged: "
                                 + line.decode("latin-1")[-300:], line,
                                 self.ring[-1] if self.ring else None)
                if CRASH_RE.search(line):
                    self.crash_lines.append(line.decode("latin-1")[-300:])
        why = self.kam.dead()
        if why or self.crash_lines:
            if not why:
                time.sleep(0.5)
                why = self.kam.dead() or "crash line in the log"
            raise KamailioDied(why)

    def handle_crash(self, why):
        """Saves the last messages sent, restarts Kamailio, replays them one
        by one (newest first) to find the one that kills it, and confirms it
        alone on a fresh Kamailio."""
        self.crashes += 1
        n = self.crashes
        cdir = os.path.join(self.work, f"crash-{n}")
        os.makedirs(cdir, exist_ok=True)
        ring = list(self.ring)
        lines = list(dict.fromkeys(self.crash_lines))[:3]
        self.crash_lines = []
        for i, (p, data, cat) in enumerate(ring):
            name = re.sub(r"[^A-Za-z0-9]+", "_", cat)
            open(os.path.join(cdir, f"sent-{i:02d}-{p.side}-{name}.sip"), "wb").write(data)
        log(f"CRASH #{n}: {why}; log: {lines}; last {len(ring)} messages in {cdir}")
        self.kam.stop()
        self.count("kamailio crashes")
        if self.crashes > RESTARTS:
            self.finding("crash", f"crash {n}", f"Kamailio died ({why}); log: {lines}; "
                         f"not triaged (ATTACK_RESTARTS={RESTARTS} used up); last messages in {cdir}")
            return False
        self.kam.start()

        def kills(data, p, wait):
            p.sock.sendto(data, KADDR)
            self.count("sent: crash triage replay")
            end = time.time() + wait
            while time.time() < end:
                time.sleep(0.05)
                self.drain()
                if self.kam.dead():
                    return True
            return False

        killer = None
        for i in range(len(ring) - 1, -1, -1):
            p, data, cat = ring[i]
            if kills(data, p, 0.3):
                # the abort may lag behind the message: confirm alone, newest first
                for k in (i, i + 1, i + 2, i - 1):
                    if 0 <= k < len(ring):
                        self.kam.stop()
                        self.kam.start()
                        if kills(ring[k][1], ring[k][0], 2.0):
                            killer = ring[k]
                            break
                break
        if killer:
            p, data, cat = killer
            sig = crash_signature(data)
            if "> 1 KB" in sig:
                self.avoid.add(sig)
            path = os.path.join(cdir, "reproducer.sip")
            open(path, "wb").write(data)
            self.finding("crash", sig,
                         f"Kamailio died ({why}; log: {lines}). Reproduced alone on a fresh Kamailio by "
                         f"one {len(data)}-byte message from side {p.side} ({cat}): {sig}; "
                         f"first line {Msg(data).first[:50]!r}; reproducer {path}",
                         data, (cat, sig, data, p.name, "crash"))
            self.kam.stop()
            self.kam.start()
        else:
            self.finding("crash", f"unreproduced crash {n}",
                         f"Kamailio died ({why}; log: {lines}); no single message of the last "
                         f"{len(ring)} reproduced it alone; they are in {cdir}")
            if self.kam.dead():
                self.kam.stop()
                self.kam.start()
        self.kam.new_log()
        self.crash_lines = []
        return True

    def drain(self):
        """Empties every socket during crash triage; what arrived is still
        checked (leaks, the trap), but no flow or auto-reply sees it."""
        for p in (p for ps in self.peers.values() for p in ps):
            while True:
                try:
                    data, _ = p.sock.recvfrom(70000)
                except OSError:
                    break
                self.helper_received(f"{p.name} during crash triage", data, p.side)
        for s in self.trap.sockets():
            self.trap.readable(s.fileno(), self.trap_received)

    # -- flows
    def pick(self, side):
        return self.rng.choice(self.peers[side])

    def sides(self):
        a, b = ("A", "B") if self.rng.random() < 0.7 else ("B", "A")
        return self.pick(a), self.pick(b)

    def flow_call(self, fuzz, ops=None):
        """A call: INVITE, 100, 180, 200, ACK, in-dialog transactions, BYE.
        fuzz: mutated 18x/200, in-dialog requests, forged tokens, replays.
        ops: only these mutations (the spliced-header and SIP-Version
        classes), which then also hit the replies to in-dialog requests and
        to the BYE."""
        o, t = self.sides()
        f = Flow(self, "call" if ops is None else "call (spliced headers, SIP-Version)", o, t)
        rng = self.rng
        f.send(o, f.invite(), "call")
        inv = f.inv = f.req(t, "INVITE")
        f.learn_t(inv)
        f.send(t, build_reply(t, inv, 100, "Trying"), "call")
        f.send(t, build_reply(t, inv, 180, "Ringing", f.ttag), "call")
        f.rep(o, {180}, "INVITE")
        if fuzz:
            for _ in range(rng.randint(1, 4)):
                code = rng.choice([180, 183, 181])
                f.send_mut(t, build_reply(t, inv, code, "Ringing", f.ttag), "mutated 18x in a live INVITE", ops)
                self.pump(0.0)
        ok = build_reply(t, inv, 200, "OK", f.ttag)
        f.send(t, ok, "call")
        okm = f.rep(o, {200}, "INVITE")
        f.learn_o(okm)
        f.confirmed = True
        h_ids = self.dialog_ids
        h_ids[f.callid.encode()] = 1
        if len(h_ids) > 5000:
            h_ids.popitem(last=False)
        self.targets.append((f.callid, f.o_target, f.o_routes))
        if fuzz:
            for _ in range(rng.randint(1, 3)):
                f.send_mut(t, ok, "mutated 200 in a live INVITE", ops)
                f.notes.add("mutated 200")
                self.pump(0.0)
        f.send(o, f.in_dialog("o", "ACK", cseq=1), "call")
        f.req(t, "ACK")
        # optional in-dialog transactions, both directions
        for _ in range(rng.choice([0, 0, 1, 2] if ops is None else [1, 2])):
            side = rng.choice("ot")
            snd, rcv = (o, t) if side == "o" else (t, o)
            meth = rng.choice(["INVITE", "OPTIONS", "INFO", "UPDATE"])
            req = f.in_dialog(side, meth)
            f.send(snd, req, "call")
            r = f.req(rcv, meth)
            ok2 = build_reply(rcv, r, 200, "OK", contact=meth in ("INVITE", "UPDATE"), rr=False)
            if ops is not None:
                f.send_mut(rcv, ok2, "mutated reply to an in-dialog request", ops)
            f.send(rcv, ok2, "call")
            rr = f.rep(snd, {200}, meth)
            if meth == "INVITE":
                cseq = int(Msg(req).h(b"cseq").split()[0])
                f.send(snd, f.in_dialog(side, "ACK", cseq=cseq), "call")
                f.req(rcv, "ACK")
        if fuzz:
            for _ in range(rng.randint(1, 5)):
                side = rng.choice("ot")
                snd = o if side == "o" else t
                meth = rng.choice(["INVITE", "INFO", "OPTIONS", "UPDATE", "NOTIFY", "MESSAGE", "ACK", "PRACK", "BYE"]
                                  if rng.random() < 0.15 else ["INVITE", "INFO", "OPTIONS", "UPDATE", "NOTIFY"])
                f.send_mut(snd, f.in_dialog(side, meth), "mutated in-dialog request with a valid token", ops)
                f.notes.add("mutated in-dialog " + meth)
                self.pump(0.0)
            if rng.random() < 0.5:
                self.forged(f)
        # hang up: either side
        side = rng.choice("ot")
        snd, rcv = (o, t) if side == "o" else (t, o)
        f.send(snd, f.in_dialog(side, "BYE"), "call")
        try:
            b = f.expect(rcv, lambda m: m.method == b"BYE", "BYE")
            ok_bye = build_reply(rcv, b, 200, "OK", rr=False, contact=False)
            if ops is not None:
                f.send_mut(rcv, ok_bye, "mutated reply to a BYE", ops)
            f.send(rcv, ok_bye, "call")
            f.rep(snd, {200}, "BYE")
            self.count("calls completed")
        except FlowTimeout:
            # a mutated BYE may have ended the dialog already: Kamailio says 404
            f.expect(snd, lambda m: m.status and m.status >= 400 and m.cseq_method == b"BYE", "BYE answer")
            self.count("calls ended by an earlier (mutated) BYE")
            f.notes.add("ended by a mutated BYE")
        f.ended = True
        if fuzz and rng.random() < 0.3:
            for _ in range(rng.randint(1, 3)):
                side = rng.choice("ot")
                meth = rng.choice(["INVITE", "INFO", "BYE", "OPTIONS"])
                f.send(o if side == "o" else t, f.in_dialog(side, meth), "replay of a token after BYE")
                f.notes.add("replayed " + meth + " after BYE")
        f.finish()

    def forged(self, f):
        """Requests whose token is forged (a digit changed) or belongs to
        another call: Kamailio must never route them."""
        rng = self.rng
        tgt = f.o_target
        user = tgt.split(":", 1)[1].split("@", 1)[0] if "@" in tgt else ""
        if rng.random() < 0.6 and len(user) > 4:
            i = rng.randrange(len(user))
            c = user[i]
            alphabet = "0123456789abcdef" if c in "0123456789abcdef" else "ghijklmnopqrstuvwxyz"
            repl = rng.choice([x for x in alphabet if x != c.lower()])
            forged = tgt.replace(user, user[:i] + repl + user[i + 1:], 1)
            kind = "forged token (one character changed)"
        else:
            others = [t for t in self.targets if t[0] != f.callid]
            if not others:
                return
            forged = rng.choice(others)[1]
            kind = "token of another call"
        req = f.in_dialog("o", rng.choice(["INFO", "INVITE", "BYE", "OPTIONS"]), target=forged,
                          extra=[f"X-Attack-Forged: {kind}"])
        f.send(f.o, req, "forged token")

    def ringing_flow(self, kind):
        """A new call of `kind` that has rung: INVITE through, 180 back."""
        o, t = self.sides()
        f = Flow(self, kind, o, t)
        f.send(o, f.invite(), "call")
        inv = f.inv = f.req(t, "INVITE")
        f.send(t, build_reply(t, inv, 180, "Ringing", f.ttag), "call")
        f.rep(o, {180}, "INVITE")
        return f, o, t, inv

    def flow_reject(self, fuzz, ops=None):
        f, o, t, inv = self.ringing_flow("reject" if ops is None else "reject (spliced headers)")
        code, reason = self.rng.choice([(486, "Busy Here"), (603, "Decline"), (302, "Moved"),
                                        (503, "Unavailable"), (404, "Not Found"), (480, "Unavailable")])
        final = build_reply(t, inv, code, reason, f.ttag)
        if fuzz:
            f.send_mut(t, final, "mutated final reply in a live INVITE", ops)
            self.pump(0.01)
        f.send(t, final, "call")
        fr = f.expect(o, lambda m: m.status and m.status >= 300, "final reply")
        self.send_ack_negative(f, fr)
        self.count("calls rejected")
        f.finish()

    def send_ack_negative(self, f, fr):
        ack = build_request(f.o, "ACK", f.ruri, f.callid, 1, f.frm,
                            (fr.h(b"to") or b"").decode("latin-1"), f"z9hG4bK-{f.bid}-inv",
                            contact=False, upstream=False)
        f.send(f.o, ack, "call")

    def flow_cancel(self, fuzz):
        f, o, t, inv = self.ringing_flow("cancel")
        cancel = build_request(o, "CANCEL", f.ruri, f.callid, 1, f.frm, f.to,
                               f"z9hG4bK-{f.bid}-inv", contact=False, upstream=False)
        f.send(o, cancel, "call")
        c = f.req(t, "CANCEL")
        f.send(t, build_reply(t, c, 200, "OK", f.ttag, contact=False, rr=False), "call")
        r487 = build_reply(t, inv, 487, "Request Terminated", f.ttag)
        if fuzz:
            f.send_mut(t, r487, "mutated 487 in a live INVITE")
            self.pump(0.01)
        f.send(t, r487, "call")
        fr = f.expect(o, lambda m: m.status and m.status >= 300, "487")
        self.send_ack_negative(f, fr)
        self.count("calls cancelled")
        f.finish()

    def flow_options(self, fuzz):
        o, t = self.sides()
        f = Flow(self, "options", o, t)
        req = build_request(o, "OPTIONS", f.ruri, f.callid, 1, f.frm, f.to,
                            f"z9hG4bK-{f.bid}-opt", rr=True)
        if fuzz and self.rng.random() < 0.5:
            f.send_mut(o, req, "mutated OPTIONS outside a dialog")
            f.finish()
            return
        f.send(o, req, "options")
        r = f.req(t, "OPTIONS")
        rep = build_reply(t, r, 200, "OK", f.ttag)
        if fuzz:
            f.send_mut(t, rep, "mutated reply to OPTIONS outside a dialog")
            self.pump(0.01)
        f.send(t, rep, "options")
        f.expect(o, lambda m: m.status and m.status >= 200, "200 to OPTIONS")
        self.count("OPTIONS answered")
        f.finish()

    def flow_mut_invite(self, ops=None):
        """Mutated dialog-creating INVITEs: the callee (auto) answers 180 and
        486 with its own Contact and Record-Route, which must not leak."""
        o, t = self.sides()
        f = Flow(self, "mutated INVITE", o, t)
        self.flows.pop(f.callid.encode(), None)  # answered by the auto peer
        if ops is None and self.rng.random() < 0.4:
            ops = [m_branch, m_ipv6, m_many_vias, m_compact, m_case, m_comma, m_huge_value]
        m = f.send_mut(o, f.invite(), "mutated INVITE (new dialog)", ops)
        self.pump(0.002)
        del m

    def flow_stray(self):
        """Replies and ACKs that belong to nothing: stray/forged 2xx (some
        with a 30 KB From), ACKs with 3000-byte Call-ID or CSeq number."""
        rng = self.rng
        p = self.pick(rng.choice("AB"))
        s = SIDES[p.side]
        self.seq += 1
        cid = f"stray{self.seq}-{rng.getrandbits(32):08x}@attack"
        kind = rng.choice(["200", "200", "200big", "ack-callid", "ack-cseq", "ack-totag-callid",
                           "bye-nodialog", "18x"])
        frm = f"<sip:{s['user']}@{KIP}>;tag=s{self.seq}"
        if kind == "200big":
            frm = f"<sip:{s['user']}@{KIP}>;x={'f' * rng.choice([3000, 30000])};tag=s{self.seq}"
        if kind.startswith(("200", "18")):
            code = 200 if kind.startswith("200") else 183
            data = (f"SIP/2.0 {code} OK\r\nVia: SIP/2.0/UDP {KIP}:{KPORT};branch=z9hG4bK{rng.getrandbits(40):x}.0\r\n"
                    f"Via: SIP/2.0/UDP {p.hp};branch=z9hG4bKs{self.seq}\r\n"
                    f"Record-Route: {s['rr'].format(hp=p.hp)}\r\nFrom: {frm}\r\nTo: <sip:x@{KIP}>;tag=st{self.seq}\r\n"
                    f"Call-ID: {cid}\r\nCSeq: 1 INVITE\r\nContact: <sip:{s['user']}@{p.hp}>\r\n"
                    "Content-Length: 0\r\n\r\n").encode()
            cat = f"stray {code} to INVITE" + (" (huge From)" if kind == "200big" else "")
        elif kind.startswith("ack"):
            big = "a" * rng.choice([3000, 3100, 4000, 8000, 60000 - 400])
            callid = cid + big if "callid" in kind else cid
            cseq = ("1" * 3000) if kind == "ack-cseq" else "1"
            totag = f";tag=t{self.seq}" if "totag" in kind or rng.random() < 0.5 else ""
            data = (f"ACK sip:x@{KIP} SIP/2.0\r\nVia: SIP/2.0/UDP {p.hp};branch=z9hG4bKa{self.seq}\r\n"
                    f"Max-Forwards: 70\r\nFrom: {frm}\r\nTo: <sip:x@{KIP}>{totag}\r\nCall-ID: {callid}\r\n"
                    f"CSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n").encode()
            cat = "ACK with a huge Call-ID" if "callid" in kind else "ACK with a huge CSeq number"
        else:
            data = (f"BYE sip:nobody@{KIP} SIP/2.0\r\nVia: SIP/2.0/UDP {p.hp};branch=z9hG4bKb{self.seq}\r\n"
                    f"Max-Forwards: 70\r\nFrom: {frm}\r\nTo: <sip:x@{KIP}>;tag=t{self.seq}\r\n"
                    f"Call-ID: {cid}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n").encode()
            cat = "BYE outside any dialog"
        if rng.random() < 0.3:
            data = self.mark(data)
            data, desc, names = mutate(rng, data, p, [m_flip, m_inject, m_case, m_compact])
            self.note(data, cat, desc, names, p)
        self.send(p, data, cat)
        self.pump(0.002)

    # -- issue 24: ACKs and CANCELs after finals, spliced headers, SIP-Version

    def send_attack(self, f, peer, data, cat, desc, allowed=None, ops=None):
        """Sends one message of the after-final classes, marked so that
        wherever Kamailio sends it is known: allowed is the peer it may
        reach (the side its real token addresses), None if it must reach
        no one (tm absorbs it, or it carries no valid token), "any" if it
        is outside any dialog (no To-tag) and may be relayed hidden."""
        data = self.mark(data)
        mark = b"%d" % self.mark_seq
        names = None
        if ops:
            data, more, names = mutate(self.rng, data, peer, ops)
            desc = f"{desc}; {more}"
        self.note(data, cat, desc, names or "none", peer)
        self.relay_rules[mark] = (allowed, cat, desc)
        if len(self.relay_rules) > 30000:
            self.relay_rules.popitem(last=False)
        self.send(peer, data, cat, f, names)
        return mark

    def flow_after_final(self, fuzz):
        """A call ends in a negative final (486, 603, or CANCEL then 487) or
        is answered (2xx): then the proper ACK, and 1-3 ACKs/CANCELs with
        other branches, Request-URIs (the other side's address, the trap,
        the sender's own), Route headers (none, the proper one, one to the
        trap or the other side) from either side, while the call is up or
        after its BYE. The proper hop-by-hop ACK must be absorbed; the
        proper e2e ACK (real token) must reach the callee, hidden."""
        rng = self.rng
        final = rng.choice(["486", "603", "487", "2xx up", "2xx up", "2xx after BYE"])
        if not final.startswith("2xx"):
            f, o, t, inv = self.ringing_flow(f"ACK/CANCEL after {final}")
            if final == "487":
                cancel = build_request(o, "CANCEL", f.ruri, f.callid, 1, f.frm, f.to,
                                       f"z9hG4bK-{f.bid}-inv", contact=False, upstream=False)
                f.send(o, cancel, "call")
                c = f.req(t, "CANCEL")
                f.send(t, build_reply(t, c, 200, "OK", f.ttag, contact=False, rr=False), "call")
                fin = build_reply(t, inv, 487, "Request Terminated", f.ttag)
            else:
                fin = build_reply(t, inv, int(final), "Busy Here" if final == "486" else "Decline", f.ttag)
            f.send(t, fin, "call")
            fr = f.expect(o, lambda m: m.status and m.status >= 300, "final reply")
            f.ttag_seen = (fr.totag or b"").decode("latin-1")
            to = (fr.h(b"to") or b"").decode("latin-1")
            rr = [r for r in split_commas(fr.all(b"record-route"))
                  if not any(x.decode() in r for x in SIDES[o.side]["secrets"])]
            f.o_routes = list(reversed(rr))
            c = fr.h(b"contact")
            f.o_target = uri_of(c) if c else None  # a token of a failed call, if any
            if rng.random() < 0.85:
                # the proper hop-by-hop ACK: the INVITE's branch and Request-URI
                ack = build_request(o, "ACK", f.ruri, f.callid, 1, f.frm, to, f"z9hG4bK-{f.bid}-inv",
                                    contact=False)
                self.send_attack(f, o, ack, "proper hop-by-hop ACK after a negative final",
                                 f"ACK to {final}, the INVITE's branch and Request-URI (tm absorbs it)")
            cat = "ACK/CANCEL after a negative final"
            for _ in range(rng.randint(1, 3)):
                self.after_final_attack(f, final, to, cat, fuzz, token_ok=False)
            self.pump(0.0)
            self.count("calls rejected")
            f.finish()
            return
        o, t = self.sides()
        f = Flow(self, f"ACK/CANCEL after {final}", o, t)
        f.send(o, f.invite(), "call")
        inv = f.inv = f.req(t, "INVITE")
        f.learn_t(inv)
        f.send(t, build_reply(t, inv, 180, "Ringing", f.ttag), "call")
        f.rep(o, {180}, "INVITE")
        f.send(t, build_reply(t, inv, 200, "OK", f.ttag), "call")
        okm = f.rep(o, {200}, "INVITE")
        f.learn_o(okm)
        f.confirmed = True
        self.dialog_ids[f.callid.encode()] = 1
        if len(self.dialog_ids) > 5000:
            self.dialog_ids.popitem(last=False)
        to = (okm.h(b"to") or b"").decode("latin-1")
        mark = self.send_attack(f, o, f.in_dialog("o", "ACK", cseq=1), "proper e2e ACK with the real token",
                                "ACK to the 2xx, new branch, the token and route set of the 2xx", allowed=t)
        try:
            f.expect(t, lambda m: m.method == b"ACK" and m.h(b"x-attack-id") == mark, "the e2e ACK", timeout=2.0)
        except FlowTimeout:
            m0 = Msg(self.triggers[mark][2])
            self.finding("lost", "e2e ACK", "a proper e2e ACK (real token, route set of the 2xx) did not "
                         f"reach the callee {t.name} within 2 s", self.triggers[mark][2], self.triggers[mark],
                         (m0.first[:200], b""))
        cat = f"ACK/CANCEL after a 2xx ({'call up' if final == '2xx up' else 'after the BYE'})"
        if final == "2xx after BYE":
            self.hang_up(f)
        for _ in range(rng.randint(1, 3)):
            self.after_final_attack(f, final, to, cat, fuzz, token_ok=True)
        self.pump(0.0)
        if final == "2xx up":
            self.hang_up(f)
        f.finish()

    def hang_up(self, f):
        side = self.rng.choice("ot")
        snd, rcv = (f.o, f.t) if side == "o" else (f.t, f.o)
        f.send(snd, f.in_dialog(side, "BYE"), "call")
        b = f.expect(rcv, lambda m: m.method == b"BYE", "BYE")
        f.send(rcv, build_reply(rcv, b, 200, "OK", rr=False, contact=False), "call")
        f.rep(snd, {200}, "BYE")
        f.ended = True
        self.count("calls completed")

    def after_final_attack(self, f, final, to, cat, fuzz, token_ok):
        """One ACK or CANCEL of the call after its final reply. Only an ACK
        whose Request-URI is the real token of a dialog (token_ok: the call
        was answered) may reach anyone: the side that token addresses."""
        rng = self.rng
        o, t = f.o, f.t
        from_o = rng.random() < 0.8
        snd, rcv = (o, t) if from_o else (t, o)
        method = "ACK" if rng.random() < 0.75 else "CANCEL"
        bk = rng.choice(["another branch", "another branch", "a branch without z9hG4bK"]
                        + (["the INVITE's branch"] if from_o else []))
        branch = {"the INVITE's branch": f"z9hG4bK-{f.bid}-inv",
                  "another branch": f"z9hG4bK-{rng.getrandbits(48):012x}",
                  "a branch without z9hG4bK": f"atk{rng.getrandbits(32):08x}"}[bk]
        totag = rng.random() < (0.9 if method == "ACK" else 0.5)
        trap = rng.choice(TRAP_HPS)
        ruris = {"the other side's address": f"sip:{SIDES[rcv.side]['user']}@{rcv.hp}",
                 "the sender's own address": f"sip:{SIDES[snd.side]['user']}@{snd.hp}"}
        if totag or method == "CANCEL":
            # An ACK without To-tag is outside any dialog: the example config
            # relays it to its Request-URI like any such request (hidden).
            ruris.update({"a third address": f"sip:{SIDES[rcv.side]['user']}@{trap}",
                          "a third address without user": f"sip:{trap}",
                          "a third address over TCP": f"sip:{SIDES[rcv.side]['user']}@{trap};transport=tcp"})
        if from_o:
            ruris["the INVITE's Request-URI"] = f.ruri
        token = f.o_target if from_o else f.t_target
        if token and token.startswith("sip:") and KIP in token:
            # the token of a refused call is no valid token (its record is gone)
            name = "the real token" if token_ok else "the refused call's token"
            ruris[name] = token
            ruris[name + " (again)"] = token
        rk = rng.choice(sorted(ruris))
        ruri = ruris[rk]
        proper = (f.o_routes if from_o else f.t_routes) or [f"<sip:{KIP};lr>"]
        elsewhere = rng.choice([f"<sip:{rng.choice(TRAP_HPS)};lr>", f"<sip:{rcv.hp};lr>"])
        routes = rng.choice([("no Route", []), ("the proper Route", proper),
                             ("a Route elsewhere", [elsewhere]), ("the proper Route, then one elsewhere",
                                                                 proper + [elsewhere]),
                             ("a Route elsewhere, then the proper one", [elsewhere] + proper)])

        def untagged(v):
            return re.sub(r";\s*tag=[^;>\s]*", "", v)
        # the callee's requests: its From is the dialog's To (its own tag)
        if from_o:
            frm, to_hdr = f.frm, (to if totag else untagged(to))
        else:
            frm, to_hdr = to, (f.frm if totag else untagged(f.frm))
        req = build_request(snd, method, ruri, f.callid, 1, frm, to_hdr, branch, routes=routes[1],
                            contact=False)
        allowed = None
        if method == "ACK" and not totag:
            allowed = "any"  # relayed hidden like any request outside a dialog: the leak check judges
        elif token_ok and method == "ACK" and rk.startswith("the real token"):
            allowed = rcv
        desc = (f"{method} from side {snd.side} after {final}: {bk}, Request-URI {rk} ({ruri}), "
                f"{routes[0]}, {'with' if totag else 'without'} To-tag")
        ops = [m_splice, m_version] if fuzz and rng.random() < 0.15 else None
        self.send_attack(f, snd, req, cat, desc, allowed, ops)
        self.pump(0.0)

    def flow_splice(self, fuzz):
        """The spliced-header and SIP-Version classes on their own: in a
        dialog-creating INVITE, in 18x/200/final replies, in in-dialog
        requests (valid token) and in replies to them."""
        r = self.rng.random()
        if r < 0.3:
            for _ in range(self.rng.randint(1, 3)):
                self.flow_mut_invite(SPLICE_OPS)
        elif r < 0.5:
            self.flow_reject(True, SPLICE_OPS)
        else:
            self.flow_call(True, SPLICE_OPS)

    def run_one(self, fuzz):
        r = self.rng.random()
        if not fuzz:
            kinds = [self.flow_call] * 5 + [self.flow_reject, self.flow_cancel, self.flow_options]
            return self.rng.choice(kinds)(False)
        if r < 0.30:
            return self.flow_call(True)
        if r < 0.37:
            return self.flow_reject(True)
        if r < 0.43:
            return self.flow_cancel(True)
        if r < 0.49:
            return self.flow_options(True)
        if r < 0.63:
            for _ in range(self.rng.randint(1, 5)):
                self.flow_mut_invite()
            return
        if r < 0.72:
            for _ in range(self.rng.randint(1, 6)):
                self.flow_stray()
            return
        if r < 0.88:
            return self.flow_after_final(True)
        return self.flow_splice(True)

    def safe_run(self, fuzz):
        try:
            self.run_one(fuzz)
        except FlowTimeout:
            self.cleanup_flows()
        except KamailioDied as e:
            return self.recover(str(e))
        except Exception:  # a bug of the harness (a reply it did not expect): count it, go on
            import traceback
            self.count("harness errors (flow abandoned)")
            if self.counts["harness errors (flow abandoned)"] <= 3:
                log("attack: harness error, flow abandoned:\n" + traceback.format_exc())
            try:
                self.cleanup_flows()
            except KamailioDied as e:
                return self.recover(str(e))
        return True

    def recover(self, why):
        """After a crash: triage, restart, a new memory baseline."""
        for _ in range(RESTARTS + 1):
            self.flows.clear()
            if not self.handle_crash(why):
                return False
            try:
                self.cleanup_flows()
                self.warm_up(20)  # a new baseline for the memory check
                return True
            except KamailioDied as e:
                why = str(e)
        return False

    def cleanup_flows(self):
        """Ends the dialogs of flows cut short (a BYE from the originator),
        so their records do not count as junk."""
        for cid, f in list(self.flows.items()):
            if f.confirmed and not f.ended:
                try:
                    f.send(f.o, f.in_dialog("o", "BYE"), "cleanup BYE")
                    b = f.expect(f.t, lambda m: m.method == b"BYE", "cleanup BYE", timeout=1.0)
                    f.send(f.t, build_reply(f.t, b, 200, "OK", rr=False, contact=False), "call")
                except (FlowTimeout, KamailioDied):
                    pass
                f.ended = True
            elif not f.confirmed and f.inv is not None:
                # an INVITE left without a final reply: end its transaction
                f.send(f.t, build_reply(f.t, f.inv, 486, "Busy Here", f.ttag), "cleanup 486")
            f.finish()
        self.flows.clear()

    def warm_up(self, n):
        log(f"warm-up: {n} clean flows")
        for _ in range(n):
            try:
                self.run_one(False)
            except FlowTimeout:
                self.cleanup_flows()
        self.wait(7)  # tm's wait timer: transactions freed
        self.mem0 = self.kam.memory()
        log(f"memory after warm-up: pkg {self.mem0[0]} KiB, shm {self.mem0[1]} KiB")

    def run(self):
        self.kam.start()
        self.warm_up(150)
        deadline = self.start + SECONDS
        last = time.time()
        while self.sent < MESSAGES and time.time() < deadline:
            if not self.safe_run(True):
                log("attack: Kamailio is down and ATTACK_RESTARTS is used up: stopping the traffic")
                self.traffic_s = time.time() - self.start
                return
            if time.time() - last > 15:
                last = time.time()
                log(f"  {int(last - self.start)} s: {self.sent} messages sent, "
                    f"{len(self.findings)} distinct findings")
        self.traffic_s = time.time() - self.start
        log(f"traffic done: {self.sent} messages in {self.traffic_s:.0f} s; "
            f"waiting {GRACE} s (grace time after the last BYE, LMDB sweep)")
        try:
            self.wait(GRACE)
            mem = self.kam.memory()
            # transactions to unreachable targets can live 30-120 s (tm timers)
            for _ in range(12):
                if mem[0] - self.mem0[0] <= MEM_TOL_KIB and mem[1] - self.mem0[1] <= MEM_TOL_KIB:
                    break
                self.wait(10)
                mem = self.kam.memory()
            self.mem1 = mem
            self.check_kamailio()
        except KamailioDied as e:
            self.handle_crash(str(e))
            return
        dpkg, dshm = mem[0] - self.mem0[0], mem[1] - self.mem0[1]
        log(f"memory after the grace time: pkg {mem[0]} KiB ({dpkg:+d}), shm {mem[1]} KiB ({dshm:+d})")
        if dpkg > MEM_TOL_KIB or dshm > MEM_TOL_KIB:
            self.finding("memory", "growth", f"memory grew: pkg {dpkg:+d} KiB, shm {dshm:+d} KiB "
                         f"(tolerance {MEM_TOL_KIB} KiB) from warm-up to after the grace time")
        d, b, out = self.kam.records()
        self.records = (d, b)
        log(f"store after the grace time: {d} dialog records, {b} bills")
        if d is None:
            self.finding("records", "rpc", f"topos_rs.records failed: {out.strip()[:200]}")
        else:
            # A flow the harness abandoned (a mutation ate a message it
            # waited for) may leave its call up, or ringing until tm's
            # timer: one dialog record and one bill at most, and not junk.
            # Anything beyond that is.
            left_up = self.counts["flow timeouts"]
            log(f"flows abandoned mid-call (their calls may still be up): {left_up}")
            if d > left_up or b > left_up:
                self.finding("records", "junk", f"the store keeps {d} dialog records and {b} bills "
                             f"{GRACE} s after every call ended, more than the {left_up} calls the "
                             f"harness left up (junk: stray 2xx, revived dialogs, ...)"
                             + (f"; {self.explain_records_safe()}" if d else ""))
        stats = self.kam.kamcmd("topos_rs.stats")
        log(stats.strip())
        st = {k: int(v) for k, v in re.findall(r"(\w+):\s*(-?\d+)\s*$", stats, re.M)}
        c, e, x, a = (st.get(k, 0) for k in ("dialogs_created", "dialogs_ended", "dialogs_expired",
                                              "dialogs_active"))
        # dialogs_active is shown only where the node sees every dialog end
        # (stored tokens on LMDB); with sealed tokens (the example config's
        # default) nothing records an end, and a replayed BYE the callee
        # answers counts again.
        if "dialogs_active" in st and (
                e + x > c or a != max(0, c - e - x) or (d is not None and d > 0 and a == 0)):
            self.finding("stats", "dialogs", f"topos_rs.stats is inconsistent: dialogs_created {c}, "
                         f"dialogs_ended {e}, dialogs_expired {x}, dialogs_active {a} "
                         f"(the store holds {d} dialog records)")


def msg_class(cat, names):
    """The class a sent message counts under in the report: the issue 24
    classes by name, then other mutations, then scripted traffic."""
    names = names or ""
    if cat.startswith(("ACK/CANCEL after", "proper ")):
        return cat
    if "splice" in names:
        return "spliced headers"
    if "version" in names:
        return "bad SIP-Version"
    if names and names != "none":
        return "other mutations"
    return "scripted traffic (calls, peers' answers)"


def crash_signature(data):
    m = Msg(data)
    what = (m.method or b"reply").decode("latin-1", "replace")[:20]
    cseq = (m.h(b"cseq") or b"").split()
    digits = len(cseq[0]) if cseq else 0
    return (f"{what}, To-tag {'yes' if m.totag else 'no'}, Call-ID {'> 1 KB' if len(m.callid) > 1024 else 'short'}, "
            f"CSeq number {'> 1 KB' if digits > 1024 else 'short'}")


def huge_ack(data):
    """An ACK with a Call-ID or CSeq number over 1000 bytes (issue 13 #1)."""
    if not data.startswith(b"ACK "):
        return False
    m = Msg(data)
    cseq = (m.h(b"cseq") or b"").split()
    return len(m.callid) > 1000 or (cseq and len(cseq[0]) > 1000)


def _stop_on_signal(sig, frame):
    raise SystemExit(f"attack: stopped by signal {sig}")


def main():
    enter_netns()
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGINT, _stop_on_signal)
    os.makedirs(OUT, exist_ok=True)
    work = os.path.join(OUT, f"run-{time.strftime('%Y%m%d-%H%M%S')}-seed{SEED}")
    os.makedirs(work)
    log(f"make attack: {MESSAGES} messages max, {SECONDS} s max, seed {SEED}, work dir {work}")
    h = Harness(work)
    try:
        h.run()
    finally:
        h.kam.stop()
        h.trap.close()
    report(h, work)


def example_label(example):
    """What the second line of a finding's example is: the line carrying
    the other side's address, unless the example says otherwise."""
    return example[2] if len(example) > 2 else "offending"


def finding_class(f):
    """The class of messages a finding came from (its trigger's), or the
    scripted traffic when no mutation or attack message caused it."""
    t = f.trigger
    if t is not None and len(t) >= 5:
        return msg_class(t[0], t[4])
    if f.kind == "leak" and isinstance(f.key, tuple) and not str(f.key[1]).startswith("clean"):
        cat = str(f.key[1]).replace("probably ", "")
        return msg_class(cat, "")
    return msg_class("", "")


def class_table(h, fs):
    """Per class: messages sent, findings (distinct and in all, by kind)."""
    per = collections.defaultdict(list)
    for f in fs:
        per[finding_class(f)].append(f)
    out = ["== per class: messages sent, findings"]
    for cls in sorted(set(h.sent_by_class) | set(per)):
        found = per.get(cls, [])
        kinds = collections.Counter()
        for f in found:
            kinds[f.kind] += f.count
        out.append(f"  {cls}: {h.sent_by_class.get(cls, 0)} sent, {len(found)} distinct findings"
                   + (f" ({', '.join(f'{k} x{v}' for k, v in sorted(kinds.items()))})" if found else ""))
    return out


def report(h, work):
    total = time.time() - h.start
    out = [f"== make attack: seed {SEED}, {h.sent} messages sent in {getattr(h, 'traffic_s', total):.0f} s "
           f"of traffic, {total:.0f} s in all"]
    for k in sorted(h.counts):
        out.append(f"  {k}: {h.counts[k]}")
    fs = sorted(h.findings.values(), key=lambda f: (f.kind, str(f.key)))
    # A leak class that leaks on clean flows already: its mutated variants
    # are the same finding.
    clean = {f.key[0]: f for f in fs if f.kind == "leak" and f.key[1].startswith("clean")}
    shown = []
    for f in fs:
        if f.kind == "leak" and not f.key[1].startswith("clean") and f.key[0] in clean:
            c = clean[f.key[0]]
            c.also = getattr(c, "also", []) + [f"{f.key[1]} x{f.count}"]
            continue
        shown.append(f)
    out += class_table(h, fs)
    out.append(f"== {len(shown)} distinct findings ({sum(f.count for f in fs)} in all); reproduce with "
               f"ATTACK_SEED={SEED} ATTACK_MESSAGES={MESSAGES} make attack")
    for i, f in enumerate(shown, 1):
        extra = ""
        if getattr(f, "sides", None):
            extra = f" [received by side(s) {'/'.join(sorted(f.sides))}; headers {', '.join(sorted(f.headers))}]"
        out.append(f"[{i}] {f.kind} x{f.count}: {f.text}{extra}")
        if f.example:
            out.append(f"     example: first line {f.example[0].decode('latin-1', 'replace')!r}")
            if f.example[1]:
                line = f.example[1].decode("latin-1", "replace")
                out.append(f"              {example_label(f.example)} {line!r}")
        if f.trigger is not None and len(f.trigger) >= 5:
            out.append(f"     class: {msg_class(f.trigger[0], f.trigger[4])}; seed {SEED}")
        if getattr(f, "clean_kinds", None):
            out.append(f"     clean flows that leak: {', '.join(f'{k} x{v}' for k, v in f.clean_kinds.most_common())}")
        if getattr(f, "also", None):
            out.append(f"     same leak also after: {'; '.join(f.also)}")
        if f.sample is not None:
            p = os.path.join(work, f"finding-{i:02d}-{f.kind}-received.sip")
            open(p, "wb").write(f.sample)
            out.append(f"     message received: {p}")
        if f.trigger is not None and len(f.trigger) >= 3:
            p = os.path.join(work, f"finding-{i:02d}-{f.kind}-trigger.sip")
            open(p, "wb").write(f.trigger[2])
            out.append(f"     trigger ({f.trigger[0]}, sent by {f.trigger[3]}): {p}")
        for n, (ops, (cnt, trig, raw)) in enumerate(sorted(getattr(f, "variants", {}).items(),
                                                          key=lambda kv: -kv[1][0])):
            p = os.path.join(work, f"finding-{i:02d}-variant-{n:02d}-trigger.sip")
            open(p, "wb").write(trig[2])
            open(p.replace("-trigger.sip", "-received.sip"), "wb").write(raw)
            out.append(f"     variant {ops} x{cnt}: {trig[1][:150]} (sent by {trig[3]}): {p}")
    import resource
    out.append(f"== harness: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")
    text = "\n".join(out)
    open(os.path.join(work, "report.txt"), "w").write(text + "\n")
    log(text)
    log(f"attack: {'FAIL' if h.findings else 'PASS'} (report {os.path.join(work, 'report.txt')})")
    sys.exit(1 if h.findings else 0)


if __name__ == "__main__":
    main()
