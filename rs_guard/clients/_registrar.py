"""The authorization server side: discovery, RFC 7591 registration and RFC 7592 management."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import httpx

from ._model import ServerSpec
from ._validate import SERVER_ISSUED as ISSUED
from ._validate import check_web_url
from .errors import (
    AccessTokenRejected,
    DiscoveryError,
    InitialAccessTokenError,
    RegistrationError,
    RegistrationRefused,
)

MAX_ANSWER_BYTES = 1024 * 1024
VSCHARS = re.compile(r"[\x20-\x7e]{1,2048}")


@dataclass(frozen=True)
class Registration:
    """The server's client information response (RFC 7591 §3.2.1, RFC 7592 §3)."""

    client_id: str
    metadata: dict[str, Any]
    registration_access_token: str | None = field(repr=False)
    registration_client_uri: str | None
    client_secret: str | None = field(repr=False)
    client_secret_expires_at: int | None = None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate member {key!r}")
        out[key] = value
    return out


def _constant(value: str) -> Any:
    raise ValueError(f"{value} is not JSON")


class Registrar:
    """Talks to one authorization server for `rs_guard.clients` (an async context manager).

    `http_client` is used as given (and not closed); otherwise one is made, without redirects
    (a registration access token must not follow a redirect elsewhere), and closed on exit.
    """

    def __init__(
        self,
        server: ServerSpec,
        *,
        initial_access_token: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.server = server
        self._initial_access_token = initial_access_token
        self._http = http_client or httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._owns_http = http_client is None
        self._endpoint = server.registration_endpoint

    def __repr__(self) -> str:
        return f"Registrar(issuer={self.server.issuer!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    @property
    def has_initial_access_token(self) -> bool:
        return self._initial_access_token is not None

    # ----- discovery ------------------------------------------------------------------------

    async def registration_endpoint(self) -> str:
        """The registration endpoint: from the file, else from discovery (OIDC, RFC 8414)."""
        if self._endpoint is None:
            self._endpoint = await self._discover()
        return self._endpoint

    async def _discover(self) -> str:
        issuer = self.server.issuer
        parts = urlsplit(issuer)
        origin = f"{parts.scheme}://{parts.netloc}"
        candidates = (
            f"{issuer}/.well-known/openid-configuration",
            f"{origin}/.well-known/oauth-authorization-server{parts.path}",
        )
        for url in candidates:
            status, doc = await self._send("GET", url, what="discovery")
            if status == 404:
                continue
            if status != 200 or not isinstance(doc, dict):
                raise DiscoveryError(f"discovery at {url} answered HTTP {status}", status=status)
            if doc.get("issuer") != issuer:
                raise DiscoveryError(
                    f"discovery at {url} names the issuer {doc.get('issuer')!r}, not {issuer!r}"
                )
            endpoint = doc.get("registration_endpoint")
            if not isinstance(endpoint, str):
                raise DiscoveryError(
                    f"{issuer} has no registration_endpoint in its metadata: it does not offer "
                    "Dynamic Client Registration (RFC 7591), or not to this tool"
                )
            why = check_web_url(endpoint)
            if why is not None:
                raise DiscoveryError(f"registration_endpoint {endpoint!r}: {why}")
            return endpoint
        raise DiscoveryError(f"no discovery document for {issuer} (tried {', '.join(candidates)})")

    # ----- RFC 7591 / RFC 7592 --------------------------------------------------------------

    async def create(self, name: str, metadata: dict[str, Any]) -> Registration:
        """RFC 7591 §3.1: POST the metadata, with the initial access token when there is one."""
        endpoint = await self.registration_endpoint()
        status, doc = await self._send(
            "POST", endpoint, token=self._initial_access_token, body=metadata, what=name
        )
        if status in (401, 403):
            given = "was refused" if self._initial_access_token else "is required"
            raise InitialAccessTokenError(
                f'client "{name}": registration answered HTTP {status}: an initial access token '
                f"{given} (RFC 7591 §3); set the environment variable named by "
                "server.initial_access_token_env (or --initial-access-token-env)",
                client=name,
                status=status,
            )
        self._check_error(name, "registration", status, doc, ok=(200, 201))
        return self._registration(name, doc, endpoint)

    async def read(self, name: str, uri: str, token: str) -> Registration:
        """RFC 7592 §2.1: GET the client's current registration."""
        status, doc = await self._send("GET", uri, token=token, what=name)
        self._check_managed(name, "read", status)
        self._check_error(name, "read", status, doc, ok=(200,))
        return self._registration(name, doc, uri)

    async def update(
        self, name: str, uri: str, token: str, client_id: str, metadata: dict[str, Any]
    ) -> Registration:
        """RFC 7592 §2.2: PUT the full metadata. The body carries client_id and none of
        registration_access_token, registration_client_uri, client_id_issued_at and
        client_secret_expires_at; client_secret is left out (it MAY be sent, but this tool
        never holds it), and every member the file no longer declares is thus deleted."""
        body = {k: v for k, v in metadata.items() if k not in ISSUED}
        body["client_id"] = client_id
        status, doc = await self._send("PUT", uri, token=token, body=body, what=name)
        self._check_managed(name, "update", status)
        self._check_error(name, "update", status, doc, ok=(200,))
        return self._registration(name, doc, uri)

    async def delete(self, name: str, uri: str, token: str) -> bool:
        """RFC 7592 §2.3: DELETE; False when the server says the client is already gone."""
        status, doc = await self._send("DELETE", uri, token=token, what=name)
        if status in (404, 410):
            return False
        self._check_managed(name, "delete", status)
        self._check_error(name, "delete", status, doc, ok=(200, 204))
        return True

    # ----- answers --------------------------------------------------------------------------

    def _check_managed(self, name: str, action: str, status: int) -> None:
        if status == 401:
            raise AccessTokenRejected(
                f'client "{name}": the server refused its registration access token (HTTP 401 '
                f"to the RFC 7592 {action}): the token was revoked or rotated elsewhere, or the "
                "client was deleted at the server",
                client=name,
                status=status,
            )
        if status == 405:
            raise RegistrationRefused(
                f'client "{name}": the server does not support the RFC 7592 {action} (HTTP 405)',
                client=name,
                status=status,
            )
        if status == 403:
            raise RegistrationRefused(
                f'client "{name}": the server does not allow this client to {action} its '
                "registration (HTTP 403, RFC 7592)",
                client=name,
                status=status,
            )

    def _check_error(
        self, name: str, action: str, status: int, doc: Any, *, ok: tuple[int, ...]
    ) -> None:
        if status in ok:
            return
        error = doc.get("error") if isinstance(doc, dict) else None
        description = doc.get("error_description") if isinstance(doc, dict) else None
        detail = _printable(error, 100) if isinstance(error, str) else f"HTTP {status}"
        if isinstance(description, str):
            detail += f": {_printable(description, 300)}"
        raise RegistrationRefused(
            f'client "{name}": the server refused the {action} (HTTP {status}): {detail}',
            client=name,
            status=status,
            error=error if isinstance(error, str) else None,
            error_description=description if isinstance(description, str) else None,
        )

    def _registration(self, name: str, doc: Any, sent_to: str) -> Registration:
        if not isinstance(doc, dict) or not isinstance(doc.get("client_id"), str):
            raise RegistrationError(f'client "{name}": the server answered without a client_id')
        if not VSCHARS.fullmatch(doc["client_id"]):  # RFC 6749 Appendix A.1
            raise RegistrationError(f'client "{name}": the server answered an invalid client_id')
        uri = doc.get("registration_client_uri")
        if uri is not None:
            if not isinstance(uri, str) or check_web_url(uri) is not None:
                raise RegistrationError(
                    f'client "{name}": the server gave an invalid registration URI'
                )
            # The registration access token will be sent there: only to the server itself.
            if _origin(uri) not in (_origin(sent_to), _origin(self.server.issuer)):
                raise RegistrationError(
                    f'client "{name}": the server gave a registration_client_uri on another '
                    f"origin ({_origin(uri)}); refusing to send its token there"
                )
        token, secret = doc.get("registration_access_token"), doc.get("client_secret")
        expires = doc.get("client_secret_expires_at")
        return Registration(
            client_id=doc["client_id"],
            metadata={k: v for k, v in doc.items() if k not in ISSUED},
            registration_access_token=token if isinstance(token, str) and token else None,
            registration_client_uri=uri,
            client_secret=secret if isinstance(secret, str) and secret else None,
            client_secret_expires_at=expires if isinstance(expires, int) else None,
        )

    async def _send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        token: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(body).encode("utf-8")
        try:
            # Never redirected, even by a caller's client: the token must reach this URL only.
            request = self._http.stream(
                method, url, headers=headers, content=content, follow_redirects=False
            )
            async with request as answer:
                data = bytearray()
                async for chunk in answer.aiter_bytes():
                    data += chunk
                    if len(data) > MAX_ANSWER_BYTES:
                        raise RegistrationError(f"{what}: the answer from {url} is too large")
                status = answer.status_code
        except httpx.HTTPError as exc:
            # The exception text names the URL at most; headers (the tokens) are never shown.
            raise RegistrationError(
                f"{what}: cannot reach {url}: {type(exc).__name__}: {exc}".rstrip(": ")
            ) from None
        if not data.strip():
            return status, None
        try:
            return status, json.loads(
                data, object_pairs_hook=_no_duplicates, parse_constant=_constant
            )
        except ValueError:
            if status < 300:
                raise RegistrationError(
                    f"{what}: {url} answered HTTP {status} without JSON"
                ) from None
            return status, None


def _printable(text: str, limit: int) -> str:
    """A server's words for a terminal: no control characters (no escape sequences), bounded."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"
