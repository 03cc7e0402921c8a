"""Fail fast, then stay up: bad configuration at construction or start-up, prefetch, readiness,
and the pieces that need a ResourceGuard in front failing closed (with a log line) without one."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Security
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from rs_guard import AuthorizationServer, ConfigurationError, Requirement, ResourceGuard, require
from rs_guard.access_token import AccessToken
from rs_guard.fastapi import OAuth2Guard
from rs_guard.health import Readiness
from rs_guard.mcp import ToolGuard
from rs_guard.observe import Counters
from rs_guard.testing import TestIdP, serve

pytestmark = pytest.mark.anyio


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


def app() -> Starlette:
    return Starlette(routes=[Route("/items", hello)])


@pytest.fixture
def idp() -> TestIdP:
    return TestIdP()


# -- bad configuration raises at construction, naming the option ------------------------------


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"public_paths": "/health"}, "public_paths="),  # letter by letter, "/" made public
        ({"public_paths": ["health"]}, "public_paths="),
        ({"public_paths": ["/a*b"]}, "public_paths="),
        ({"requirements": {"/items": "items:read"}}, "requirements="),
        ({"requirements": {"items": Requirement()}}, "requirements="),
        ({"default_requirement": "items:read"}, "default_requirement="),
        ({"issuer": "idp.test"}, "issuer="),
        ({"issuer": "https://idp.test/?x=1"}, "issuer="),
        ({"prefetch": "maybe"}, "prefetch="),
        ({"retry_after": 0}, "retry_after="),
        ({"leeway": -1}, "leeway="),
        ({"observer": "counters"}, "observer="),
        ({"subject_translator": object()}, "subject_translator="),
        ({"validator": object()}, "validator="),
    ],
)
def test_bad_option_raises_at_construction(
    idp: TestIdP, options: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named.replace("*", r"\*")):
        ResourceGuard(app(), **idp.guard_settings(**options))


async def test_middleware_built_at_lifespan_fails_start_up_and_says_why(
    idp: TestIdP, caplog: pytest.LogCaptureFixture
) -> None:
    # Starlette builds Middleware(...) on its first call, the lifespan: not a 500 per request.
    bad = Starlette(
        routes=[Route("/items", hello)],
        middleware=[Middleware(ResourceGuard, issuer="idp.test", resource=idp.resource)],
    )
    with pytest.raises(RuntimeError, match="lifespan startup failed"):
        async with serve(bad):  # uvicorn --lifespan on
            pass
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("ResourceGuard configuration error: issuer=" in m for m in errors)
    # Control: the same app with a good issuer starts and guards.
    good = Starlette(
        routes=[Route("/items", hello)],
        middleware=[Middleware(ResourceGuard, **idp.guard_settings())],
    )
    async with serve(good) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/items")).status_code == 401


def test_conflicting_options_are_refused_by_name(idp: TestIdP) -> None:
    server = AuthorizationServer(idp.issuer, http_client=idp.http_client())
    with pytest.raises(ConfigurationError, match="http_client="):
        ResourceGuard(app(), resource=idp.resource, server=server, http_client=idp.http_client())


# -- start-up prefetch --------------------------------------------------------------------------


async def test_prefetch_require_refuses_to_start_when_the_idp_is_down(
    idp: TestIdP, caplog: pytest.LogCaptureFixture
) -> None:
    guard = ResourceGuard(app(), **idp.guard_settings(prefetch="require"))
    with idp.outage(), pytest.raises(RuntimeError, match="lifespan startup failed"):
        async with serve(guard):
            pass
    line = next(r.getMessage() for r in caplog.records if "prefetch failed" in r.getMessage())
    assert idp.issuer in line and "discovery failed (http_503" in line
    assert "/.well-known/openid-configuration" in line  # the URLs it tried


async def test_prefetch_require_starts_with_keys_in_hand(idp: TestIdP) -> None:
    counters = Counters()
    guard = ResourceGuard(app(), **idp.guard_settings(prefetch="require", observer=counters))
    async with serve(guard) as url, httpx.AsyncClient(base_url=url) as client:
        assert counters.get("jwks_refreshed") == 1  # before any request
        r = await client.get("/items", headers=idp.auth_headers())
        assert r.status_code == 200
        assert counters.get("jwks_refreshed") == 1


async def test_prefetch_warn_starts_anyway_and_says_so(
    idp: TestIdP, caplog: pytest.LogCaptureFixture
) -> None:
    guard = ResourceGuard(app(), **idp.guard_settings(prefetch="warn"))
    outage = idp.outage()
    async with serve(guard) as url, httpx.AsyncClient(base_url=url) as client:
        warning = [r for r in caplog.records if "prefetch failed" in r.getMessage()]
        assert warning and warning[0].levelno == logging.WARNING
        assert (await client.get("/items", headers=idp.auth_headers())).status_code == 503
        outage.end()
        assert (await client.get("/items", headers=idp.auth_headers())).status_code == 200


async def test_prefetch_off_fetches_nothing_at_start_up(idp: TestIdP) -> None:
    counters = Counters()
    guard = ResourceGuard(app(), **idp.guard_settings(observer=counters))
    async with serve(guard):
        assert counters.get("jwks_refreshed") == 0


# -- the readiness endpoint ---------------------------------------------------------------------


def probed(idp: TestIdP, server: AuthorizationServer, **options: Any) -> ResourceGuard:
    inner = Starlette(
        routes=[Route("/items", hello), Route("/ready", Readiness(server, **options))]
    )
    return ResourceGuard(
        inner, resource=idp.resource, server=server, public_paths=["/ready"], serve_metadata=False
    )


async def test_readiness_reports_fresh_keys_and_a_reachable_idp(idp: TestIdP) -> None:
    server = AuthorizationServer(idp.issuer, http_client=idp.http_client())
    async with serve(probed(idp, server)) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.get("/ready")  # no token: probes carry none
        assert r.status_code == 200, r.text
        (issuer,) = r.json()["issuers"]
        assert r.json()["ready"] is True
        assert issuer["issuer"] == idp.issuer and issuer["fresh"] and issuer["idp_reachable"]
        assert issuer["keys"] >= 1 and issuer["keys_age_seconds"] is not None
        assert r.headers["cache-control"] == "no-store"


async def test_readiness_is_503_while_no_keys_can_be_had(idp: TestIdP) -> None:
    server = AuthorizationServer(idp.issuer, http_client=idp.http_client())
    async with serve(probed(idp, server)) as url, httpx.AsyncClient(base_url=url) as client:
        with idp.outage():
            r = await client.get("/ready")
            assert r.status_code == 503
            (issuer,) = r.json()["issuers"]
            assert issuer["usable"] is False and issuer["idp_reachable"] is False
            assert idp.issuer in issuer["problem"]
        r = await client.get("/ready")  # control: the IdP is back
        assert r.status_code == 200


async def test_readiness_reports_stale_keys_during_an_outage(idp: TestIdP) -> None:
    server = AuthorizationServer(
        idp.issuer, http_client=idp.http_client(), jwks_max_age=0.05, jwks_cooldown=0.05
    )
    lenient, strict = Readiness(server), Readiness(server, require_fresh=True)
    assert (await lenient.status())["ready"] is True
    with idp.outage("jwks"):
        import asyncio

        await asyncio.sleep(0.1)
        doc = await lenient.status()
        (issuer,) = doc["issuers"]
        assert doc["ready"] is True and issuer["usable"] and not issuer["fresh"]
        assert issuer["idp_reachable"] is False
        assert (await strict.status())["ready"] is False


# -- ToolGuard / OAuth2Guard / @require without a ResourceGuard: fail closed, name the fix -----


async def echo_mcp(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return  # no lifespan of its own
    await JSONResponse({"jsonrpc": "2.0", "id": 1, "result": {}})(scope, receive, send)


async def test_tool_guard_without_resource_guard_fails_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tools = ToolGuard(echo_mcp, {"delete": Requirement(scopes=("notes:write",))})
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "delete"}}
    # Where the lifespan reaches it, the missing guard is known at start-up: refused.
    with pytest.raises(RuntimeError, match="lifespan startup failed"):
        async with serve(tools):
            pass
    starting = [r.getMessage() for r in caplog.records if "needs a ResourceGuard" in r.getMessage()]
    assert starting and "ResourceGuard(ToolGuard(" in starting[0]
    # Without a lifespan (e.g. under a Mount), each checked call fails closed instead.
    async with serve(tools, lifespan="off") as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.post("/", json=call)
        assert r.status_code == 500 and r.json()["error"] == "server_error"
        # Control: a call no requirement covers is not ToolGuard's to refuse.
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        assert (await client.post("/", json=listing)).status_code == 200
    errors = [
        r for r in caplog.records if r.levelno == logging.ERROR and "ToolGuard" in r.getMessage()
    ]
    assert errors and "ResourceGuard(" in errors[0].getMessage()


async def test_tool_guard_behind_a_resource_guard_starts(idp: TestIdP) -> None:
    tools = ToolGuard(echo_mcp, {"delete": Requirement(scopes=("notes:write",))})
    guard = ResourceGuard(tools, **idp.guard_settings(serve_metadata=False))
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "delete"}}
    async with serve(guard) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.post("/", json=call, headers=idp.auth_headers("a", "notes:write"))
        assert r.status_code == 200


async def test_oauth2_guard_without_the_middleware_fails_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    oauth2 = OAuth2Guard(
        authorization_url="https://idp.test/authorize", token_url="https://idp.test/token"
    )
    api = FastAPI()

    @api.get("/items")
    async def items(token: AccessToken = Security(oauth2, scopes=["items:read"])) -> dict[str, str]:
        return {"sub": token.subject}

    async with serve(api) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.get("/items", headers={"Authorization": "Bearer x"})
        assert r.status_code == 500
        assert "not configured to check access tokens" in r.text
    assert any(
        "OAuth2Guard" in r.getMessage() and "ResourceGuard(" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR
    )


async def test_require_without_the_middleware_fails_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @require("items:read")
    async def items(request: Request) -> Response:
        return PlainTextResponse("secret")

    async with (
        serve(Starlette(routes=[Route("/items", items)])) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        r = await client.get("/items")
        assert r.status_code == 500 and "secret" not in r.text
    assert any("@require" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
