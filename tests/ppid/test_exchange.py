"""Service-to-service tokens: client credentials and RFC 8693 exchange against the bundled IdP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rs_guard import AccessToken, InsufficientScope, InvalidToken, ResourceGuard
from rs_guard.idp import IdP
from rs_guard.outbound import (
    ClientCredentials,
    TokenExchanger,
    TokenRequestRefused,
    TokenServiceUnavailable,
)

from .conftest import ISSUER, Clock, CountingApp

pytestmark = pytest.mark.anyio

A_API = "https://a.example/api"
B_API = "https://b.example/api"


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


@pytest.fixture
def chain_idp(idp: IdP) -> IdP:
    idp.register_client(
        "svc-a",
        "svc-a-secret",
        subject_type="pairwise",
        sector_identifier_uri="https://svc-a.example/sector.json",
        served_resources=[A_API],  # A may exchange the tokens it receives
    )
    idp.register_client(
        "svc-b",
        "svc-b-secret",
        subject_type="pairwise",
        sector_identifier_uri="https://svc-b.example/sector.json",
    )
    return idp


@pytest.fixture
async def guard_a(chain_idp: IdP, idp_http: httpx.AsyncClient) -> ResourceGuard:
    async def nothing(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
        raise AssertionError

    return ResourceGuard(nothing, issuer=ISSUER, resource=A_API, http_client=idp_http)


@pytest.fixture
async def received(chain_idp: IdP, guard_a: ResourceGuard) -> AccessToken:
    """What service A got: alice's token from web-a, validated by A's guard."""
    token = chain_idp.issue_access_token(
        "alice", client_id="web-a", audience=A_API, scope="a:read b:read"
    )
    return await guard_a.authenticate(token)


@pytest.fixture
async def exchanger(idp_http: httpx.AsyncClient) -> AsyncIterator[TokenExchanger]:
    ex = TokenExchanger(
        issuer=ISSUER,
        client_id="svc-a",
        client_secret="svc-a-secret",
        http_client=idp_http,
        timeout=0.5,
    )
    yield ex
    await ex.aclose()


async def test_exchange_gives_a_downstream_token_in_the_services_own_namespace(
    chain_idp: IdP, exchanger: TokenExchanger, received: AccessToken
) -> None:
    token = await exchanger.exchange(received, resource=B_API, scope="b:read")
    assert token != received.token
    got = claims(token)
    assert got["aud"] == B_API
    assert got["client_id"] == "svc-a"
    assert got["scope"] == "b:read"
    # The downstream sees the user under service A's PPID, not the end client's.
    assert got["sub"] == chain_idp.subject_for("alice", "svc-a")
    assert got["sub"] != received.subject


async def test_exchanged_tokens_are_cached_per_token_audience_and_scope(
    chain_idp: IdP, exchanger: TokenExchanger, received: AccessToken, counting: CountingApp
) -> None:
    first = await exchanger.exchange(received, resource=B_API, scope="b:read")
    assert await exchanger.exchange(received, resource=B_API, scope="b:read") == first
    assert counting.calls["/token"] == 1
    await exchanger.exchange(received, resource=B_API)  # other scope
    await exchanger.exchange(received, audience="svc-b", scope="b:read")  # other audience
    assert counting.calls["/token"] == 3
    results = await asyncio.gather(
        *(exchanger.exchange(received, resource=A_API, scope="a:read") for _ in range(100))
    )
    assert len(set(results)) == 1
    assert counting.calls["/token"] == 4


async def test_cache_lasts_until_shortly_before_expiry(
    chain_idp: IdP, idp_http: httpx.AsyncClient, received: AccessToken, counting: CountingApp
) -> None:
    import time

    clock = Clock(time.time())
    ex = TokenExchanger(
        issuer=ISSUER,
        client_id="svc-a",
        client_secret="svc-a-secret",
        http_client=idp_http,
        clock=clock,
        refresh_margin=30,
    )
    await ex.exchange(received, resource=B_API)
    clock.now += 200
    await ex.exchange(received, resource=B_API)
    assert counting.calls["/token"] == 1
    clock.now += 75  # 275 s: within 30 s of the 300 s lifetime
    await ex.exchange(received, resource=B_API)
    assert counting.calls["/token"] == 2


async def test_revoked_received_token_is_invalid_token(
    chain_idp: IdP, exchanger: TokenExchanger, received: AccessToken
) -> None:
    chain_idp.revoke(received.token)
    with pytest.raises(InvalidToken) as info:
        await exchanger.exchange(received, resource=B_API)
    assert info.value.status_code == 401
    assert info.value.reason == "exchange_invalid_grant"


async def test_scope_beyond_the_received_token_is_insufficient_scope(
    exchanger: TokenExchanger, received: AccessToken
) -> None:
    with pytest.raises(InsufficientScope) as info:
        await exchanger.exchange(received, resource=B_API, scope="b:write")
    assert info.value.scopes == ("b:write",)


async def test_exchange_needs_valid_service_credentials(
    idp_http: httpx.AsyncClient, received: AccessToken
) -> None:
    ex = TokenExchanger(
        issuer=ISSUER, client_id="svc-a", client_secret="wrong", http_client=idp_http
    )
    with pytest.raises(TokenRequestRefused) as info:
        await ex.exchange(received, resource=B_API)
    assert info.value.status_code == 503
    assert info.value.idp_error == "invalid_client"


@pytest.mark.parametrize("fault", ["down", "slow", "garbage"])
async def test_token_endpoint_outage(
    chain_idp: IdP, exchanger: TokenExchanger, received: AccessToken, fault: str
) -> None:
    chain_idp.faults.token = fault  # type: ignore[assignment]
    chain_idp.faults.delay = 2.0
    with pytest.raises(TokenServiceUnavailable) as info:
        await exchanger.exchange(received, resource=B_API)
    assert info.value.status_code == 503
    chain_idp.faults.token = None
    assert await exchanger.exchange(received, resource=B_API)  # not cached as a failure


async def test_client_credentials_cached_and_renewed(
    chain_idp: IdP, idp_http: httpx.AsyncClient, counting: CountingApp
) -> None:
    import time

    clock = Clock(time.time())
    cc = ClientCredentials(
        issuer=ISSUER,
        client_id="svc-a",
        client_secret="svc-a-secret",
        http_client=idp_http,
        scope="b:read",
        resource=B_API,
        clock=clock,
    )
    tokens = await asyncio.gather(*(cc.token() for _ in range(50)))
    assert len(set(tokens)) == 1
    assert counting.calls["/token"] == 1
    got = claims(tokens[0])
    assert (got["sub"], got["client_id"], got["aud"], got["scope"]) == (
        "svc-a",
        "svc-a",
        B_API,
        "b:read",
    )
    clock.now += 271
    assert await cc.token() != tokens[0]
    assert counting.calls["/token"] == 2
    other = await cc.token(scope="a:read")
    assert claims(other)["scope"] == "a:read"
    assert counting.calls["/token"] == 3


async def test_client_credentials_failures(chain_idp: IdP, idp_http: httpx.AsyncClient) -> None:
    bad = ClientCredentials(
        issuer=ISSUER, client_id="svc-a", client_secret="nope", http_client=idp_http
    )
    with pytest.raises(TokenRequestRefused):
        await bad.token()
    chain_idp.faults.token = "down"
    good = ClientCredentials(
        issuer=ISSUER, client_id="svc-a", client_secret="svc-a-secret", http_client=idp_http
    )
    with pytest.raises(TokenServiceUnavailable):
        await good.token()
    chain_idp.faults.token = None
    assert await good.token()


async def test_httpx_auth_sends_tokens_and_retries_once_on_401(
    chain_idp: IdP, idp_http: httpx.AsyncClient, exchanger: TokenExchanger, received: AccessToken
) -> None:
    seen: list[str] = []
    refused: set[str] = set()

    async def echo(request: Request) -> JSONResponse:
        seen.append(request.auth.subject)
        return JSONResponse({"client_id": request.auth.client_id})

    guard = ResourceGuard(
        Starlette(routes=[Route("/x", echo)]),
        issuer=ISSUER,
        resource=B_API,
        http_client=idp_http,
    )

    async def b(scope: Any, receive: Any, send: Any) -> None:
        # Service B refuses tokens it was told to (as after a revocation it learnt about).
        auth = dict(scope["headers"]).get(b"authorization", b"").decode()
        if auth.removeprefix("Bearer ") in refused:
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await guard(scope, receive, send)

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=b), base_url="https://b.example"
    ) as http:
        resp = await http.get("/x", auth=exchanger.auth(received, resource=B_API))
        assert resp.json() == {"client_id": "svc-a"}
        first = await exchanger.exchange(received, resource=B_API)
        refused.add(first)
        resp = await http.get("/x", auth=exchanger.auth(received, resource=B_API))
        assert resp.status_code == 200
        assert await exchanger.exchange(received, resource=B_API) != first

        cc = ClientCredentials(
            issuer=ISSUER,
            client_id="svc-a",
            client_secret="svc-a-secret",
            http_client=idp_http,
            resource=B_API,
        )
        own = await cc.token()
        refused.add(own)
        resp = await http.get("/x", auth=cc.auth())
        assert resp.json() == {"client_id": "svc-a"}
        assert await cc.token() != own

    attempts = 0

    async def refuse_all(scope: Any, receive: Any, send: Any) -> None:
        nonlocal attempts
        attempts += 1
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=refuse_all), base_url="https://b.example"
    ) as http:
        resp = await http.get("/x", auth=cc.auth())
    assert resp.status_code == 401
    assert attempts == 2  # one fresh try, no loop
    assert seen[-1] == "svc-a"
    assert received.subject not in seen  # the received token never went downstream
