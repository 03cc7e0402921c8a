"""A guard per vendor, wired through the public API against the vendor-shaped IdP app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rs_guard import AuthorizationServer, ResourceGuard

from .vendors import RESOURCE, VendorApp, vendors


async def whoami(request: Request) -> JSONResponse:
    auth = request.auth
    return JSONResponse(
        {
            "sub": auth.subject,
            "client_id": auth.client_id,
            "scopes": list(auth.scopes),
            "roles": list(auth.roles),
        }
    )


def protected_app() -> Starlette:
    return Starlette(routes=[Route("/whoami", whoami), Route("/items", whoami)])


@pytest.fixture
def vendor_app() -> VendorApp:
    return VendorApp(vendors())


@pytest.fixture
async def idp_http(vendor_app: VendorApp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=vendor_app)) as client:
        yield client


@pytest.fixture
async def guarded(
    idp_http: httpx.AsyncClient,
) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    made: list[httpx.AsyncClient] = []

    def factory(**options: Any) -> httpx.AsyncClient:
        guard = ResourceGuard(protected_app(), resource=RESOURCE, **options)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=guard), base_url="https://api.example"
        )
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.aclose()


def server_for(vendor: Any, idp_http: httpx.AsyncClient) -> AuthorizationServer:
    return AuthorizationServer(vendor.issuer, http_client=idp_http, jwks_uri=vendor.jwks_uri)
