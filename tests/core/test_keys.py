"""The JWKS cache in production conditions: rotation, floods, outages, garbage, bad keys."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from rs_guard import AuthorizationServer
from rs_guard.idp import IdP

from .conftest import ISSUER, Clock, CountingApp, bearer, build_app

pytestmark = pytest.mark.anyio


def jwks_calls(counting: CountingApp) -> int:
    return counting.calls["/jwks"]


async def test_rotated_key_accepted_after_cooldown(
    make_client: Callable[..., httpx.AsyncClient],
    make_server: Callable[..., AuthorizationServer],
    idp: IdP,
    token: Callable[..., str],
    counting: CountingApp,
) -> None:
    async with make_client(server=make_server(jwks_cooldown=0)) as c:
        assert (await c.get("/whoami", headers=bearer(token()))).status_code == 200
        idp.rotate()
        assert (await c.get("/whoami", headers=bearer(token()))).status_code == 200
        assert jwks_calls(counting) == 2


async def test_unknown_kid_refetch_is_rate_limited(
    make_client: Callable[..., httpx.AsyncClient],
    make_server: Callable[..., AuthorizationServer],
    token: Callable[..., str],
    counting: CountingApp,
) -> None:
    async with make_client(server=make_server(jwks_cooldown=30)) as c:
        assert (await c.get("/whoami", headers=bearer(token()))).status_code == 200
        # The first unknown kid may refetch (the first fetch starts no cooldown, #12): that
        # refetch finds no such key, so it is a 401 ...
        r = await c.get("/whoami", headers=bearer(token(headers={"kid": "random-first"})))
        assert r.status_code == 401
        assert jwks_calls(counting) == 2
        # ... and it starts the cooldown: the next ones cost no fetch. Their claims hold, so
        # their key may be brand new: 503 with Retry-After (until the next refetch), not 401.
        for i in range(50):
            r = await c.get("/whoami", headers=bearer(token(headers={"kid": f"random-{i}"})))
            assert r.status_code == 503
            assert 1 <= int(r.headers["retry-after"]) <= 30
        assert jwks_calls(counting) == 2


async def test_cooldown_elapsed_allows_one_refetch_for_a_flood(
    make_client: Callable[..., httpx.AsyncClient],
    make_server: Callable[..., AuthorizationServer],
    token: Callable[..., str],
    counting: CountingApp,
    clock: Clock,
) -> None:

    async with make_client(server=make_server(jwks_cooldown=0.2)) as c:
        await c.get("/whoami", headers=bearer(token()))
        await asyncio.sleep(0.25)
        bad = [token(headers={"kid": f"k{i}"}) for i in range(200)]
        results = await asyncio.gather(*(c.get("/whoami", headers=bearer(t)) for t in bad))
        assert {r.status_code for r in results} == {401}
        assert jwks_calls(counting) == 2


async def test_concurrent_first_requests_share_one_fetch(
    make_client: Callable[..., httpx.AsyncClient],
    token: Callable[..., str],
    counting: CountingApp,
) -> None:
    tokens = [token(user=f"u{i}") for i in range(1000)]
    async with make_client() as c:
        results = await asyncio.gather(*(c.get("/whoami", headers=bearer(t)) for t in tokens))
    assert {r.status_code for r in results} == {200}
    assert jwks_calls(counting) == 1


async def test_idp_down_with_no_keys_is_503_and_not_cached(
    make_client: Callable[..., httpx.AsyncClient], idp: IdP, token: Callable[..., str]
) -> None:
    idp.faults.jwks = "down"
    async with make_client() as c:
        r = await c.get("/whoami", headers=bearer(token()))
        assert r.status_code == 503
        assert r.headers["retry-after"].isdigit()
        assert "www-authenticate" not in r.headers
        assert r.json()["error"] == "temporarily_unavailable"
        idp.faults.jwks = None
        assert (await c.get("/whoami", headers=bearer(token()))).status_code == 200


@pytest.mark.parametrize("fault", ["down", "garbage"])
async def test_stale_keys_served_during_outage_then_503(
    make_client: Callable[..., httpx.AsyncClient],
    make_server: Callable[..., AuthorizationServer],
    idp: IdP,
    token: Callable[..., str],
    fault: str,
) -> None:

    async with make_client(
        server=make_server(jwks_max_age=0.1, jwks_cooldown=0, jwks_stale_for=0.4)
    ) as c:
        assert (await c.get("/whoami", headers=bearer(token()))).status_code == 200
        idp.faults.jwks = fault
        await asyncio.sleep(0.15)
        # Keys are past max_age and the IdP fails: the good keys keep working.
        assert (await c.get("/whoami", headers=bearer(token(user="bob")))).status_code == 200
        await asyncio.sleep(0.5)
        r = await c.get("/whoami", headers=bearer(token(user="carol")))
        assert r.status_code == 503
        idp.faults.jwks = None
        assert (await c.get("/whoami", headers=bearer(token(user="dave")))).status_code == 200


async def test_slow_idp_times_out_to_503(idp: IdP, token: Callable[..., str], clock: Clock) -> None:
    idp.faults.jwks = "slow"
    idp.faults.delay = 2.0
    async with httpx.AsyncClient(
        transport=idp.transport(), base_url=ISSUER, timeout=0.3
    ) as idp_http:
        app = build_app(idp_http, clock=clock)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://api.example"
        ) as c:
            r = await c.get("/whoami", headers=bearer(token()))
            assert r.status_code == 503


async def _serve_jwks(document: Any, clock: Clock, token: str) -> int:
    """Status for `token` when the IdP's JWKS endpoint serves `document`."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def meta(request: Any) -> Response:
        return Response(json.dumps({"issuer": ISSUER, "jwks_uri": ISSUER + "/jwks"}))

    async def jwks(request: Any) -> Response:
        return Response(document if isinstance(document, bytes) else json.dumps(document))

    fake = Starlette(
        routes=[Route("/.well-known/oauth-authorization-server", meta), Route("/jwks", jwks)]
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake), base_url=ISSUER) as h:
        app = build_app(h, clock=clock)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://api.example"
        ) as c:
            return (await c.get("/whoami", headers=bearer(token))).status_code


async def test_unusable_keys_are_skipped_and_the_rest_work(
    idp: IdP, token: Callable[..., str], clock: Clock
) -> None:
    good = idp.jwks()["keys"]
    hostile = [
        {"kty": "XYZ", "kid": "a"},
        {**good[0], "use": "enc", "kid": "enc-key"},
        {"kty": "EC", "crv": "P-256", "x": "bad", "y": "bad", "kid": "broken"},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "sym"},
        "not-an-object",
        {**good[0], "kid": 12},
    ]
    assert await _serve_jwks({"keys": hostile + good}, clock, token()) == 200


@pytest.mark.parametrize(
    "document", [b"not json", {"keys": "nope"}, {"nokeys": []}, [], {"keys": []}, b"\xff\xfe"]
)
async def test_garbage_jwks_without_good_copy_is_503(
    document: Any, token: Callable[..., str], clock: Clock
) -> None:
    assert await _serve_jwks(document, clock, token()) == 503


async def test_private_key_in_jwks_is_never_used(
    idp: IdP, token: Callable[..., str], clock: Clock
) -> None:
    private = idp.private_jwks()["keys"]
    assert await _serve_jwks({"keys": private}, clock, token()) == 503


async def test_discovery_issuer_mismatch_refuses_keys(
    token: Callable[..., str], clock: Clock
) -> None:
    impostor = IdP("https://impostor.example", clock=clock)
    async with httpx.AsyncClient(transport=impostor.transport(), base_url=ISSUER) as h:
        app = build_app(h, clock=clock)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://api.example"
        ) as c:
            r = await c.get("/whoami", headers=bearer(token()))
            assert r.status_code == 503


async def test_retired_key_stops_vouching_after_refresh(
    make_client: Callable[..., httpx.AsyncClient],
    make_server: Callable[..., AuthorizationServer],
    idp: IdP,
    token: Callable[..., str],
) -> None:

    old_kid = idp.jwks()["keys"][0]["kid"]
    cached, uncached = token(), token(user="bob")
    async with make_client(server=make_server(jwks_max_age=0.1, jwks_cooldown=0)) as c:
        assert (await c.get("/whoami", headers=bearer(cached))).status_code == 200
        idp.rotate()
        idp.retire(old_kid)
        await asyncio.sleep(0.15)
        # A request after max_age refreshes the key set: the retired key is gone.
        assert (await c.get("/whoami", headers=bearer(token(user="x")))).status_code == 200
        assert (await c.get("/whoami", headers=bearer(uncached))).status_code == 401
        # Even a token verified (and cached) before the retirement no longer passes.
        assert (await c.get("/whoami", headers=bearer(cached))).status_code == 401


async def test_pre_published_key_is_accepted_without_waiting_for_the_cooldown(
    make_client: Callable[..., httpx.AsyncClient],
    make_server: Callable[..., AuthorizationServer],
    idp: IdP,
    token: Callable[..., str],
    counting: CountingApp,
) -> None:
    async with make_client(server=make_server(jwks_max_age=0.1, jwks_cooldown=30)) as c:
        next_kid = idp.rotate(activate=False)  # published, not yet used
        assert (await c.get("/whoami", headers=bearer(token()))).status_code == 200
        await asyncio.sleep(0.15)  # the guard's regular refresh picks the new key up
        assert (await c.get("/whoami", headers=bearer(token(user="b")))).status_code == 200
        idp.activate(next_kid)
        t = token(user="c")
        assert (
            json.loads(__import__("base64").urlsafe_b64decode(t.split(".")[0] + "=="))["kid"]
            == next_kid
        )
        assert (await c.get("/whoami", headers=bearer(t))).status_code == 200
        assert counting.calls["/jwks"] == 2


async def test_guard_retry_after_setting_is_used_for_503(
    make_client: Callable[..., httpx.AsyncClient], idp: IdP, token: Callable[..., str]
) -> None:
    idp.faults.jwks = "down"
    async with make_client(retry_after=17) as c:
        r = await c.get("/whoami", headers=bearer(token()))
        assert r.status_code == 503
        assert r.headers["retry-after"] == "17"
