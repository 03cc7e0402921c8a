"""Fixtures for the core tests: the bundled IdP in-process and a small protected app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from rs_guard import AuthorizationServer, ResourceGuard, public, require
from rs_guard.idp import IdP
from tests.support import Clock, CountingApp

ISSUER = "https://idp.example"
RESOURCE = "https://api.example/items"


async def whoami(request: Request) -> JSONResponse:
    auth = request.auth
    return JSONResponse(
        {
            "sub": auth.subject,
            "client_id": auth.client_id,
            "scopes": auth.scopes,
            "acr": auth.acr,
            "auth_time": auth.auth_time,
            "user": request.user.display_name,
        }
    )


@require("items:read")
async def items(request: Request) -> JSONResponse:
    return JSONResponse({"items": [1, 2, 3]})


@requires("items:write")
async def write(request: Request) -> PlainTextResponse:
    return PlainTextResponse("written")


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok" if not request.user.is_authenticated else "ok-auth")


@public
async def open_page(request: Request) -> PlainTextResponse:
    user = request.user
    return PlainTextResponse(f"hello {user.display_name if user.is_authenticated else 'anonymous'}")


async def echo_body(request: Request) -> PlainTextResponse:
    form = await request.form()
    return PlainTextResponse(str(form.get("note")))


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(websocket.auth.subject)
    await websocket.close()


def build_app(idp_http: httpx.AsyncClient, **guard: Any) -> Starlette:
    """A protected service like the ones users write, wired to the in-process IdP."""
    options: dict[str, Any] = {"resource": RESOURCE, "public_paths": ["/health"]}
    if "server" not in guard:  # else the server brings its issuer and HTTP client
        options.update(issuer=ISSUER, http_client=idp_http)
    options.update(guard)
    return Starlette(
        routes=[
            Route("/whoami", whoami),
            Route("/items", items),
            Route("/items/write", write, methods=["GET", "POST"]),
            Route("/health", health),
            Route("/open", open_page),
            Route("/echo", echo_body, methods=["POST"]),
            WebSocketRoute("/ws", ws),
        ],
        middleware=[Middleware(ResourceGuard, **options)],
    )


@pytest.fixture
def counting(idp: IdP) -> CountingApp:
    return CountingApp(idp.app)


@pytest.fixture
async def idp_http(counting: CountingApp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=counting), base_url=ISSUER
    ) as client:
        yield client


@pytest.fixture
def make_server(idp_http: httpx.AsyncClient) -> Callable[..., AuthorizationServer]:
    """An AuthorizationServer for the in-process IdP, with JWKS settings of the test's choice."""

    def factory(**options: Any) -> AuthorizationServer:
        return AuthorizationServer(ISSUER, http_client=idp_http, **options)

    return factory


@pytest.fixture
def make_client(idp_http: httpx.AsyncClient, clock: Clock) -> Callable[..., httpx.AsyncClient]:
    def factory(**guard: Any) -> httpx.AsyncClient:
        guard.setdefault("clock", clock)
        app = build_app(idp_http, **guard)
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://api.example"
        )

    return factory


@pytest.fixture
async def client(make_client: Callable[..., httpx.AsyncClient]) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client() as c:
        yield c


@pytest.fixture
def token(idp: IdP) -> Callable[..., str]:
    def mint(user: str = "alice", **kwargs: Any) -> str:
        kwargs.setdefault("client_id", "client-a")
        kwargs.setdefault("audience", RESOURCE)
        kwargs.setdefault("scope", "items:read")
        return idp.issue_access_token(user, **kwargs)

    return mint


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
