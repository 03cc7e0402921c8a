"""A user's own Starlette service, written the way the README tells users to write theirs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rs_guard import ResourceGuard, require

ISSUER = "https://login.example.com"
RESOURCE = "https://api.example.com"


@require("items:read")
async def items(request: Request) -> JSONResponse:
    return JSONResponse({"items": ["teapot"], "sub": request.auth.subject})


@require("payments:write", acr_values=["mf", "phr"])
async def pay(request: Request) -> JSONResponse:
    return JSONResponse({"paid": True})


@require(max_age=300)
async def profile(request: Request) -> JSONResponse:
    return JSONResponse({"greeting": request.state.greeting})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": "hello"}


def create_app(*, http_client: httpx.AsyncClient | None = None, **guard_options: Any) -> Starlette:
    """Production calls create_app(); tests pass an http_client bound to the in-process IdP."""
    guard = {"issuer": ISSUER, "resource": RESOURCE, "public_paths": ["/health"]}
    guard.update(guard_options)
    return Starlette(
        routes=[
            Route("/items", items),
            Route("/payments", pay, methods=["POST"]),
            Route("/profile", profile),
            Route("/health", health),
        ],
        middleware=[Middleware(ResourceGuard, http_client=http_client, **guard)],
        lifespan=lifespan,
    )
