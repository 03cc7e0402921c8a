"""A replayed proof is refused, by one guard and across two replicas sharing a real Redis; no
malformed proof reaches a 500."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rs_guard.dpop import DPoPKey, DPoPVerifier
from rs_guard.events import RedisReplayStore
from rs_guard.idp import IdP
from tests.dpop.conftest import bound_token, client, dpop_headers, protected
from tests.support import Clock, redis_server

pytestmark = pytest.mark.anyio


async def test_replayed_proof_is_refused(idp: IdP, clock: Clock) -> None:
    guard = protected(idp, clock, serve_metadata=False)
    key = DPoPKey()
    token = bound_token(idp, key.jkt)
    headers = dpop_headers(key, token, clock)
    async with client(guard) as http:
        assert (await http.get("/whoami", headers=headers)).status_code == 200
        again = await http.get("/whoami", headers=headers)
    assert again.status_code == 401
    assert (
        'error_description="The DPoP proof was already used"' in again.headers["www-authenticate"]
    )


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A redis-server on a free loopback port."""
    with redis_server() as url:
        yield url


@pytest.fixture
async def shared(redis_url: str) -> AsyncIterator[tuple[RedisReplayStore, RedisReplayStore]]:
    one = RedisReplayStore(url=redis_url, prefix="rs_guard:dpop:")
    two = RedisReplayStore(url=redis_url, prefix="rs_guard:dpop:")
    await one.client.flushdb()
    yield one, two
    await one.aclose()
    await two.aclose()


@pytest.mark.redis
async def test_replay_across_two_replicas_sharing_redis(
    idp: IdP, clock: Clock, shared: tuple[RedisReplayStore, RedisReplayStore]
) -> None:
    replicas = [
        protected(idp, clock, dpop=DPoPVerifier(replay_store=store, clock=clock))
        for store in shared
    ]
    key = DPoPKey()
    token = bound_token(idp, key.jkt)
    headers = dpop_headers(key, token, clock)
    async with client(replicas[0]) as first, client(replicas[1]) as second:
        assert (await first.get("/whoami", headers=headers)).status_code == 200
        replayed = await second.get("/whoami", headers=headers)
        assert replayed.status_code == 401
        assert "already used" in replayed.headers["www-authenticate"]
        fresh = dpop_headers(key, token, clock)
        assert (await second.get("/whoami", headers=fresh)).status_code == 200


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
headers_strategy = st.fixed_dictionaries(
    {},
    optional={
        "typ": st.sampled_from(["dpop+jwt", "JWT", 1]),
        "alg": st.sampled_from(["ES256", "none", "HS256", "RS256", None]),
        "jwk": json_values | st.just({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}),
        "crit": json_values,
    },
)
claims_strategy = st.dictionaries(
    st.sampled_from(["jti", "htm", "htu", "iat", "ath", "nonce", "x"]), json_values, max_size=6
)
raw_strategy = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda h, c, sig: f"{_b64(json.dumps(h).encode())}.{_b64(json.dumps(c).encode())}.{sig}",
        headers_strategy,
        claims_strategy,
        st.sampled_from(["", "AAAA", _b64(b"x" * 64)]),
    ),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(proof=raw_strategy)
async def test_no_malformed_proof_reaches_a_500(idp: IdP, clock: Clock, proof: str) -> None:
    guard = protected(idp, clock, serve_metadata=False)
    token = bound_token(idp, DPoPKey().jkt)
    safe = proof.encode("latin-1", "replace").decode("latin-1")
    headers = {"Authorization": f"DPoP {token}", "DPoP": safe}
    try:
        headers["DPoP"].encode("ascii")
    except UnicodeEncodeError:
        headers["DPoP"] = safe.encode("ascii", "replace").decode()
    async with client(guard) as http:
        answer = await http.get("/whoami", headers=headers)
    assert answer.status_code in (400, 401)
