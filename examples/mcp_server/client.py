"""An MCP client (official `mcp` SDK, `OAuthClientProvider`) that can answer every challenge.

The SDK's OAuth provider handles 401 (discovery, registration, code + PKCE with `resource`,
RFC 9207 `iss`) and 403 `insufficient_scope` (re-authorization with the union of scopes). It does
not know RFC 9470: a 401 `insufficient_user_authentication` is treated as "no token", so it
would re-authorize without `acr_values` / `max_age` / `claims` and with every scope the resource
advertises. `StepUp` fills that gap from outside the SDK:

- an httpx2 response hook notices an RFC 9470 challenge from the MCP server;
- the redirect handler (which receives the authorization URL the SDK built) adds the challenge's
  `acr_values` / `max_age` / `claims` and asks again for the scope the current token already
  has, instead of the SDK's fallback to everything in `scopes_supported`.

`ScriptedBrowser` plays the user's browser for tests and the demo: it GETs the authorization URL
at the IdP (whose user is scripted with `idp.login_as`), reads the redirect back to the client's
loopback redirect URI and hands `code`, `state` and `iss` to the SDK.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import httpx2
from mcp.client import Client
from mcp.client.auth import OAuthClientProvider, OAuthFlowError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

from rs_guard.challenge import authorization_params, parse_bearer_challenge

REDIRECT_URI = "http://127.0.0.1:33418/callback"


class MemoryStorage:
    """The SDK's TokenStorage, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class StepUp:
    """Remembers the last RFC 9470 challenge and amends the next authorization request."""

    def __init__(self, server_url: str, storage: MemoryStorage) -> None:
        self._origin = urlsplit(server_url)[:2]
        self._storage = storage
        self.pending: dict[str, str] | None = None
        self.challenges: list[tuple[int, str]] = []

    async def on_response(self, response: httpx2.Response) -> None:
        """httpx2 response hook: record challenges from the MCP server."""
        if urlsplit(str(response.request.url))[:2] != self._origin:
            return
        header = response.headers.get("www-authenticate")
        if response.status_code not in (401, 403) or header is None:
            return
        self.challenges.append((response.status_code, header))
        params = parse_bearer_challenge(header) or {}
        if params.get("error") == "insufficient_user_authentication":
            self.pending = authorization_params(params)

    def amend(self, url: str) -> str:
        """The authorization URL with the pending step-up parameters, if any."""
        if self.pending is None:
            return url
        extra, self.pending = self.pending, None
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        granted = self._storage.tokens.scope if self._storage.tokens else None
        wanted = extra.pop("scope", "")
        if granted or wanted:
            # Same operation, same scopes: only the authentication event must change.
            query["scope"] = " ".join(dict.fromkeys([*(granted or "").split(), *wanted.split()]))
        query.update(extra)
        return urlunsplit(parts._replace(query=urlencode(query)))


class ScriptedBrowser:
    """Follows the authorization URL at the IdP and captures the redirect back (no real browser)."""

    def __init__(self, http: httpx.AsyncClient | None = None) -> None:
        self.http = http
        self.step_up: StepUp | None = None
        self.provider: OAuthClientProvider | None = None
        self.authorization_urls: list[str] = []
        self.registrations: list[str] = []
        self._result: AuthorizationCodeResult | None = None

    async def redirect(self, url: str) -> None:
        """The SDK's redirect_handler."""
        if self.step_up is not None:
            url = self.step_up.amend(url)
        if self.http is None:  # one client for the whole session (TLS setup is not free)
            self.http = httpx.AsyncClient(timeout=10.0, trust_env=False)
        url = await self._widen_registration(self.http, url)
        self.authorization_urls.append(url)
        response = await self.http.get(url, follow_redirects=False)
        location = response.headers.get("location")
        if response.status_code not in (302, 303) or location is None:
            raise OAuthFlowError(f"the IdP did not redirect back (HTTP {response.status_code})")
        back = dict(parse_qsl(urlsplit(location).query))
        if "error" in back:
            raise OAuthFlowError(
                f"authorization refused: {back['error']} ({back.get('error_description', '')})"
            )
        self._result = AuthorizationCodeResult(
            code=back["code"], state=back.get("state"), iss=back.get("iss")
        )

    async def _widen_registration(self, http: httpx.AsyncClient, url: str) -> str:
        """Register again when the SDK asks for scopes its DCR registration did not include.

        The SDK registers (RFC 7591) with the scope of the first challenge and never updates
        the registration; an authorization server that holds clients to their registered
        scope then refuses every later insufficient_scope re-authorization. Registering the
        union of scopes (a new client_id) lets the step-up go through.
        """
        context = self.provider.context if self.provider is not None else None
        if context is None or context.client_info is None or context.oauth_metadata is None:
            return url
        info = context.client_info
        endpoint = context.oauth_metadata.registration_endpoint
        if info.client_id == context.client_metadata_url or not info.scope or endpoint is None:
            return url  # a metadata-document client, or one registered without a scope limit
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        wanted = query.get("scope", "").split()
        registered = info.scope.split()
        if set(wanted) <= set(registered):
            return url
        metadata = context.client_metadata.model_copy(
            update={"scope": " ".join(dict.fromkeys([*registered, *wanted]))}
        )
        response = await http.post(
            str(endpoint), json=metadata.model_dump(by_alias=True, mode="json", exclude_none=True)
        )
        if response.status_code not in (200, 201):
            raise OAuthFlowError(f"re-registration failed (HTTP {response.status_code})")
        body = {k: v for k, v in response.json().items() if k != "issuer"}
        fresh = OAuthClientInformationFull.model_validate(body)
        fresh.issuer = info.issuer
        context.client_info = fresh
        await context.storage.set_client_info(fresh)
        self.registrations.append(fresh.client_id)
        query["client_id"] = fresh.client_id
        return urlunsplit(parts._replace(query=urlencode(query)))

    async def callback(self) -> AuthorizationCodeResult:
        """The SDK's callback_handler."""
        result, self._result = self._result, None
        if result is None:
            raise OAuthFlowError("no authorization response")
        return result


def client_metadata(client_name: str = "rs_guard MCP example client") -> OAuthClientMetadata:
    """The client's registration metadata (also what its metadata document serves)."""
    return OAuthClientMetadata(
        redirect_uris=[REDIRECT_URI],  # type: ignore[list-item]
        client_name=client_name,
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )


@asynccontextmanager
async def connect(
    server_url: str,
    *,
    storage: MemoryStorage | None = None,
    browser: ScriptedBrowser | None = None,
    client_metadata_url: str | None = None,
    mode: str = "auto",
) -> AsyncIterator[tuple[Client, ScriptedBrowser, StepUp]]:
    """An MCP `Client` for `server_url` whose HTTP client carries the SDK's OAuth provider."""
    storage = storage if storage is not None else MemoryStorage()
    step_up = StepUp(server_url, storage)
    browser = browser if browser is not None else ScriptedBrowser()
    provider = OAuthClientProvider(
        server_url,
        client_metadata(),
        storage,
        redirect_handler=browser.redirect,
        callback_handler=browser.callback,
        client_metadata_url=client_metadata_url,
    )
    browser.step_up, browser.provider = step_up, provider
    try:
        async with httpx2.AsyncClient(
            auth=provider,
            timeout=httpx2.Timeout(30.0),
            trust_env=False,  # loopback only: never through a proxy from the environment
            event_hooks={"response": [step_up.on_response]},
        ) as http:
            transport = streamable_http_client(server_url, http_client=http)
            async with Client(transport, mode=mode) as client:
                yield client, browser, step_up
    finally:
        if browser.http is not None:
            await browser.http.aclose()


async def run(print_step: Callable[[str], Any] = print) -> dict[str, Any]:
    """The walk-through of `demo.py` (kept here too: `make demo` looks for it in this module)."""
    from .demo import run as walk  # imported late: demo.py imports this module

    return await walk(print_step)
