"""Where a SIP message carries an address it must not (make attack).

One job: given the raw bytes a socket of the harness received and the
addresses the receiver must never learn, list every line that carries one.
Used on every message any socket of the harness receives (peers of both
sides, the third-address trap, helper sockets), whether a flow waits for it
or not.

What counts, and why:
- the request line of a request, whole: a SIP-Version followed by junk
  (`SIP/2.0127.0.0.2:5060`) is the sender's own bytes passed through, and a
  Request-URI naming the other side is a leak too; of a reply's status
  line only the SIP-Version (its reason phrase is free text, like a
  Subject);
- every Via, Record-Route, Route and Contact header (any letter case, long
  or compact name `v:` / `m:`), continuation lines included;
- every header line without a colon: a receiver that cannot parse it may
  still read it, and it is where a half-spliced or broken topology header
  ends up.
Lines end at LF (a CR before it is dropped), as Kamailio reads them; a
header spliced into another one with CRLF or LF (`\\r\\nRoute: <...>` in the
middle of a From value) is therefore a header of its own here.
"""

HIDDEN = {b"via", b"record-route", b"route", b"contact"}
COMPACT = {b"v": b"via", b"m": b"contact", b"i": b"call-id", b"f": b"from",
           b"t": b"to", b"l": b"content-length", b"s": b"subject"}


def head_of(raw):
    """The start line and headers: up to the first empty line (CRLF or LF)."""
    raw = raw.lstrip(b"\r\n")
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    return raw[:min(ends)] if ends else raw


def scan(raw, secrets):
    """[(where, secret, line)] for every line of raw's head that carries
    one of secrets (bytes, compared case-insensitively): `where` is the
    header's name as sent, "request line" or "line without a colon"."""
    lines = head_of(raw).split(b"\n")
    low_secrets = [s.lower() for s in secrets]
    hits = []

    def check(where, line):
        low = line.lower()
        for s in low_secrets:
            if s in low:
                hits.append((where, s.decode("latin-1"), line))

    first = lines[0].rstrip(b"\r")
    if not first.upper().startswith(b"SIP/"):
        check("request line", first)
    else:
        check("status line SIP-Version", first.split(b" ", 1)[0])
    current = None  # (name as sent, long lower-case name) of the header a folded line continues
    for line in lines[1:]:
        line = line.rstrip(b"\r")
        if line[:1] in (b" ", b"\t"):
            if current and current[1] in HIDDEN:
                check(current[0] + " (folded line)", line)
            continue
        if b":" not in line:
            current = None
            if line.strip():
                check("line without a colon", line)
            continue
        sent = line.split(b":", 1)[0].strip()
        name = sent.lower()
        name = COMPACT.get(name, name)
        current = (sent.decode("latin-1", "replace"), name)
        if name in HIDDEN:
            check(current[0], line)
    return hits
