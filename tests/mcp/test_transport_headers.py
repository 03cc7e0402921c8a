"""ToolGuard and the 2026-07-28 transport's routing headers (`Mcp-Method`, `Mcp-Name`).

Each request goes to the example server behind the guard and, where the comparison means
something, to the same MCP server with no guard at all: a mismatch between the headers and the
body is refused as the SDK refuses it (HTTP 400, the same JSON-RPC error), before any
requirement is looked up; requirements come from the body, which is what the SDK dispatches;
requests without the headers (2025-11-25) stay guarded; a batch is guarded item by item
without the headers and refused with them. Real uvicorn on loopback, the bundled IdP.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.routing import Mount

from examples.mcp_server.server import build_app, build_mcp
from rs_guard.challenge import parse_bearer_challenge
from rs_guard.mcp import decode_header_value
from rs_guard.testing import TestIdP, loopback_socket, serve, socket_url

pytestmark = pytest.mark.anyio
MODERN = "2026-07-28"
ACCEPT = "application/json, text/event-stream"


def envelope() -> dict[str, Any]:
    return {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    }


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    params = {"name": tool, "arguments": arguments, "_meta": envelope()}
    return {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}


def modern_headers(method: str | None, name: str | None, token: str | None) -> dict[str, str]:
    headers = {"Accept": ACCEPT, "MCP-Protocol-Version": MODERN}
    if method is not None:
        headers["Mcp-Method"] = method
    if name is not None:
        headers["Mcp-Name"] = name
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


@asynccontextmanager
async def servers() -> AsyncIterator[tuple[TestIdP, str, str]]:
    """(idp, guarded MCP URL, the same MCP server without any guard)."""
    idp_sock, mcp_sock, bare_sock = loopback_socket(), loopback_socket(), loopback_socket()
    resource = f"{socket_url(mcp_sock)}/mcp"
    bare_url = f"{socket_url(bare_sock)}/mcp"
    idp = TestIdP(socket_url(idp_sock), resource=resource, in_process=False)
    mcp, _ = build_mcp()
    netloc = bare_url.split("/")[2]
    bare_inner = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        transport_security=TransportSecuritySettings(
            allowed_hosts=[netloc], allowed_origins=[f"http://{netloc}"]
        ),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with mcp.session_manager.run():
            yield

    bare = Starlette(routes=[Mount("/", app=bare_inner)], lifespan=lifespan)
    async with (
        serve(idp.app, sock=idp_sock),
        serve(build_app(resource=resource, issuer=idp.issuer), sock=mcp_sock),
        serve(bare, sock=bare_sock),
    ):
        yield idp, resource, bare_url


async def post(url: str, body: Any, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False) as http:
        return await http.post(url, json=body, headers=headers)


MISMATCHES = [
    # (Mcp-Method, Mcp-Name, the SDK's message)
    (
        "tools/call",
        "list_notes",
        "mcp-name header does not match the request body's 'name' parameter",
    ),
    ("tools/list", "add_note", "mcp-method header does not match the request body's method"),
    (None, "add_note", "mcp-method header does not match the request body's method"),
    ("tools/call", None, "mcp-name header does not match the request body's 'name' parameter"),
    ("tools/call", "=?base64?bm90LWNhbm9uaWNhbA?=", "mcp-name header does not match"),
]


async def test_a_mismatch_is_refused_as_the_sdk_refuses_it() -> None:
    async with servers() as (idp, resource, bare):
        writer = idp.token("alice", "notes:write")
        for method, name, message in MISMATCHES:
            body = call("add_note", text="x")
            guarded = await post(resource, body, modern_headers(method, name, writer))
            sdk = await post(bare, body, modern_headers(method, name, None))
            assert sdk.status_code == guarded.status_code == 400, (method, name, sdk.text)
            assert guarded.json() == sdk.json()
            assert guarded.json()["error"]["code"] == -32020
            assert guarded.json()["error"]["message"].startswith(message)
            assert guarded.json()["id"] == 7


async def test_the_mismatch_is_refused_before_any_requirement_is_looked_up() -> None:
    # The headers name a tool the token may call; the body calls one it may not. Without the
    # check, a router that trusted the headers would be steered past ToolGuard: refused as a
    # mismatch, never dispatched, so never authorized either.
    async with servers() as (idp, resource, _):
        reader = idp.token("alice", "notes:read")
        r = await post(
            resource, call("add_note", text="x"), modern_headers("tools/call", "list_notes", reader)
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == -32020
        assert "www-authenticate" not in r.headers


async def test_requirements_come_from_what_the_server_dispatches() -> None:
    async with servers() as (idp, resource, _):
        reader = idp.token("alice", "notes:read")
        # Headers and body agree (plain and base64-sentinel forms): the body's tool decides.
        for name in ("add_note", "=?base64?" + base64.b64encode(b"add_note").decode() + "?="):
            r = await post(
                resource, call("add_note", text="x"), modern_headers("tools/call", name, reader)
            )
            assert r.status_code == 403, r.text
            challenge = parse_bearer_challenge(r.headers["www-authenticate"]) or {}
            assert challenge["error"] == "insufficient_scope"
        writer = idp.token("alice", "notes:write")
        r = await post(
            resource, call("add_note", text="x"), modern_headers("tools/call", "add_note", writer)
        )
        assert r.status_code == 200, r.text
        assert r.json()["result"]["structuredContent"] == {"result": "1 note(s)"}


async def test_requests_without_the_headers_stay_guarded() -> None:
    async with servers() as (idp, resource, _):
        reader = idp.token("alice", "notes:read")
        body = call("add_note", text="x")
        headers = {"Accept": ACCEPT, "Authorization": f"Bearer {reader}"}
        for extra in ({}, {"MCP-Protocol-Version": "2025-11-25"}):
            r = await post(resource, body, {**headers, **extra})
            assert r.status_code == 403


async def test_duplicated_routing_headers_are_refused() -> None:
    async with servers() as (idp, resource, bare):
        writer = idp.token("alice", "notes:write")
        body = call("add_note", text="x")
        raw = [
            ("Accept", ACCEPT),
            ("MCP-Protocol-Version", MODERN),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "add_note"),
            ("Mcp-Name", "list_notes"),
        ]
        async with httpx.AsyncClient(trust_env=False) as http:
            guarded = await http.post(
                resource, json=body, headers=[*raw, ("Authorization", f"Bearer {writer}")]
            )
            sdk = await http.post(bare, json=body, headers=raw)
        assert guarded.status_code == sdk.status_code == 400
        assert guarded.json() == sdk.json()


async def test_batches() -> None:
    async with servers() as (idp, resource, bare):
        reader = idp.token("alice", "notes:read")
        batch = [call("list_notes"), {**call("add_note", text="x"), "id": 8}]
        # Without the routing headers: guarded item by item (one item needs notes:write).
        r = await post(resource, batch, {"Accept": ACCEPT, "Authorization": f"Bearer {reader}"})
        assert r.status_code == 403
        # With them: refused like the SDK refuses a batch on the 2026-07-28 path.
        headers = modern_headers("tools/call", "list_notes", None)
        guarded = await post(resource, batch, {**headers, "Authorization": f"Bearer {reader}"})
        sdk = await post(bare, batch, headers)
        assert guarded.status_code == sdk.status_code == 400
        assert guarded.json() == sdk.json()
        assert guarded.json()["error"]["code"] == -32600


def test_decode_header_value() -> None:
    assert decode_header_value(None) is None
    assert decode_header_value("add_note") == "add_note"
    encoded = base64.b64encode("nötes".encode()).decode()
    assert decode_header_value(f"=?base64?{encoded}?=") == "nötes"
    assert decode_header_value("=?base64?***?=") is None  # not base64
    assert decode_header_value("=?base64?bm90LWNhbm9uaWNhbA?=") is None  # unpadded
    assert decode_header_value("=?base64?" + base64.b64encode(b"\xff").decode() + "?=") is None
