"""Fixtures for the conformance suite: the shared IdP (tests/conftest.py) with the conformance
clients, in-process and on the session's loopback server, a protected app behind ResourceGuard,
and a strict check of every challenge it sends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rs_guard import ResourceGuard, require
from rs_guard.idp import IdP
from rs_guard.testing import Switchboard
from tests.support import Clock

from . import wwwauth

ISSUER = "https://idp.example"
RESOURCE = "https://api.example/items"
API = "https://api.example"
REDIRECT = "https://app.example/cb"

# RFC 6750 §3: error, error_description and scope values use only these characters.
RFC6750_VALUE = frozenset(chr(c) for c in (0x20, 0x21, *range(0x23, 0x5C), *range(0x5D, 0x7F)))


def add_clients(idp: IdP, redirect: str = REDIRECT) -> None:
    """The clients every conformance test may use."""
    idp.register_client(
        "web-app",
        "web-secret",
        redirect_uris=[redirect],
        scope="openid profile email items:read items:write",
    )
    # "service" is the resource server of RESOURCE and of https://service.example:
    # introspection answers it about their tokens (RFC 7662 §4), and it may exchange them.
    idp.register_client(
        "service",
        "service-secret",
        scope="items:read items:write",
        served_resources=[RESOURCE, "https://service.example"],
    )
    idp.register_client(
        "poster",
        "poster-secret",
        scope="items:read",
        token_endpoint_auth_method="client_secret_post",
    )
    idp.register_client(
        "spa",
        redirect_uris=["https://spa.example/cb"],
        token_endpoint_auth_method="none",
        scope="openid items:read",
    )
    idp.add_user("alice", given_name="Alice", email="alice@example.com", email_verified=True)


@pytest.fixture
def idp_setup() -> Callable[[IdP], None]:
    return add_clients


@pytest.fixture
async def idp_http(idp: IdP) -> AsyncIterator[httpx.AsyncClient]:
    async with idp.http_client() as client:
        yield client


# -- the loopback server -----------------------------------------------------------------


@pytest.fixture
def live_idp(rs_guard_loopback: tuple[Switchboard, str]) -> Iterator[IdP]:
    """A fresh IdP on the session's loopback server (issuer http://127.0.0.1:<port>)."""
    board, url = rs_guard_loopback
    idp = IdP(url, dev=True)
    add_clients(idp)
    with board.plug(idp.app):
        yield idp


@pytest.fixture
def insecure_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """oauthlib refuses http:// URLs unless told; the loopback IdP is plain http."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


# -- a protected app ---------------------------------------------------------------------


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"sub": request.auth.subject, "scopes": list(request.auth.scopes)})


@require("items:read")
async def items(request: Request) -> JSONResponse:
    return JSONResponse({"items": [1, 2, 3]})


def protected_app(idp_http: httpx.AsyncClient, **guard: Any) -> Starlette:
    """A service with one open-to-any-token route and one that needs items:read."""
    options: dict[str, Any] = {"issuer": ISSUER, "resource": RESOURCE, "http_client": idp_http}
    options.update(guard)
    return Starlette(
        routes=[Route("/whoami", whoami, methods=["GET", "POST"]), Route("/items", items)],
        middleware=[Middleware(ResourceGuard, **options)],
    )


@pytest.fixture
def api(idp_http: httpx.AsyncClient, clock: Clock) -> Callable[..., httpx.AsyncClient]:
    """api(**guard_options) -> an httpx client for the protected app (use `async with`)."""

    def make(**guard: Any) -> httpx.AsyncClient:
        guard.setdefault("clock", clock)
        app = protected_app(idp_http, **guard)
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=API)

    return make


@pytest.fixture
def mint(idp: IdP) -> Callable[..., str]:
    def token(user: str | None = "alice", **kwargs: Any) -> str:
        kwargs.setdefault("client_id", "web-app")
        kwargs.setdefault("audience", RESOURCE)
        kwargs.setdefault("scope", "items:read")
        return idp.issue_access_token(user, **kwargs)

    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- challenge checks --------------------------------------------------------------------


def challenge_of(resp: httpx.Response) -> wwwauth.Challenge:
    """The response's one Bearer challenge, checked against RFC 9110 / RFC 6750 / MCP rules.

    - exactly one WWW-Authenticate field, parsing cleanly with the strict parser here and with
      werkzeug's independent one, both agreeing;
    - every parameter value quoted (clients that cut unquoted values at spaces break);
    - error / error_description / scope within RFC 6750's character set;
    - the error code matching the status code.
    """
    from werkzeug.datastructures import WWWAuthenticate

    values = resp.headers.get_list("www-authenticate")
    assert len(values) == 1, values
    header = values[0]
    header.encode("ascii")  # no obs-text from us
    ch = wwwauth.bearer(header)
    assert ch.scheme == "Bearer"
    assert ch.token68 is None
    assert all(ch.quoted.values()), header
    for name in ("error", "error_description", "scope"):
        if name in ch.params:
            assert set(ch.params[name]) <= RFC6750_VALUE, (name, ch.params[name])
    theirs = WWWAuthenticate.from_header(header)
    assert theirs is not None and theirs.type == "bearer"
    assert dict(theirs.parameters) == ch.params, (dict(theirs.parameters), ch.params)
    expected_status = {
        None: {401},
        "invalid_request": {400},
        "invalid_token": {401},
        "insufficient_scope": {403},
        "insufficient_user_authentication": {401},
    }[ch.params.get("error")]
    assert resp.status_code in expected_status, (resp.status_code, header)
    return ch
