"""JWT access-token validation rules (RFC 9068 §4, RFC 8725) through the middleware."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from .conftest import RESOURCE, Clock, bearer

pytestmark = pytest.mark.anyio


async def status(client: httpx.AsyncClient, token: str) -> tuple[int, str]:
    r = await client.get("/whoami", headers=bearer(token))
    return r.status_code, r.headers.get("www-authenticate", "")


async def test_good_token_passes(client: httpx.AsyncClient, token: Callable[..., str]) -> None:
    assert (await status(client, token()))[0] == 200


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT"])
async def test_typ_variants_accepted(
    client: httpx.AsyncClient, token: Callable[..., str], typ: str
) -> None:
    assert (await status(client, token(headers={"typ": typ})))[0] == 200


@pytest.mark.parametrize("typ", ["JWT", "jwt", "secevent+jwt", "logout+jwt", "", None])
async def test_wrong_typ_refused(
    client: httpx.AsyncClient, token: Callable[..., str], typ: str | None
) -> None:
    code, challenge = await status(client, token(headers={"typ": typ}))
    assert code == 401
    assert 'error="invalid_token"' in challenge


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "https://idp.example/"},
        {"iss": "https://IDP.example"},
        {"aud": "https://api.example/items/"},
        {"aud": "https://api.example/other"},
        {"aud": ["https://api.example/other"]},
        {"aud": []},
        {"exp": "9999999999"},
        {"exp": True},
        {"iat": "1800000000"},
        {"nbf": 1_800_000_000 + 3600},
        {"iat": 1_800_000_000 + 3600},
        {"exp": 1_800_000_000 - 3600},
        {"scope": ["items:read"]},
        {"sub": 42},
        {"client_id": ""},
        {"events": {"https://schemas.example/e": {}}},
        {"nonce": "n-0S6_WzA2Mj"},
    ],
)
async def test_bad_claims_refused(
    client: httpx.AsyncClient, token: Callable[..., str], claims: dict[str, Any]
) -> None:
    code, challenge = await status(client, token(claims=claims))
    assert code == 401
    assert 'error="invalid_token"' in challenge
    assert "error_description" in challenge


@pytest.mark.parametrize("missing", ["sub", "client_id", "jti", "iat", "exp", "iss", "aud"])
async def test_required_claims(
    client: httpx.AsyncClient, idp: Any, missing: str, clock: Clock
) -> None:
    import jwt

    now = int(clock())
    claims = {
        "iss": idp.issuer,
        "aud": RESOURCE,
        "sub": "alice",
        "client_id": "c",
        "jti": "j",
        "iat": now,
        "exp": now + 60,
    }
    del claims[missing]
    tok = idp.keys.sign(claims, typ="at+jwt")
    assert jwt.get_unverified_header(tok)["typ"] == "at+jwt"
    assert (await status(client, tok))[0] == 401


async def test_audience_list_containing_resource_passes(
    client: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    t = token(audience=["https://other.example", RESOURCE])
    assert (await status(client, t))[0] == 200


async def test_leeway_applies_to_exp(
    client: httpx.AsyncClient, token: Callable[..., str], clock: Clock
) -> None:
    t = token(lifetime=60)
    clock.now += 60 + 10  # inside the 30 s default leeway
    assert (await status(client, t))[0] == 200
    clock.now += 60
    code, challenge = await status(client, t)
    assert code == 401 and 'error_description="The access token expired"' in challenge


async def test_expiry_rechecked_on_cache_hit(
    client: httpx.AsyncClient, token: Callable[..., str], clock: Clock
) -> None:
    t = token(lifetime=60)
    assert (await status(client, t))[0] == 200  # now cached
    clock.now += 1000
    assert (await status(client, t))[0] == 401


async def test_id_token_refused_as_access_token(client: httpx.AsyncClient, idp: Any) -> None:
    idp.register_client(
        client_id="client-a", client_secret="s", redirect_uris=["https://a.example/cb"]
    )
    id_token = idp.issue_id_token("alice", client_id="client-a", nonce="n")
    assert (await status(client, id_token))[0] == 401


@pytest.mark.parametrize(
    "header",
    [
        {"jku": "https://evil.example/jwks"},
        {"x5u": "https://e/x"},
        {"crit": ["exp"]},
        {"jwk": {"kty": "oct", "k": "AA"}},
    ],
)
async def test_dangerous_headers_refused(
    client: httpx.AsyncClient,
    token: Callable[..., str],
    header: dict[str, Any],
    counting: Any,
) -> None:
    assert (await status(client, token(headers=header)))[0] == 401
    assert not any("evil" in p for p in counting.calls)


async def test_algorithm_allow_list(
    make_client: Callable[..., httpx.AsyncClient], idp: Any, token: Callable[..., str]
) -> None:
    idp.rotate(alg="RS256")
    t = token(alg="RS256")
    async with make_client(algorithms=["ES256"]) as c:
        assert (await status(c, t))[0] == 401
    async with make_client(algorithms=["ES256", "RS256"]) as c:
        assert (await status(c, t))[0] == 200


def test_symmetric_algorithms_cannot_be_allowed() -> None:
    from rs_guard import ConfigurationError, JWTValidator
    from rs_guard.keys import JWKSCache

    keys = JWKSCache("https://idp.example/jwks")
    with pytest.raises(ConfigurationError):
        JWTValidator(
            issuer="https://idp.example", audience=RESOURCE, keys=keys, algorithms=["HS256"]
        )
    with pytest.raises(ConfigurationError):
        JWTValidator(
            issuer="https://idp.example", audience=RESOURCE, keys=keys, algorithms=["none"]
        )


async def test_oversized_token_refused_before_any_fetch(
    client: httpx.AsyncClient, counting: Any
) -> None:
    big = "a" * 9000 + "." + "b" * 10 + "." + "c" * 10
    assert (await status(client, big))[0] == 401
    assert sum(counting.calls.values()) == 0


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256", "EdDSA"])
async def test_each_supported_algorithm(
    make_client: Callable[..., httpx.AsyncClient], idp: Any, token: Callable[..., str], alg: str
) -> None:
    idp.rotate(alg=alg)
    async with make_client() as c:
        assert (await status(c, token(alg=alg)))[0] == 200


@pytest.mark.parametrize(
    "claims",
    [{"iss": "https://evil.example"}, {"aud": "https://other.example"}, {"exp": 1_000_000_000}],
)
async def test_claims_refused_before_any_key_lookup(
    client: httpx.AsyncClient, token: Callable[..., str], counting: Any, claims: dict[str, Any]
) -> None:
    # A flood of such tokens (with random kids) must not reach the IdP at all.
    for i in range(20):
        forged = token(claims=claims, headers={"kid": f"random-{i}"})
        assert (await status(client, forged))[0] == 401
    assert sum(counting.calls.values()) == 0
