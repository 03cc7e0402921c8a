"""RFC 9728 Protected Resource Metadata: the document, its well-known URL, and an endpoint."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import jwt
from starlette.types import Receive, Scope, Send

from ._asgi import send_response
from ._json import dumps
from ._net import is_loopback_host
from .errors import ConfigurationError

__all__ = [
    "WELL_KNOWN",
    "ProtectedResourceMetadata",
    "metadata_path",
    "metadata_routes",
    "metadata_url",
]

WELL_KNOWN = "/.well-known/oauth-protected-resource"
_NEVER_ADVERTISED = frozenset({"offline_access"})


def _check_resource_identifier(resource: str) -> None:
    """Refuse resource identifiers RFC 9728 §1.2 / RFC 8707 §2 do not allow.

    An https URL without fragment; http only on loopback (local development and tests). A
    query component is refused too: RFC 8707 advises against it and it would have to be
    repeated after the well-known path.
    """
    parts = urlsplit(resource)
    if not parts.netloc or not parts.hostname or "@" in parts.netloc:
        raise ConfigurationError(f"resource must be an absolute https URL: {resource!r}")
    if parts.scheme != "https" and not (
        parts.scheme == "http" and is_loopback_host(parts.hostname)
    ):
        raise ConfigurationError(f"resource must use https (http only on loopback): {resource!r}")
    if parts.fragment or "#" in resource:
        raise ConfigurationError("resource must not contain a fragment")
    if parts.query or "?" in resource:
        raise ConfigurationError("resource must not contain a query component")
    if any(c.isspace() or ord(c) < 0x21 or c in '"\\' for c in resource):
        raise ConfigurationError("resource must not contain spaces, quotes or control characters")


def metadata_path(resource: str) -> str:
    """The well-known path for `resource`: inserted between host and path (RFC 9728 §3.1)."""
    path = urlsplit(resource).path
    # A terminating slash right after the host is removed first; one after a path is kept.
    if path == "/":
        path = ""
    return WELL_KNOWN + path


def metadata_url(resource: str) -> str:
    """The absolute URL of the metadata of `resource`, built from configuration only."""
    parts = urlsplit(resource)
    return f"{parts.scheme}://{parts.netloc}{metadata_path(resource)}"


class ProtectedResourceMetadata:
    """The metadata of one protected resource, rendered once and served as it is."""

    def __init__(
        self,
        resource: str,
        authorization_servers: Sequence[str],
        *,
        scopes_supported: Sequence[str] | None = None,
        bearer_methods_supported: Sequence[str] = ("header",),
        resource_documentation: str | None = None,
        resource_name: str | None = None,
        jwks_uri: str | None = None,
        extra: Mapping[str, Any] | None = None,
        signing_key: Any = None,
        signing_alg: str | None = None,
        signing_kid: str | None = None,
        signed_metadata_issuer: str | None = None,
    ) -> None:
        _check_resource_identifier(resource)
        if not authorization_servers:
            raise ConfigurationError("at least one authorization server is required")
        for server in authorization_servers:
            parts = urlsplit(server)
            if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment:
                raise ConfigurationError(f"authorization server must be an issuer URL: {server!r}")
        self.resource = resource
        self.path = metadata_path(resource)
        self.url = metadata_url(resource)
        doc: dict[str, Any] = {
            "resource": resource,
            "authorization_servers": list(authorization_servers),
            "bearer_methods_supported": list(bearer_methods_supported),
        }
        if scopes_supported is not None:
            doc["scopes_supported"] = [s for s in scopes_supported if s not in _NEVER_ADVERTISED]
        if resource_documentation is not None:
            doc["resource_documentation"] = resource_documentation
        if resource_name is not None:
            doc["resource_name"] = resource_name
        if jwks_uri is not None:
            doc["jwks_uri"] = jwks_uri
        if extra:
            clash = set(extra) & {*doc, "scopes_supported", "signed_metadata", "jwks_uri"}
            if clash:
                raise ConfigurationError(f"set {sorted(clash)} through their own arguments")
            doc.update(extra)
        if signing_key is not None:
            if signing_alg is None:
                raise ConfigurationError("signing_alg is required with a metadata signing key")
            # RFC 9728 §2.2: a JWT of the metadata values, with an `iss` naming the attester.
            claims = {**doc, "iss": signed_metadata_issuer or resource, "iat": int(time.time())}
            headers = {"kid": signing_kid} if signing_kid else None
            doc["signed_metadata"] = jwt.encode(
                claims, signing_key, algorithm=signing_alg, headers=headers
            )
        self.document = doc
        self.body = dumps(doc)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the document (an ASGI app for the well-known path)."""
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD", "OPTIONS"):
            await send_response(send, 405, b"", [(b"allow", b"GET, HEAD, OPTIONS")])
            return
        headers = [
            (b"content-type", b"application/json"),
            (b"cache-control", b"public, max-age=3600"),
            # Browser-based MCP clients read this cross-origin; it holds nothing secret.
            (b"access-control-allow-origin", b"*"),
        ]
        if method == "OPTIONS":
            headers.append((b"access-control-allow-methods", b"GET, HEAD, OPTIONS"))
            headers.append((b"access-control-allow-headers", b"*"))
            await send_response(send, 204, b"", headers)
            return
        await send_response(
            send,
            200,
            b"" if method == "HEAD" else self.body,
            headers,
            content_length=len(self.body),
        )


def metadata_routes(*documents: ProtectedResourceMetadata) -> list[Any]:
    """Starlette routes serving several resources' documents (one per mounted resource)."""
    from starlette.routing import Route

    # Routes match the percent-decoded path; the document keeps the encoded one (RFC 9728 §3.1).
    return [Route(unquote(doc.path), doc, methods=["GET", "HEAD", "OPTIONS"]) for doc in documents]
