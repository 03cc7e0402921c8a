"""Priority-1 IdP features: discovery, JWKS and keys, minting, client credentials,
introspection, revocation and fault switches."""

from __future__ import annotations

import base64
import json

import httpx
import jwt
import pytest

from rs_guard.idp import IdP

from .conftest import API, ISSUER, Clock

pytestmark = pytest.mark.anyio


def decode(idp: IdP, token: str, audience: str | None = None) -> dict:
    header = jwt.get_unverified_header(token)
    jwk = next(k for k in idp.jwks()["keys"] if k["kid"] == header["kid"])
    key = jwt.PyJWK(jwk).key
    return jwt.decode(
        token,
        key,
        algorithms=[jwk["alg"]],
        audience=audience,
        options={"verify_aud": audience is not None, "verify_exp": False},
    )


async def test_discovery_documents(http: httpx.AsyncClient) -> None:
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        resp = await http.get(path)
        assert resp.status_code == 200
        doc = resp.json()
        assert doc["issuer"] == ISSUER
        for member, suffix in [
            ("jwks_uri", "/jwks"),
            ("authorization_endpoint", "/authorize"),
            ("token_endpoint", "/token"),
            ("userinfo_endpoint", "/userinfo"),
            ("introspection_endpoint", "/introspect"),
            ("revocation_endpoint", "/revoke"),
            ("registration_endpoint", "/register"),
            ("ppid_conversion_endpoint", "/ppid/convert"),
            ("event_signing_endpoint", "/events"),
        ]:
            assert doc[member] == ISSUER + suffix
        assert doc["code_challenge_methods_supported"] == ["S256"]
        assert doc["authorization_response_iss_parameter_supported"] is True
        assert doc["client_id_metadata_document_supported"] is True
        assert doc["claims_parameter_supported"] is True
        assert set(doc["subject_types_supported"]) == {"public", "pairwise"}
        assert {"pwd", "mf", "phr"} <= set(doc["acr_values_supported"])
        assert "urn:ietf:params:oauth:grant-type:token-exchange" in doc["grant_types_supported"]


async def test_issuer_with_path_serves_path_inserted_metadata() -> None:
    idp = IdP("https://idp.example/tenant1")
    async with idp.http_client() as http:
        inserted = await http.get(
            "https://idp.example/.well-known/oauth-authorization-server/tenant1"
        )
        assert inserted.status_code == 200
        assert inserted.json()["issuer"] == "https://idp.example/tenant1"
        assert inserted.json()["token_endpoint"] == "https://idp.example/tenant1/token"
        oidc = await http.get("https://idp.example/tenant1/.well-known/openid-configuration")
        assert oidc.json()["issuer"] == "https://idp.example/tenant1"
        jwks = await http.get("/jwks")  # relative to base_url = issuer
        assert jwks.status_code == 200 and jwks.json()["keys"]


async def test_jwks_cache_control_and_key_members(http: httpx.AsyncClient) -> None:
    resp = await http.get("/jwks")
    assert resp.status_code == 200
    assert resp.headers["cache-control"].startswith("public, max-age=")
    (key,) = resp.json()["keys"]
    assert key["alg"] == "ES256" and key["use"] == "sig" and key["kid"]
    assert "d" not in key


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256", "EdDSA"])
async def test_every_algorithm_signs_verifiable_tokens(alg: str) -> None:
    idp = IdP(ISSUER, signing_alg=alg)
    token = idp.issue_access_token("alice", client_id="c", audience=API, scope="a")
    assert jwt.get_unverified_header(token)["alg"] == alg
    assert decode(idp, token, API)["sub"] == "alice"


async def test_rotate_and_retire(idp: IdP, http: httpx.AsyncClient) -> None:
    old = idp.issue_access_token("alice", client_id="c", audience=API)
    old_kid = jwt.get_unverified_header(old)["kid"]
    new_kid = idp.rotate()
    assert new_kid != old_kid
    kids = {k["kid"] for k in (await http.get("/jwks")).json()["keys"]}
    assert kids == {old_kid, new_kid}
    new = idp.issue_access_token("alice", client_id="c", audience=API)
    assert jwt.get_unverified_header(new)["kid"] == new_kid
    assert idp.introspect(old)["active"] is True
    idp.retire(old_kid)
    assert {k["kid"] for k in idp.jwks()["keys"]} == {new_kid}
    assert idp.introspect(old) == {"active": False}
    rsa_kid = idp.rotate("RS256")
    assert any(k["kid"] == rsa_kid and k["kty"] == "RSA" for k in idp.jwks()["keys"])


async def test_signing_keys_round_trip() -> None:
    first = IdP(ISSUER)
    first.rotate("EdDSA")
    private = first.private_jwks()
    second = IdP(ISSUER, signing_keys=private)
    assert second.jwks() == first.jwks()
    token = second.issue_access_token("bob", client_id="c", audience=API)
    assert decode(first, token, API)["sub"] == "bob"
    with pytest.raises(ValueError):
        IdP(ISSUER, signing_keys={"keys": [{"kty": "EC"}]})
    with pytest.raises(ValueError):
        IdP(ISSUER, signing_keys={"nokeys": 1})


async def test_access_token_shape(idp: IdP, clock: Clock) -> None:
    token = idp.issue_access_token(
        "alice",
        client_id="web-app",
        audience=API,
        scope=["items:read", "items:write"],
        acr="mf",
        auth_time=1_699_999_000,
        amr=["pwd", "otp"],
        claims={"extra": 1},
    )
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    claims = decode(idp, token, API)
    assert claims["iss"] == ISSUER and claims["aud"] == API and claims["sub"] == "alice"
    assert claims["iat"] == int(clock.now) and claims["exp"] == int(clock.now) + 300
    assert claims["client_id"] == "web-app" and claims["scope"] == "items:read items:write"
    assert claims["acr"] == "mf" and claims["auth_time"] == 1_699_999_000
    assert claims["amr"] == ["pwd", "otp"] and claims["extra"] == 1 and claims["jti"]
    forged_header = idp.issue_access_token("a", client_id="c", headers={"kid": "nope"})
    assert jwt.get_unverified_header(forged_header)["kid"] == "nope"
    assert idp.introspect(forged_header) == {"active": False}


async def test_id_token_shape(idp: IdP) -> None:
    token = idp.issue_id_token("alice", client_id="web-app", nonce="n-1", acr="pwd", auth_time=5)
    assert jwt.get_unverified_header(token)["typ"] == "JWT"
    claims = decode(idp, token, "web-app")
    assert claims["azp"] == "web-app" and claims["nonce"] == "n-1" and claims["auth_time"] == 5


async def test_client_credentials_basic_and_post(idp: IdP, http: httpx.AsyncClient) -> None:
    resp = await http.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "items:read", "resource": API},
        auth=("service", "service-secret"),
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    body = resp.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "items:read"
    claims = decode(idp, body["access_token"], API)
    assert claims["sub"] == "service" and claims["client_id"] == "service"
    resp = await http.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "service",
            "client_secret": "service-secret",
        },
    )
    assert resp.status_code == 200
    assert set(resp.json()["scope"].split()) == {"items:read", "items:write"}


async def test_basic_credentials_are_form_urlencoded(idp: IdP, http: httpx.AsyncClient) -> None:
    idp.register_client("odd client", "p@ss word+", scope="x")
    raw = base64.b64encode(b"odd+client:p%40ss+word%2B").decode()
    resp = await http.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {raw}"},
    )
    assert resp.status_code == 200, resp.text


async def test_token_endpoint_errors(http: httpx.AsyncClient) -> None:
    bad = await http.post(
        "/token", data={"grant_type": "client_credentials"}, auth=("service", "wrong")
    )
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    assert bad.headers["www-authenticate"].startswith("Basic")
    post = await http.post(
        "/token",
        data={"grant_type": "client_credentials", "client_id": "service", "client_secret": "x"},
    )
    # RFC 9110 §15.5.2: every 401 names a scheme, also after client_secret_post.
    assert post.status_code == 401 and post.headers["www-authenticate"].startswith("Basic")
    unknown = await http.post(
        "/token", data={"grant_type": "client_credentials"}, auth=("nobody", "x")
    )
    assert unknown.status_code == 401
    scope = await http.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "admin"},
        auth=("service", "service-secret"),
    )
    assert scope.status_code == 400 and scope.json()["error"] == "invalid_scope"
    grant = await http.post("/token", data={"grant_type": "password"}, auth=("service", "x"))
    assert grant.json()["error"] == "unsupported_grant_type"
    missing = await http.post("/token", data={}, auth=("service", "service-secret"))
    assert missing.json()["error"] == "invalid_request"
    target = await http.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": "http://api.example/x"},
        auth=("service", "service-secret"),
    )
    assert target.json()["error"] == "invalid_target"
    frag = await http.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": "https://api.example/#f"},
        auth=("service", "service-secret"),
    )
    assert frag.json()["error"] == "invalid_target"
    dup = await http.post(
        "/token",
        content="grant_type=client_credentials&scope=a&scope=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=("service", "service-secret"),
    )
    assert dup.json()["error"] == "invalid_request"
    json_body = await http.post("/token", json={"grant_type": "client_credentials"})
    assert json_body.status_code == 400
    public = await http.post(
        "/token", data={"grant_type": "client_credentials", "client_id": "spa"}
    )
    assert public.status_code == 401
    garbage_basic = await http.post(
        "/token", data={"grant_type": "client_credentials"}, headers={"Authorization": "Basic !!"}
    )
    assert garbage_basic.status_code == 401


async def test_resource_rules(idp: IdP, http: httpx.AsyncClient) -> None:
    async def cc(resource: str) -> httpx.Response:
        return await http.post(
            "/token",
            data={"grant_type": "client_credentials", "resource": resource},
            auth=("service", "service-secret"),
        )

    ok = await cc("HTTPS://API.Example/Items")
    assert decode(idp, ok.json()["access_token"])["aud"] == "https://api.example/Items"
    assert (await cc("http://127.0.0.1:8000/mcp")).status_code == 200
    assert (await cc("urn:example:api")).json()["error"] == "invalid_target"
    assert (await cc("/relative")).json()["error"] == "invalid_target"
    idp.resource_allowlist = [API]
    assert (await cc("https://other.example/")).json()["error"] == "invalid_target"
    assert (await cc("HTTPS://API.EXAMPLE/items")).status_code == 200
    assert (await cc("https://api.example/ITEMS")).json()["error"] == "invalid_target"


async def test_introspection(idp: IdP, http: httpx.AsyncClient, clock: Clock) -> None:
    token = idp.issue_access_token("alice", client_id="web-app", audience=API, scope="items:read")
    auth = ("service", "service-secret")
    resp = await http.post("/introspect", data={"token": token}, auth=auth)
    body = resp.json()
    assert resp.status_code == 200 and body["active"] is True
    assert body["sub"] == "alice" and body["client_id"] == "web-app" and body["aud"] == API
    assert (await http.post("/introspect", data={"token": "nope"}, auth=auth)).json() == {
        "active": False
    }
    # A token with a valid shape but signed by another key is never active.
    other = IdP(ISSUER).issue_access_token("alice", client_id="web-app", audience=API)
    assert (await http.post("/introspect", data={"token": other}, auth=auth)).json() == {
        "active": False
    }
    # Tampered payload, original signature.
    h, p, s = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    claims["scope"] = "admin"
    p2 = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    forged = f"{h}.{p2}.{s}"
    assert (await http.post("/introspect", data={"token": forged}, auth=auth)).json()[
        "active"
    ] is False
    no_auth = await http.post("/introspect", data={"token": token})
    assert no_auth.status_code == 401
    public = await http.post("/introspect", data={"token": token, "client_id": "spa"})
    assert public.status_code == 401
    clock.now += 301
    assert (await http.post("/introspect", data={"token": token}, auth=auth)).json() == {
        "active": False
    }


async def test_revocation(idp: IdP, http: httpx.AsyncClient) -> None:
    token = idp.issue_access_token("alice", client_id="service", audience=API)
    auth = ("service", "service-secret")
    assert (await http.post("/revoke", data={"token": "unknown"}, auth=auth)).status_code == 200
    # Another client cannot revoke it.
    other = await http.post("/revoke", data={"token": token}, auth=("web-app", "web-secret"))
    assert other.status_code == 200 and idp.introspect(token)["active"] is True
    resp = await http.post(
        "/revoke", data={"token": token, "token_type_hint": "access_token"}, auth=auth
    )
    assert resp.status_code == 200
    assert (await http.post("/introspect", data={"token": token}, auth=auth)).json() == {
        "active": False
    }
    assert (
        await http.post("/revoke", data={"token": token}, auth=("service", "x"))
    ).status_code == 401
    assert (await http.post("/revoke", data={}, auth=auth)).json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "switch,path", [("jwks", "/jwks"), ("token", "/token"), ("introspection", "/introspect")]
)
async def test_faults(idp: IdP, http: httpx.AsyncClient, switch: str, path: str) -> None:
    async def call() -> httpx.Response:
        if path == "/jwks":
            return await http.get(path)
        data = {"grant_type": "client_credentials", "token": "x"}
        return await http.post(path, data=data, auth=("service", "service-secret"))

    setattr(idp.faults, switch, "down")
    down = await call()
    assert down.status_code == 503 and "retry-after" in down.headers
    setattr(idp.faults, switch, "garbage")
    garbage = await call()
    assert garbage.status_code == 200
    with pytest.raises(ValueError):
        garbage.json()
    setattr(idp.faults, switch, "slow")
    idp.faults.delay = 0.05
    assert (await call()).status_code == 200
    setattr(idp.faults, switch, None)
    assert (await call()).status_code == 200
    with pytest.raises(ValueError):
        idp.faults.jwks = "broken"  # type: ignore[assignment]


async def test_construction_is_fast() -> None:
    import time

    t = time.perf_counter()
    IdP(ISSUER).issue_access_token("a", client_id="c", audience=API)
    assert time.perf_counter() - t < 0.1
