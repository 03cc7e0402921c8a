"""The official `mcp` SDK client, with its OAuth provider, against the example MCP server.

Nothing in the path is mocked: the SDK's HTTP client talks to uvicorn servers on loopback (the
MCP server behind ResourceGuard, the bundled IdP, a client metadata site over TLS); the user at
the IdP is scripted with `idp.login_as`, and the redirect handler follows /authorize with httpx.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import jwt
import pytest
from mcp.shared.auth import OAuthToken, ProtectedResourceMetadata

from examples.mcp_server.client import MemoryStorage, connect
from rs_guard.challenge import parse_bearer_challenge

from .conftest import Stack

pytestmark = pytest.mark.anyio
WELL_KNOWN = "/.well-known/oauth-protected-resource"


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def metadata_url(stack: Stack) -> str:
    origin = stack.resource.removesuffix("/mcp")
    return f"{origin}{WELL_KNOWN}/mcp"


def text(result: Any) -> Any:
    assert not result.is_error, result
    return result.structured_content["result"]


async def run_flow(stack: Stack, *, mode: str, cimd: bool) -> dict[str, Any]:
    """Connect, read, escalate scope, step up; returns what the tests look at."""
    storage = MemoryStorage()
    async with connect(
        stack.resource,
        storage=storage,
        client_metadata_url=stack.cimd_url if cimd else None,
        mode=mode,
    ) as (client, browser, step_up):
        version = client.protocol_version
        assert text(await client.call_tool("list_notes", {})) == []
        first_token = storage.tokens.access_token if storage.tokens else ""
        assert text(await client.call_tool("add_note", {"text": "milk"})) == "1 note(s)"
        second_token = storage.tokens.access_token if storage.tokens else ""
        assert text(await client.call_tool("list_notes", {})) == ["milk"]
        # The user can do multi-factor when the IdP asks (RFC 9470 round trip).
        stack.idp.login_as("alice", acr="mf")
        assert text(await client.call_tool("delete_notes", {})) == "deleted 1 note(s) (acr=mf)"
        third_token = storage.tokens.access_token if storage.tokens else ""
        # The claims challenge: one authorization request verifies the phone number.
        assert text(await client.call_tool("text_notes", {})) == "texted 0 note(s)"
        fourth_token = storage.tokens.access_token if storage.tokens else ""
        return {
            "version": version,
            "urls": list(browser.authorization_urls),
            "registrations": list(browser.registrations),
            "challenges": list(step_up.challenges),
            "tokens": [first_token, second_token, third_token, fourth_token],
            "client_id": storage.client_info.client_id if storage.client_info else None,
        }


def check_challenges(stack: Stack, challenges: list[tuple[int, str]]) -> None:
    url = metadata_url(stack)
    assert [status for status, _ in challenges] == [401, 403, 401, 401]
    assert challenges[0][1] == f'Bearer scope="notes:read", resource_metadata="{url}"'
    assert challenges[1][1] == (
        'Bearer error="insufficient_scope", '
        'error_description="The access token does not grant the required scope", '
        f'scope="notes:read notes:write", resource_metadata="{url}"'
    )
    assert challenges[2][1] == (
        'Bearer error="insufficient_user_authentication", '
        'error_description="Deleting notes needs a multi-factor login", '
        f'scope="notes:read notes:write", acr_values="mf", resource_metadata="{url}"'
    )
    assert challenges[3][1] == (
        'Bearer error="insufficient_user_authentication", '
        'error_description="Texting notes needs a verified phone number", '
        'claims="eyJpZF90b2tlbiI6eyJwaG9uZV9udW1iZXJfdmVyaWZpZWQiOnsidmFsdWUiOnRydWV9fX0=", '
        f'resource_metadata="{url}"'
    )


def check_authorization_requests(stack: Stack, urls: list[str], client_id: str) -> None:
    assert len(urls) == 4
    first, second, third, fourth = (query(u) for u in urls)
    for q in (first, second, third, fourth):
        assert q["response_type"] == "code"
        assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
        assert q["resource"] == stack.resource  # RFC 8707, byte-identical to the metadata
        assert q["client_id"] == client_id
    assert first["scope"].split() == ["notes:read", "offline_access"]
    assert set(second["scope"].split()) == {"notes:read", "notes:write", "offline_access"}
    assert "acr_values" not in second
    assert third["acr_values"] == "mf"
    assert set(third["scope"].split()) == {"notes:read", "notes:write", "offline_access"}
    assert json.loads(fourth["claims"]) == {"id_token": {"phone_number_verified": {"value": True}}}
    assert "acr_values" not in fourth


def check_tokens(stack: Stack, tokens: list[str], client_id: str) -> None:
    first, second, third, fourth = (claims(t) for t in tokens)
    for c in (first, second, third, fourth):
        assert c["aud"] == stack.resource
        assert c["iss"] == stack.issuer
        assert c["client_id"] == client_id
    assert "notes:write" not in first["scope"].split()
    assert "notes:write" in second["scope"].split()
    assert [c["acr"] for c in (first, second, third, fourth)] == ["pwd", "pwd", "mf", "mf"]
    assert "phone_number_verified" not in third
    assert fourth["phone_number_verified"] is True


def check_discovery(stack: Stack) -> None:
    mcp_paths = stack.mcp_log.paths()
    assert f"{WELL_KNOWN}/mcp" in mcp_paths  # the resource_metadata URL from the challenge
    idp_paths = stack.idp_log.paths()
    assert "/.well-known/oauth-authorization-server" in idp_paths
    assert idp_paths.count("/authorize") == 4
    assert idp_paths.count("/token") == 4
    discovery = idp_paths.index("/.well-known/oauth-authorization-server")
    assert discovery < idp_paths.index("/authorize")


async def test_cimd_client_current_revision(stack: Stack) -> None:
    """2026-07-28: Client ID Metadata Document, no registration at all."""
    seen = await run_flow(stack, mode="auto", cimd=True)
    assert seen["version"] == "2026-07-28"
    assert seen["client_id"] == stack.cimd_url
    assert seen["registrations"] == []
    check_challenges(stack, seen["challenges"])
    check_authorization_requests(stack, seen["urls"], stack.cimd_url)
    check_tokens(stack, seen["tokens"], stack.cimd_url)
    check_discovery(stack)
    assert "/register" not in stack.idp_log.paths()
    assert stack.cimd_log.paths()[0] == "/clients/notes.json"  # the IdP fetched the document


async def test_dynamic_registration_client_previous_revision(stack: Stack) -> None:
    """2025-11-25: initialize handshake and Dynamic Client Registration."""
    seen = await run_flow(stack, mode="legacy", cimd=False)
    assert seen["version"] == "2025-11-25"
    check_challenges(stack, seen["challenges"])
    check_discovery(stack)
    registered = [p for m, p in stack.idp_log.requests if m == "POST" and p == "/register"]
    # The SDK registers once; the example client registers again with the wider scope
    # (see examples/mcp_server/client.py: the SDK never updates its registration).
    assert len(registered) == 2
    assert seen["registrations"] == [seen["client_id"]]
    urls = seen["urls"]
    first_client = query(urls[0])["client_id"]
    assert first_client != seen["client_id"]
    assert stack.idp.clients[first_client].scope == "notes:read offline_access"
    assert {query(u)["client_id"] for u in urls[1:]} == {seen["client_id"]}
    assert stack.cimd_log.requests == []
    first, *later = seen["tokens"]
    assert claims(first)["client_id"] == first_client
    for token in later:
        assert claims(token)["client_id"] == seen["client_id"]
        assert claims(token)["aud"] == stack.resource
    assert [claims(t)["acr"] for t in seen["tokens"]] == ["pwd", "pwd", "mf", "mf"]
    assert claims(later[-1])["phone_number_verified"] is True


async def test_metadata_document_is_what_the_sdk_expects(stack: Stack) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        r = await http.get(metadata_url(stack), headers={"Host": "evil.example:1"})
    assert r.status_code == 200
    doc = r.json()
    assert doc["resource"] == stack.resource
    assert doc["authorization_servers"] == [stack.issuer]
    assert doc["scopes_supported"] == ["notes:read", "notes:write"]
    parsed = ProtectedResourceMetadata.model_validate(doc)
    assert str(parsed.resource) == stack.resource
    # The AS it names advertises what the SDK relies on.
    async with httpx.AsyncClient(trust_env=False) as http:
        asm = (await http.get(f"{stack.issuer}/.well-known/oauth-authorization-server")).json()
    assert asm["issuer"] == stack.issuer
    assert asm["authorization_response_iss_parameter_supported"] is True
    assert asm["client_id_metadata_document_supported"] is True
    assert "S256" in asm["code_challenge_methods_supported"]


async def test_token_for_another_resource_is_refused(stack: Stack) -> None:
    other = stack.resource.replace("/mcp", "/other")
    foreign = stack.idp.issue_access_token(
        "alice", client_id="someone", audience=other, scope="notes:read notes:write"
    )
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    async with httpx.AsyncClient(trust_env=False) as http:
        r = await http.post(
            stack.resource,
            json=body,
            headers={
                "Authorization": f"Bearer {foreign}",
                "Accept": "application/json, text/event-stream",
            },
        )
    assert r.status_code == 401
    params = parse_bearer_challenge(r.headers["www-authenticate"])
    assert params is not None
    assert params["error"] == "invalid_token"
    assert params["resource_metadata"] == metadata_url(stack)

    # The SDK holding such a token (e.g. from another server) is refused, then re-authorizes
    # for this resource and carries on.
    storage = MemoryStorage()
    storage.tokens = OAuthToken(access_token=foreign, expires_in=300, scope="notes:read")
    async with connect(stack.resource, storage=storage, client_metadata_url=stack.cimd_url) as (
        client,
        _,
        step_up,
    ):
        assert text(await client.call_tool("list_notes", {})) == []
    first_status, first_challenge = step_up.challenges[0]
    assert first_status == 401 and 'error="invalid_token"' in first_challenge
    assert claims(storage.tokens.access_token)["aud"] == stack.resource


async def test_unauthenticated_mcp_request_gets_the_scope_challenge(stack: Stack) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    async with httpx.AsyncClient(trust_env=False) as http:
        r = await http.post(stack.resource, json=body)
        health = await http.get(stack.resource.replace("/mcp", "/health"))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == (
        f'Bearer scope="notes:read", resource_metadata="{metadata_url(stack)}"'
    )
    assert health.status_code == 200  # public path
