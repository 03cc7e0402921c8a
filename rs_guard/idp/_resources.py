"""RFC 8707 resource indicators: validation, allow-list and the canonical audience value."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .._net import is_loopback_host
from ._errors import OAuthError
from ._util import safe_split


def _key(uri: str) -> tuple[str, str] | None:
    """Comparison key: scheme and host lower-cased, everything else as written."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return None
    authority, slash, tail = rest.partition("/")
    userinfo, at, hostport = authority.rpartition("@")
    host_part = hostport.lower() if at else authority.lower()
    prefix = (userinfo + at) if at else ""
    return scheme.lower(), prefix + host_part + slash + tail


def canonical(uri: str) -> str:
    """The resource with scheme and host lower-cased (what the token's aud carries)."""
    key = _key(uri)
    return uri if key is None else f"{key[0]}://{key[1]}"


def audiences(aud: object) -> list[str]:
    """A token's `aud` claim (one string or an array, RFC 7519 §4.1.3) as a list of strings."""
    values = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    return [v for v in values if isinstance(v, str)]


def validate_resource(uri: str, allowlist: Sequence[str] | None) -> str:
    """Check one `resource` value and return the audience string to put in the token."""
    parts = safe_split(uri)
    if parts is None or "#" in uri or any(c.isspace() for c in uri):
        raise OAuthError("invalid_target", "resource must be an absolute URI without fragment")
    scheme, host, _port, _path, _query, _frag = parts
    if not host or scheme not in ("https", "http"):
        raise OAuthError("invalid_target", "resource must be an absolute https URI")
    if scheme == "http" and not is_loopback_host(host):
        raise OAuthError("invalid_target", "http resources are only accepted on loopback hosts")
    return canonical(uri) if allowlist is None else allowed_spelling(uri, allowlist)


def allowed_spelling(uri: str, allowlist: Sequence[str]) -> str:
    """The allow-list's entry naming `uri` (compared as resources are), or invalid_target."""
    wanted = _key(uri) or (uri, "")
    for allowed in allowlist:
        if (_key(allowed) or (allowed, "")) == wanted:
            return allowed
    raise OAuthError("invalid_target", "resource is not served by this authorization server")


def validate_resources(uris: Iterable[str], allowlist: Sequence[str] | None) -> list[str]:
    """Validate every `resource` parameter, keeping order and dropping duplicates."""
    out: list[str] = []
    for uri in uris:
        aud = validate_resource(uri, allowlist)
        if aud not in out:
            out.append(aud)
    return out
