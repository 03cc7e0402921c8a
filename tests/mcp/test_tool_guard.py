"""ToolGuard through HTTP: per-tool requirements, argument-based policies, body handling."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rs_guard import Requirement, ResourceGuard
from rs_guard.challenge import parse_bearer_challenge
from rs_guard.idp import IdP
from rs_guard.mcp import ToolGuard

pytestmark = pytest.mark.anyio
ISSUER = "https://idp.example"
RESOURCE = "https://mcp.example.com/mcp"


def export_policy(arguments: Mapping[str, Any]) -> Requirement | None:
    # Exporting everything is sensitive: fresh multi-factor login; a few items are not.
    return Requirement(acr_values=("mf",)) if arguments.get("all") else None


async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/json")


@pytest.fixture
def idp_options() -> dict[str, Any]:
    return {}  # the IdP runs on wall time, as the guard here does


@pytest.fixture
async def api(idp: IdP) -> AsyncIterator[httpx.AsyncClient]:
    inner = Starlette(routes=[Route("/mcp", echo, methods=["GET", "POST"])])
    tools = {"write": Requirement(scopes=("notes:write",)), "export": export_policy}
    async with idp.http_client() as idp_http:
        app = Starlette(
            routes=[Route("/mcp", ToolGuard(inner, tools, max_body=2048), methods=["GET", "POST"])],
            middleware=[
                Middleware(
                    ResourceGuard,
                    issuer=ISSUER,
                    resource=RESOURCE,
                    http_client=idp_http,
                    requirements={"/mcp": Requirement(scopes=("notes:read",))},
                )
            ],
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://mcp.example.com"
        ) as client:
            yield client


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


def headers(idp: IdP, scope: str = "notes:read", acr: str = "pwd") -> dict[str, str]:
    token = idp.issue_access_token("alice", client_id="c", audience=RESOURCE, scope=scope, acr=acr)
    return {"Authorization": f"Bearer {token}"}


async def test_tool_scope_challenge_names_endpoint_and_tool_scopes(
    api: httpx.AsyncClient, idp: IdP
) -> None:
    r = await api.post("/mcp", json=call("write", text="x"), headers=headers(idp))
    assert r.status_code == 403
    params = parse_bearer_challenge(r.headers["www-authenticate"])
    assert params is not None
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == "notes:read notes:write"
    ok = await api.post(
        "/mcp", json=call("write", text="x"), headers=headers(idp, "notes:read notes:write")
    )
    assert ok.status_code == 200
    assert ok.json() == call("write", text="x")  # the body reaches the MCP app unchanged


async def test_argument_based_policy(api: httpx.AsyncClient, idp: IdP) -> None:
    r = await api.post("/mcp", json=call("export", all=False), headers=headers(idp))
    assert r.status_code == 200
    r = await api.post("/mcp", json=call("export", all=True), headers=headers(idp))
    assert r.status_code == 401
    assert parse_bearer_challenge(r.headers["www-authenticate"])["acr_values"] == "mf"
    r = await api.post("/mcp", json=call("export", all=True), headers=headers(idp, acr="mf"))
    assert r.status_code == 200


async def test_other_messages_and_unknown_tools_pass(api: httpx.AsyncClient, idp: IdP) -> None:
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    assert (await api.post("/mcp", json=listing, headers=headers(idp))).status_code == 200
    assert (await api.post("/mcp", json=call("read"), headers=headers(idp))).status_code == 200
    r = await api.post("/mcp", content=b"{not json", headers=headers(idp))
    assert r.status_code == 200 and r.content == b"{not json"  # the MCP app answers parse errors
    assert (await api.get("/mcp", headers=headers(idp))).status_code == 200


async def test_batches_are_checked_message_by_message(api: httpx.AsyncClient, idp: IdP) -> None:
    batch = [call("read"), call("write", text="x")]
    r = await api.post("/mcp", content=json.dumps(batch), headers=headers(idp))
    assert r.status_code == 403


async def test_body_too_large_to_inspect_is_refused(api: httpx.AsyncClient, idp: IdP) -> None:
    big = call("write", text="x" * 4096)
    r = await api.post("/mcp", json=big, headers=headers(idp, "notes:read notes:write"))
    assert r.status_code == 413


async def test_endpoint_scope_still_checked_first(api: httpx.AsyncClient, idp: IdP) -> None:
    r = await api.post("/mcp", json=call("read"), headers=headers(idp, scope="other"))
    assert r.status_code == 403
    assert parse_bearer_challenge(r.headers["www-authenticate"])["scope"] == "notes:read"


async def test_duplicate_members_cannot_smuggle_a_tool_name(
    api: httpx.AsyncClient, idp: IdP
) -> None:
    # Parsers differ on which duplicate wins; the guard refuses rather than guess.
    body = (
        '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", '
        '"params": {"name": "read", "name": "write", "arguments": {}}}'
    )
    r = await api.post(
        "/mcp", content=body, headers={**headers(idp), "content-type": "application/json"}
    )
    assert r.status_code == 400
    assert 'error="invalid_request"' in r.headers["www-authenticate"]
