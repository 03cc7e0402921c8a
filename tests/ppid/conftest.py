"""Fixtures for the PPID tests: a pairwise IdP in-process, a counting wrapper, a protected app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rs_guard import ResourceGuard
from rs_guard.decorators import exception_handlers
from rs_guard.idp import IdP
from rs_guard.ppid import PPIDTranslator
from tests.support import Clock, CountingApp

ISSUER = "https://idp.example"
API = "https://rs.example/api"
CONVERT = "/ppid/convert"


def add_clients(idp: IdP) -> None:
    """Two pairwise web clients, one public one, and the pairwise resource server `rs`."""
    idp.register_client(
        "web-a", "web-a-secret", redirect_uris=["https://a.example/cb"], subject_type="pairwise"
    )
    idp.register_client(
        "web-b", "web-b-secret", redirect_uris=["https://b.example/cb"], subject_type="pairwise"
    )
    idp.register_client("legacy", "legacy-secret", redirect_uris=["https://legacy.example/cb"])
    idp.register_client(
        "rs",
        "rs-secret",
        subject_type="pairwise",
        sector_identifier_uri="https://rs.example/sector.json",
        served_resources=[API],  # the service at API: it may exchange the tokens it receives
    )
    idp.register_client(
        "other-rs",
        "other-rs-secret",
        subject_type="pairwise",
        sector_identifier_uri="https://other.example/sector.json",
    )
    for user in ("alice", "bob"):
        idp.add_user(user)
    # The resource server may convert from and to every client's namespace.
    idp.ppid_policy.allow("rs")


@pytest.fixture
def idp_setup() -> Callable[[IdP], None]:
    return add_clients


@pytest.fixture
def idp_options() -> dict[str, Any]:
    # The IdP runs on wall time, as the guard here does; `clock` is the translator's alone.
    return {}


@pytest.fixture
def counting(idp: IdP) -> CountingApp:
    return CountingApp(idp.app)


@pytest.fixture
def clock_start() -> float:
    return 1000.0


@pytest.fixture
async def idp_http(counting: CountingApp) -> AsyncIterator[httpx.AsyncClient]:
    """The resource server's HTTP client to the IdP (in-process, through the counter)."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=counting), base_url=ISSUER
    ) as client:
        yield client


@pytest.fixture
async def translator(idp_http: httpx.AsyncClient, clock: Clock) -> AsyncIterator[PPIDTranslator]:
    tr = PPIDTranslator(
        issuer=ISSUER,
        client_id="rs",
        client_secret="rs-secret",
        http_client=idp_http,
        timeout=0.5,
        clock=clock,
    )
    yield tr
    await tr.aclose()


def protected_app(translator: PPIDTranslator, calls: list[str] | None = None) -> Starlette:
    """A small API that reports what the guard put in request.auth."""

    async def me(request: Request) -> JSONResponse:
        if calls is not None:
            calls.append(request.url.path)
        auth = request.auth
        return JSONResponse(
            {
                "subject": auth.subject,
                "local_subject": auth.local_subject,
                "user_id": auth.user_id,
                "client_id": auth.client_id,
            }
        )

    async def owner(request: Request) -> JSONResponse:
        # Answer in the caller's namespace: the rule is "a caller always uses its own PPID".
        auth = request.auth
        own = request.query_params.get("of", auth.local_subject)
        theirs = await translator.to_client(auth.client_id, own)
        return JSONResponse({"owner": theirs})

    return Starlette(
        routes=[Route("/me", me), Route("/owner", owner)],
        exception_handlers=exception_handlers,
    )


@pytest.fixture
def app_calls() -> list[str]:
    return []


@pytest.fixture
def users() -> dict[str, str]:
    """The app's view of its users: own PPID -> internal user record id."""
    return {}


@pytest.fixture
def guard(
    translator: PPIDTranslator,
    idp_http: httpx.AsyncClient,
    app_calls: list[str],
    users: dict[str, str],
) -> ResourceGuard:
    async def resolve_user(local_subject: str) -> str | None:
        return users.get(local_subject)

    return ResourceGuard(
        protected_app(translator, app_calls),
        issuer=ISSUER,
        resource=API,
        http_client=idp_http,
        subject_translator=translator,
        user_resolver=resolve_user,
    )


@pytest.fixture
async def api(guard: ResourceGuard) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=guard), base_url="https://rs.example"
    ) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def user_token(idp: IdP, user: str, client_id: str, **kwargs: Any) -> str:
    return idp.issue_access_token(
        user, client_id=client_id, audience=API, scope="items:read", **kwargs
    )
