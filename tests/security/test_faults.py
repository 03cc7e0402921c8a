"""Fault injection: the IdP down, slow, unreachable or answering garbage during JWKS fetch and
introspection. The documented degraded behaviour holds (stale keys within bounds, 503 with
Retry-After otherwise), no failure is cached, and service recovers by itself."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from starlette.responses import Response

from rs_guard import IntrospectionValidator
from rs_guard.discovery import ServerMetadata

from .conftest import ISSUER, RESOURCE, World, expect

pytestmark = pytest.mark.anyio

JWKS = "/jwks"


# ----- JWKS ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "reason"), [("down", "jwks_http_503"), ("garbage", "jwks_response_not_json")]
)
async def test_cold_guard_with_the_jwks_failing_then_recovering(
    world: World, mode: str, reason: str
) -> None:
    setattr(world.idp.faults, "jwks", mode)
    token = world.token()
    for attempt in range(1, 4):
        expect(await world.get(token), 503, None, reason, world.events)
        assert world.counter.count(JWKS) == attempt  # every request tries again: nothing cached
    world.idp.faults.jwks = None
    assert (await world.get(token)).status_code == 200
    assert world.counter.count(JWKS) == 4
    assert "jwks_refresh_failed" in world.events.names()


async def test_slow_jwks_times_out_once_for_a_whole_burst(world: World) -> None:
    world.use_keys(timeout=0.2)
    world.idp.faults.jwks = "slow"
    world.idp.faults.delay = 5.0
    token = world.token()
    started = time.monotonic()
    responses = await asyncio.gather(*(world.get(token) for _ in range(30)))
    assert time.monotonic() - started < 2.0  # bounded by the timeout, not by the IdP
    for resp in responses:
        expect(resp, 503, None, "jwks_timeout", world.events)
    assert world.counter.count(JWKS) == 1  # single flight
    world.idp.faults.jwks = None
    assert (await world.get(token)).status_code == 200


@pytest.mark.parametrize(
    ("fault", "reason"), [("connect", "jwks_unreachable"), ("timeout", "jwks_timeout")]
)
async def test_network_failures(world: World, fault: str, reason: str) -> None:
    world.transport.fault = fault
    expect(await world.get(world.token()), 503, None, reason, world.events)
    world.transport.fault = None
    assert (await world.get(world.token())).status_code == 200


@pytest.mark.parametrize("status", [500, 502, 404, 429, 401, 204])
async def test_jwks_error_statuses(world: World, status: int) -> None:
    world.counter.override[JWKS] = lambda: Response(b'{"keys": []}', status_code=status)
    expect(await world.get(world.token()), 503, None, f"jwks_http_{status}", world.events)


async def test_stale_keys_are_served_within_bounds_then_refused(world: World) -> None:
    mono, cache = world.use_keys(max_age=300, stale_for=600, cooldown=30)
    cached = world.token(lifetime=3600)
    assert (await world.get(cached)).status_code == 200
    world.idp.faults.jwks = "down"
    # Past max_age: the refresh fails, the keys in hand keep working.
    mono.now += 301
    assert (await world.get(world.token())).status_code == 200
    assert "jwks_stale_served" in world.events.names()
    # ...with at most one attempt per cool-down while the IdP stays down.
    before = world.counter.count(JWKS)
    for _ in range(20):
        assert (await world.get(world.token())).status_code == 200
    assert world.counter.count(JWKS) == before
    # Past max_age + stale_for: no more trust in old keys.
    mono.now += 600
    expect(await world.get(world.token()), 503, None, "jwks_http_503", world.events)
    # Cached results stop too: the key set they relied on is gone.
    expect(await world.get(cached), 503, None, "keys_unavailable", world.events)
    # The IdP returns: the guard recovers by itself within one cool-down.
    world.idp.faults.jwks = None
    mono.now += cache.cooldown
    assert (await world.get(world.token())).status_code == 200


async def test_garbage_refresh_never_replaces_good_keys(world: World) -> None:
    mono, cache = world.use_keys()
    token = world.token()
    assert (await world.get(token)).status_code == 200
    for body in (b"<html>", b'{"keys": []}', b'{"keys": [{"kty": "oct", "k": "AA"}]}'):
        world.counter.override[JWKS] = lambda body=body: Response(body)
        mono.now += cache.max_age
        assert (await world.get(world.token())).status_code == 200
    del world.counter.override[JWKS]
    mono.now += cache.max_age
    assert (await world.get(world.token())).status_code == 200
    assert world.events.names().count("jwks_refresh_failed") == 3


async def test_unknown_kid_while_the_idp_is_down_is_a_401_not_a_503(world: World) -> None:
    mono, cache = world.use_keys()
    assert (await world.get(world.token())).status_code == 200
    world.idp.faults.jwks = "down"
    mono.now += cache.cooldown
    world.idp.rotate()
    expect(await world.get(world.token()), 401, "invalid_token", "unknown_kid", world.events)


async def test_discovery_outage_after_first_success_uses_the_known_document(
    world: World,
) -> None:
    mono, cache = world.use_keys()
    assert (await world.get(world.token())).status_code == 200
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        world.counter.override[path] = lambda: Response(b"down", status_code=503)
    mono.now += 10_000  # metadata and keys both past their age
    world.idp.rotate()
    assert (await world.get(world.token())).status_code == 200


# ----- introspection ---------------------------------------------------------------------------


def use_introspection(world: World, **options: Any) -> IntrospectionValidator:
    settings: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": RESOURCE,
        "client_id": "rs",
        "client_secret": "rs-secret",
        "metadata": ServerMetadata(ISSUER, http_client=world.idp_http),
        "http_client": world.idp_http,
        "timeout": 0.3,
        "observer": world.events,
        "clock": world.clock,
    }
    settings.update(options)
    validator = IntrospectionValidator(**settings)
    world.use_guard(validator=validator)
    return validator


async def test_introspection_happy_path_is_cached(world: World) -> None:
    use_introspection(world)
    token = world.token()
    for _ in range(5):
        assert (await world.get(token)).status_code == 200
    assert world.counter.count("/introspect") == 1


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("down", "introspection_http_503"),
        ("garbage", "introspection_response_not_json"),
        ("slow", "introspection_timeout"),
    ],
)
async def test_introspection_faults_then_recovery(world: World, mode: str, reason: str) -> None:
    use_introspection(world)
    world.idp.faults.introspection = mode  # type: ignore[assignment]
    world.idp.faults.delay = 5.0
    token = world.token()
    for attempt in range(1, 3):
        expect(await world.get(token), 503, None, reason, world.events)
        assert world.counter.count("/introspect") == attempt
    assert "introspection_failed" in world.events.names()
    world.idp.faults.introspection = None
    assert (await world.get(token)).status_code == 200


@pytest.mark.parametrize(
    ("answer", "status", "reason"),
    [
        ({}, 503, "introspection_garbage"),
        ({"active": "true"}, 503, "introspection_garbage"),
        ({"active": 1}, 503, "introspection_garbage"),
        ({"active": None}, 503, "introspection_garbage"),
        ({"active": False}, 401, "inactive"),
        ({"active": True}, 401, "bad_audience"),
        ({"active": True, "aud": RESOURCE, "iss": "https://evil.example"}, 401, "bad_issuer"),
        ({"active": True, "aud": "https://other.example"}, 401, "bad_audience"),
        ({"active": True, "aud": RESOURCE, "exp": 1}, 401, "expired"),
        ({"active": True, "aud": RESOURCE, "exp": "soon"}, 401, "expired"),
        ({"active": True, "aud": RESOURCE, "nbf": 9e15}, 401, "not_yet_valid"),
        ({"active": True, "aud": RESOURCE, "scope": ["items:read"]}, 401, "bad_claim_type"),
        ({"active": True, "aud": RESOURCE, "sub": 7}, 401, "bad_claim_type"),
        ({"active": True, "aud": RESOURCE, "token_type": "refresh_token"}, 401, "bad_token_type"),
    ],
    ids=repr,
)
async def test_introspection_answers(
    world: World, answer: dict[str, Any], status: int, reason: str
) -> None:
    use_introspection(world)
    world.counter.override["/introspect"] = lambda: Response(
        json.dumps(answer).encode(), media_type="application/json"
    )
    token = world.token()
    resp = await world.get(token)
    expect(resp, status, None if status == 503 else "invalid_token", reason, world.events)
    # Neither failures nor inactive answers are cached.
    await world.get(token)
    assert world.counter.count("/introspect") == 2


async def test_introspection_answer_too_large(world: World) -> None:
    use_introspection(world)
    big = json.dumps({"active": True, "aud": RESOURCE, "pad": "a" * 70_000}).encode()
    world.counter.override["/introspect"] = lambda: Response(big, media_type="application/json")
    expect(
        await world.get(world.token()), 503, None, "introspection_response_too_large", world.events
    )


async def test_introspection_with_a_wrong_secret_is_a_server_side_failure(world: World) -> None:
    use_introspection(world, client_secret="wrong")
    resp = await world.get(world.token())
    expect(resp, 503, None, "introspection_http_401", world.events)
    assert "wrong" not in resp.text


async def test_revoked_token_stops_working_after_the_cache_ttl(world: World) -> None:
    use_introspection(world, cache_ttl=10)
    token = world.token()
    assert (await world.get(token)).status_code == 200
    world.idp.revoke(token)
    assert (await world.get(token)).status_code == 200  # cached: the documented window
    world.clock.now += 10
    expect(await world.get(token), 401, "invalid_token", "inactive", world.events)


# ----- the token endpoint (client credentials for PPID conversion, token exchange) -----------


@pytest.mark.parametrize(
    "expires_in",
    ["1e400", "1" + "0" * 400, "-5", "0", '"3600"', "true", "null"],
)
async def test_token_endpoint_lifetimes_that_are_not_lifetimes(
    world: World, expires_in: str
) -> None:
    from rs_guard.exchange import ClientCredentials, TokenServiceUnavailable

    body = f'{{"access_token": "abc", "token_type": "Bearer", "expires_in": {expires_in}}}'
    world.counter.override["/token"] = lambda: Response(
        body.encode(), media_type="application/json"
    )
    source = ClientCredentials(
        client_id="client-a",
        client_secret="secret-a",
        token_endpoint=f"{ISSUER}/token",
        http_client=world.idp_http,
    )
    # An infinite, huge, negative or mistyped lifetime is garbage: never cached forever.
    with pytest.raises(TokenServiceUnavailable) as info:
        await source.token(scope="ppid:convert")
    assert info.value.reason == "token_garbage"


@pytest.mark.parametrize("mode", ["down", "garbage", "slow"])
async def test_token_endpoint_faults(world: World, mode: str) -> None:
    from rs_guard.exchange import ClientCredentials, TokenServiceUnavailable

    world.idp.faults.token = mode  # type: ignore[assignment]
    world.idp.faults.delay = 5.0
    source = ClientCredentials(
        client_id="client-a",
        client_secret="secret-a",
        token_endpoint=f"{ISSUER}/token",
        http_client=world.idp_http,
        timeout=0.3,
    )
    with pytest.raises(TokenServiceUnavailable):
        await source.token(scope="items:read")
    world.idp.faults.token = None
    assert await source.token(scope="items:read")  # not cached: recovers at once


async def test_a_burst_with_one_new_token_makes_one_introspection_call(world: World) -> None:
    use_introspection(world)
    token = world.token()
    responses = await asyncio.gather(*(world.get(token) for _ in range(25)))
    assert {r.status_code for r in responses} == {200}
    assert world.counter.count("/introspect") == 1
    # A failing call is shared by the burst, and not remembered afterwards.
    world.idp.faults.introspection = "down"
    other = world.token()
    responses = await asyncio.gather(*(world.get(other) for _ in range(25)))
    assert {r.status_code for r in responses} == {503}
    assert world.counter.count("/introspect") == 2
    world.idp.faults.introspection = None
    assert (await world.get(other)).status_code == 200
    assert world.counter.count("/introspect") == 3
