"""FastAPI: Security() dependencies with scopes and step-up, and the OpenAPI declaration."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI, Security

from rs_guard import AccessToken, ResourceGuard
from rs_guard.fastapi import OAuth2Guard

from .conftest import ISSUER, RESOURCE, Clock, bearer

pytestmark = pytest.mark.anyio


@pytest.fixture
async def api(idp_http: httpx.AsyncClient, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    oauth2 = OAuth2Guard(
        authorization_url=f"{ISSUER}/authorize",
        token_url=f"{ISSUER}/token",
        scopes={"items:read": "Read items", "payments": "Pay"},
    )
    app = FastAPI()
    app.add_middleware(
        ResourceGuard,
        issuer=ISSUER,
        resource=RESOURCE,
        http_client=idp_http,
        clock=clock,
        public_paths=["/docs", "/openapi.json", "/docs/oauth2-redirect"],
    )

    @app.get("/items")
    async def items(token: AccessToken = Security(oauth2, scopes=["items:read"])) -> dict[str, str]:
        return {"sub": token.subject}

    @app.post("/payments")
    async def pay(
        token: AccessToken = Security(
            oauth2.requires(acr_values=["mf"], max_age=300), scopes=["payments"]
        ),
    ) -> dict[str, str]:
        return {"paid_by": token.subject}

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://api.example"
    ) as client:
        yield client


async def test_scope_dependency(api: httpx.AsyncClient, token: Callable[..., str]) -> None:
    assert (await api.get("/items", headers=bearer(token(scope="items:read")))).status_code == 200
    r = await api.get("/items", headers=bearer(token(scope="other")))
    assert r.status_code == 403
    assert 'scope="items:read"' in r.headers["www-authenticate"]


async def test_missing_token_challenge_names_route_scope(api: httpx.AsyncClient) -> None:
    r = await api.get("/items")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith('Bearer scope="items:read"')


async def test_step_up_dependency(
    api: httpx.AsyncClient, token: Callable[..., str], clock: Clock
) -> None:
    now = int(clock())
    r = await api.post(
        "/payments", headers=bearer(token(scope="payments", acr="pwd", auth_time=now))
    )
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith(
        'Bearer error="insufficient_user_authentication", '
        'error_description="A different authentication level is required", '
        'scope="payments", acr_values="mf"'
    )
    r = await api.post(
        "/payments", headers=bearer(token(scope="payments", acr="mf", auth_time=now - 1000))
    )
    assert r.status_code == 401 and 'max_age="300"' in r.headers["www-authenticate"]
    r = await api.post(
        "/payments", headers=bearer(token(scope="payments", acr="mf", auth_time=now))
    )
    assert r.status_code == 200


async def test_openapi_declares_oauth2_code_flow(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/openapi.json")).json()
    scheme = doc["components"]["securitySchemes"]["OAuth2"]
    assert scheme["type"] == "oauth2"
    flow = scheme["flows"]["authorizationCode"]
    assert flow["authorizationUrl"] == f"{ISSUER}/authorize"
    assert flow["tokenUrl"] == f"{ISSUER}/token"
    assert doc["paths"]["/items"]["get"]["security"] == [{"OAuth2": ["items:read"]}]
