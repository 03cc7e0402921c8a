"""Small encodings shared by the IdP's services: random handles, storage keys, URI parts."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def random_token(nbytes: int = 32) -> str:
    """A URL-safe random string with `nbytes` bytes of entropy."""
    return secrets.token_urlsafe(nbytes)


def token_hash(token: str) -> str:
    """The key under which a token or secret is stored (never the token itself)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def split_scope(scope: str | Iterable[str] | None) -> list[str]:
    """Scope as an ordered list without duplicates (RFC 6749 §3.3)."""
    if scope is None:
        return []
    items = scope.split(" ") if isinstance(scope, str) else list(scope)
    seen: dict[str, None] = {}
    for item in items:
        if item:
            seen.setdefault(item, None)
    return list(seen)


def is_loopback_ip_literal(host: str) -> bool:
    """True for 127.0.0.0/8 and ::1 written as IP literals (RFC 8252 §7.3)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def safe_split(uri: str) -> tuple[str, str, int | None, str, str, str] | None:
    """(scheme, host, port, path, query, fragment) or None when the URI cannot be parsed."""
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return None
    return parts.scheme.lower(), host, port, parts.path, parts.query, parts.fragment
