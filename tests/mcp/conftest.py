"""A loopback stack for MCP tests: the bundled IdP, the example MCP server, a client metadata site.

Everything runs under uvicorn on free 127.0.0.1 ports inside the test's event loop. The client
metadata document is served over TLS (the SDK only accepts https client_id URLs) with a CA
generated for the test; the IdP runs in `dev=True` mode and trusts that CA for its fetches.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from examples.mcp_server.client import client_metadata
from examples.mcp_server.fastmcp_server import build_app as build_fastmcp_app
from examples.mcp_server.server import build_app
from rs_guard.idp import IdP
from rs_guard.testing import loopback_socket, loopback_tls, serve, socket_url


class Recorder:
    """Records (method, path) of every HTTP request reaching an app (a real ASGI wrapper)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests: list[tuple[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.requests.append((scope["method"], scope["path"]))
        await self.app(scope, receive, send)

    def paths(self) -> list[str]:
        return [path for _, path in self.requests]


@dataclass
class Stack:
    idp: IdP
    issuer: str
    resource: str
    cimd_url: str
    idp_log: Recorder
    mcp_log: Recorder
    cimd_log: Recorder
    extra: dict[str, Any] = field(default_factory=dict)


# A second client metadata document: the same client without the refresh_token grant (the
# TypeScript SDK tests need one; see test_typescript_client.py).
NO_REFRESH_PATH = "/clients/notes-no-refresh.json"


@asynccontextmanager
async def open_stack(
    *, server: str = "sdk", idp_options: dict[str, Any] | None = None, **guard: Any
) -> AsyncIterator[Stack]:
    """The loopback stack; `server` is "sdk" (examples/mcp_server/server.py) or "fastmcp"
    (fastmcp_server.py); `idp_options` go to `IdP`, the rest to the example's `build_app`."""
    build = build_app if server == "sdk" else build_fastmcp_app
    with loopback_tls() as tls:
        idp_sock, mcp_sock, site_sock = loopback_socket(), loopback_socket(), loopback_socket()
        issuer = socket_url(idp_sock)
        resource = f"{socket_url(mcp_sock)}/mcp"
        site_url = socket_url(site_sock, tls=True)
        cimd_url = f"{site_url}/clients/notes.json"

        document = client_metadata().model_dump(mode="json", exclude_none=True)
        document["client_id"] = cimd_url
        no_refresh = {
            **document,
            "client_id": f"{site_url}{NO_REFRESH_PATH}",
            "grant_types": ["authorization_code"],
        }

        async def metadata_document(request: Request) -> JSONResponse:
            return JSONResponse(document, headers={"Cache-Control": "max-age=60"})

        async def no_refresh_document(request: Request) -> JSONResponse:
            return JSONResponse(no_refresh, headers={"Cache-Control": "max-age=60"})

        site = Recorder(
            Starlette(
                routes=[
                    Route("/clients/notes.json", metadata_document),
                    Route(NO_REFRESH_PATH, no_refresh_document),
                ]
            )
        )
        outbound = httpx.AsyncClient(verify=tls.client_context(), timeout=3.0, trust_env=False)
        idp = IdP(issuer, dev=True, http_client=outbound, **(idp_options or {}))
        idp.login_as("alice", acr="pwd")
        idp.add_user("alice", phone_number="+15555550100", phone_number_verified=False)
        idp.script_phone_verification("alice", succeeds=True)
        idp_log = Recorder(idp.app)
        mcp_log = Recorder(build(resource=resource, issuer=issuer, **guard))
        async with (
            serve(site, sock=site_sock, tls=tls),
            serve(idp_log, sock=idp_sock),
            serve(mcp_log, sock=mcp_sock),
        ):
            try:
                yield Stack(
                    idp, issuer, resource, cimd_url, idp_log, mcp_log, site, {"site": site_url}
                )
            finally:
                # Close keep-alive connections first so the servers stop at once.
                await outbound.aclose()


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    async with open_stack() as opened:
        yield opened
