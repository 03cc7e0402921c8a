"""Small encodings shared by the IdP's services: random handles, storage keys, URI parts."""

from __future__ import annotations

import base64
import hashlib
import secrets
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


def safe_split(uri: str) -> tuple[str, str, int | None, str, str, str] | None:
    """(scheme, host, port, path, query, fragment) or None when the URI cannot be parsed."""
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return None
    return parts.scheme.lower(), host, port, parts.path, parts.query, parts.fragment
