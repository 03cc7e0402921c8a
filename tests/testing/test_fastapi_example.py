"""examples/fastapi_service in-process: OpenAPI/Swagger UI set-up, route needs, IdP CORS."""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any

import pytest

from rs_guard.testing import TestIdP

pytestmark = pytest.mark.anyio

API = "http://127.0.0.1:8000"


@pytest.fixture
def rs_guard_idp_options() -> dict[str, Any]:
    return {"issuer": "http://127.0.0.1:9000", "resource": API}


@pytest.fixture
def connect(rs_guard_app_client, example: ModuleType):
    def make(**kwargs: Any):
        return rs_guard_app_client(example.create_app, base_url=API, **kwargs)

    return make


async def test_openapi_declares_the_code_flow_at_the_idp(connect, rs_guard_idp: TestIdP) -> None:
    async with connect() as client:
        doc = (await client.get("/openapi.json")).json()
    flow = doc["components"]["securitySchemes"]["OAuth2"]["flows"]["authorizationCode"]
    assert flow["authorizationUrl"] == f"{rs_guard_idp.issuer}/authorize"
    assert flow["tokenUrl"] == f"{rs_guard_idp.issuer}/token"
    assert set(flow["scopes"]) == {"items:read", "items:write", "payments:write"}
    security = {
        (path, method): op.get("security")
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    }
    assert security[("/items", "get")] == [{"OAuth2": ["items:read"]}]
    assert security[("/payments", "post")] == [{"OAuth2": ["payments:write"]}]
    assert security[("/health", "get")] is None
    assert "/docs" not in doc["paths"]


async def test_swagger_ui_page_is_public_offline_and_uses_pkce(connect) -> None:
    async with connect() as client:
        page = await client.get("/docs")
        redirect = await client.get("/docs/oauth2-redirect")
        script = await client.get("/static/swagger-ui-bundle.js")
    assert page.status_code == 200
    assert '"usePkceWithAuthorizationCodeGrant": true' in page.text
    assert '"clientId": "swagger-ui"' in page.text
    assert f'"resource": "{API}"' in page.text
    # Every asset comes from this service: no CDN, no validator badge.
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert urls and all(u.startswith("/static/") for u in urls)
    assert "cdn." not in page.text and '"validatorUrl": null' in page.text
    assert redirect.status_code == 200 and "swaggerUIRedirectOauth2" in redirect.text
    assert script.status_code == 200 and "SwaggerUIBundle" in script.text[:2000]


async def test_routes_enforce_scopes_acr_and_max_age(connect, rs_guard_idp: TestIdP) -> None:
    everything = "items:read items:write payments:write"
    payment = {"amount": 5, "to": "bob"}
    async with connect() as client:
        missing = await client.get("/items")
        health = await client.get("/health")
        read = await client.get("/items", headers=rs_guard_idp.auth_headers("alice", "items:read"))
        no_write = await client.post(
            "/items", json={"name": "cup"}, headers=rs_guard_idp.auth_headers("alice", "items:read")
        )
        step_up = await client.post(
            "/payments", json=payment, headers=rs_guard_idp.auth_headers("alice", everything)
        )
        paid = await client.post(
            "/payments",
            json=payment,
            headers=rs_guard_idp.auth_headers("alice", everything, acr="mf"),
        )
        stale = await client.delete(
            "/items/1", headers=rs_guard_idp.auth_headers("alice", everything, auth_age=900)
        )
        deleted = await client.delete(
            "/items/1", headers=rs_guard_idp.auth_headers("alice", everything)
        )
        me = await client.get("/me", headers=rs_guard_idp.auth_headers("alice", acr="phr"))
    assert missing.status_code == 401 and "error=" not in missing.headers["www-authenticate"]
    assert health.json() == {"status": "ok"}
    assert read.status_code == 200 and read.json() == {"1": {"name": "teapot"}}
    assert no_write.status_code == 403
    assert 'scope="items:write"' in no_write.headers["www-authenticate"]
    assert step_up.status_code == 401
    assert step_up.json()["error"] == "insufficient_user_authentication"
    assert 'acr_values="mf phr"' in step_up.headers["www-authenticate"]
    assert paid.json() == {"paid": 5, "to": "bob", "by": "alice"}
    assert stale.status_code == 401 and 'max_age="300"' in stale.headers["www-authenticate"]
    assert deleted.status_code == 204
    assert me.json()["acr"] == "phr" and me.json()["sub"] == "alice"


async def test_resource_metadata_names_the_idp(connect, rs_guard_idp: TestIdP) -> None:
    async with connect() as client:
        doc = (await client.get("/.well-known/oauth-protected-resource")).json()
    assert doc["resource"] == API
    assert doc["authorization_servers"] == [rs_guard_idp.issuer]
    assert set(doc["scopes_supported"]) == {"items:read", "items:write", "payments:write"}


async def test_idp_answers_browser_preflights_on_token_but_not_authorize(
    rs_guard_idp: TestIdP,
) -> None:
    origin = {"Origin": API}
    preflight = {
        **origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-requested-with",
    }
    async with rs_guard_idp.http_client() as http:
        token_pre = await http.options("/token", headers=preflight)
        token = await http.post("/token", data={"grant_type": "nope"}, headers=origin)
        jwks = await http.get("/jwks", headers=origin)
        discovery = await http.get("/.well-known/openid-configuration", headers=origin)
        authorize_pre = await http.options("/authorize", headers=preflight)
        authorize = await http.get("/authorize", params={"client_id": "x"}, headers=origin)
        no_origin = await http.get("/jwks")
    assert token_pre.status_code == 204
    assert token_pre.headers["access-control-allow-origin"] == "*"
    assert "POST" in token_pre.headers["access-control-allow-methods"]
    assert token_pre.headers["access-control-allow-headers"] == "content-type, x-requested-with"
    for response in (token, jwks, discovery):
        assert response.headers["access-control-allow-origin"] == "*"
    assert token.status_code == 400  # errors are readable by the browser app too
    assert "access-control-allow-origin" not in authorize_pre.headers
    assert "access-control-allow-origin" not in authorize.headers
    assert "access-control-allow-origin" not in no_origin.headers


async def test_login_page_names_the_client_and_scopes_without_external_assets(
    rs_guard_idp: TestIdP,
) -> None:
    rs_guard_idp.register_client(
        "swagger-ui",
        redirect_uris=[f"{API}/docs/oauth2-redirect"],
        token_endpoint_auth_method="none",
        scope="items:read payments:write",
        client_name="Example items API (Swagger UI)",
    )
    params = {
        "response_type": "code",
        "client_id": "swagger-ui",
        "redirect_uri": f"{API}/docs/oauth2-redirect",
        "scope": "items:read payments:write",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        "state": "s",
    }
    async with rs_guard_idp.http_client() as http:
        page = await http.get("/authorize", params=params)
    assert page.status_code == 200
    html = page.text
    assert "Example items API (Swagger UI)" in html
    assert "<li>items:read</li>" in html and "<li>payments:write</li>" in html
    assert '<label for="login_user">' in html and '<label for="login_acr">' in html
    assert not re.search(r'(?:src|href)="', html)  # no external scripts, styles or images
    assert "default-src 'none'" in page.headers["content-security-policy"]


async def test_swagger_client_code_flow_in_process(connect, rs_guard_idp: TestIdP) -> None:
    """What Swagger UI does in the browser, step by step, with httpx."""
    import base64
    import hashlib
    import secrets
    from urllib.parse import parse_qs, urlsplit

    redirect_uri = f"{API}/docs/oauth2-redirect"
    rs_guard_idp.register_client(
        "swagger-ui",
        redirect_uris=[redirect_uri],
        token_endpoint_auth_method="none",
        scope="items:read items:write payments:write",
    )
    rs_guard_idp.login_as("alice", acr="pwd")
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    async with rs_guard_idp.http_client() as http:
        auth = await http.get(
            "/authorize",
            params={
                "response_type": "code",
                "client_id": "swagger-ui",
                "redirect_uri": redirect_uri,
                "scope": "items:read payments:write",
                "resource": API,
                "state": "xyz",
                "code_challenge": challenge.rstrip(b"=").decode(),
                "code_challenge_method": "S256",
            },
        )
        code = parse_qs(urlsplit(auth.headers["location"]).query)["code"][0]
        token = await http.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "client_id": "swagger-ui",
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            },
            headers={"Origin": API},
        )
    access = token.json()["access_token"]
    async with connect(token=access) as client:
        items = await client.get("/items")
        pay = await client.post("/payments", json={"amount": 1, "to": "bob"})
    assert items.status_code == 200
    assert pay.status_code == 401
    assert 'error="insufficient_user_authentication"' in pay.headers["www-authenticate"]
