"""RFC 8725 §2.1-2.3 / §3.1-3.2: `none`, stripped signatures, HMAC with the public key,
algorithms outside the allow-list, algorithm/key mismatches, degenerate ECDSA signatures,
JWE and JSON-serialised input. Every case: the exact answer and no IdP traffic not due."""

from __future__ import annotations

import json

import pytest

from rs_guard import ConfigurationError, JWTValidator, ResourceGuard

from .conftest import World, expect, protected_app
from .forge import (
    P256_N,
    b64,
    der_signature,
    ecdsa_rs,
    hmac_token,
    idp_sign,
    parts,
    public_key_encodings,
    rs_bytes,
    seg,
    sign_segments,
    unb64,
    with_signature,
)

pytestmark = pytest.mark.anyio

NONE_SPELLINGS = ["none", "None", "NONE", "nOnE", "NoNe", "none ", " none", "none\u0000", "nonE"]


async def test_valid_token_is_accepted(world: World) -> None:
    resp = await world.get(world.token())
    assert resp.status_code == 200
    assert resp.json() == {"sub": "alice", "scopes": ["items:read"]}


@pytest.mark.parametrize("alg", NONE_SPELLINGS)
@pytest.mark.parametrize("signature", ["", "AAAA", "real"])
async def test_alg_none_in_every_spelling(world: World, alg: str, signature: str) -> None:
    header, payload, real_sig = parts(world.token())
    header["alg"] = alg
    sig = real_sig if signature == "real" else signature
    token = f"{seg(header)}.{seg(payload)}.{sig}"
    resp = await world.get(token)
    # An empty third segment is not even a compact JWS; anything else names a refused alg.
    expect(resp, 401, "invalid_token", "malformed" if not sig else "bad_alg", world.events)
    assert world.counter.total == 0  # rejected before any key is looked up


@pytest.mark.parametrize(
    "alg", [None, 0, 1, True, ["ES256"], {"alg": "ES256"}, "", "es256", "ES256 ", "ES-256"]
)
async def test_alg_missing_or_wrong_type(world: World, alg: object) -> None:
    header, payload, sig = parts(world.token())
    if alg is None:
        del header["alg"]
    else:
        header["alg"] = alg
    resp = await world.get(f"{seg(header)}.{seg(payload)}.{sig}")
    expect(resp, 401, "invalid_token", "bad_alg", world.events)
    assert world.counter.total == 0


async def test_stripped_and_truncated_signatures(world: World) -> None:
    await world.warm()
    token = world.token()
    h, p, s = token.split(".")
    cases = {
        f"{h}.{p}.": "malformed",  # stripped, dot kept
        f"{h}.{p}": "malformed",  # stripped entirely
        f"{h}.{p}.{s[:-1]}": "malformed",  # 85 chars: not a base64url length
        f"{h}.{p}.{s[:-2]}": "bad_signature",  # 63 bytes: wrong length for ES256
        f"{h}.{p}.{s[:44]}": "bad_signature",  # about r only
        f"{h}.{p}.{s}.": "malformed",
        f"{h}.{p}.{s}{s}": "bad_signature",
        f"{h}.{p}.{s}=": "malformed",  # padding is not base64url
        f"{h}..{s}": "malformed",
        f".{p}.{s}": "malformed",
    }
    for bad, reason in cases.items():
        resp = await world.get(bad)
        expect(resp, 401, "invalid_token", reason, world.events)
    assert world.counter.total == 0


async def test_signature_from_another_token_or_modified_payload(world: World) -> None:
    await world.warm()
    a = world.token()
    b = world.token(scope="items:read items:write")
    h, p, _ = a.split(".")
    _, _, sig_b = b.split(".")
    resp = await world.get(f"{h}.{p}.{sig_b}")
    expect(resp, 401, "invalid_token", "bad_signature", world.events)
    # Escalate the scope while keeping the original signature.
    header, payload, sig_a = parts(a)
    payload["scope"] = "items:read items:write admin"
    resp = await world.get(f"{h}.{seg(payload)}.{sig_a}", path="/items/write")
    expect(resp, 401, "invalid_token", "bad_signature", world.events)
    assert world.counter.total == 0


@pytest.mark.parametrize("hs", ["HS256", "HS384", "HS512"])
async def test_hmac_with_the_public_key_in_every_encoding(world: World, hs: str) -> None:
    token = world.token()
    header, payload, _ = parts(token)
    for name, secret in public_key_encodings(world.idp).items():
        forged = hmac_token({**header, "alg": hs}, payload, secret)
        resp = await world.get(forged)
        expect(resp, 401, "invalid_token", "bad_alg", world.events)
        assert world.counter.total == 0, name
    # Warm keys change nothing: the alg is refused before any key is consulted.
    await world.warm()
    forged = hmac_token({**header, "alg": hs}, payload, public_key_encodings(world.idp)["pem"])
    expect(await world.get(forged), 401, "invalid_token", "bad_alg", world.events)
    assert world.counter.total == 0


@pytest.mark.parametrize(
    "algorithms", [["HS256"], ["ES256", "HS256"], ["none"], [], ["ES256", "dir"], ["RSA1_5"]]
)
def test_symmetric_or_unknown_algorithms_cannot_be_configured(algorithms: list[str]) -> None:
    with pytest.raises(ConfigurationError):
        ResourceGuard(
            protected_app(),
            issuer="https://idp.example",
            resource="https://api.example/items",
            algorithms=algorithms,
        )
    with pytest.raises(ConfigurationError):
        JWTValidator(
            issuer="https://idp.example",
            audience="x",
            keys=None,  # type: ignore[arg-type]
            algorithms=algorithms,
        )


@pytest.mark.parametrize(
    "alg",
    # Ed25519 (RFC 9864) joined the default allow-list in #12; Ed448, its sibling, did not.
    ["ES512", "RS512", "PS384", "PS512", "Ed448", "ES256K", "RSA1_5", "A128KW", "dir", "HS256"],
)
async def test_algorithms_outside_the_allow_list(world: World, alg: str) -> None:
    header, payload, sig = parts(world.token())
    header["alg"] = alg
    resp = await world.get(f"{seg(header)}.{seg(payload)}.{sig}")
    expect(resp, 401, "invalid_token", "bad_alg", world.events)
    assert world.counter.total == 0


async def test_allow_list_narrower_than_the_idp(world: World) -> None:
    # The IdP publishes an RS256 key, but this resource accepts ES256 only.
    world.idp.rotate("RS256")
    world.idp.keys.active("ES256")
    world.use_guard(algorithms=["ES256"])
    expect(await world.get(world.token(alg="RS256")), 401, "invalid_token", "bad_alg", world.events)
    assert world.counter.total == 0
    assert (await world.get(world.token(alg="ES256"))).status_code == 200


async def test_alg_key_mismatch_is_refused_without_refetch(world: World) -> None:
    """A real key, named by its real kid, used with an algorithm it is not for."""
    rsa_kid = world.idp.rotate("RS256")
    await world.warm()
    token = world.token(alg="ES256")
    header, payload, _ = parts(token)
    es_kid = header["kid"]
    ec_key = world.idp.keys.get(es_kid)
    rsa_key = world.idp.keys.get(rsa_kid)
    assert ec_key is not None and rsa_key is not None
    cases = [
        # ES384 header over a P-256 key, signed with SHA-384 by that very key.
        (ec_key.private_key, "ES384", es_kid),
        (ec_key.private_key, "ES512", es_kid),
        # An RS256 token naming the EC key's kid.
        (rsa_key.private_key, "RS256", es_kid),
        # An ES256 token naming the RSA key's kid.
        (ec_key.private_key, "ES256", rsa_kid),
        # PS256 over a key published for RS256 only.
        (rsa_key.private_key, "PS256", rsa_kid),
    ]
    world.use_guard(algorithms=["ES384", "ES512", "RS256", "ES256", "PS256"])
    assert (await world.get(token)).status_code == 200
    world.counter.reset()
    for key, alg, kid in cases:
        header = {"alg": alg, "typ": "at+jwt", "kid": kid}
        forged = sign_segments(key, alg, seg(header), seg(payload))
        expect(await world.get(forged), 401, "invalid_token", "alg_key_mismatch", world.events)
    assert world.counter.total == 0


def _ec_cases(token: str) -> dict[str, bytes]:
    r, s = ecdsa_rs(token)
    n = P256_N
    return {
        "r=s=0 (psychic signature)": rs_bytes(0, 0),
        "r=0": rs_bytes(0, s),
        "s=0": rs_bytes(r, 0),
        "r=n": rs_bytes(n, s),
        "s=n": rs_bytes(r, n),
        "r=s=n": rs_bytes(n, n),
        "r=n+r? (r+n overflows, r-n wraps)": rs_bytes((r + n) % 2**256, s),
        "s=n+s": rs_bytes((s + n) % 2**256, s),
        "r=1,s=1": rs_bytes(1, 1),
        "r=s=n-1": rs_bytes(n - 1, n - 1),
        "all ones": b"\xff" * 64,
        "swapped r,s": rs_bytes(s, r),
        "DER instead of raw": der_signature(token),
        "DER zero-padded to 64": der_signature(token).ljust(64, b"\0")[:64],
        "63 bytes": rs_bytes(r, s)[:-1],
        "65 bytes": rs_bytes(r, s) + b"\0",
        "leading zero per half (66)": b"\0" + r.to_bytes(32, "big") + b"\0" + s.to_bytes(32, "big"),
        "P-384 width (96)": r.to_bytes(48, "big") + s.to_bytes(48, "big"),
        "P-521 width (132)": r.to_bytes(66, "big") + s.to_bytes(66, "big"),
        "one byte": b"\0",
    }


async def test_invalid_ecdsa_signatures_of_every_degenerate_form(world: World) -> None:
    await world.warm()
    token = world.token()
    for name, sig in _ec_cases(token).items():
        if sig == unb64(token.split(".")[2]):
            continue  # (r + n) mod 2^256 can, in theory, land back on r
        resp = await world.get(with_signature(token, sig))
        assert resp.status_code == 401, name
        expect(resp, 401, "invalid_token", "bad_signature", world.events)
    assert world.counter.total == 0


async def test_ecdsa_high_s_twin_verifies_but_is_the_same_token(world: World) -> None:
    """ECDSA is malleable: (r, n-s) is a second valid signature over the same input.

    It is accepted (as by every JOSE library), which is why anything keyed on token bytes
    (the event replay store) must key on `jti` instead: see test_events.py.
    """
    await world.warm()
    token = world.token()
    r, s = ecdsa_rs(token)
    twin = with_signature(token, rs_bytes(r, P256_N - s))
    assert twin != token
    resp = await world.get(twin)
    assert resp.status_code == 200
    assert resp.json()["sub"] == "alice"


async def test_invalid_rsa_and_eddsa_signatures(world: World) -> None:
    world.idp.rotate("RS256")
    world.idp.rotate("EdDSA")
    await world.warm()
    rs = world.token(alg="RS256")
    ed = world.token(alg="EdDSA")
    assert (await world.get(rs)).status_code == 200
    assert (await world.get(ed)).status_code == 200
    world.counter.reset()
    rs_sig = unb64(rs.split(".")[2])
    n_len = len(rs_sig)
    for sig in (
        b"\0" * n_len,
        b"\xff" * n_len,
        (1).to_bytes(n_len, "big"),
        rs_sig[:-1],
        rs_sig + b"\0",
        b"\0" + rs_sig[1:],
        b"\0" + rs_sig,
    ):
        if sig == rs_sig:
            continue  # a signature that starts with 0x00 already: not a forgery
        resp = await world.get(with_signature(rs, sig))
        expect(resp, 401, "invalid_token", "bad_signature", world.events)
    ed_sig = unb64(ed.split(".")[2])
    for sig in (b"\0" * 64, b"\xff" * 64, ed_sig[:32], ed_sig + b"\0", ed_sig[32:] + ed_sig[:32]):
        if sig == ed_sig:
            continue
        resp = await world.get(with_signature(ed, sig))
        expect(resp, 401, "invalid_token", "bad_signature", world.events)
    assert world.counter.total == 0


async def test_jwe_and_json_serialisations_are_refused(world: World) -> None:
    token = world.token()
    h, p, s = token.split(".")
    jwe_header = seg({"alg": "RSA-OAEP", "enc": "A256GCM", "typ": "at+jwt"})
    cases = [
        f"{jwe_header}.{b64(b'k' * 32)}.{b64(b'iv' * 6)}.{b64(b'ciphertext')}.{b64(b'tag' * 5)}",
        f"{h}.{p}.{s}.{s}.{s}",
        f"{h}.{p}.{s}.{s}",
        f"{seg({'alg': 'dir', 'enc': 'A128GCM'})}..{b64(b'iv')}.{b64(b'c')}.{b64(b'tag')}",
        # A 3-segment JWS whose header claims to be a JWE.
        idp_sign(world.idp, {"alg": "ES256", "typ": "at+jwt", "enc": "A256GCM"}, parts(token)[1]),
        idp_sign(world.idp, {"alg": "ES256", "typ": "at+jwt", "zip": "DEF"}, parts(token)[1]),
    ]
    for bad in cases:
        expect(await world.get(bad), 401, "invalid_token", "malformed", world.events)
    # JSON serialisations cannot even be written as a b64token.
    general = json.dumps({"payload": p, "signatures": [{"protected": h, "signature": s}]})
    flattened = json.dumps({"payload": p, "protected": h, "signature": s})
    for bad in (general, flattened):
        resp = await world.client.get("/items", headers={"Authorization": f"Bearer {bad}"})
        expect(resp, 400, "invalid_request", "malformed_header", world.events)
    # ...and base64url-wrapped JSON serialisation is one segment, not three.
    resp = await world.get(b64(flattened.encode()))
    expect(resp, 401, "invalid_token", "malformed", world.events)
    assert world.counter.total == 0


async def test_jws_json_serialisation_in_an_enabled_query_parameter(world: World) -> None:
    world.use_guard(bearer_methods=["header", "query"])
    token = world.token()
    h, p, s = token.split(".")
    flattened = json.dumps({"payload": p, "protected": h, "signature": s})
    resp = await world.client.get("/items", params={"access_token": flattened})
    expect(resp, 401, "invalid_token", "malformed", world.events)
    resp = await world.client.get("/items", params={"access_token": token})
    assert resp.status_code == 200
