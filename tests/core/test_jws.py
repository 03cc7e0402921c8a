"""The one JWS verify pipeline (_jws.JWSVerifier), as an event-token verifier would use it."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from rs_guard import ConfigurationError, InvalidToken
from rs_guard._jws import JWSVerifier, b64url_decode
from rs_guard.keys import VerificationKey

pytestmark = pytest.mark.anyio

PRIVATE = ec.generate_private_key(ec.SECP256R1())
KEY = VerificationKey(kid="k1", kty="EC", alg="ES256", key=PRIVATE.public_key())


class Keys:
    """A key source that counts look-ups."""

    def __init__(self) -> None:
        self.lookups = 0

    async def get_key(self, kid: str | None, alg: str) -> VerificationKey:
        self.lookups += 1
        if kid != KEY.kid:
            raise InvalidToken(reason="unknown_kid")
        return KEY


def sign(claims: dict[str, Any], **header: Any) -> str:
    header = {"typ": "secevent+jwt", "kid": "k1", **header}
    return jwt.encode(claims, PRIVATE, algorithm="ES256", headers=header)


def verifier(keys: Keys, **options: Any) -> JWSVerifier:
    options.setdefault("algorithms", ["ES256"])
    options.setdefault("types", ["secevent+jwt"])
    return JWSVerifier(keys=keys, max_bytes=4096, **options)


async def test_verify_returns_header_claims_and_key() -> None:
    keys = Keys()
    header, claims, key = await verifier(keys).verify(sign({"iss": "x", "events": {}}))
    assert header["typ"] == "secevent+jwt" and claims == {"iss": "x", "events": {}}
    assert key is KEY and keys.lookups == 1


async def test_typ_is_compared_without_the_application_prefix() -> None:
    token = sign({"a": 1}, typ="application/secevent+jwt")
    assert (await verifier(Keys()).verify(token))[1] == {"a": 1}


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"typ": "at+jwt"}, "bad_typ"),
        ({"crit": ["exp"]}, "crit"),
        ({"jku": "https://evil.example/jwks"}, "embedded_key"),
        ({"zip": "DEF"}, "malformed"),
        ({"kid": ""}, "bad_kid"),
        ({"kid": "k" * 300}, "bad_kid"),
    ],
)
async def test_header_checks(header: dict[str, Any], reason: str) -> None:
    keys = Keys()
    with pytest.raises(InvalidToken) as caught:
        await verifier(keys).verify(sign({"a": 1}, **header))
    assert caught.value.reason == reason
    assert keys.lookups == 0  # refused before any key look-up


async def test_algorithm_outside_the_allow_list() -> None:
    token = jwt.encode({"a": 1}, "s" * 32, algorithm="HS256", headers={"typ": "secevent+jwt"})
    with pytest.raises(InvalidToken) as caught:
        await verifier(Keys()).verify(token)
    assert caught.value.reason == "bad_alg"


async def test_claims_are_checked_before_the_key_look_up() -> None:
    keys = Keys()

    def refuse(claims: dict[str, Any]) -> None:
        raise InvalidToken(reason="bad_issuer")

    with pytest.raises(InvalidToken):
        await verifier(keys).verify(sign({"iss": "other"}), refuse)
    assert keys.lookups == 0


async def test_an_async_claims_check_is_awaited() -> None:
    seen: list[dict[str, Any]] = []

    async def check(claims: dict[str, Any]) -> None:
        seen.append(claims)

    await verifier(Keys()).verify(sign({"jti": "1"}), check)
    assert seen == [{"jti": "1"}]


async def test_bad_signature_duplicate_members_and_size() -> None:
    token = sign({"a": 1})
    head, body, sig = token.split(".")
    forged = f"{head}.{body}.{sig[:-4]}AAAA"
    with pytest.raises(InvalidToken) as caught:
        await verifier(Keys()).verify(forged)
    assert caught.value.reason in ("bad_signature", "malformed")
    with pytest.raises(InvalidToken) as caught:
        await JWSVerifier(algorithms=["ES256"], types=["x"], keys=Keys(), max_bytes=10).verify(
            token
        )
    assert caught.value.reason == "token_too_large"


def test_symmetric_or_empty_allow_lists_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        verifier(Keys(), algorithms=["HS256"])
    with pytest.raises(ConfigurationError):
        verifier(Keys(), algorithms=[])


async def test_a_header_seen_before_still_gets_its_token_checked() -> None:
    # The verifier remembers headers that passed; the payload and signature of every token
    # carrying one are still decoded and checked, and the caller's copy is its own.
    check = verifier(Keys())
    token = sign({"a": 1})
    header, _, _ = await check.verify(token)
    header["alg"] = "none"
    head, body, sig = token.split(".")
    for bad, reason in [
        (f"{head}.{body}x.{sig}", "malformed"),  # 4n+1 characters: no base64url
        (f"{head}.e30.{sig}", "bad_signature"),  # another payload ({}), same signature
        (f"{head}.{body}.{sig}=", "malformed"),  # padding
        (f"{head}.{body}.+{sig[1:]}", "malformed"),  # base64, not base64url
        (f"{head}.{body}.{sig[:-1]}B", "malformed"),  # non-zero bits past the data
        (f"{head}.eyJhIjoxLCJhIjoyfQ.{sig}", "duplicate_member"),
    ]:
        with pytest.raises(InvalidToken) as caught:
            await check.verify(bad)
        assert caught.value.reason == reason, bad
    again, claims, _ = await check.verify(token)
    assert again["alg"] == "ES256" and claims == {"a": 1}


async def test_many_distinct_headers_are_each_checked() -> None:
    check = verifier(Keys())
    for i in range(150):  # beyond what is remembered: each still passes or fails on its own
        assert (await check.verify(sign({"i": i}, cty=f"c{i}")))[1] == {"i": i}
    with pytest.raises(InvalidToken) as caught:
        await check.verify(sign({"i": 0}, cty="c0", typ="at+jwt"))
    assert caught.value.reason == "bad_typ"


def test_a_key_verifies_only_the_algorithms_it_fits() -> None:
    signed = sign({"a": 1})
    head, body, sig = signed.split(".")
    data, signature = f"{head}.{body}".encode(), b64url_decode(sig)
    assert KEY.fits("ES256") and KEY.verify("ES256", data, signature)
    # Same key, the signature checked as another algorithm: refused, never attempted.
    assert not KEY.fits("ES384") and not KEY.verify("ES384", data, signature)
    assert not KEY.verify("RS256", data, signature)
    undeclared = VerificationKey(kid=None, kty="EC", alg=None, key=PRIVATE.public_key())
    assert undeclared.fits("ES256") and not undeclared.fits("PS256")
    assert undeclared == VerificationKey(kid=None, kty="EC", alg=None, key=undeclared.key)
