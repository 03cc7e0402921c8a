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
    """(scheme, host, port, path, query, fragment) or None when the URI cannot be parsed.

    Control characters anywhere, and an http(s) host no resolver could take (see
    `is_valid_host`), count as unparsable: such a URL must be refused where it enters, not
    fail later inside the HTTP stack.
    """
    if any(c < "\x21" or c == "\x7f" for c in uri):
        return None
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if host and scheme in ("http", "https") and ascii_host(uri) is None:
        return None
    return scheme, host, port, parts.path, parts.query, parts.fragment


def ascii_host(url: str) -> str | None:
    """The host of an http(s) URL in the ASCII form a connection uses, or None when it has
    no host every layer can encode and resolve."""
    import httpx  # loaded with the IdP already; imported here to keep this module light

    from .._net import is_valid_host

    try:
        host = httpx.URL(url).raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError):
        return None
    return host if host and is_valid_host(host.strip("[]")) else None
