"""RFC 8725 §3.10 / RFC 8414 §3.3: key rotation and retirement, unknown-kid floods (the guard
must not hammer the IdP), hostile and partly broken JWKS documents, discovery issuer mismatch."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa, x25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from starlette.responses import Response, StreamingResponse

from rs_guard.keys import parse_jwk, parse_jwks

from .conftest import ISSUER, World, expect
from .forge import b64, idp_sign, parts, seg, sign_segments

pytestmark = pytest.mark.anyio

JWKS = "/jwks"
DISCOVERY = "/.well-known/oauth-authorization-server"


def serve(body: Any, status: int = 200, **kwargs: Any) -> Callable[[], Response]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return lambda: Response(raw, status_code=status, media_type="application/json", **kwargs)


def random_kid_token(world: World, payload: dict[str, Any]) -> str:
    return idp_sign(
        world.idp, {"alg": "ES256", "typ": "at+jwt", "kid": secrets.token_urlsafe(12)}, payload
    )


# ----- rotation ----------------------------------------------------------------------------


async def test_rotation_and_retirement(world: World) -> None:
    mono, cache = world.use_keys()
    old_token = world.token()
    assert (await world.get(old_token)).status_code == 200
    assert world.counter.count(JWKS) == 1
    new_kid = world.idp.rotate()
    new_token = world.token()
    assert parts(new_token)[0]["kid"] == new_kid
    # Right after the first fetch (it starts no cooldown, #12) the new kid is fetched at once.
    assert (await world.get(new_token)).status_code == 200
    assert world.counter.count(JWKS) == 2
    # The old key is still published: its tokens keep working.
    assert (await world.get(old_token)).status_code == 200
    # Retire the old key; once the JWKS is due, even the cached token stops working: a token
    # reused on its own must not keep a retired key vouching for it until its `exp`.
    world.idp.retire(parts(old_token)[0]["kid"])
    mono.now += cache.max_age
    expect(await world.get(old_token), 401, "invalid_token", "unknown_kid", world.events)
    assert world.counter.count(JWKS) == 3
    assert (await world.get(new_token)).status_code == 200
    assert world.counter.count(JWKS) == 3


async def test_cached_token_dropped_when_its_key_disappears(world: World) -> None:
    mono, cache = world.use_keys()
    old_token = world.token()
    assert (await world.get(old_token)).status_code == 200
    world.idp.rotate()
    world.idp.retire(parts(old_token)[0]["kid"])
    mono.now += cache.max_age
    # Other traffic refreshes the key set first; the cached token then meets a new generation.
    assert (await world.get(world.token())).status_code == 200
    expect(await world.get(old_token), 401, "invalid_token", "key_retired", world.events)


async def test_retired_key_tokens_never_seen_before_are_unknown(world: World) -> None:
    mono, cache = world.use_keys()
    old_kid = world.idp.keys.active().kid
    old_key = world.idp.keys.active().private_key
    assert (await world.get(world.token())).status_code == 200
    world.idp.rotate()
    world.idp.retire(old_kid)
    mono.now += cache.max_age
    _, payload, _ = parts(world.token())
    forged = sign_segments(
        old_key, "ES256", seg({"alg": "ES256", "typ": "at+jwt", "kid": old_kid}), seg(payload)
    )
    expect(await world.get(forged), 401, "invalid_token", "unknown_kid", world.events)


# ----- unknown-kid floods ------------------------------------------------------------------


async def test_unknown_kid_flood_on_a_cold_guard_costs_one_fetch(world: World) -> None:
    world.use_keys()
    _, payload, _ = parts(world.token())
    tokens = [random_kid_token(world, payload) for _ in range(200)]
    responses = await asyncio.gather(*(world.get(t) for t in tokens))
    assert {r.status_code for r in responses} == {401}
    assert set(world.events.reasons()) == {"unknown_kid"}
    assert world.counter.count(DISCOVERY) == 1
    assert world.counter.count(JWKS) == 1


async def test_unknown_kid_flood_is_rate_limited_per_cooldown(world: World) -> None:
    mono, cache = world.use_keys(cooldown=30.0)
    assert (await world.get(world.token())).status_code == 200
    _, payload, _ = parts(world.token())
    fetches = []
    for _window in range(5):
        mono.now += cache.cooldown
        burst = [random_kid_token(world, payload) for _ in range(50)]
        responses = await asyncio.gather(*(world.get(t) for t in burst))
        assert {r.status_code for r in responses} == {401}
        # Sequential stragglers inside the same window fetch nothing either; their claims hold,
        # so their kid may be a key published since: 503 until the next refetch, not 401.
        for _ in range(10):
            resp = await world.get(random_kid_token(world, payload))
            expect(resp, 503, None, "unknown_kid_pending", world.events)
            assert resp.headers["retry-after"] == str(int(cache.cooldown))
        fetches.append(world.counter.count(JWKS))
    # One fetch at start-up, then exactly one per cool-down window: 300 random kids, 6 fetches.
    assert fetches == [2, 3, 4, 5, 6]
    # Legitimate traffic is unaffected throughout.
    assert (await world.get(world.token())).status_code == 200


async def test_unknown_kid_flood_while_the_idp_is_down(world: World) -> None:
    mono, cache = world.use_keys()
    good = world.token()
    assert (await world.get(good)).status_code == 200
    world.idp.faults.jwks = "down"
    mono.now += cache.cooldown
    _, payload, _ = parts(world.token())
    burst = [random_kid_token(world, payload) for _ in range(100)]
    responses = await asyncio.gather(*(world.get(t) for t in burst))
    # The keys in hand still answer "unknown kid": a 401, not a 503, and one failed fetch.
    assert {r.status_code for r in responses} == {401}
    assert world.counter.count(JWKS) == 2
    assert (await world.get(good)).status_code == 200
    assert (await world.get(world.token())).status_code == 200


# ----- hostile or partly broken JWKS documents ---------------------------------------------


def _ec_jwk(**extra: Any) -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    return {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), **extra}


def _unusable_keys(real: dict[str, Any]) -> dict[str, Any]:
    small_rsa = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    x = x25519.X25519PrivateKey.generate().public_key()
    x_jwk = {"kty": "OKP", "crv": "X25519", "x": b64(x.public_bytes_raw()), "kid": "x25519"}
    bad_point = dict(real)
    bad_point["y"] = b64(b"\x01" * 32)
    return {
        "use enc": {**real, "use": "enc"},
        "key_ops encrypt": {**real, "key_ops": ["encrypt"]},
        "key_ops not a list": {**real, "key_ops": "verify"},
        "private EC key (d)": {**real, "d": b64(b"\x01" * 32)},
        "oct key": {"kty": "oct", "k": b64(b"secret"), "kid": real["kid"], "alg": "HS256"},
        "unknown kty": {**real, "kty": "XYZ"},
        "no kty": {k: v for k, v in real.items() if k != "kty"},
        "point not on curve": bad_point,
        "x too short": {**real, "x": b64(b"\x01" * 31)},
        "wrong crv": {**real, "crv": "P-384"},
        "crv secp256k1": {**real, "crv": "secp256k1"},
        "alg HS256": {**real, "alg": "HS256"},
        "alg none": {**real, "alg": "none"},
        "alg RS256 on EC": {**real, "alg": "RS256"},
        "alg not a string": {**real, "alg": ["ES256"]},
        "kid not a string": {**real, "kid": 7},
        "kid too long": {**real, "kid": "k" * 300},
        "RSA 1024": {
            **RSAAlgorithm.to_jwk(small_rsa.public_key(), as_dict=True),
            "kid": real["kid"],
        },
        "RSA e=1": {"kty": "RSA", "n": b64(b"\xc1" * 256), "e": "AQ", "kid": real["kid"]},
        "X25519": x_jwk,
        "not an object": ["EC", real["x"]],
        "string": "EC",
    }


async def test_each_unusable_key_is_skipped_and_the_rest_keep_working(world: World) -> None:
    real = world.idp.jwks()["keys"][0]
    unusable = _unusable_keys(real)
    for name, jwk in unusable.items():
        assert parse_jwk(jwk) is None, name
    # Partly broken: every bad member plus the real key -> the real key is used.
    world.counter.override[JWKS] = serve({"keys": [*unusable.values(), real]})
    assert (await world.get(world.token())).status_code == 200


@pytest.mark.parametrize("name", list(_unusable_keys(_ec_jwk(kid="k", alg="ES256"))))
async def test_jwks_made_only_of_an_unusable_variant_of_the_real_key(
    world: World, name: str
) -> None:
    real = world.idp.jwks()["keys"][0]
    world.counter.override[JWKS] = serve({"keys": [_unusable_keys(real)[name]]})
    resp = await world.get(world.token())
    expect(resp, 503, None, "jwks_no_usable_keys", world.events)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>not json</html>", "jwks_response_not_json"),
        (b"", "jwks_response_not_json"),
        (b"[]", "jwks_response_not_json"),
        (b'{"keys": []}', "jwks_no_usable_keys"),
        (b'{"keys": "nope"}', "jwks_no_usable_keys"),
        (b'{"keys": null}', "jwks_no_usable_keys"),
        (b'{"keys": {"kty": "EC"}}', "jwks_no_usable_keys"),
        (b'{"keys": [], "keys": []}', "jwks_response_not_json"),
        (b'{"keys": [' + b"[" * 5000 + b"]" * 5000 + b"]}", "jwks_response_not_json"),
        (b'{"keys": [{"kty": "EC", "n": NaN}]}', "jwks_response_not_json"),
        (b"\xff\xfe{}", "jwks_response_not_json"),
        (b'{"keys": [1' + b"0" * 5000 + b"]}", "jwks_response_not_json"),
        (b'{"keys": [' + b'{"kty":"XYZ"},' * 40_000 + b"{}]}", "jwks_response_too_large"),
    ],
    ids=lambda v: repr(v)[:30] if isinstance(v, bytes) else v,
)
async def test_hostile_jwks_documents(world: World, body: bytes, reason: str) -> None:
    world.counter.override[JWKS] = serve(body)
    resp = await world.get(world.token())
    expect(resp, 503, None, reason, world.events)
    # Failures are not cached: the next request tries again, and recovers once the IdP does.
    del world.counter.override[JWKS]
    assert (await world.get(world.token())).status_code == 200
    assert world.counter.count(JWKS) == 2


async def test_huge_jwks_without_content_length_is_cut_off(world: World) -> None:
    async def chunks() -> Any:
        yield b'{"keys": ['
        for _ in range(100):
            yield b'{"kty": "XYZ", "pad": "' + b"a" * 10_000 + b'"},'
        yield b"{}]}"

    world.counter.override[JWKS] = lambda: StreamingResponse(
        chunks(), media_type="application/json"
    )
    expect(await world.get(world.token()), 503, None, "jwks_response_too_large", world.events)


async def test_jwks_key_count_is_bounded(world: World) -> None:
    real = world.idp.jwks()["keys"][0]
    junk = [{"kty": "XYZ", "kid": str(i)} for i in range(100)]
    assert parse_jwks({"keys": [*junk, real]}) == []
    assert len(parse_jwks({"keys": [real] * 150})) == 100
    world.counter.override[JWKS] = serve({"keys": [*junk, real]})
    expect(await world.get(world.token()), 503, None, "jwks_no_usable_keys", world.events)


async def test_duplicate_kids(world: World) -> None:
    world.idp.rotate("RS256")
    ec_jwk = next(k for k in world.idp.jwks()["keys"] if k["kty"] == "EC")
    rsa_jwk = next(k for k in world.idp.jwks()["keys"] if k["kty"] == "RSA")
    shared = "shared-kid"
    # Same kid, different key types: the token's alg picks the key.
    world.counter.override[JWKS] = serve(
        {"keys": [{**ec_jwk, "kid": shared}, {**rsa_jwk, "kid": shared}]}
    )
    es = world.token(headers={"kid": shared})
    rs = world.token(alg="RS256", headers={"kid": shared})
    assert (await world.get(es)).status_code == 200
    assert (await world.get(rs)).status_code == 200
    # Same kid, same type: the first listed key is the one (a stranger's key listed first
    # breaks the IdP's tokens, it never makes a stranger's token valid).
    stranger = ec.generate_private_key(ec.SECP256R1())
    stranger_jwk = {**ECAlgorithm.to_jwk(stranger.public_key(), as_dict=True), "kid": "dup"}
    world.use_guard()
    world.counter.override[JWKS] = serve({"keys": [{**ec_jwk, "kid": "dup"}, stranger_jwk]})
    _, payload, _ = parts(world.token())
    mine = world.token(headers={"kid": "dup"})
    theirs = sign_segments(
        stranger, "ES256", seg({"alg": "ES256", "typ": "at+jwt", "kid": "dup"}), seg(payload)
    )
    assert (await world.get(mine)).status_code == 200
    expect(await world.get(theirs), 401, "invalid_token", "bad_signature", world.events)


async def test_jwks_with_extra_key_types_still_serves_the_real_one(world: World) -> None:
    ed = ed448.Ed448PrivateKey.generate()
    extra = [
        {**OKPAlgorithm.to_jwk(ed.public_key(), as_dict=True), "kid": "ed448"},
        {"kty": "EC", "crv": "P-384", **_ec_jwk(kid="p256-wrong-crv")},
    ]
    real = world.idp.jwks()["keys"][0]
    world.counter.override[JWKS] = serve({"keys": [*extra, real]})
    assert (await world.get(world.token())).status_code == 200


async def test_redirects_are_never_followed(world: World) -> None:
    world.counter.override[JWKS] = lambda: Response(
        status_code=302, headers={"location": "https://evil.example/jwks"}
    )
    expect(await world.get(world.token()), 503, None, "jwks_http_302", world.events)
    assert world.transport.foreign == []
    world.use_guard()
    world.counter.override.clear()
    world.counter.override[DISCOVERY] = lambda: Response(
        status_code=301, headers={"location": "https://evil.example/meta"}
    )
    world.counter.override["/.well-known/openid-configuration"] = world.counter.override[DISCOVERY]
    expect(await world.get(world.token()), 503, None, "jwks_http_301", world.events)
    assert world.transport.foreign == []


# ----- discovery ---------------------------------------------------------------------------


def _metadata(world: World, **changes: Any) -> dict[str, Any]:
    return {**world.idp.metadata(), **changes}


async def test_discovery_issuer_mismatch_never_reaches_the_impostor_keys(world: World) -> None:
    evil = _metadata(world, issuer="https://evil.example", jwks_uri="https://evil.example/jwks")
    world.counter.override[DISCOVERY] = serve(evil)
    world.counter.override["/.well-known/openid-configuration"] = serve(evil)
    resp = await world.get(world.token())
    expect(resp, 503, None, "jwks_issuer_mismatch", world.events)
    assert world.transport.foreign == []
    assert world.events.names().count("discovery_issuer_mismatch") == 2
    assert world.counter.count(JWKS) == 0


@pytest.mark.parametrize(
    "issuer",
    [ISSUER + "/", "http://idp.example", "https://IDP.example", "https://idp.example/tenant", None],
)
async def test_discovery_issuer_must_be_identical(world: World, issuer: Any) -> None:
    doc = _metadata(world, issuer=issuer)
    world.counter.override[DISCOVERY] = serve(doc)
    world.counter.override["/.well-known/openid-configuration"] = serve(doc)
    expect(await world.get(world.token()), 503, None, "jwks_issuer_mismatch", world.events)
    assert world.counter.count(JWKS) == 0


async def test_second_metadata_location_is_used_when_the_first_mismatches(world: World) -> None:
    world.counter.override[DISCOVERY] = serve(_metadata(world, issuer="https://evil.example"))
    assert (await world.get(world.token())).status_code == 200
    assert world.counter.count("/.well-known/openid-configuration") == 1


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"jwks_uri": None}, "jwks_missing_jwks_uri"),
        ({"jwks_uri": ""}, "jwks_missing_jwks_uri"),
        ({"jwks_uri": ["https://idp.example/jwks"]}, "jwks_missing_jwks_uri"),
    ],
)
async def test_discovery_without_a_usable_jwks_uri(
    world: World, doc: dict[str, Any], reason: str
) -> None:
    world.counter.override[DISCOVERY] = serve(_metadata(world, **doc))
    expect(await world.get(world.token()), 503, None, reason, world.events)


async def test_discovery_garbage_then_recovery(world: World) -> None:
    for path in (DISCOVERY, "/.well-known/openid-configuration"):
        world.counter.override[path] = serve(b"\x00garbage")
    expect(await world.get(world.token()), 503, None, "jwks_response_not_json", world.events)
    world.counter.override.clear()
    assert (await world.get(world.token())).status_code == 200
