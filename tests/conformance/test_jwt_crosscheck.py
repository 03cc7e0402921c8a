"""Every JWT the IdP emits (access tokens, ID tokens, event tokens), obtained over HTTP from the
IdP on a loopback port, verifies with PyJWT's PyJWKClient and with joserfc using nothing but the
published JWKS; `typ`, `kid` and `alg` are as specified and advertised."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
from authlib.oidc.core import CodeIDToken
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from rs_guard.idp import IdP

from .conftest import Switchboard, add_clients

API = "https://api.example/items"
ALGS = ("ES256", "RS256", "PS256", "EdDSA")
EVENT = "https://schemas.example/event/account-updated"
# joserfc flags the polymorphic "EdDSA" (RFC 9864 prefers "Ed25519"); the IdP still uses it.
pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")


@pytest.fixture(params=ALGS)
def signing_idp(
    request: pytest.FixtureRequest, rs_guard_loopback: tuple[Switchboard, str]
) -> Iterator[IdP]:
    """An IdP on loopback whose default signing alg (access tokens) is the parameter."""
    board, url = rs_guard_loopback
    idp = IdP(url, dev=True, signing_alg=request.param)
    add_clients(idp)
    with board.plug(idp.app):
        yield idp


def metadata(idp: IdP) -> dict[str, Any]:
    doc: dict[str, Any] = requests.get(
        idp.issuer + "/.well-known/openid-configuration", timeout=10
    ).json()
    return doc


def check_with_pyjwt(
    idp: IdP, token: str, *, typ: str, audience: str, require: list[str]
) -> dict[str, Any]:
    meta = metadata(idp)
    header = jwt.get_unverified_header(token)
    assert header["typ"] == typ
    assert isinstance(header.get("kid"), str) and header["kid"]
    assert header["alg"] in meta["id_token_signing_alg_values_supported"]
    assert not {"jku", "jwk", "x5u", "x5c", "crit"} & header.keys()
    client = jwt.PyJWKClient(meta["jwks_uri"], cache_keys=False)
    key = client.get_signing_key_from_jwt(token)
    assert key.key_id == header["kid"]
    claims: dict[str, Any] = jwt.decode(
        token,
        key.key,
        algorithms=[header["alg"]],
        audience=audience,
        issuer=idp.issuer,
        options={"require": require},
    )
    return claims


def check_with_joserfc(idp: IdP, token: str, *, typ: str, audience: str) -> dict[str, Any]:
    meta = metadata(idp)
    keys = KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    header = jwt.get_unverified_header(token)
    decoded = jose_jwt.decode(token, keys, algorithms=[header["alg"]])
    assert decoded.header["typ"] == typ
    JWTClaimsRegistry(
        iss={"essential": True, "value": idp.issuer},
        aud={"essential": True, "value": audience},
        exp={"essential": True},
        iat={"essential": True},
    ).validate(decoded.claims)
    return dict(decoded.claims)


def code_flow(idp: IdP, client_id: str, secret: str, redirect: str) -> dict[str, Any]:
    idp.login_as("alice", acr="mf")
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    nonce = secrets.token_urlsafe(12)
    resp = requests.get(
        idp.endpoint("authorize"),
        params={
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect,
            "scope": "openid items:read",
            "nonce": nonce,
            "resource": API,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
        allow_redirects=False,
        timeout=10,
    )
    code = parse_qs(urlsplit(resp.headers["location"]).query)["code"][0]
    tok = requests.post(
        idp.endpoint("token"),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect,
            "code_verifier": verifier,
        },
        auth=(client_id, secret),
        timeout=10,
    )
    assert tok.status_code == 200, tok.text
    body: dict[str, Any] = tok.json()
    body["nonce"] = nonce
    return body


def test_access_tokens(signing_idp: IdP) -> None:
    """RFC 9068 §2.1: typ at+jwt; both libraries accept it with the JWKS alone."""
    resp = requests.post(
        signing_idp.endpoint("token"),
        data={"grant_type": "client_credentials", "resource": API},
        auth=("service", "service-secret"),
        timeout=10,
    )
    token = resp.json()["access_token"]
    assert jwt.get_unverified_header(token)["alg"] == signing_idp.keys.default_alg
    required = ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"]
    claims = check_with_pyjwt(signing_idp, token, typ="at+jwt", audience=API, require=required)
    assert claims == check_with_joserfc(signing_idp, token, typ="at+jwt", audience=API)
    assert claims["client_id"] == "service"


@pytest.mark.parametrize("alg", ALGS)
def test_id_tokens_in_every_advertised_alg(live_idp: IdP, alg: str) -> None:
    """OIDC Core §2 / §3.1.3.7: typ JWT, aud = client_id, nonce echoed, at_hash over the access
    token with the hash of the signing alg; signed with the client's registered alg."""
    live_idp.register_client(
        f"rp-{alg}",
        "rp-secret",
        redirect_uris=["https://rp.example/cb"],
        scope="openid items:read",
        id_token_signed_response_alg=alg,
    )
    body = code_flow(live_idp, f"rp-{alg}", "rp-secret", "https://rp.example/cb")
    id_token = body["id_token"]
    assert jwt.get_unverified_header(id_token)["alg"] == alg
    claims = check_with_pyjwt(
        live_idp,
        id_token,
        typ="JWT",
        audience=f"rp-{alg}",
        require=["iss", "sub", "aud", "exp", "iat"],
    )
    assert claims == check_with_joserfc(live_idp, id_token, typ="JWT", audience=f"rp-{alg}")
    assert claims["nonce"] == body["nonce"]
    assert claims["acr"] == "mf" and isinstance(claims["auth_time"], int)
    # authlib's OIDC Core §3.1.3.7 checks, at_hash included, as a relying party runs them.
    CodeIDToken(
        claims,
        jwt.get_unverified_header(id_token),
        {"iss": {"value": live_idp.issuer}, "aud": {"values": [f"rp-{alg}"]}},
        {"nonce": body["nonce"], "access_token": body["access_token"], "client_id": f"rp-{alg}"},
    ).validate()
    digest = hashlib.sha512 if alg == "EdDSA" else hashlib.sha256
    raw = digest(body["access_token"].encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(raw[: len(raw) // 2]).rstrip(b"=").decode()
    # The access token of the same response is a different kind of JWT.
    check_with_pyjwt(
        live_idp,
        body["access_token"],
        typ="at+jwt",
        audience=API,
        require=["client_id", "jti"],
    )


def test_dynamically_registered_client_gets_rs256_id_tokens(live_idp: IdP) -> None:
    """OIDC Registration §2: id_token_signed_response_alg defaults to RS256."""
    resp = requests.post(
        live_idp.endpoint("register"),
        json={"redirect_uris": ["https://dyn.example/cb"], "scope": "openid items:read"},
        timeout=10,
    )
    info = resp.json()
    assert info["id_token_signed_response_alg"] == "RS256"
    body = code_flow(live_idp, info["client_id"], info["client_secret"], "https://dyn.example/cb")
    assert jwt.get_unverified_header(body["id_token"])["alg"] == "RS256"
    check_with_pyjwt(
        live_idp, body["id_token"], typ="JWT", audience=info["client_id"], require=["sub"]
    )


def test_event_tokens(live_idp: IdP) -> None:
    """RFC 8417 / the contract: typ secevent+jwt, `events`, never `nonce`; verifiable like
    every other token of the IdP, and never mistakable for an access token."""
    live_idp.register_client("publisher", "publisher-secret", scope="events:publish")
    live_idp.register_client("receiver", "receiver-secret", scope="openid")
    live_idp.events.allow("publisher", "receiver")
    live_idp.add_user("bob")
    resp = requests.post(
        live_idp.endpoint("events"),
        json={
            "audience": "receiver",
            "subject": live_idp.subject_for("bob", "publisher"),
            "events": {EVENT: {"fields": ["email"]}},
        },
        auth=("publisher", "publisher-secret"),
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    # The publisher gets the jti only; the token is read the operator's way, in-process.
    token = live_idp.events.signed(resp.json()["jti"])
    assert token is not None
    claims = check_with_pyjwt(
        live_idp,
        token,
        typ="secevent+jwt",
        audience="receiver",
        require=["iss", "aud", "iat", "jti", "sub"],
    )
    assert claims == check_with_joserfc(live_idp, token, typ="secevent+jwt", audience="receiver")
    assert EVENT in claims["events"] and "nonce" not in claims
    assert claims["azp"] == "publisher"
