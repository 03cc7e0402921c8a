"""The IdP's discovery documents against RFC 8414 and OpenID Connect Discovery 1.0, checked by
hand and by authlib's independent metadata validators; its JWKS against RFC 7517."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata

from rs_guard.idp import IdP

from .conftest import ISSUER

pytestmark = pytest.mark.anyio

WELL_KNOWN = ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")

# RFC 8414 §2 REQUIRED members (authorization_endpoint / token_endpoint: required as soon as a
# grant type uses them, and every grant this IdP offers does).
RFC8414_REQUIRED = (
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "response_types_supported",
)
# OIDC Discovery §3 REQUIRED members.
OIDC_REQUIRED = (
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "response_types_supported",
    "subject_types_supported",
    "id_token_signing_alg_values_supported",
)
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


async def fetch(http: httpx.AsyncClient, path: str) -> dict[str, Any]:
    resp = await http.get(path)
    assert resp.status_code == 200, resp.text
    media = "application/jwk-set+json" if path.endswith("/jwks") else "application/json"
    assert resp.headers["content-type"].split(";")[0] == media
    doc: dict[str, Any] = resp.json()
    return doc


@pytest.mark.parametrize("path", WELL_KNOWN)
async def test_required_members_and_issuer_identity(idp_http: httpx.AsyncClient, path: str) -> None:
    doc = await fetch(idp_http, path)
    for name in (*RFC8414_REQUIRED, *OIDC_REQUIRED):
        assert name in doc, name
    # RFC 8414 §3.3 / OIDC Discovery §4.3: identical to the issuer the URL was built from.
    assert doc["issuer"] == ISSUER
    assert "RS256" in doc["id_token_signing_alg_values_supported"]  # OIDC Discovery §3 MUST
    assert "none" not in doc["id_token_signing_alg_values_supported"]
    assert doc["code_challenge_methods_supported"] == ["S256"]  # no "plain"
    assert set(doc["response_types_supported"]) == {"code"}
    assert doc["authorization_response_iss_parameter_supported"] is True  # RFC 9207 §3
    for name, value in doc.items():
        if name.endswith(("_endpoint", "_uri")):
            assert value.startswith(ISSUER + "/"), name


@pytest.mark.parametrize("path", WELL_KNOWN)
async def test_both_documents_say_the_same(idp_http: httpx.AsyncClient, path: str) -> None:
    other = WELL_KNOWN[1] if path == WELL_KNOWN[0] else WELL_KNOWN[0]
    assert await fetch(idp_http, path) == await fetch(idp_http, other)


async def test_authlib_validates_rfc8414_metadata(idp_http: httpx.AsyncClient) -> None:
    doc = await fetch(idp_http, "/.well-known/oauth-authorization-server")
    AuthorizationServerMetadata(doc).validate()


async def test_authlib_validates_oidc_discovery_metadata(idp_http: httpx.AsyncClient) -> None:
    doc = await fetch(idp_http, "/.well-known/openid-configuration")
    OpenIDProviderMetadata(doc).validate()


async def test_every_advertised_endpoint_exists(idp_http: httpx.AsyncClient) -> None:
    doc = await fetch(idp_http, "/.well-known/openid-configuration")
    for name, url in doc.items():
        if not name.endswith("_endpoint") and name != "jwks_uri":
            continue
        method = (
            "GET" if name in ("jwks_uri", "authorization_endpoint", "userinfo_endpoint") else "POST"
        )
        resp = await idp_http.request(method, url)
        assert resp.status_code not in (404, 405), (name, resp.status_code)
        assert resp.status_code < 500, (name, resp.status_code)


async def test_advertised_grants_and_auth_methods_are_real(
    idp: IdP, idp_http: httpx.AsyncClient
) -> None:
    """Each advertised grant type is accepted by the token endpoint (an error about the grant's
    own parameters, never unsupported_grant_type)."""
    doc = await fetch(idp_http, "/.well-known/oauth-authorization-server")
    for grant in doc["grant_types_supported"]:
        resp = await idp_http.post(
            "/token", data={"grant_type": grant}, auth=("service", "service-secret")
        )
        assert resp.json().get("error") != "unsupported_grant_type", grant
    assert {"client_secret_basic", "client_secret_post"} <= set(
        doc["token_endpoint_auth_methods_supported"]
    )


@pytest.mark.parametrize("prefix", ["/tenant-a", "/realms/x/y"])
async def test_issuer_with_a_path(prefix: str) -> None:
    """RFC 8414 §3.1: well-known inserted between host and path; OIDC Discovery §4:
    appended to the issuer. Both documents name the issuer with its path."""
    issuer = "https://idp.example" + prefix
    idp = IdP(issuer)
    async with httpx.AsyncClient(transport=idp.transport(), base_url="https://idp.example") as c:
        inserted = await fetch(c, "/.well-known/oauth-authorization-server" + prefix)
        appended = await fetch(c, prefix + "/.well-known/openid-configuration")
        jwks = await fetch(c, inserted["jwks_uri"].removeprefix("https://idp.example"))
    assert inserted["issuer"] == appended["issuer"] == issuer
    assert inserted["token_endpoint"] == issuer + "/token"
    assert jwks["keys"]


async def test_jwks_is_a_public_rfc7517_key_set(idp: IdP, idp_http: httpx.AsyncClient) -> None:
    for alg in ("RS256", "PS256", "EdDSA"):
        idp.rotate(alg)
    resp = await idp_http.get("/jwks")
    assert resp.status_code == 200
    assert resp.headers["content-type"].split(";")[0] in (
        "application/json",
        "application/jwk-set+json",
    )
    keys = resp.json()["keys"]
    assert len(keys) == 4
    kids = [k["kid"] for k in keys]
    assert len(set(kids)) == len(kids)  # kids distinguish keys within the set
    for key in keys:
        assert not PRIVATE_JWK_MEMBERS & key.keys(), key["kid"]
        assert key["use"] == "sig"
        assert key["kty"] in ("EC", "RSA", "OKP")
        assert isinstance(key["kid"], str) and key["kid"]
    advertised = set(
        (await fetch(idp_http, "/.well-known/openid-configuration"))[
            "id_token_signing_alg_values_supported"
        ]
    )
    assert {k["alg"] for k in keys} <= advertised
