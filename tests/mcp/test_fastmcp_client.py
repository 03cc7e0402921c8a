"""The fastmcp Python client (its `OAuth` provider) against the FastMCP example behind the guard.

Nothing mocked: uvicorn on loopback for the FastMCP notes server (examples/mcp_server/
fastmcp_server.py) behind ResourceGuard, the bundled IdP and a client metadata site over TLS.
fastmcp's `OAuth` is the official SDK's OAuth provider plus a browser and a callback server;
here its two user-facing hooks are the scripted browser of examples/mcp_server/client.py
(`redirect_handler` follows /authorize over HTTP, `callback_handler` hands back code, state and
`iss`), and an httpx2 response hook notes RFC 9470 challenges so the browser can add
`acr_values` / `claims` (the SDK ignores them).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx2
import jwt
import pytest
from fastmcp import Client
from fastmcp.client.auth import OAuth
from fastmcp.client.transports import StreamableHttpTransport
from key_value.aio.stores.memory import MemoryStore
from mcp.shared.auth import AuthorizationCodeResult, OAuthToken

from examples.mcp_server.client import ScriptedBrowser, StepUp

from .conftest import Stack, open_stack

pytestmark = [
    pytest.mark.anyio,
    # fastmcp warns about in-memory token storage even when it is given one on purpose.
    pytest.mark.filterwarnings("ignore:Using in-memory token storage"),
]


class TokenView:
    """What StepUp reads: the provider's current tokens."""

    def __init__(self, oauth: OAuth) -> None:
        self.oauth = oauth

    @property
    def tokens(self) -> OAuthToken | None:
        return self.oauth.context.current_tokens if self.oauth._bound else None


class ScriptedOAuth(OAuth):
    """fastmcp's OAuth with the browser and the callback server replaced by a script."""

    browser: ScriptedBrowser

    async def redirect_handler(self, authorization_url: str) -> None:
        await self.browser.redirect(authorization_url)

    async def callback_handler(self) -> AuthorizationCodeResult:
        return await self.browser.callback()


@asynccontextmanager
async def fastmcp_client(
    stack: Stack, *, cimd: bool
) -> AsyncIterator[tuple[Client[Any], ScriptedBrowser, StepUp]]:
    oauth = ScriptedOAuth(
        stack.resource,
        client_name="rs_guard fastmcp test client",
        token_storage=MemoryStore(),
        callback_host="127.0.0.1",
        callback_port=33418,  # the redirect URI of the client metadata document
        client_metadata_url=stack.cimd_url if cimd else None,
    )
    browser = ScriptedBrowser()
    step_up = StepUp(stack.resource, TokenView(oauth))  # type: ignore[arg-type]
    browser.step_up = step_up
    oauth.browser = browser

    def factory(**options: Any) -> httpx2.AsyncClient:
        options.setdefault("timeout", httpx2.Timeout(30.0))
        return httpx2.AsyncClient(
            **options, trust_env=False, event_hooks={"response": [step_up.on_response]}
        )

    transport = StreamableHttpTransport(stack.resource, auth=oauth, httpx_client_factory=factory)
    try:
        async with Client(transport) as client:
            yield client, browser, step_up
    finally:
        if browser.http is not None:
            await browser.http.aclose()


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


async def tokens_of(client: Client[Any]) -> str:
    auth = client.transport.auth  # type: ignore[attr-defined]
    current = auth.context.current_tokens
    return current.access_token if current is not None else ""


async def full_flow(stack: Stack, client: Client[Any]) -> list[str]:
    assert (await client.call_tool("list_notes", {})).data == []
    assert (await client.call_tool("add_note", {"text": "milk"})).data == "1 note(s)"
    stack.idp.login_as("alice", acr="mf")
    assert (await client.call_tool("delete_notes", {})).data == "deleted 1 note(s) (acr=mf)"
    assert (await client.call_tool("text_notes", {})).data == "texted 0 note(s)"
    return [await tokens_of(client)]


def check_flow(stack: Stack, browser: ScriptedBrowser, step_up: StepUp, client_id: str) -> None:
    assert [status for status, _ in step_up.challenges] == [401, 403, 401, 401]
    urls = [query(u) for u in browser.authorization_urls]
    assert len(urls) == 4
    for q in urls:
        assert q["client_id"] == client_id and q["resource"] == stack.resource
        assert q["code_challenge_method"] == "S256" and q["response_type"] == "code"
    assert "notes:write" in urls[1]["scope"].split()
    assert urls[2]["acr_values"] == "mf"
    assert "phone_number_verified" in urls[3]["claims"]
    paths = stack.idp_log.paths()
    assert "/.well-known/oauth-authorization-server" in paths
    assert "/.well-known/oauth-protected-resource/mcp" in stack.mcp_log.paths()


async def test_cimd_client_full_flow() -> None:
    async with open_stack(server="fastmcp") as stack:
        async with fastmcp_client(stack, cimd=True) as (client, browser, step_up):
            (token,) = await full_flow(stack, client)
        check_flow(stack, browser, step_up, stack.cimd_url)
        assert "/register" not in stack.idp_log.paths()
        found = claims(token)
        assert found["client_id"] == stack.cimd_url and found["aud"] == stack.resource
        assert found["acr"] == "mf" and found["phone_number_verified"] is True


async def test_dcr_client_connects_and_calls_a_tool() -> None:
    async with open_stack(server="fastmcp") as stack:
        async with fastmcp_client(stack, cimd=False) as (client, browser, step_up):
            assert (await client.call_tool("list_notes", {})).data == []
            token = await tokens_of(client)
        registered = [p for m, p in stack.idp_log.requests if (m, p) == ("POST", "/register")]
        assert len(registered) == 1
        (auth,) = [query(u) for u in browser.authorization_urls]
        assert claims(token)["client_id"] == auth["client_id"]
        assert stack.idp.clients[auth["client_id"]].scope is not None
        assert [status for status, _ in step_up.challenges] == [401]


async def test_dcr_client_scope_escalation_and_step_up() -> None:
    async with (
        open_stack(server="fastmcp") as stack,
        fastmcp_client(stack, cimd=False) as (client, _, _),
    ):
        await full_flow(stack, client)


async def test_expiry_refresh_and_retry() -> None:
    async with open_stack(
        server="fastmcp", idp_options={"access_token_lifetime": 2}, leeway=0
    ) as stack:
        async with fastmcp_client(stack, cimd=True) as (client, browser, step_up):
            assert (await client.call_tool("list_notes", {})).data == []
            first = await tokens_of(client)
            await asyncio.sleep(2.5)
            assert (await client.call_tool("list_notes", {})).data == []
            second = await tokens_of(client)
        assert first != second
        assert len(browser.authorization_urls) == 1  # refreshed, no user interaction
        token_posts = [p for m, p in stack.idp_log.requests if (m, p) == ("POST", "/token")]
        assert len(token_posts) == 2  # the code, then one refresh
        assert claims(second)["aud"] == stack.resource
