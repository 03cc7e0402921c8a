"""A strict WWW-Authenticate parser written from RFC 9110 §11 (independent of rs_guard's own).

    WWW-Authenticate = #challenge
    challenge     = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
    auth-param    = token BWS "=" BWS ( token / quoted-string )
    token68       = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
    qdtext        = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
    quoted-pair   = "\" ( HTAB / SP / VCHAR / obs-text )

Anything outside the grammar raises `Malformed`; a parameter repeated within one challenge is
an error too (RFC 9110 §11.2: "each parameter name MUST only occur once per challenge").
"""

from __future__ import annotations

from dataclasses import dataclass, field

TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
TOKEN68 = frozenset("-._~+/0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
WS = " \t"


class Malformed(ValueError):
    """The header value does not follow RFC 9110's grammar."""


@dataclass
class Challenge:
    """One challenge: its scheme (as sent), token68 if any, and its parameters."""

    scheme: str
    token68: str | None = None
    params: dict[str, str] = field(default_factory=dict)  # names lower-cased
    quoted: dict[str, bool] = field(default_factory=dict)  # was the value a quoted-string


class _Reader:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def done(self) -> bool:
        return self.i >= len(self.s)

    def ows(self) -> None:
        while self.peek() and self.peek() in WS:
            self.i += 1

    def token(self) -> str:
        start = self.i
        while self.peek() and self.peek() in TCHAR:
            self.i += 1
        if self.i == start:
            raise Malformed(f"token expected at {start}: {self.s!r}")
        return self.s[start : self.i]

    def quoted_string(self) -> str:
        if self.peek() != '"':
            raise Malformed(f"quoted-string expected at {self.i}")
        self.i += 1
        out: list[str] = []
        while True:
            c = self.peek()
            if not c:
                raise Malformed("unterminated quoted-string")
            self.i += 1
            if c == '"':
                return "".join(out)
            if c == "\\":
                n = self.peek()
                if not n or not (n in "\t " or 0x21 <= ord(n) <= 0x7E or ord(n) >= 0x80):
                    raise Malformed("bad quoted-pair")
                out.append(n)
                self.i += 1
                continue
            o = ord(c)
            if not (c in "\t " or o == 0x21 or 0x23 <= o <= 0x5B or 0x5D <= o <= 0x7E or o >= 0x80):
                raise Malformed(f"character {c!r} not allowed in a quoted-string")
            out.append(c)

    def looks_like_param(self) -> bool:
        """Lookahead: `token BWS "=" BWS` followed by something that is not "=" (a token68)."""
        j = self.i
        while j < len(self.s) and self.s[j] in TCHAR:
            j += 1
        if j == self.i:
            return False
        while j < len(self.s) and self.s[j] in WS:
            j += 1
        if j >= len(self.s) or self.s[j] != "=":
            return False
        j += 1
        while j < len(self.s) and self.s[j] in WS:
            j += 1
        return j < len(self.s) and self.s[j] != "=" and self.s[j] != ","


def parse(header: str) -> list[Challenge]:
    """Every challenge in a WWW-Authenticate field value; raises Malformed."""
    r = _Reader(header)
    out: list[Challenge] = []
    r.ows()
    while not r.done():
        if r.peek() == ",":  # empty list elements are allowed (RFC 9110 §5.6.1)
            r.i += 1
            r.ows()
            continue
        ch = Challenge(r.token())
        out.append(ch)
        if r.done():
            break
        if r.peek() == ",":
            continue
        if r.peek() != " ":
            raise Malformed(f"SP expected after the scheme at {r.i}")
        while r.peek() == " ":
            r.i += 1
        if r.done():
            break
        if not r.looks_like_param() and r.peek() not in ",":
            start = r.i
            while r.peek() and r.peek() in TOKEN68:
                r.i += 1
            if r.i == start:
                raise Malformed(f"token68 or auth-param expected at {start}")
            while r.peek() == "=":
                r.i += 1
            ch.token68 = header[start : r.i]
            r.ows()
            if not r.done() and r.peek() != ",":
                raise Malformed(f"junk after token68 at {r.i}")
            continue
        # #auth-param, then either the end, or "," followed by a param or a new challenge.
        while True:
            name = r.token().lower()
            r.ows()
            if r.peek() != "=":
                raise Malformed(f"'=' expected at {r.i}")
            r.i += 1
            r.ows()
            if r.peek() == '"':
                value, quoted = r.quoted_string(), True
            else:
                value, quoted = r.token(), False
            if name in ch.params:
                raise Malformed(f"parameter {name!r} repeated in one challenge")
            ch.params[name] = value
            ch.quoted[name] = quoted
            r.ows()
            if r.done():
                break
            if r.peek() != ",":
                raise Malformed(f"',' expected at {r.i}: {header[r.i :]!r}")
            while r.peek() == "," or (r.peek() and r.peek() in WS):
                r.i += 1
            if r.done() or not r.looks_like_param():
                break
    return out


def bearer(header: str) -> Challenge:
    """The single Bearer challenge of a header value (scheme compared case-insensitively)."""
    found = [c for c in parse(header) if c.scheme.lower() == "bearer"]
    if len(found) != 1:
        raise Malformed(f"expected one Bearer challenge in {header!r}")
    return found[0]
