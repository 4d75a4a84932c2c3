#!/usr/bin/env python3
"""A SIP user agent over WebSocket (RFC 7118, subprotocol "sip") for
tests/edge_config.rs: it places one call through Kamailio's ws:// or wss://
listener, sends and receives RTP (PCMU, 20 ms) to the address the answer
names, and ends the call (or waits for the far side or Kamailio to end it).

Like a browser, it advertises a made-up host (<random>.invalid) in Via and
Contact, and its real address is only where its connection comes from
(--local-ip). Its SDP offers plain RTP/AVP from --local-ip:--rtp-port.

Output (stdout, one JSON object a line):
  {"event": "recv", "text": <SIP message received>}
  {"event": "sent", "text": <SIP message sent>}
  {"event": "established"} / {"event": "ended", "by": "us"|"them"}
  {"event": "rtp", "sent": N, "received": N, "from": ["ip:port", ...]}
  {"event": "error", "what": ...}
Exit status 0 when the call was set up and ended as asked. Every wait is
bounded (--timeout per step).
"""
import argparse
import asyncio
import json
import random
import socket
import ssl
import string
import struct
import sys
import time

import websockets


def out(**kw):
    print(json.dumps(kw), flush=True)


def rand(n=10):
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def headers(text):
    """(start line, [(lowercase name, value)], body)."""
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    hs = []
    for line in lines[1:]:
        if ":" in line:
            n, v = line.split(":", 1)
            hs.append((n.strip().lower(), v.strip()))
    return lines[0], hs, body


def header(hs, name, short=None):
    for n, v in hs:
        if n == name or (short and n == short):
            return v
    return None


def all_headers(hs, name):
    return [v for n, v in hs if n == name]


def uri_of(value):
    """The URI of a name-addr (or addr-spec) header value."""
    if "<" in value:
        return value.split("<", 1)[1].split(">", 1)[0]
    return value.split(";", 1)[0].strip()


class Ua:
    def __init__(self, args, ws):
        self.a = args
        self.ws = ws
        self.inbox = asyncio.Queue()
        self.fake = rand(12) + ".invalid"
        self.tp = "WSS" if args.url.startswith("wss:") else "WS"
        self.call_id = rand(20)
        self.from_tag = rand(8)
        self.cseq = 1
        self.to_hdr = None
        self.target = None
        self.routes = []
        self.ended_by = None

    async def send(self, text):
        out(event="sent", text=text)
        await self.ws.send(text)

    async def reader(self):
        try:
            async for m in self.ws:
                if isinstance(m, bytes):
                    m = m.decode("utf-8", "replace")
                out(event="recv", text=m)
                await self.inbox.put(m)
        except websockets.ConnectionClosed:
            pass

    def via(self):
        return f"SIP/2.0/{self.tp} {self.fake};branch=z9hG4bK{rand(16)};rport"

    def request(self, method, ruri, cseq, body="", extra=()):
        lines = [
            f"{method} {ruri} SIP/2.0",
            f"Via: {self.via()}",
            "Max-Forwards: 70",
            f"From: <sip:{self.a.from_user}@example.com>;tag={self.from_tag}",
            f"To: {self.to_hdr or f'<sip:{self.a.to_user}@example.com>'}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
        ]
        lines += [f"Route: {r}" for r in self.routes]
        lines.append(f"Contact: <sip:{self.a.contact_user}@{self.fake};transport=ws>")
        lines += list(extra)
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        return "\r\n".join(lines) + "\r\n\r\n" + body

    def reply_to(self, req, status, reason):
        _, hs, _ = headers(req)
        lines = [f"SIP/2.0 {status} {reason}"]
        for n, v in hs:
            if n in ("via", "v", "from", "f", "to", "t", "call-id", "i", "cseq", "record-route"):
                lines.append(f"{n}: {v}")
        lines.append("Content-Length: 0")
        return "\r\n".join(lines) + "\r\n\r\n"

    async def next_msg(self, timeout):
        return await asyncio.wait_for(self.inbox.get(), timeout)

    async def handle_request(self, text):
        """An in-dialog request from the far side (BYE, re-INVITE ...)."""
        first, hs, _ = headers(text)
        method = first.split(" ", 1)[0]
        if method == "ACK":
            return None
        if method == "BYE":
            # A network's round trip before the 200 (see --bye-reply-delay).
            await asyncio.sleep(self.a.bye_reply_delay)
        await self.send(self.reply_to(text, 200, "OK"))
        return method


def sdp_offer(ip, port):
    sid = random.randint(1000, 99999)
    return (
        "v=0\r\n"
        f"o=wsclient {sid} {sid} IN IP4 {ip}\r\n"
        "s=-\r\n"
        f"c=IN IP4 {ip}\r\n"
        "t=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=ptime:20\r\n"
        "a=sendrecv\r\n"
    )


def media_of(sdp):
    ip, port = None, None
    for line in sdp.split("\r\n"):
        if line.startswith("c=IN IP4 "):
            ip = line.split()[2]
        elif line.startswith("m=audio "):
            port = int(line.split()[1])
    return ip, port


async def rtp(sock, dest, seconds, stop):
    """Sends PCMU every 20 ms to dest for `seconds` (or until stop is set),
    counting what arrives meanwhile."""
    loop = asyncio.get_running_loop()
    sent, received, sources = 0, 0, set()
    ssrc = random.getrandbits(32)
    seq = random.getrandbits(16)
    ts = random.getrandbits(32)
    t_end = time.monotonic() + seconds
    next_send = time.monotonic()
    while time.monotonic() < t_end and not stop.is_set():
        now = time.monotonic()
        if now >= next_send:
            pkt = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + b"\xff" * 160
            sock.sendto(pkt, dest)
            sent += 1
            seq += 1
            ts += 160
            next_send += 0.02
        try:
            while True:
                data, src = sock.recvfrom(2048)
                if len(data) >= 12 and data[0] >> 6 == 2:
                    received += 1
                    sources.add(f"{src[0]}:{src[1]}")
        except BlockingIOError:
            pass
        await asyncio.sleep(max(0.0, min(0.005, next_send - time.monotonic())))
    return sent, received, sorted(sources)


async def call(a):
    ctx = None
    if a.url.startswith("wss:"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    async with websockets.connect(
        a.url,
        subprotocols=["sip"],
        ssl=ctx,
        local_addr=(a.local_ip, 0),
        open_timeout=a.timeout,
        close_timeout=2,
    ) as ws:
        if ws.subprotocol != "sip":
            out(event="error", what=f"subprotocol {ws.subprotocol!r}, not sip")
            return 1
        ua = Ua(a, ws)
        reader = asyncio.create_task(ua.reader())
        msock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        msock.bind((a.local_ip, a.rtp_port))
        msock.setblocking(False)
        host = a.url.split("://", 1)[1].split("/", 1)[0]
        ruri = f"sip:{a.to_user}@{host};transport=ws"
        await ua.send(ua.request("INVITE", ruri, 1, sdp_offer(a.local_ip, a.rtp_port)))
        answer = None
        deadline = time.monotonic() + a.timeout
        while answer is None:
            m = await ua.next_msg(max(0.1, deadline - time.monotonic()))
            first, hs, body = headers(m)
            if not first.startswith("SIP/2.0 "):
                continue
            status = int(first.split()[1])
            if status < 200:
                continue
            if status >= 300:
                # ACK for a failure is hop by hop; the test reports the status.
                out(event="error", what=f"INVITE answered {first}")
                return 1
            answer = (hs, body)
        hs, body = answer
        ua.to_hdr = header(hs, "to", "t")
        ua.target = uri_of(header(hs, "contact", "m"))
        ua.routes = list(reversed(all_headers(hs, "record-route")))
        await ua.send(ua.request("ACK", ua.target, 1))
        out(event="established")
        ip, port = media_of(body)
        stop = asyncio.Event()

        async def watch():
            # The far side (or Kamailio) may end the call while media flows.
            while True:
                m = await ua.inbox.get()
                first, _, _ = headers(m)
                if not first.startswith("SIP/2.0"):
                    if await ua.handle_request(m) == "BYE":
                        ua.ended_by = "them"
                        stop.set()
                        return

        watcher = asyncio.create_task(watch())
        wait = a.seconds if a.hangup == "us" else a.timeout
        sent, received, sources = await rtp(msock, (ip, port), wait, stop)
        out(event="rtp", sent=sent, received=received, **{"from": sources})
        if a.hangup == "us":
            watcher.cancel()
            ua.cseq += 1
            await ua.send(ua.request("BYE", ua.target, ua.cseq))
            deadline = time.monotonic() + a.timeout
            while True:
                m = await ua.next_msg(max(0.1, deadline - time.monotonic()))
                first, hs, _ = headers(m)
                if first.startswith("SIP/2.0") and "BYE" in (header(hs, "cseq") or ""):
                    if not first.startswith("SIP/2.0 200"):
                        out(event="error", what=f"BYE answered {first}")
                        return 1
                    break
            out(event="ended", by="us")
        else:
            try:
                await asyncio.wait_for(watcher, 1)
            except asyncio.TimeoutError:
                pass
            if ua.ended_by != "them":
                out(event="error", what=f"no BYE within {a.timeout} s")
                return 1
            out(event="ended", by="them")
        await asyncio.sleep(0.3)
        reader.cancel()
        return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--local-ip", required=True)
    p.add_argument("--rtp-port", type=int, required=True)
    p.add_argument("--from-user", required=True)
    p.add_argument("--to-user", required=True)
    p.add_argument("--contact-user", default="wsclient-" + rand(6))
    p.add_argument("--seconds", type=float, default=2.0, help="call length when we hang up")
    p.add_argument("--hangup", choices=["us", "them"], default="us")
    p.add_argument("--timeout", type=float, default=10.0)
    # Kamailio's dialog module sends its timeout BYEs to the caller, then
    # to the callee, and sends none to the callee if the caller's 200 was
    # already processed (kamailio issues 4169, 4268): on loopback an
    # instant answer can win that race, over a network the round trip
    # never does. The client answers a BYE after a round trip's time.
    p.add_argument("--bye-reply-delay", type=float, default=0.05)
    a = p.parse_args()
    try:
        rc = asyncio.run(call(a))
    except (asyncio.TimeoutError, OSError, websockets.WebSocketException) as e:
        out(event="error", what=f"{type(e).__name__}: {e}")
        rc = 1
    sys.exit(rc)


if __name__ == "__main__":
    main()
