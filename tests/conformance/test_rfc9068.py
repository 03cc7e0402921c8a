"""RFC 9068 §4 (validating JWT access tokens), one test per step, against ResourceGuard; and
authlib's independent RFC 9068 validator accepting what the bundled IdP issues."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from rs_guard.idp import IdP

from .conftest import ISSUER, RESOURCE, Clock, bearer, challenge_of

pytestmark = pytest.mark.anyio


def b64(obj: Any) -> str:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def expect_invalid_token(client: httpx.AsyncClient, token: str) -> None:
    """§4: every validation failure is answered with RFC 6750 `invalid_token` (401)."""
    resp = await client.get("/whoami", headers=bearer(token))
    assert resp.status_code == 401, resp.text
    assert challenge_of(resp).params["error"] == "invalid_token"


async def expect_ok(client: httpx.AsyncClient, token: str) -> None:
    resp = await client.get("/whoami", headers=bearer(token))
    assert resp.status_code == 200, resp.text


# Step 1: typ ----------------------------------------------------------------------------


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "AT+JWT", "Application/At+Jwt"])
async def test_step1_typ_at_jwt_accepted(
    api: Callable[..., httpx.AsyncClient], mint: Callable[..., str], typ: str
) -> None:
    """`at+jwt` or `application/at+jwt` (media types compare case-insensitively)."""
    async with api() as client:
        await expect_ok(client, mint(headers={"typ": typ}))


@pytest.mark.parametrize("typ", ["JWT", "jwt", "application/jwt", "secevent+jwt", "at+jwt2", None])
async def test_step1_other_typ_rejected(
    api: Callable[..., httpx.AsyncClient], mint: Callable[..., str], typ: str | None
) -> None:
    async with api() as client:
        await expect_invalid_token(client, mint(headers={"typ": typ}))


async def test_step1_id_token_is_not_an_access_token(
    api: Callable[..., httpx.AsyncClient], idp: IdP
) -> None:
    id_token = idp.issue_id_token("alice", client_id="web-app", claims={"aud": RESOURCE})
    async with api() as client:
        await expect_invalid_token(client, id_token)


# Step 2: encrypted tokens -------------------------------------------------------------


async def test_step2_encrypted_token_rejected(api: Callable[..., httpx.AsyncClient]) -> None:
    """No encryption was negotiated: a JWE (five parts) is not a token this RS can read."""
    header = b64({"alg": "RSA-OAEP-256", "enc": "A256GCM", "typ": "at+jwt", "cty": "JWT"})
    jwe = ".".join([header, b64(b"k" * 32), b64(b"i" * 12), b64(b"c" * 40), b64(b"t" * 16)])
    async with api() as client:
        await expect_invalid_token(client, jwe)


# Step 3: iss ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "iss", [ISSUER + "/", "https://IDP.example", "http://idp.example", "https://evil.example"]
)
async def test_step3_issuer_must_match_exactly(
    api: Callable[..., httpx.AsyncClient], mint: Callable[..., str], iss: str
) -> None:
    async with api() as client:
        await expect_invalid_token(client, mint(claims={"iss": iss}))


# Step 4: aud ----------------------------------------------------------------------------


async def test_step4_audience_list_containing_this_resource_accepted(
    api: Callable[..., httpx.AsyncClient], mint: Callable[..., str]
) -> None:
    async with api() as client:
        await expect_ok(client, mint(audience=["https://other.example", RESOURCE]))


@pytest.mark.parametrize(
    "aud",
    [
        "https://other.example",
        ["https://other.example"],
        RESOURCE + "/",
        "https://api.example",
        [],
        None,
    ],
)
async def test_step4_audience_must_name_this_resource(
    api: Callable[..., httpx.AsyncClient], mint: Callable[..., str], aud: Any
) -> None:
    async with api() as client:
        await expect_invalid_token(client, mint(claims={"aud": aud}))


# Step 5: signature with the AS's keys ---------------------------------------------------


async def test_step5_alg_none_rejected(
    api: Callable[..., httpx.AsyncClient], idp: IdP, clock: Clock
) -> None:
    claims = jwt.decode(
        idp.issue_access_token("alice", client_id="web-app", audience=RESOURCE),
        options={"verify_signature": False},
    )
    async with api() as client:
        for alg in ("none", "None", "NONE"):
            unsigned = f"{b64({'alg': alg, 'typ': 'at+jwt'})}.{b64(claims)}."
            await expect_invalid_token(client, unsigned)


async def test_step5_symmetric_alg_with_the_public_key_rejected(
    api: Callable[..., httpx.AsyncClient], idp: IdP
) -> None:
    """The classic alg confusion: HS256 keyed with the AS's public JWK."""
    token = idp.issue_access_token("alice", client_id="web-app", audience=RESOURCE)
    claims = jwt.decode(token, options={"verify_signature": False})
    jwk = idp.jwks()["keys"][0]
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'at+jwt', 'kid': jwk['kid']})}.{b64(claims)}"
    async with api() as client:
        for secret in (json.dumps(jwk).encode(), jwk["x"].encode()):
            mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
            await expect_invalid_token(client, f"{signing_input}.{b64(mac)}")


async def test_step5_key_not_from_the_authorization_server_rejected(
    api: Callable[..., httpx.AsyncClient], idp: IdP
) -> None:
    token = idp.issue_access_token("alice", client_id="web-app", audience=RESOURCE)
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    stranger = ec.generate_private_key(ec.SECP256R1())
    same_kid = jwt.encode(claims, stranger, algorithm="ES256", headers=header)
    other_kid = jwt.encode(claims, stranger, algorithm="ES256", headers={**header, "kid": "x"})
    embedded = jwt.encode(
        claims,
        stranger,
        algorithm="ES256",
        headers={
            **header,
            "jwk": json.loads(jwt.algorithms.ECAlgorithm.to_jwk(stranger.public_key())),
        },
    )
    jku = jwt.encode(
        claims, stranger, algorithm="ES256", headers={**header, "jku": "https://evil.example/k"}
    )
    h, p, s = token.split(".")
    tampered = f"{h}.{b64({**claims, 'scope': 'items:read items:write admin'})}.{s}"
    async with api() as client:
        await expect_ok(client, token)
        for forged in (same_kid, other_kid, embedded, jku, tampered):
            await expect_invalid_token(client, forged)


@pytest.mark.parametrize("alg", ["RS256", "PS256", "EdDSA"])
async def test_step5_every_advertised_alg_verifies(
    api: Callable[..., httpx.AsyncClient], idp: IdP, alg: str
) -> None:
    """The AS may sign with any alg it advertises; the RS takes the key from the JWKS."""
    kid = idp.rotate(alg)
    token = idp.issue_access_token("alice", client_id="web-app", audience=RESOURCE, alg=alg)
    assert jwt.get_unverified_header(token) == {"alg": alg, "kid": kid, "typ": "at+jwt"}
    async with api() as client:
        await expect_ok(client, token)


# Step 6: exp ----------------------------------------------------------------------------


async def test_step6_expiry_with_small_leeway(
    api: Callable[..., httpx.AsyncClient], mint: Callable[..., str], clock: Clock
) -> None:
    token = mint(lifetime=100)
    async with api(leeway=30) as client:
        await expect_ok(client, token)
        clock.now += 100 + 29  # past exp, within the configured skew allowance
        await expect_ok(client, token)
        clock.now += 2
        await expect_invalid_token(client, token)


@pytest.mark.parametrize("exp", ["1800000100", None, True, 1e400, [1800000100]])
async def test_step6_exp_must_be_a_number(
    api: Callable[..., httpx.AsyncClient], mint: Callable[..., str], exp: Any
) -> None:
    async with api() as client:
        await expect_invalid_token(client, mint(claims={"exp": exp}))


# Step 7: scope -> insufficient_scope -----------------------------------------------------


async def test_step7_scope_claim_drives_authorization(
    api: Callable[..., httpx.AsyncClient], mint: Callable[..., str]
) -> None:
    async with api() as client:
        ok = await client.get("/items", headers=bearer(mint(scope="items:read items:write")))
        short = await client.get("/items", headers=bearer(mint(scope="items:write")))
        # §2.2.3: space-delimited string; a JSON array is not a scope claim.
        array = await client.get("/items", headers=bearer(mint(claims={"scope": ["items:read"]})))
    assert ok.status_code == 200
    assert short.status_code == 403
    assert challenge_of(short).params == {
        "error": "insufficient_scope",
        "error_description": "The access token does not grant the required scope",
        "scope": "items:read",
        "resource_metadata": "https://api.example/.well-known/oauth-protected-resource/items",
    }
    assert array.status_code == 401


# §2.2: required claims --------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"])
async def test_required_claims(api: Callable[..., httpx.AsyncClient], idp: IdP, claim: str) -> None:
    token = idp.issue_access_token("alice", client_id="web-app", audience=RESOURCE)
    claims = jwt.decode(token, options={"verify_signature": False})
    del claims[claim]
    key = idp.keys.active()
    stripped = jwt.encode(
        claims, key.private_key, algorithm=key.alg, headers={"typ": "at+jwt", "kid": key.kid}
    )
    async with api() as client:
        await expect_invalid_token(client, stripped)


async def test_iat_in_the_future_rejected(
    api: Callable[..., httpx.AsyncClient], mint: Callable[..., str], clock: Clock
) -> None:
    async with api() as client:
        await expect_invalid_token(client, mint(claims={"iat": int(clock.now) + 3600}))
        await expect_invalid_token(client, mint(claims={"nbf": int(clock.now) + 3600}))


# A third-party RFC 9068 validator accepts the IdP's access tokens ------------------------


async def test_authlib_rfc9068_validator_accepts_idp_tokens(idp: IdP) -> None:
    from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
    from joserfc.jwk import KeySet

    jwks = KeySet.import_key_set(idp.jwks())

    class Validator(JWTBearerTokenValidator):  # type: ignore[misc]
        def get_jwks(self) -> KeySet:
            return jwks

    idp.clock = time.time  # authlib checks exp/iat against the wall clock
    validator = Validator(issuer=ISSUER, resource_server=RESOURCE)
    token = idp.issue_access_token(
        "alice", client_id="web-app", audience=RESOURCE, scope="items:read", acr="mf"
    )
    claims = validator.authenticate_token(token)
    validator.validate_token(claims, ["items:read"], None)
    assert claims["client_id"] == "web-app" and claims["sub"] == "alice"
    from authlib.oauth2.rfc6750.errors import InsufficientScopeError

    with pytest.raises(InsufficientScopeError):
        validator.validate_token(claims, ["items:write"], None)
    foreign = idp.issue_access_token("alice", client_id="web-app", audience="https://other")
    from authlib.oauth2.rfc6750.errors import InvalidTokenError

    with pytest.raises(InvalidTokenError):
        validator.validate_token(validator.authenticate_token(foreign), [], None)
