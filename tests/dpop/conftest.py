"""Fixtures for the DPoP tests: the bundled IdP in-process, a guarded app, a client key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rs_guard import ResourceGuard
from rs_guard.dpop import DPoPKey, DPoPVerifier
from rs_guard.idp import IdP
from tests.support import ISSUER, Clock

RESOURCE = "https://api.example/items"
BASE = "http://testserver"


async def whoami(request: Request) -> JSONResponse:
    auth = request.auth
    return JSONResponse(
        {"sub": auth.subject, "jkt": auth.jkt, "sender_constrained": auth.sender_constrained}
    )


def protected(idp: IdP, clock: Clock, **options: Any) -> ResourceGuard:
    """A guarded app (GET/POST /whoami, /pay/whoami) wired to the in-process IdP."""
    app = Starlette(
        routes=[
            Route("/whoami", whoami, methods=["GET", "POST"]),
            Route("/pay/whoami", whoami, methods=["GET", "POST"]),
        ]
    )
    options.setdefault("dpop", DPoPVerifier(clock=clock))
    return ResourceGuard(
        app, issuer=ISSUER, resource=RESOURCE, http_client=idp.http_client(), clock=clock, **options
    )


def bound_token(idp: IdP, jkt: str | None, **claims: Any) -> str:
    """An access token for this resource, bound to `jkt` (cnf.jkt) unless None."""
    if jkt is not None:
        claims["cnf"] = {"jkt": jkt}
    return idp.issue_access_token(
        None, client_id="svc", audience=RESOURCE, scope="items:read", claims=claims
    )


def dpop_headers(
    key: DPoPKey,
    token: str,
    clock: Clock,
    method: str = "GET",
    url: str = f"{BASE}/whoami",
    **proof: Any,
) -> dict[str, str]:
    """`Authorization: DPoP` plus a fresh proof for one request."""
    proof.setdefault("iat", clock())
    return {
        "Authorization": f"DPoP {token}",
        "DPoP": key.proof(method, url, access_token=token, **proof),
    }


@pytest.fixture
def key() -> DPoPKey:
    return DPoPKey()


@pytest.fixture
def guard(idp: IdP, clock: Clock) -> Callable[..., ResourceGuard]:
    return lambda **options: protected(idp, clock, **options)


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
