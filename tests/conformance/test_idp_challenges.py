"""Every WWW-Authenticate the IdP itself sends (token, introspection, revocation, userinfo,
registration management, PPID conversion, event signing) parses under RFC 9110's grammar, and
each 401 names a scheme (RFC 9110 §15.5.2)."""

from __future__ import annotations

import httpx
import pytest

from rs_guard.idp import IdP

from . import wwwauth

pytestmark = pytest.mark.anyio


def challenges(resp: httpx.Response) -> list[wwwauth.Challenge]:
    values = resp.headers.get_list("www-authenticate")
    if resp.status_code == 401:
        assert values, f"401 without WWW-Authenticate from {resp.request.url.path}"
    out: list[wwwauth.Challenge] = []
    for value in values:
        out += wwwauth.parse(value)
    assert all(c.scheme.lower() in ("basic", "bearer") for c in out)
    return out


async def test_client_authentication_endpoints(idp_http: httpx.AsyncClient) -> None:
    for path in ("/token", "/introspect", "/revoke", "/ppid/convert", "/events"):
        for auth in (None, ("service", "wrong"), ("ghost", "x")):
            data = {"grant_type": "client_credentials", "token": "x"}
            resp = await idp_http.post(path, data=data, auth=auth)
            assert resp.status_code == 401, (path, auth, resp.status_code)
            schemes = {c.scheme.lower() for c in challenges(resp)}
            assert "basic" in schemes, (path, resp.headers)
        post = await idp_http.post(
            "/token",
            data={"grant_type": "client_credentials", "client_id": "poster", "client_secret": "x"},
        )
        assert post.status_code == 401 and challenges(post)


async def test_bearer_protected_endpoints(idp: IdP, idp_http: httpx.AsyncClient) -> None:
    no_openid = idp.issue_access_token("alice", client_id="web-app", scope="items:read")
    cases = [
        await idp_http.get("/userinfo"),
        await idp_http.get("/userinfo", headers={"Authorization": "Bearer nope"}),
        await idp_http.get("/userinfo", headers={"Authorization": f"Bearer {no_openid}"}),
        await idp_http.get("/register/web-app", headers={"Authorization": "Bearer nope"}),
        await idp_http.get("/register/web-app"),
        await idp_http.post("/ppid/convert", json={}, headers={"Authorization": "Bearer nope"}),
    ]
    assert [r.status_code for r in cases] == [401, 401, 403, 401, 401, 401]
    for resp in cases:
        (bearer,) = [c for c in challenges(resp) if c.scheme == "Bearer"]
        if resp.status_code == 403:
            assert bearer.params["error"] == "insufficient_scope"
        elif resp.request.headers.get("authorization"):
            assert bearer.params["error"] == "invalid_token"
        else:
            assert "error" not in bearer.params  # RFC 6750 §3.1: no credentials, no error


async def test_userinfo_subject_matches_the_id_token(idp: IdP, idp_http: httpx.AsyncClient) -> None:
    """OIDC Core §5.3.2: the UserInfo `sub` is the ID token's `sub`."""
    import jwt

    from .test_rfc9470 import _authorize

    idp.login_as("alice")
    # A plain OIDC login (no resource indicator): its access token is for the IdP's userinfo;
    # one asked for RESOURCE only is refused there (tests/idp/test_introspection_userinfo_14.py).
    tokens = await _authorize(idp_http, {"scope": "openid email", "resource": ""})
    resp = await idp_http.get(
        "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"].split(";")[0] == "application/json"
    id_claims = jwt.decode(str(tokens["id_token"]), options={"verify_signature": False})
    assert resp.json()["sub"] == id_claims["sub"]
    assert resp.json()["email"] == "alice@example.com"
