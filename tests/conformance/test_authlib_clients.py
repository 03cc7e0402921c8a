"""authlib (an independent client library) against the bundled IdP in-process: RFC 7662
introspection, RFC 7009 revocation, RFC 7591 registration (responses checked with authlib's
own metadata validators), RFC 7523 private_key_jwt, and the RFC 7591 error codes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import httpx2  # authlib 1.9's httpx integration is built on the httpx2 fork
import jwt
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oauth2.rfc7591 import ClientMetadataClaims
from authlib.oidc.registration import ClientMetadataClaims as OIDCClientMetadataClaims
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey

from rs_guard.idp import IdP

from .conftest import ISSUER, RESOURCE

pytestmark = pytest.mark.anyio

INTROSPECT = f"{ISSUER}/introspect"
REVOKE = f"{ISSUER}/revoke"
TOKEN = f"{ISSUER}/token"


def client(idp: IdP, client_id: str, secret: str | None, **kwargs: Any) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=client_id,
        client_secret=secret,
        transport=httpx2.ASGITransport(app=idp.app),
        base_url=ISSUER,
        **kwargs,
    )


@pytest.fixture
async def service(idp: IdP) -> AsyncIterator[AsyncOAuth2Client]:
    async with client(idp, "service", "service-secret") as c:
        yield c


# -- RFC 7662 --------------------------------------------------------------------------------


def check_active_introspection(body: dict[str, Any], **expected: Any) -> None:
    """RFC 7662 §2.2: member names and JSON types."""
    assert body["active"] is True
    for name in ("exp", "iat", "nbf"):
        assert isinstance(body[name], int) and not isinstance(body[name], bool), name
    for name in ("scope", "client_id", "token_type", "sub", "iss", "jti"):
        assert isinstance(body[name], str), name
    assert isinstance(body["aud"], str | list)
    assert body["iss"] == ISSUER
    assert body["exp"] > body["iat"]
    if "username" in body:
        assert isinstance(body["username"], str)
    for name, value in expected.items():
        assert body[name] == value, name


async def test_introspection_with_basic(idp: IdP, service: AsyncOAuth2Client) -> None:
    token = idp.issue_access_token(
        "alice", client_id="web-app", audience=RESOURCE, scope="items:read items:write"
    )
    resp = await service.introspect_token(INTROSPECT, token=token, token_type_hint="access_token")
    assert resp.status_code == 200
    assert resp.headers["cache-control"] == "no-store"
    check_active_introspection(
        resp.json(),
        scope="items:read items:write",
        client_id="web-app",
        token_type="Bearer",
        sub="alice",
        aud=RESOURCE,
    )


async def test_introspection_with_post_and_a_wrong_hint(idp: IdP) -> None:
    # poster's own token: a client may introspect what it was issued (RFC 7662 §4).
    token = idp.issue_access_token("alice", client_id="poster", audience=RESOURCE)
    async with client(
        idp, "poster", "poster-secret", token_endpoint_auth_method="client_secret_post"
    ) as poster:
        # §2.1: a wrong hint only slows the search down; the answer is the same.
        resp = await poster.introspect_token(
            INTROSPECT, token=token, token_type_hint="refresh_token"
        )
    check_active_introspection(resp.json(), client_id="poster")


async def test_introspection_of_unknown_expired_or_revoked_is_bare_inactive(
    idp: IdP, service: AsyncOAuth2Client, clock: Any
) -> None:
    """§2.2: for an inactive token the answer carries nothing but `"active": false`."""
    revoked = idp.issue_access_token("alice", client_id="web-app")
    idp.revoke(revoked)
    expiring = idp.issue_access_token("alice", client_id="web-app", lifetime=10)
    clock.now += 11
    for token in ("never-issued", revoked, expiring):
        resp = await service.introspect_token(INTROSPECT, token=token)
        assert resp.status_code == 200
        assert resp.json() == {"active": False}


async def test_introspection_needs_client_authentication(idp: IdP) -> None:
    token = idp.issue_access_token("alice", client_id="web-app")
    async with idp.http_client() as http:
        anonymous = await http.post("/introspect", data={"token": token})
        public = await http.post("/introspect", data={"token": token, "client_id": "spa"})
        missing = await http.post("/introspect", data={}, auth=("service", "service-secret"))
    for resp in (anonymous, public):
        assert resp.status_code == 401
        assert resp.json()["error"] == "invalid_client"
        assert "www-authenticate" in resp.headers
        assert "active" not in resp.json()
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


async def test_refresh_token_introspection(idp: IdP, idp_http: httpx.AsyncClient) -> None:
    idp.login_as("alice")
    from .test_rfc9470 import _authorize

    tokens = await _authorize(idp_http, {})
    async with client(idp, "web-app", "web-secret") as web:
        resp = await web.introspect_token(
            INTROSPECT, token=tokens["refresh_token"], token_type_hint="refresh_token"
        )
    body = resp.json()
    assert body["active"] is True and body["client_id"] == "web-app"
    assert body["token_type"] != "Bearer"  # a refresh token is no bearer access token


# -- RFC 7009 --------------------------------------------------------------------------------


async def test_revocation_of_an_access_token(idp: IdP) -> None:
    async with client(idp, "service", "service-secret") as svc:
        token = await svc.fetch_token(TOKEN, grant_type="client_credentials")
        access = token["access_token"]
        resp = await svc.revoke_token(REVOKE, token=access, token_type_hint="access_token")
        assert resp.status_code == 200
        assert resp.headers["cache-control"] == "no-store"
        again = await svc.revoke_token(REVOKE, token=access)  # idempotent
    assert again.status_code == 200
    assert idp.introspect(access) == {"active": False}


async def test_revoking_a_refresh_token_ends_the_grant(
    idp: IdP, idp_http: httpx.AsyncClient
) -> None:
    """§2.1: the refresh token and the access tokens of its grant become invalid."""
    idp.login_as("alice")
    from .test_rfc9470 import _authorize

    tokens = await _authorize(idp_http, {})
    async with client(idp, "web-app", "web-secret") as web:
        resp = await web.revoke_token(REVOKE, token=tokens["refresh_token"])
        assert resp.status_code == 200
        refresh = await web.request(
            "POST",
            TOKEN,
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            auth=("web-app", "web-secret"),
            withhold_token=True,
        )
    assert refresh.json()["error"] == "invalid_grant"
    assert idp.introspect(str(tokens["access_token"])) == {"active": False}


async def test_revocation_of_unknown_tokens_and_unknown_hints_is_200(
    service: AsyncOAuth2Client,
) -> None:
    """§2.2: invalid tokens do not cause an error; §2.1: an unknown hint is ignored. This IdP
    revokes both token types, so it never needs `unsupported_token_type` (§2.2.1)."""
    for hint in (None, "access_token", "refresh_token", "id_token", "made_up"):
        resp = await service.revoke_token(REVOKE, token="never-issued", token_type_hint=hint)
        assert resp.status_code == 200, hint
        assert resp.content == b""


async def test_revocation_errors(idp: IdP) -> None:
    token = idp.issue_access_token("alice", client_id="web-app")
    async with idp.http_client() as http:
        wrong = await http.post("/revoke", data={"token": token}, auth=("service", "bad"))
        missing = await http.post("/revoke", data={}, auth=("service", "service-secret"))
        # Another client's token is not theirs to revoke.
        other = await http.post(
            "/revoke", data={"token": token}, auth=("service", "service-secret")
        )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert wrong.headers["www-authenticate"].lower().startswith("basic")
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    assert other.status_code == 200
    assert idp.introspect(token)["active"] is True


# -- RFC 7591 --------------------------------------------------------------------------------


async def register(idp: IdP, meta: dict[str, Any]) -> httpx2.Response:
    async with client(idp, "anonymous", None) as c:
        resp: httpx2.Response = await c.request("POST", "/register", json=meta, withhold_token=True)
        return resp


async def test_registration_and_use_of_the_new_client(idp: IdP) -> None:
    meta = {
        "redirect_uris": ["https://new.example/cb"],
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_method": "client_secret_post",
        "client_name": "New client",
        "scope": "items:read",
        "contacts": ["ops@new.example"],
        "software_id": "4NRB1-0XZABZI9E6-5SM3R",
        "software_version": "2.1",
    }
    resp = await register(idp, meta)
    assert resp.status_code == 201
    assert resp.headers["cache-control"] == "no-store"
    info = resp.json()
    # §3.2.1: client_id, the secret with its expiry, and every registered metadata value.
    assert isinstance(info["client_id"], str) and info["client_id"]
    assert isinstance(info["client_secret"], str)
    assert info["client_secret_expires_at"] == 0
    assert isinstance(info["client_id_issued_at"], int)
    for name, value in meta.items():
        assert info[name] == value, name
    ClientMetadataClaims(info, {}).validate()
    OIDCClientMetadataClaims(info, {}).validate()
    async with client(
        idp,
        info["client_id"],
        info["client_secret"],
        token_endpoint_auth_method=info["token_endpoint_auth_method"],
    ) as new:
        token = await new.fetch_token(TOKEN, grant_type="client_credentials")
    assert token["token_type"] == "Bearer" and token["scope"] == "items:read"


async def test_registration_defaults_are_rfc7591s(idp: IdP) -> None:
    """§2: grant_types defaults to authorization_code, response_types to code,
    token_endpoint_auth_method to client_secret_basic."""
    resp = await register(idp, {"redirect_uris": ["https://new.example/cb"]})
    info = resp.json()
    assert info["grant_types"] == ["authorization_code"]
    assert info["response_types"] == ["code"]
    assert info["token_endpoint_auth_method"] == "client_secret_basic"
    ClientMetadataClaims(info, {}).validate()


@pytest.mark.parametrize(
    ("meta", "error"),
    [
        ({"redirect_uris": ["https://a.example/cb#frag"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["/relative/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://a.example/cb"]}, "invalid_redirect_uri"),
        ({"grant_types": ["authorization_code"]}, "invalid_redirect_uri"),
        ({"redirect_uris": "https://a.example/cb"}, "invalid_client_metadata"),
        (
            {"redirect_uris": ["https://a.example/cb"], "grant_types": ["password"]},
            "invalid_client_metadata",
        ),
        (
            {"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "magic"},
            "invalid_client_metadata",
        ),
        (
            {"redirect_uris": ["https://a.example/cb"], "response_types": ["token"]},
            "invalid_client_metadata",
        ),
        ({"redirect_uris": ["https://a.example/cb"], "scope": ["a"]}, "invalid_client_metadata"),
        (
            {"redirect_uris": ["https://a.example/cb"], "software_statement": "not a jwt"},
            "invalid_software_statement",
        ),
        (
            {"redirect_uris": ["https://a.example/cb"], "software_statement": 42},
            "invalid_software_statement",
        ),
    ],
)
async def test_registration_error_codes(idp: IdP, meta: dict[str, Any], error: str) -> None:
    """§3.2.2: 400 with an `error` from RFC 7591's list."""
    resp = await register(idp, meta)
    assert resp.status_code == 400, resp.text
    assert resp.headers["content-type"].split(";")[0] == "application/json"
    assert resp.json()["error"] == error


async def test_software_statement_needs_a_signature_and_an_issuer(idp: IdP) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    unsigned = jwt.encode({"iss": "https://vendor.example"}, None, algorithm="none")
    no_iss = jwt.encode({"software_id": "x"}, key, algorithm="ES256")
    for statement in (unsigned, no_iss):
        resp = await register(
            idp, {"redirect_uris": ["https://a.example/cb"], "software_statement": statement}
        )
        assert resp.json()["error"] == "invalid_software_statement"
    # A well-formed statement from a vendor this IdP does not know: RFC 7591 §3.1.1 lets an
    # AS that does not support statements ignore it. It was not used, so it is not echoed.
    signed = jwt.encode({"iss": "https://vendor.example", "software_id": "x"}, key, "ES256")
    resp = await register(
        idp, {"redirect_uris": ["https://a.example/cb"], "software_statement": signed}
    )
    assert resp.status_code == 201
    assert "software_statement" not in resp.json()


async def test_registration_body_must_be_a_json_object(idp: IdP) -> None:
    async with idp.http_client() as http:
        for body in (b"not json", b"[1,2]", b'"x"'):
            resp = await http.post(
                "/register", content=body, headers={"content-type": "application/json"}
            )
            assert resp.status_code == 400
            assert resp.json()["error"] == "invalid_client_metadata"


# -- RFC 7523 private_key_jwt through authlib -----------------------------------------------


async def test_private_key_jwt_client_authentication(idp: IdP) -> None:
    key = ECKey.generate_key("P-256", parameters={"kid": "ck-1"}, private=True)
    public = key.as_dict(private=False)
    idp.register_client("signer", jwks={"keys": [public]}, scope="items:read")
    async with client(idp, "signer", key, token_endpoint_auth_method="private_key_jwt") as signer:
        signer.register_client_auth_method(PrivateKeyJWT(TOKEN, alg="ES256"))
        token = await signer.fetch_token(TOKEN, grant_type="client_credentials")
        assert token["token_type"] == "Bearer"
        signer.register_client_auth_method(PrivateKeyJWT(INTROSPECT, alg="ES256"))
        resp = await signer.introspect_token(
            INTROSPECT,
            token=token["access_token"],
            auth=signer.client_auth("private_key_jwt"),
        )
    assert resp.json()["active"] is True
    assert json.loads(json.dumps(resp.json()))["client_id"] == "signer"
