"""An example microservice: a Starlette items API protected by ResourceGuard.

Run it against any OpenID Provider (e.g. the bundled IdP on port 9000):

    RS_ISSUER=http://127.0.0.1:9000 RS_RESOURCE=http://127.0.0.1:8000/items \\
        uvicorn examples.items_service.app:app --port 8000
"""

from __future__ import annotations

import os
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rs_guard import AccessToken, InsufficientUserAuthentication, ResourceGuard, require

ITEMS = [{"id": 1, "name": "teapot"}, {"id": 2, "name": "kettle"}]


@require("items:read")
async def list_items(request: Request) -> JSONResponse:
    token: AccessToken = request.auth
    return JSONResponse({"items": ITEMS, "for": token.subject, "client": token.client_id})


@require("items:write")
async def add_item(request: Request) -> JSONResponse:
    item = await request.json()
    return JSONResponse({"added": item}, status_code=201)


@require("payments", acr_values=["mf", "phr"], max_age=300)
async def pay(request: Request) -> JSONResponse:
    payment = await request.json()
    # The amount decides the level: large payments also need a phishing-resistant login.
    if payment.get("amount", 0) > 1000 and request.auth.acr != "phr":
        raise InsufficientUserAuthentication(
            "Large payments need a phishing-resistant authentication", acr_values=["phr"]
        )
    return JSONResponse({"paid": payment.get("amount"), "acr": request.auth.acr})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def create_app(
    issuer: str, resource: str, *, http_client: httpx.AsyncClient | None = None, **guard: Any
) -> Starlette:
    """The items service for `resource`, trusting tokens of `issuer`."""
    return Starlette(
        routes=[
            Route("/items", list_items),
            Route("/items", add_item, methods=["POST"]),
            Route("/payments", pay, methods=["POST"]),
            Route("/health", health),
        ],
        middleware=[
            Middleware(
                ResourceGuard,
                issuer=issuer,
                resource=resource,
                http_client=http_client,
                public_paths=["/health"],
                scopes_supported=["items:read", "items:write", "payments"],
                **guard,
            )
        ],
    )


if "RS_ISSUER" in os.environ:  # pragma: no cover - for `uvicorn examples.items_service.app:app`
    app = create_app(os.environ["RS_ISSUER"], os.environ["RS_RESOURCE"])
