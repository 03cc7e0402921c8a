"""Priority 3: Dynamic Client Registration (RFC 7591/7592), Client ID Metadata Documents and
pairwise subjects."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from rs_guard.idp import IdP

from .conftest import API, ISSUER, Clock, pkce, query

pytestmark = pytest.mark.anyio
CIMD_URL = "https://client.example/oauth/client.json"


def client_site() -> Starlette:
    """A client's own web site, serving its sector identifier and metadata documents."""

    async def sector(request: Request) -> Response:
        return JSONResponse(["https://a.example/cb", "https://b.example/cb"])

    async def document(request: Request) -> Response:
        return JSONResponse(
            {
                "client_id": CIMD_URL,
                "client_name": "Doc Client",
                "redirect_uris": ["https://client.example/cb"],
            },
            headers={"Cache-Control": "max-age=600"},
        )

    async def wrong_id(request: Request) -> Response:
        return JSONResponse(
            {
                "client_id": "https://elsewhere.example/c.json",
                "redirect_uris": ["https://client.example/cb"],
            }
        )

    async def huge(request: Request) -> Response:
        return JSONResponse(
            {
                "client_id": str(request.url),
                "redirect_uris": ["https://client.example/cb"],
                "padding": "x" * 6000,
            }
        )

    async def secret(request: Request) -> Response:
        return JSONResponse(
            {
                "client_id": str(request.url),
                "client_secret": "s",
                "redirect_uris": ["https://client.example/cb"],
            }
        )

    async def moved(request: Request) -> Response:
        return RedirectResponse(CIMD_URL)

    return Starlette(
        routes=[
            Route("/sector.json", sector),
            Route("/oauth/client.json", document),
            Route("/wrong.json", wrong_id),
            Route("/huge.json", huge),
            Route("/secret.json", secret),
            Route("/moved.json", moved),
        ]
    )


@pytest.fixture
def site_idp(clock: Clock) -> IdP:
    outbound = httpx.AsyncClient(transport=httpx.ASGITransport(app=client_site()))
    return IdP(ISSUER, clock=clock, http_client=outbound)


async def register(http: httpx.AsyncClient, **meta: Any) -> httpx.Response:
    return await http.post("/register", json=meta)


async def test_register_and_manage(site_idp: IdP) -> None:
    async with site_idp.http_client() as http:
        resp = await register(
            http,
            redirect_uris=["https://app.example/cb"],
            client_name="App",
            scope="openid items:read",
            software_statement_extra={"x": 1},
            default_max_age=60,
        )
        assert resp.status_code == 201, resp.text
        body = resp.json()
        assert body["client_secret"] and body["client_id_issued_at"]
        assert body["client_secret_expires_at"] == 0
        assert body["registration_client_uri"] == f"{ISSUER}/register/{body['client_id']}"
        assert body["software_statement_extra"] == {"x": 1} and body["default_max_age"] == 60
        assert body["grant_types"] == ["authorization_code"] and body["response_types"] == ["code"]
        client = site_idp.clients[body["client_id"]]
        assert client.registration_access_token_hash != body["registration_access_token"]
        rat = {"Authorization": f"Bearer {body['registration_access_token']}"}
        uri = body["registration_client_uri"]
        got = await http.get(uri, headers=rat)
        assert got.status_code == 200 and got.json()["client_name"] == "App"
        assert (await http.get(uri, headers={"Authorization": "Bearer wrong"})).status_code == 401
        assert (await http.get(uri)).status_code == 401
        put = await http.put(
            uri,
            headers=rat,
            json={
                "client_id": body["client_id"],
                "redirect_uris": ["https://app.example/new"],
                "client_name": "App 2",
                "grant_types": ["authorization_code", "client_credentials"],
            },
        )
        assert put.status_code == 200, put.text
        assert put.json()["client_name"] == "App 2" and "scope" not in put.json()
        assert put.json()["client_secret"] == body["client_secret"]
        mismatch = await http.put(
            uri, headers=rat, json={"client_id": "other", "redirect_uris": ["https://a.example/"]}
        )
        assert mismatch.status_code == 400
        site_idp.rotate_secrets_on_update = True
        rotated = await http.put(
            uri,
            headers=rat,
            json={
                "client_id": body["client_id"],
                "redirect_uris": ["https://app.example/new"],
                "grant_types": ["authorization_code", "client_credentials"],
            },
        )
        new_secret = rotated.json()["client_secret"]
        assert new_secret != body["client_secret"]
        tok = await http.post(
            "/token",
            data={"grant_type": "client_credentials"},
            auth=(body["client_id"], new_secret),
        )
        assert tok.status_code == 200
        access = tok.json()["access_token"]
        assert site_idp.introspect(access)["active"] is True
        deleted = await http.delete(uri, headers=rat)
        assert deleted.status_code == 204
        assert site_idp.introspect(access) == {"active": False}
        assert (await http.get(uri, headers=rat)).status_code == 401


@pytest.mark.parametrize(
    "meta,error,words",
    [
        ({"redirect_uris": ["http://app.example/cb"]}, "invalid_redirect_uri", "https"),
        ({"redirect_uris": ["https://app.example/cb#frag"]}, "invalid_redirect_uri", "malformed"),
        (
            {
                "redirect_uris": ["myapp://cb"],
                "application_type": "native",
                "token_endpoint_auth_method": "none",
            },
            None,
            "",
        ),
        (
            {"redirect_uris": ["http://example.com/cb"], "application_type": "native"},
            "invalid_redirect_uri",
            "loopback",
        ),
        (
            {"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "magic"},
            "invalid_client_metadata",
            "token_endpoint_auth_method",
        ),
        (
            {
                "redirect_uris": ["https://a.example/cb"],
                "token_endpoint_auth_method": "private_key_jwt",
            },
            "invalid_client_metadata",
            "jwks",
        ),
        (
            {
                "redirect_uris": ["https://a.example/cb"],
                "jwks": {"keys": []},
                "jwks_uri": "https://a.example/jwks",
            },
            "invalid_client_metadata",
            "mutually exclusive",
        ),
        (
            {
                "redirect_uris": ["https://a.example/cb"],
                "response_types": ["code"],
                "grant_types": ["client_credentials"],
            },
            "invalid_client_metadata",
            "go together",
        ),
        ({"grant_types": ["authorization_code"]}, "invalid_redirect_uri", "redirect_uris"),
        (
            {"redirect_uris": ["https://a.example/cb"], "subject_type": "secret"},
            "invalid_client_metadata",
            "subject_type",
        ),
        (
            {
                "redirect_uris": ["https://a.example/cb", "https://b.example/cb"],
                "subject_type": "pairwise",
            },
            "invalid_client_metadata",
            "sector_identifier_uri",
        ),
        (
            {"redirect_uris": ["https://a.example/cb"], "id_token_signed_response_alg": "none"},
            "invalid_client_metadata",
            "id_token_signed_response_alg",
        ),
        (
            {"redirect_uris": ["https://a.example/cb"], "default_max_age": "1"},
            "invalid_client_metadata",
            "default_max_age",
        ),
        ({"redirect_uris": "https://a.example/cb"}, "invalid_client_metadata", "array"),
        (
            {"redirect_uris": ["https://a.example/cb"], "grant_types": ["password"]},
            "invalid_client_metadata",
            "password",
        ),
        (
            {
                "redirect_uris": ["https://a.example/cb"],
                "token_endpoint_auth_method": "none",
                "grant_types": ["client_credentials"],
                "response_types": [],
            },
            "invalid_client_metadata",
            "public",
        ),
    ],
)
async def test_registration_validation(
    site_idp: IdP, meta: dict, error: str | None, words: str
) -> None:
    async with site_idp.http_client() as http:
        resp = await register(http, **meta)
    if error is None:
        assert resp.status_code == 201, resp.text
        assert "client_secret" not in resp.json()
        return
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == error and words in resp.json()["error_description"]


async def test_registration_body_errors(site_idp: IdP) -> None:
    async with site_idp.http_client() as http:
        not_json = await http.post("/register", content=b"{oops")
        assert not_json.status_code == 400 and not_json.json()["error"] == "invalid_client_metadata"
        array = await http.post("/register", json=[1])
        assert array.status_code == 400


async def test_initial_access_token() -> None:
    idp = IdP(ISSUER, initial_access_token="let-me-in")
    async with idp.http_client() as http:
        meta = {"redirect_uris": ["https://a.example/cb"]}
        assert (await http.post("/register", json=meta)).status_code == 401
        wrong = await http.post("/register", json=meta, headers={"Authorization": "Bearer no"})
        assert wrong.status_code == 401
        ok = await http.post("/register", json=meta, headers={"Authorization": "Bearer let-me-in"})
        assert ok.status_code == 201


async def test_sector_identifier_and_pairwise(site_idp: IdP) -> None:
    async with site_idp.http_client() as http:
        resp = await register(
            http,
            redirect_uris=["https://a.example/cb", "https://b.example/cb"],
            subject_type="pairwise",
            sector_identifier_uri="https://client.example/sector.json",
            grant_types=["authorization_code", "client_credentials"],
        )
        assert resp.status_code == 201, resp.text
        missing = await register(
            http,
            redirect_uris=["https://c.example/cb"],
            subject_type="pairwise",
            sector_identifier_uri="https://client.example/sector.json",
        )
        assert missing.status_code == 400 and "c.example" in missing.json()["error_description"]
        private = await register(
            http,
            redirect_uris=["https://a.example/cb"],
            sector_identifier_uri="https://10.0.0.1/sector.json",
        )
        assert private.status_code == 400 and "private" in private.json()["error_description"]
        http_uri = await register(
            http,
            redirect_uris=["https://a.example/cb"],
            sector_identifier_uri="http://client.example/sector.json",
        )
        assert http_uri.status_code == 400
    cid = resp.json()["client_id"]
    site_idp.add_user("alice")
    sub = site_idp.subject_for("alice", cid)
    assert sub != "alice" and site_idp.user_for_subject(sub, cid) == "alice"
    # Same sector => same subject; another sector => different.
    same = site_idp.register_client(
        redirect_uris=["https://x.example/cb"],
        subject_type="pairwise",
        sector_identifier_uri="https://client.example/sector.json",
    )
    other = site_idp.register_client(
        redirect_uris=["https://x.example/cb"], subject_type="pairwise"
    )
    assert site_idp.subject_for("alice", same.client_id) == sub
    assert site_idp.subject_for("alice", other.client_id) not in (sub, "alice")
    pairwise: dict[str, Any] = {
        "redirect_uris": ["https://x.example/cb"],
        "subject_type": "pairwise",
    }
    # Subjects handed out before a restart (by an IdP with the same secret), never computed
    # by this instance, are derived again.
    before = IdP(ISSUER, pairwise_secret=b"k" * 32)
    earlier = [
        before.subject_for("bob", before.register_client("c1", **pairwise).client_id),
        before.subjects.pairwise("x.example", "bob"),
    ]
    for sub in earlier:
        fresh = IdP(ISSUER, pairwise_secret=b"k" * 32)
        fresh.add_user("bob")
        c = fresh.register_client("c1", **pairwise)
        assert fresh.user_for_subject(sub, c.client_id) == "bob"
        assert fresh.user_for_subject("nobody", c.client_id) is None


async def test_pairwise_in_tokens_userinfo_and_introspection(
    idp: IdP, http: httpx.AsyncClient
) -> None:
    idp.register_client(
        "pw",
        "pw-secret",
        redirect_uris=["https://pw.example/cb"],
        subject_type="pairwise",
        scope="openid items:read",
    )
    idp.login_as("alice")
    sub = idp.subject_for("alice", "pw")
    verifier, challenge = pkce()
    resp = await http.get(
        "/authorize",
        params={
            "response_type": "code",
            "client_id": "pw",
            "redirect_uri": "https://pw.example/cb",
            "scope": "openid",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    code = query(resp.headers["location"])["code"]
    tok = (
        await http.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": "https://pw.example/cb",
                "code_verifier": verifier,
            },
            auth=("pw", "pw-secret"),
        )
    ).json()
    assert jwt.decode(tok["id_token"], options={"verify_signature": False})["sub"] == sub
    assert jwt.decode(tok["access_token"], options={"verify_signature": False})["sub"] == sub
    info = await http.get("/userinfo", headers={"Authorization": f"Bearer {tok['access_token']}"})
    assert info.json()["sub"] == sub
    intro = await http.post(
        "/introspect", data={"token": tok["access_token"]}, auth=("pw", "pw-secret")
    )
    assert intro.json()["sub"] == sub
    # Token exchange to a public-subject client gives the public subject: pw's token for the
    # API, exchanged by the service serving it (the flow's token is addressed to the IdP, and
    # a client may exchange only the tokens it received).
    for_api = idp.issue_access_token("alice", client_id="pw", audience=API, scope="items:read")
    ex = await http.post(
        "/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": for_api,
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        },
        auth=("service", "service-secret"),
    )
    assert (
        jwt.decode(ex.json()["access_token"], options={"verify_signature": False})["sub"] == "alice"
    )


async def test_client_id_metadata_document(site_idp: IdP) -> None:
    site_idp.login_as("alice")
    verifier, challenge = pkce()
    async with site_idp.http_client() as http:
        params = {
            "response_type": "code",
            "client_id": CIMD_URL,
            "redirect_uri": "https://client.example/cb",
            "scope": "openid",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        resp = await http.get("/authorize", params=params)
        assert resp.status_code == 302, resp.text
        code = query(resp.headers["location"])["code"]
        tok = await http.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "client_id": CIMD_URL,
                "redirect_uri": "https://client.example/cb",
                "code_verifier": verifier,
            },
        )
        assert tok.status_code == 200, tok.text
        assert (
            jwt.decode(tok.json()["id_token"], options={"verify_signature": False})["aud"]
            == CIMD_URL
        )
        bad_redirect = await http.get(
            "/authorize", params={**params, "redirect_uri": "https://evil.example/cb"}
        )
        assert bad_redirect.status_code == 400
        for path in ("wrong.json", "huge.json", "secret.json", "moved.json", "missing.json"):
            r = await http.get(
                "/authorize", params={**params, "client_id": f"https://client.example/{path}"}
            )
            assert r.status_code == 400 and "location" not in r.headers, path
        for url in (
            "http://client.example/oauth/client.json",
            "https://127.0.0.1/oauth/client.json",
            "https://192.168.1.4/c.json",
            "https://client.example/",
        ):
            r = await http.get("/authorize", params={**params, "client_id": url})
            assert r.status_code == 400, url


async def test_cimd_loopback_allowed_in_dev() -> None:
    async def document(request: Request) -> Response:
        return JSONResponse(
            {
                "client_id": str(request.url),
                "redirect_uris": ["http://127.0.0.1/cb"],
                "application_type": "native",
            }
        )

    site = Starlette(routes=[Route("/client.json", document)])
    idp = IdP(
        ISSUER, dev=True, http_client=httpx.AsyncClient(transport=httpx.ASGITransport(app=site))
    )
    idp.login_as("alice")
    _, challenge = pkce()
    async with idp.http_client() as http:
        r = await http.get(
            "/authorize",
            params={
                "response_type": "code",
                "client_id": "http://127.0.0.1:8123/client.json",
                "redirect_uri": "http://127.0.0.1:4444/cb",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
        assert r.status_code == 302 and "code=" in r.headers["location"]


async def test_private_key_jwt_client_authentication(idp: IdP, http: httpx.AsyncClient) -> None:
    import time as _time
    import uuid

    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    key = ec.generate_private_key(ec.SECP256R1())
    jwk = dict(ECAlgorithm.to_jwk(key.public_key(), as_dict=True), kid="k1", alg="ES256")
    idp.register_client("pkj", jwks={"keys": [jwk]}, scope="items:read")

    def assertion(**over: Any) -> str:
        now = int(_time.time())
        claims = {
            "iss": "pkj",
            "sub": "pkj",
            "aud": f"{ISSUER}/token",
            "iat": now,
            "exp": now + 60,
            "jti": str(uuid.uuid4()),
            **over,
        }
        return jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1"})

    def form(a: str) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "client_assertion": a,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        }

    good = assertion()
    assert (await http.post("/token", data=form(good))).status_code == 200
    assert (await http.post("/token", data=form(good))).status_code == 401  # replay
    assert (await http.post("/token", data=form(assertion(aud="https://x")))).status_code == 401
    other = jwt.encode(
        {"iss": "pkj", "sub": "pkj", "aud": ISSUER, "exp": int(_time.time()) + 60, "jti": "z"},
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
    )
    assert (await http.post("/token", data=form(other))).status_code == 401
