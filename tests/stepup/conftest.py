"""Fixtures for step-up tests: one set of route requirements served three ways.

The same requirements are declared through the Starlette decorator (`@require`), the FastAPI
dependency (`OAuth2Guard.requires` + `Security(scopes=...)`) and ResourceGuard's per-path
`requirements` table; every test that is parametrised on `surface` runs against all three.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI, Security
from fastapi import Request as FastAPIRequest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rs_guard import InsufficientUserAuthentication, Requirement, ResourceGuard, require
from rs_guard.access_token import AccessToken
from rs_guard.challenge import authorization_params
from rs_guard.decorators import check
from rs_guard.fastapi import OAuth2Guard
from rs_guard.idp import IdP
from tests.support import Clock

ISSUER = "https://idp.example"
RESOURCE = "https://mcp.example.com"
METADATA_URL = "https://mcp.example.com/.well-known/oauth-protected-resource"
REDIRECT = "https://app.example/cb"
CLIENT_ID = "stepup-client"
CLIENT_SECRET = "stepup-secret"
HIERARCHY = {"files:write": ["files:read"], "admin": ["admin:*"]}
SURFACES = ["decorator", "fastapi", "table"]

# path -> what the operation needs; identical on every surface.
ROUTES: dict[str, dict[str, Any]] = {
    "/purchase": {"acr_values": ["myACR"]},
    "/recent": {"max_age": 5},
    "/files": {
        "scopes": ["files:read", "files:write", "user:profile"],
        "description": "Additional file write permission required",
    },
    "/files/read": {"scopes": ["files:read"]},
    "/admin/users": {"scopes": ["admin:users"]},
    "/mf": {"scopes": ["payments"], "acr_values": ["mf", "phr"]},
    "/fresh": {"max_age": 300},
    "/phone": {"claims": {"phone_number_verified": True}},
    "/strict": {"scopes": ["payments"], "acr_values": ["mf"], "max_age": 300},
}


def _payload(token: AccessToken) -> dict[str, Any]:
    return {
        "ok": True,
        "sub": token.subject,
        "acr": token.acr,
        "auth_time": token.auth_time,
        "scopes": list(token.scopes),
    }


def _requirement(spec: dict[str, Any]) -> Requirement:
    return Requirement(
        scopes=tuple(spec.get("scopes", ())),
        acr_values=tuple(spec.get("acr_values", ())),
        max_age=spec.get("max_age"),
        claims=spec.get("claims", {}),
        description=spec.get("description"),
    )


PAYMENT_STEP_UP = Requirement(acr_values=("mf",), max_age=300)


def _payment_level(amount: Any) -> Requirement | None:
    """The application decides: payments above 1000 need a fresh multi-factor login."""
    return PAYMENT_STEP_UP if isinstance(amount, int | float) and amount > 1000 else None


async def pay(request: Request) -> JSONResponse:
    body = await request.json()
    level = _payment_level(body.get("amount"))
    if level is not None:
        check(request, level)  # raises the RFC 9470 error when unmet
    return JSONResponse({**_payload(request.auth), "paid": body["amount"]})


async def wire(request: Request) -> JSONResponse:
    # The error can also be raised directly, with its own wording.
    body = await request.json()
    if body.get("amount", 0) > 1000 and request.auth.acr != "mf":
        raise InsufficientUserAuthentication(
            "A wire transfer this large needs a multi-factor login", acr_values=["mf"]
        )
    return JSONResponse({"sent": body["amount"]})


HANDLER_ROUTES = [Route("/pay", pay, methods=["POST"]), Route("/wire", wire, methods=["POST"])]


def starlette_app(**guard: Any) -> Starlette:
    routes = []
    for path, spec in ROUTES.items():

        @require(
            spec.get("scopes", ()),
            acr_values=spec.get("acr_values", ()),
            max_age=spec.get("max_age"),
            claims=spec.get("claims"),
            description=spec.get("description"),
        )
        async def endpoint(request: Request) -> JSONResponse:
            return JSONResponse(_payload(request.auth))

        routes.append(Route(path, endpoint))
    return Starlette(
        routes=routes + HANDLER_ROUTES, middleware=[Middleware(ResourceGuard, **guard)]
    )


def fastapi_app(**guard: Any) -> FastAPI:
    app = FastAPI()
    oauth2 = OAuth2Guard(
        authorization_url=f"{ISSUER}/authorize",
        token_url=f"{ISSUER}/token",
        scopes={"files:read": "Read files", "files:write": "Write files"},
    )
    for path, spec in ROUTES.items():
        dependency = oauth2.requires(
            acr_values=spec.get("acr_values", ()),
            max_age=spec.get("max_age"),
            claims=spec.get("claims"),
            description=spec.get("description"),
        )

        def make(dep: Any, scopes: list[str]) -> Callable[..., Any]:
            async def endpoint(token: AccessToken = Security(dep, scopes=scopes)) -> Any:
                return _payload(token)

            return endpoint

        app.get(path)(make(dependency, spec.get("scopes", [])))

    @app.post("/pay")
    async def pay(request: FastAPIRequest, token: AccessToken = Security(oauth2)) -> Any:
        body = await request.json()
        level = _payment_level(body.get("amount"))
        if level is not None:
            check(request, level)
        return {**_payload(token), "paid": body["amount"]}

    @app.post("/wire")
    async def wire(request: FastAPIRequest, token: AccessToken = Security(oauth2)) -> Any:
        body = await request.json()
        if body.get("amount", 0) > 1000 and token.acr != "mf":
            raise InsufficientUserAuthentication(
                "A wire transfer this large needs a multi-factor login", acr_values=["mf"]
            )
        return {"sent": body["amount"]}

    app.add_middleware(ResourceGuard, **guard)
    return app


def table_app(**guard: Any) -> Starlette:
    async def endpoint(request: Request) -> JSONResponse:
        return JSONResponse(_payload(request.auth))

    requirements = {path: _requirement(spec) for path, spec in ROUTES.items()}
    routes = [Route(path, endpoint) for path in ROUTES]
    return Starlette(
        routes=routes + HANDLER_ROUTES,
        middleware=[Middleware(ResourceGuard, requirements=requirements, **guard)],
    )


BUILDERS: dict[str, Callable[..., Any]] = {
    "decorator": starlette_app,
    "fastapi": fastapi_app,
    "table": table_app,
}


def add_clients(idp: IdP) -> None:
    """The step-up client and alice, whose phone number is not verified yet."""
    idp.register_client(CLIENT_ID, CLIENT_SECRET, redirect_uris=[REDIRECT])
    idp.add_user("alice", phone_number="+15555550100", phone_number_verified=False)


@pytest.fixture
def idp_setup() -> Callable[[IdP], None]:
    return add_clients


@pytest.fixture
async def idp_http(idp: IdP) -> AsyncIterator[httpx.AsyncClient]:
    async with idp.http_client() as client:
        yield client


@pytest.fixture(params=SURFACES)
def surface(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_api(
    idp_http: httpx.AsyncClient, clock: Clock, surface: str
) -> Callable[..., httpx.AsyncClient]:
    """An HTTP client for the protected API on the current surface, with guard overrides."""

    def factory(**overrides: Any) -> httpx.AsyncClient:
        options: dict[str, Any] = {
            "issuer": ISSUER,
            "resource": RESOURCE,
            "http_client": idp_http,
            "clock": clock,
            "scope_hierarchy": HIERARCHY,
        }
        options.update(overrides)
        app = BUILDERS[surface](**options)
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=RESOURCE)

    return factory


@pytest.fixture
async def api(make_api: Callable[..., httpx.AsyncClient]) -> AsyncIterator[httpx.AsyncClient]:
    async with make_api() as client:
        yield client


@pytest.fixture
def token(idp: IdP, clock: Clock) -> Callable[..., str]:
    def mint(user: str = "alice", **kwargs: Any) -> str:
        kwargs.setdefault("client_id", CLIENT_ID)
        kwargs.setdefault("audience", RESOURCE)
        kwargs.setdefault("scope", "")
        return idp.issue_access_token(user, **kwargs)

    return mint


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class OAuthClient:
    """A plain OAuth client answering challenges the way RFC 9470 §4 describes.

    It turns a challenge into authorization-request parameters with
    `rs_guard.challenge.authorization_params`, runs code + PKCE with `resource` against the
    in-process IdP (whose scripted user needs no browser), checks RFC 9207 `iss`, and keeps
    the authorization URLs it sent so tests can look at them.
    """

    def __init__(self, idp_http: httpx.AsyncClient, *, scope: str) -> None:
        self.http = idp_http
        self.scope = scope
        self.sent: list[dict[str, str]] = []

    async def authorize(self, challenge: str | None = None) -> dict[str, Any]:
        params = authorization_params(challenge) if challenge else {}
        # Insufficient scope: ask for what we had plus what the challenge names.
        scope = " ".join(dict.fromkeys([*self.scope.split(), *params.pop("scope", "").split()]))
        verifier, code_challenge = pkce()
        state = secrets.token_urlsafe(16)
        query = {
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT,
            "scope": scope,
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
            "resource": RESOURCE,
            **params,
        }
        self.sent.append(query)
        r = await self.http.get("/authorize", params=query)
        assert r.status_code == 302, r.text
        back = {k: v[0] for k, v in parse_qs(urlsplit(r.headers["location"]).query).items()}
        assert back.get("iss") == ISSUER  # RFC 9207
        assert back.get("state") == state
        assert "code" in back, back
        tok = await self.http.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": back["code"],
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
                "resource": RESOURCE,
            },
            auth=(CLIENT_ID, CLIENT_SECRET),
        )
        assert tok.status_code == 200, tok.text
        body: dict[str, Any] = tok.json()
        self.scope = body.get("scope", scope)
        return body
