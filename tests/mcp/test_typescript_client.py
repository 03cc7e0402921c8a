"""The TypeScript MCP SDK's client (npm @modelcontextprotocol/sdk) against the example MCP server.

Nothing mocked: the SDK runs in Node 22 (`make node-deps`) and talks HTTP to uvicorn servers on
loopback: the example MCP server (official Python SDK) behind ResourceGuard, the bundled IdP
(the user scripted with `idp.login_as`), and a client metadata site over TLS. The driver script
(tests/interop/node/mcp_ts_client.mjs) implements the SDK's OAuth client provider in memory; its
redirect handler follows /authorize over HTTP and, being told RFC 9470 challenges, adds their
`acr_values` / `claims` (the SDK ignores them).

What users of the TypeScript SDK must know (docs/guides/mcp-sdk.md): the SDK answers a 403
`insufficient_scope` (and a 401 step-up challenge) with a refresh grant when it holds a refresh
token, which cannot widen the token, and then gives up ("Server returned 403 after trying
upscoping"). Register the client without the `refresh_token` grant, or drop the refresh token
when that error comes back, so that the SDK re-authorizes.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
import pytest

from .conftest import NO_REFRESH_PATH, Stack, open_stack
from .ts_client import TSClient, text_of, ts_client

pytestmark = pytest.mark.anyio
WELL_KNOWN = "/.well-known/oauth-protected-resource"


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def mcp_responses(stack: Stack, events: list[dict[str, Any]]) -> list[tuple[int, str | None]]:
    return [
        (e["status"], e["www_authenticate"])
        for e in events
        if e["url"] == stack.resource and e["status"] in (401, 403)
    ]


def authorizations(events: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [query(e["url"]) for e in events if e["method"] == "BROWSER"]


def token_requests(stack: Stack, events: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [e["form"] for e in events if e["url"] == f"{stack.issuer}/token"]


async def full_flow(stack: Stack, client: TSClient) -> dict[str, Any]:
    """Connect, read, escalate scope (403), step up (acr), claims; returns the client state."""
    assert (await client.send("connect"))["ok"]
    assert text_of(await client.call("list_notes")) == []
    assert text_of(await client.call("add_note", text="milk")) == "1 note(s)"
    stack.idp.login_as("alice", acr="mf")
    assert text_of(await client.call("delete_notes")) == "deleted 1 note(s) (acr=mf)"
    assert text_of(await client.call("text_notes")) == "texted 0 note(s)"
    return await client.state()


def check_full_flow(stack: Stack, state: dict[str, Any], client_id: str) -> None:
    events = state["events"]
    url = f"{stack.resource.removesuffix('/mcp')}{WELL_KNOWN}/mcp"
    challenges = mcp_responses(stack, events)
    # 401 (no token) -> 403 insufficient_scope -> 401 acr -> 401 claims, one each.
    assert [status for status, _ in challenges] == [401, 403, 401, 401]
    assert challenges[0][1] == f'Bearer scope="notes:read", resource_metadata="{url}"'
    assert 'error="insufficient_scope"' in (challenges[1][1] or "")
    assert 'acr_values="mf"' in (challenges[2][1] or "")
    assert "claims=" in (challenges[3][1] or "")
    # Discovery: the resource_metadata URL from the challenge, then the AS metadata.
    gets = [e["url"] for e in events if e["method"] == "GET"]
    assert url in gets
    assert f"{stack.issuer}/.well-known/oauth-authorization-server" in gets
    # Authorization requests: code + PKCE (S256) + RFC 8707 resource, byte for byte.
    auths = authorizations(events)
    assert len(auths) == 4
    for q in auths:
        assert q["response_type"] == "code" and q["client_id"] == client_id
        assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
        assert q["resource"] == stack.resource
    assert auths[0]["scope"] == "notes:read"
    assert auths[1]["scope"].split() == ["notes:read", "notes:write"]
    assert auths[2]["acr_values"] == "mf"
    assert json.loads(auths[3]["claims"]) == {
        "id_token": {"phone_number_verified": {"value": True}}
    }
    grants = token_requests(stack, events)
    assert [g["grant_type"] for g in grants] == ["authorization_code"] * 4
    for grant in grants:
        assert grant["resource"] == stack.resource and grant["code_verifier"]
    token = claims(state["tokens"]["access_token"])
    assert token["aud"] == stack.resource and token["client_id"] == client_id
    assert token["acr"] == "mf" and token["phone_number_verified"] is True


@pytest.mark.parametrize("server", ["sdk", "fastmcp"])
async def test_cimd_client_full_flow(server: str) -> None:
    """Client ID Metadata Document (registered without the refresh_token grant), against the
    official SDK's server and the FastMCP one."""
    async with open_stack(server=server) as stack:
        cimd = stack.extra["site"] + NO_REFRESH_PATH
        async with ts_client(stack.resource, client_metadata_url=cimd) as client:
            state = await full_flow(stack, client)
        check_full_flow(stack, state, cimd)
        assert "/register" not in stack.idp_log.paths()
        assert NO_REFRESH_PATH in stack.cimd_log.paths()  # the IdP fetched the document


async def test_dcr_client_connects_and_calls_a_tool() -> None:
    """Dynamic Client Registration: 401, discovery, registration, code + PKCE + resource."""
    async with open_stack() as stack, ts_client(stack.resource) as client:
        assert (await client.send("connect"))["ok"]
        assert text_of(await client.call("list_notes")) == []
        state = await client.state()
        events = state["events"]
        registrations = [e for e in events if e["url"] == f"{stack.issuer}/register"]
        assert [e["status"] for e in registrations] == [201]
        client_id = state["client_information"]["client_id"]
        # The SDK registers with the scope of the first challenge.
        assert stack.idp.clients[client_id].scope == "notes:read"
        (auth,) = authorizations(events)
        assert auth["client_id"] == client_id and auth["resource"] == stack.resource
        assert auth["code_challenge_method"] == "S256"
        assert claims(state["tokens"]["access_token"])["client_id"] == client_id
        assert stack.cimd_log.requests == []


async def test_dcr_client_scope_escalation_and_step_up() -> None:
    async with open_stack() as stack, ts_client(stack.resource) as client:
        state = await full_flow(stack, client)
        check_full_flow(stack, state, state["client_information"]["client_id"])


async def test_step_up_asks_only_for_the_scopes_the_tool_needs() -> None:
    supported = ["notes:read", "notes:write", "notes:share"]
    async with open_stack(scopes_supported=supported) as stack:
        cimd = stack.extra["site"] + NO_REFRESH_PATH
        async with ts_client(stack.resource, client_metadata_url=cimd) as client:
            assert (await client.send("connect"))["ok"]
            assert text_of(await client.call("add_note", text="milk")) == "1 note(s)"
            stack.idp.login_as("alice", acr="mf")
            assert text_of(await client.call("delete_notes")) == "deleted 1 note(s) (acr=mf)"
            state = await client.state()
        step_up = authorizations(state["events"])[-1]
        assert step_up["acr_values"] == "mf"
        assert "notes:share" not in step_up["scope"].split()


async def test_scope_and_step_up_together_in_one_accurate_round() -> None:
    async with open_stack() as stack:
        cimd = stack.extra["site"] + NO_REFRESH_PATH
        async with ts_client(stack.resource, client_metadata_url=cimd) as client:
            assert (await client.send("connect"))["ok"]
            stack.idp.login_as("alice", acr="mf")
            assert text_of(await client.call("delete_notes")) == "deleted 0 note(s) (acr=mf)"
            state = await client.state()
        (challenge,) = [h for status, h in mcp_responses(stack, state["events"])][1:]
        assert "multi-factor" not in (challenge or "") or "acr_values" in (challenge or "")
        _, again = authorizations(state["events"])
        assert again.get("acr_values") == "mf"
        assert "notes:write" in again["scope"].split()


async def test_refresh_token_holder_answers_403_with_a_refresh_grant() -> None:
    """The SDK's known behaviour, pinned: with a refresh token, a 403 insufficient_scope gets a
    refresh grant (which cannot add scope) and then an error, never a re-authorization.
    Dropping the refresh token (what an app can do on that error) gets it unstuck."""
    async with (
        open_stack() as stack,
        ts_client(
            stack.resource,
            client_metadata_url=stack.cimd_url,  # grant_types include refresh_token
            grant_types=("authorization_code", "refresh_token"),
        ) as client,
    ):
        assert (await client.send("connect"))["ok"]
        stuck = await client.call("add_note", text="milk")
        assert not stuck["ok"]
        assert "403 after trying upscoping" in stuck["error"]
        events = (await client.state())["events"]
        grants = [g["grant_type"] for g in token_requests(stack, events)]
        assert grants == ["authorization_code", "refresh_token"]
        assert len(authorizations(events)) == 1  # no re-authorization after the 403

        # The workaround: a successful request resets the SDK's loop guard; without a
        # refresh token the next 403 re-authorizes with the challenge's scope.
        assert text_of(await client.call("list_notes")) == []
        assert (await client.send("forget_refresh_token"))["ok"]
        assert text_of(await client.call("add_note", text="milk")) == "1 note(s)"
        events = (await client.state())["events"]
        (again,) = authorizations(events)
        assert again["scope"].split() == ["notes:read", "notes:write"]


async def test_expiry_refresh_and_retry() -> None:
    """An expired access token: 401 invalid_token, a refresh grant, the call retried."""
    async with open_stack(idp_options={"access_token_lifetime": 2}, leeway=0) as stack:
        async with ts_client(
            stack.resource,
            client_metadata_url=stack.cimd_url,
            grant_types=("authorization_code", "refresh_token"),
        ) as client:
            assert (await client.send("connect"))["ok"]
            assert text_of(await client.call("list_notes")) == []
            first = (await client.state())["tokens"]
            await asyncio.sleep(2.5)
            assert text_of(await client.call("list_notes")) == []
            state = await client.state()
        expired = mcp_responses(stack, state["events"])
        assert [status for status, _ in expired] == [401]
        assert 'error="invalid_token"' in (expired[0][1] or "")
        grants = token_requests(stack, state["events"])
        assert [g["grant_type"] for g in grants] == ["refresh_token"]
        assert grants[0]["resource"] == stack.resource
        assert authorizations(state["events"]) == []  # no user interaction
        assert state["tokens"]["access_token"] != first["access_token"]
        assert claims(state["tokens"]["access_token"])["aud"] == stack.resource


def test_claims_parameter_is_standard_base64() -> None:
    # The driver decodes rs_guard's `claims` with Node's base64 decoder (standard alphabet).
    raw = base64.b64encode(b'{"id_token":{}}').decode()
    assert base64.b64decode(raw) == b'{"id_token":{}}'
