"""Fixtures for the IdP tests: an in-process IdP, an HTTP client bound to it, PKCE helpers."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from rs_guard.idp import IdP
from tests.support import Clock  # noqa: F401 - the tests here import it from this module

ISSUER = "https://idp.example"
REDIRECT = "https://app.example/cb"
API = "https://api.example/items"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.fixture
def clock_start() -> float:
    return 1_700_000_000.0  # in the past: tokens checked here with PyJWT on wall time are valid


def add_clients(idp: IdP) -> None:
    """A web app, a service (also the resource server of API: introspection answers it about
    API's tokens), a public SPA; alice with verified email, unverified phone."""
    idp.register_client(
        "web-app",
        "web-secret",
        redirect_uris=[REDIRECT],
        scope="openid profile email phone items:read items:write",
    )
    idp.register_client(
        "service", "service-secret", scope="items:read items:write", served_resources=[API]
    )
    idp.register_client(
        "spa", redirect_uris=["https://spa.example/cb"], token_endpoint_auth_method="none"
    )
    idp.add_user(
        "alice",
        given_name="Alice",
        email="alice@example.com",
        email_verified=True,
        phone_number="+15555550100",
        phone_number_verified=False,
    )


@pytest.fixture
def idp_setup() -> Callable[[IdP], None]:
    return add_clients


@pytest.fixture
async def http(idp: IdP) -> AsyncIterator[httpx.AsyncClient]:
    async with idp.http_client() as client:
        yield client


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def authorize(
    http: httpx.AsyncClient, **params: Any
) -> tuple[httpx.Response, dict[str, str]]:
    """GET /authorize and return the response and the parameters of its redirect."""
    base = {"response_type": "code", "client_id": "web-app", "redirect_uri": REDIRECT}
    base.update({k: v for k, v in params.items() if v is not None})
    resp = await http.get("/authorize", params=base)
    return resp, query(resp.headers.get("location", ""))


async def code_flow(
    http: httpx.AsyncClient, scope: str = "openid items:read", **params: Any
) -> dict[str, Any]:
    """Run code + PKCE for web-app and return the token response."""
    verifier, challenge = pkce()
    resp, q = await authorize(
        http, scope=scope, code_challenge=challenge, code_challenge_method="S256", **params
    )
    assert resp.status_code == 302, resp.text
    assert "code" in q, q
    tok = await http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": q["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        auth=("web-app", "web-secret"),
    )
    assert tok.status_code == 200, tok.text
    body: dict[str, Any] = tok.json()
    return body
