"""Property-based fuzzing of what an attacker controls: Authorization header bytes, token
segments, signed claims of any JSON shape, and JWKS documents. The answer is always a
well-formed 4xx/503 (never an exception, never a 500, never a parser message or token echo).

Example counts are bounded so the suite stays fast; raise them locally with
`HYPOTHESIS_PROFILE=deep` (profiles in `strategies.py`)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rs_guard.keys import parse_jwk, parse_jwks

from .conftest import RESOURCE, World, asgi_call, header
from .forge import b64, idp_sign
from .strategies import fuzz, json_values, junk

pytestmark = pytest.mark.anyio

_KNOWN_TEXT = (
    "\n".join(
        p.read_text() for p in (Path(__file__).resolve().parents[2] / "rs_guard").rglob("*.py")
    )
    + "https://api.example/.well-known/oauth-protected-resource/items realm api"
)
_SENTENCE = re.compile(r"[A-Z][A-Za-z ;,'.-]*")
_SAFE_HEADER = re.compile(rb"[\x20-\x7e]*")
_ERRORS = {
    400: {"invalid_request"},
    401: {"invalid_token", "unauthorized", "insufficient_user_authentication"},
    403: {"insufficient_scope"},
    503: {"temporarily_unavailable"},
}


def assert_well_formed(
    status: int, headers: list[tuple[bytes, bytes]], body: bytes, secrets: tuple[str, ...] = ()
) -> None:
    """A 4xx/503 with a proper challenge and a small JSON body that reveals nothing."""
    assert status in _ERRORS, (status, body)
    for name, value in headers:
        assert _SAFE_HEADER.fullmatch(name) and _SAFE_HEADER.fullmatch(value)
    doc = json.loads(body)
    assert set(doc) == {"error", "error_description"}
    assert doc["error"] in _ERRORS[status]
    assert _SENTENCE.fullmatch(doc["error_description"]), doc
    if status == 503:
        assert (header(headers, b"retry-after") or b"").isdigit()
    else:
        www = header(headers, b"www-authenticate")
        assert www is not None and www.startswith(b"Bearer")
    blob = body + b"".join(v for _, v in headers)
    for secret in secrets:
        # Hypothesis also draws string constants from the code under test ("no-store"...):
        # text the library prints on its own is not an echo of the input.
        if len(secret) >= 8 and secret not in _KNOWN_TEXT:
            assert secret.encode("utf-8", "surrogatepass") not in blob


async def call(world: World, authorization: bytes | None, path: str = "/items") -> Any:
    headers = [(b"host", b"api.example")]
    if authorization is not None:
        headers.append((b"authorization", authorization))
    return await asgi_call(
        world.guard, {"path": path, "raw_path": path.encode(), "headers": headers}
    )


# ----- Authorization header bytes -----------------------------------------------------------

header_bytes = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda scheme, sep, tail: scheme + sep + tail,
        st.sampled_from([b"Bearer", b"bearer", b"BEARER", b"Basic", b"Bearerx", b""]),
        st.sampled_from([b" ", b"  ", b"\t", b"", b" \t", b"\x00"]),
        st.binary(max_size=200),
    ),
    st.builds(
        lambda a, b, c: b"Bearer " + b".".join([a, b, c]),
        *(
            st.text(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/", max_size=60
            ).map(str.encode)
            for _ in range(3)
        ),
    ),
)


@fuzz
@given(value=header_bytes)
async def test_fuzz_authorization_header(world: World, value: bytes) -> None:
    status, headers, body = await call(world, value)
    assert_well_formed(status, headers, body, (value.decode("latin-1"),))
    # Garbage never costs the IdP more than the one-time discovery and key fetch.
    assert world.counter.count("/jwks") <= 1


# ----- token segments --------------------------------------------------------------------------

ALGS = ["ES256", "ES384", "RS256", "PS256", "EdDSA", "none", "HS256", "", "es256"]
TYPS = ["at+jwt", "application/at+jwt", "JWT", "secevent+jwt", None]

headers_strategy = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(ALGS) | junk,
        "typ": st.sampled_from(TYPS) | junk,
        "kid": st.text(max_size=40) | junk,
        "crit": junk,
        "jku": st.just("https://evil.example/jwks"),
        "jwk": junk,
        "enc": st.just("A256GCM"),
    },
)


def segment(value: Any) -> st.SearchStrategy[str]:
    """The JSON of `value` base64url-encoded, sometimes mangled the ways decoders differ on."""
    raw = json.dumps(value).encode()
    return st.sampled_from(
        [
            b64(raw),
            b64(raw) + "=",
            b64(raw).replace("-", "+").replace("_", "/"),
            b64(raw)[:-1],
            b64(raw + b" "),
            b64(b"\xef\xbb\xbf" + raw),
            b64(raw.decode().encode("utf-16")),
        ]
    )


token_strategy = st.builds(
    lambda h, p, sig: (h, p, b64(sig)),
    headers_strategy.flatmap(segment),
    st.dictionaries(st.text(max_size=10), json_values, max_size=6).flatmap(segment),
    st.binary(max_size=140),
)


@fuzz
@given(pieces=token_strategy)
async def test_fuzz_token_segments(world: World, pieces: tuple[str, str, str]) -> None:
    # (st.data() is avoided in async tests: its BaseException would escape anyio's runner.)
    h, p, sig = pieces
    token = f"{h}.{p}.{sig}"
    status, headers, body = await call(world, b"Bearer " + token.encode())
    assert_well_formed(status, headers, body, (token, p, sig))


# ----- signed claims of every shape -----------------------------------------------------------

CLAIM_NAMES = [
    "iss",
    "aud",
    "exp",
    "nbf",
    "iat",
    "sub",
    "client_id",
    "jti",
    "scope",
    "acr",
    "auth_time",
    "amr",
    "nonce",
    "events",
    "cnf",
    "azp",
    "phone_number_verified",
]


def claim_value(name: str, world_now: int) -> st.SearchStrategy[Any]:
    good: dict[str, Any] = {
        "iss": "https://idp.example",
        "aud": RESOURCE,
        "exp": world_now + 300,
        "nbf": world_now,
        "iat": world_now,
        "auth_time": world_now - 5,
        "sub": "alice",
        "client_id": "client-a",
        "jti": "j1",
        "scope": "items:read",
        "acr": "mf",
    }
    if name in good:
        return st.just(good[name]) | junk | json_values
    return junk | json_values


NOW = 1_700_000_000


@st.composite
def signed_claims(draw: Any) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(CLAIM_NAMES), unique=True, max_size=len(CLAIM_NAMES)))
    return {n: draw(claim_value(n, NOW)) for n in names}


@fuzz
@given(
    claims=signed_claims(),
    path=st.sampled_from(["/items", "/items/mfa", "/items/recent", "/items/verified"]),
)
async def test_fuzz_signed_claims(world: World, claims: dict[str, Any], path: str) -> None:
    assert int(world.clock()) == NOW
    token = idp_sign(world.idp, {"alg": "ES256", "typ": "at+jwt"}, claims)
    status, headers, body = await call(world, b"Bearer " + token.encode(), path)
    if status == 200:
        # Only a token that meets every rule gets through.
        assert claims.get("iss") == "https://idp.example" and claims.get("aud") == RESOURCE
        assert isinstance(claims.get("exp"), int | float) and not isinstance(claims["exp"], bool)
        assert "nonce" not in claims and "events" not in claims
        return
    assert_well_formed(status, headers, body, (token,))


# ----- JWKS documents ----------------------------------------------------------------------------

jwk_strategy = st.fixed_dictionaries(
    {},
    optional={
        "kty": st.sampled_from(["EC", "RSA", "OKP", "oct", "XYZ"]) | junk,
        "crv": st.sampled_from(["P-256", "P-384", "Ed25519", "X25519", "secp256k1"]) | junk,
        "x": st.binary(max_size=70).map(b64) | junk,
        "y": st.binary(max_size=70).map(b64) | junk,
        "n": st.binary(max_size=300).map(b64) | junk,
        "e": st.sampled_from(["AQAB", "AQ", "Aw", ""]) | junk,
        "d": st.just("AQ"),
        "kid": st.text(max_size=20) | junk,
        "alg": st.sampled_from(["ES256", "RS256", "HS256", "none"]) | junk,
        "use": st.sampled_from(["sig", "enc"]) | junk,
        "key_ops": st.lists(st.sampled_from(["verify", "sign", "encrypt"])) | junk,
    },
)
jwks_strategy = st.one_of(
    junk,
    json_values,
    st.fixed_dictionaries({"keys": st.lists(jwk_strategy | junk, max_size=5)}),
)


@fuzz
@given(doc=jwks_strategy)
def test_fuzz_jwks_parsing_never_raises(doc: Any) -> None:
    keys = parse_jwks(doc)
    assert isinstance(keys, list)
    if isinstance(doc, dict) and isinstance(doc.get("keys"), list):
        for jwk in doc["keys"]:
            vk = parse_jwk(jwk)
            assert vk is None or not ({"d", "k"} & set(jwk))


@fuzz
@given(doc=jwks_strategy, real_too=st.booleans())
async def test_fuzz_jwks_documents_through_the_guard(
    world: World, doc: Any, real_too: bool
) -> None:
    from starlette.responses import Response

    if real_too and isinstance(doc, dict) and isinstance(doc.get("keys"), list):
        doc = {"keys": [*doc["keys"][:3], *world.idp.jwks()["keys"]]}
    body = json.dumps(doc).encode()
    world.counter.override["/jwks"] = lambda: Response(body, media_type="application/json")
    world.use_guard()
    token = world.token()
    status, headers, out = await call(world, b"Bearer " + token.encode())
    if status != 200:
        assert_well_formed(status, headers, out, (token,))
        assert status in (401, 503)
    await world.client.aclose()
    world._clients.remove(world.client)
