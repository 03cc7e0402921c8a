"""Host and address checks (loopback, non-public ranges) shared by the core and the IdP."""

from __future__ import annotations

import ipaddress
import re
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# One DNS label (RFC 1123 §2.1 letters, digits, hyphens; "_" too, as resolvers accept it).
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


def is_valid_host(host: str) -> bool:
    """True for an IP literal or a DNS name every layer below can encode and resolve.

    A URL parser takes hosts that later break the connection layer (a NUL byte, an A-label
    that is no Punycode, "--" in a label's 3rd and 4th place, a label over 63 octets), and
    those surface as errors no caller expects. `host` is the ASCII form (IDNA applied), as
    `httpx.URL(...).raw_host` gives it; anything else is refused here, up front.
    """
    if ip_literal(host) is not None and (":" in host or host.replace(".", "").isdigit()):
        return True
    name = host.lower()
    name = name[:-1] if name.endswith(".") else name
    if not name or len(name) > 253 or not name.isascii():
        return False
    for label in name.split("."):
        if not _LABEL.fullmatch(label):
            return False
        if label[2:4] == "--":
            if not label.startswith("xn--"):
                return False
            try:
                decoded = label[4:].encode("ascii").decode("punycode")
                decoded.encode("idna")
            except UnicodeError:
                return False
    return True


def _name(host: str) -> str:
    return host.strip("[]").lower().rstrip(".")


def ip_literal(host: str) -> IPAddress | None:
    """The address a host written as an IP literal names, or None for a DNS name.

    Brackets and a trailing dot are allowed. Besides the standard forms, the IPv4 spellings
    that resolvers also read (inet_aton: 127.1, 0x7f000001, 2130706433, 0177.0.0.1) count,
    because that is how a URL using them would be resolved.
    """
    name = _name(host)
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        pass
    if not name or not all(c.isascii() and (c.isalnum() or c == ".") for c in name):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(name))
    except OSError:
        return None


def is_loopback_ip(host: str) -> bool:
    """True for 127.0.0.0/8 and ::1 in their standard spellings (RFC 8252 §7.3 redirect URIs).

    Deliberately strict: only the canonical literal forms, never inet_aton spellings or
    IPv4-mapped IPv6 (whose `is_loopback` differs between Python versions).
    """
    try:
        addr = ipaddress.ip_address(host.strip("[]").lower())
    except ValueError:
        return False
    return addr.is_loopback and not (isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped)


def is_loopback_host(host: str) -> bool:
    """True for "localhost", *.localhost (RFC 6761) and loopback IP literals (`is_loopback_ip`).

    Used to allow plain http for local development only, so it stays strict.
    """
    name = host.strip("[]").lower()
    return name == "localhost" or name.endswith(".localhost") or is_loopback_ip(name)


def is_non_public_address(host: str) -> bool:
    """True when the host names a loopback, private, link-local, shared, reserved or otherwise
    non-global address (any spelling `ip_literal` reads, IPv4-mapped included), or localhost.

    For refusing server-side fetches of URLs a client supplied (SSRF). This sees the URL only:
    a DNS name is judged when it is resolved, by `is_non_public_ip` at connect time
    (`rs_guard._http.PublicAddressTransport`).
    """
    name = _name(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True  # "localhost." and RFC 6761 *.localhost resolve to loopback too
    addr = ip_literal(name)
    return addr is not None and is_non_public_ip(addr)


# RFC 6052 §2.1: the well-known NAT64 prefix carries an IPv4 address in its last 32 bits, which
# the translator then reaches; RFC 8215's local-use prefix can lead anywhere inside the network.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


def is_non_public_ip(addr: IPAddress) -> bool:
    """True for an address a server must not fetch from on a stranger's say-so: loopback,
    private, link-local, shared (100.64/10), reserved, multicast, unspecified, and IPv6 forms
    that lead to such an IPv4 address (IPv4-mapped, NAT64, 6to4)."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr in _NAT64_LOCAL:
            return True
        embedded = addr.ipv4_mapped or addr.sixtofour
        if embedded is None and addr in _NAT64:
            embedded = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        if embedded is not None:
            addr = embedded
    return (
        not addr.is_global  # also 100.64.0.0/10 (shared address space) and the like
        or addr.is_private
        or addr.is_loopback
        or addr.is_link_local
        or addr.is_reserved
        or addr.is_multicast
        or addr.is_unspecified
    )
