"""FastAPI: the OpenAPI document shows what ResourceGuard enforces (a lock on every protected
operation, none on `@public` routes and `public_paths`), served by real uvicorn."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Security

from rs_guard import Requirement, ResourceGuard, public
from rs_guard.access_token import AccessToken
from rs_guard.fastapi import OAuth2Guard
from rs_guard.testing import TestIdP, serve

pytestmark = pytest.mark.anyio


def build(idp: TestIdP) -> FastAPI:
    oauth2 = OAuth2Guard(
        authorization_url=f"{idp.issuer}/authorize",
        token_url=f"{idp.issuer}/token",
        scopes={"items:read": "Read items", "admin": "Administer"},
    )
    app = FastAPI()
    app.add_middleware(
        ResourceGuard,
        **idp.guard_settings(
            public_paths=["/healthz", "/docs*", "/openapi.json"],
            requirements={"/admin/stats": Requirement(scopes=("admin",))},
        ),
    )

    @app.get("/items")
    async def items(token: AccessToken = Security(oauth2, scopes=["items:read"])) -> dict[str, Any]:
        return {"sub": token.subject}

    @app.get("/me")
    async def me() -> dict[str, str]:  # no requirement: still needs a valid token
        return {"ok": "yes"}

    @app.get("/admin/stats")
    async def stats() -> dict[str, str]:  # the guard's table requires `admin`
        return {"ok": "yes"}

    @app.get("/version")
    @public
    async def version() -> dict[str, str]:
        return {"version": "1"}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:  # a probe, public through public_paths
        return {"status": "ok"}

    oauth2.secure_openapi(app)
    return app


async def test_openapi_security_mirrors_the_guard() -> None:
    idp = TestIdP()
    async with serve(build(idp)) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.get("/openapi.json")
        assert r.status_code == 200
        doc = r.json()
        paths = doc["paths"]
        assert paths["/items"]["get"]["security"] == [{"OAuth2": ["items:read"]}]
        assert paths["/me"]["get"]["security"] == [{"OAuth2": []}]
        assert paths["/admin/stats"]["get"]["security"] == [{"OAuth2": ["admin"]}]
        assert paths["/version"]["get"]["security"] == []
        assert paths["/healthz"]["get"]["security"] == []
        scheme = doc["components"]["securitySchemes"]["OAuth2"]
        assert scheme["type"] == "oauth2" and "authorizationCode" in scheme["flows"]
        # What the document says is what the guard does.
        assert (await client.get("/me")).status_code == 401
        assert (await client.get("/admin/stats", headers=idp.auth_headers())).status_code == 403
        assert (await client.get("/version")).status_code == 200
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/docs")).status_code == 200
