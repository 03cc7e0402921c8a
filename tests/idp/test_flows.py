"""Issue #3: users, login scripting, /authorize, code + PKCE, refresh, token exchange,
claims request, userinfo."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jwt
import pytest

from rs_guard.idp import IdP

from .conftest import API, ISSUER, REDIRECT, Clock, authorize, code_flow, pkce, query

pytestmark = pytest.mark.anyio
TE = "urn:ietf:params:oauth:grant-type:token-exchange"
AT = "urn:ietf:params:oauth:token-type:access_token"


def claims_of(idp: IdP, token: str) -> dict[str, Any]:
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(k for k in idp.jwks()["keys"] if k["kid"] == kid)
    return jwt.decode(
        token,
        jwt.PyJWK(jwk).key,
        algorithms=[jwk["alg"]],
        options={"verify_aud": False, "verify_exp": False},
    )


async def test_code_flow_with_pkce(idp: IdP, http: httpx.AsyncClient, clock: Clock) -> None:
    idp.login_as("alice", acr="mf")
    body = await code_flow(http, nonce="n-123", state="s-1", resource=API)
    at = claims_of(idp, body["access_token"])
    assert at["aud"] == API and at["sub"] == "alice" and at["acr"] == "mf"
    assert at["amr"] == ["pwd", "otp", "mfa"] and at["auth_time"] == int(clock.now)
    idt = claims_of(idp, body["id_token"])
    assert idt["aud"] == "web-app" and idt["nonce"] == "n-123" and idt["acr"] == "mf"
    assert idt["at_hash"] and body["refresh_token"]


async def test_authorization_response_carries_iss_and_state(
    http: httpx.AsyncClient, idp: IdP
) -> None:
    idp.login_as("alice")
    _, challenge = pkce()
    resp, q = await authorize(
        http, scope="openid", state="xyz", code_challenge=challenge, code_challenge_method="S256"
    )
    assert (
        q["iss"] == ISSUER and q["state"] == "xyz" and resp.headers["location"].startswith(REDIRECT)
    )
    resp, q = await authorize(http, scope="openid", state="xyz", code_challenge=challenge)
    assert q["error"] == "invalid_request" and q["iss"] == ISSUER and q["state"] == "xyz"


async def test_pkce_errors(idp: IdP, http: httpx.AsyncClient) -> None:
    idp.login_as("alice")
    verifier, challenge = pkce()
    _, q = await authorize(
        http, scope="openid", code_challenge=verifier[:43], code_challenge_method="plain"
    )
    assert q["error"] == "invalid_request"
    # Public client without PKCE.
    resp, q = await authorize(http, client_id="spa", redirect_uri="https://spa.example/cb")
    assert q["error"] == "invalid_request" and "PKCE" in q["error_description"]
    _, q = await authorize(
        http, scope="openid", code_challenge=challenge, code_challenge_method="S256"
    )
    wrong = await http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": q["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": pkce()[0],
        },
        auth=("web-app", "web-secret"),
    )
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    _, q = await authorize(
        http, scope="openid", code_challenge=challenge, code_challenge_method="S256"
    )
    missing = await http.post(
        "/token",
        data={"grant_type": "authorization_code", "code": q["code"], "redirect_uri": REDIRECT},
        auth=("web-app", "web-secret"),
    )
    assert missing.json()["error"] == "invalid_grant"


async def test_code_reuse_revokes_tokens(idp: IdP, http: httpx.AsyncClient) -> None:
    idp.login_as("alice")
    verifier, challenge = pkce()
    _, q = await authorize(
        http, scope="openid", code_challenge=challenge, code_challenge_method="S256"
    )
    data = {
        "grant_type": "authorization_code",
        "code": q["code"],
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    first = await http.post("/token", data=data, auth=("web-app", "web-secret"))
    assert first.status_code == 200
    token = first.json()["access_token"]
    assert idp.introspect(token)["active"] is True
    again = await http.post("/token", data=data, auth=("web-app", "web-secret"))
    assert again.json()["error"] == "invalid_grant"
    assert idp.introspect(token) == {"active": False}
    assert idp.introspect(first.json()["refresh_token"]) == {"active": False}


async def test_code_expiry_redirect_and_client_binding(
    idp: IdP, http: httpx.AsyncClient, clock: Clock
) -> None:
    idp.login_as("alice")
    verifier, challenge = pkce()

    async def new_code() -> str:
        _, q = await authorize(
            http, scope="openid", code_challenge=challenge, code_challenge_method="S256"
        )
        return q["code"]

    code = await new_code()
    clock.now += 61
    expired = await http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        auth=("web-app", "web-secret"),
    )
    assert expired.json()["error"] == "invalid_grant"
    mismatch = await http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": await new_code(),
            "redirect_uri": "https://app.example/other",
            "code_verifier": verifier,
        },
        auth=("web-app", "web-secret"),
    )
    assert mismatch.json()["error"] == "invalid_grant"
    idp.register_client("other", "other-secret", redirect_uris=[REDIRECT])
    stolen = await http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": await new_code(),
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        auth=("other", "other-secret"),
    )
    assert stolen.json()["error"] == "invalid_grant"


async def test_bad_client_or_redirect_uri_shows_page(idp: IdP, http: httpx.AsyncClient) -> None:
    resp, _ = await authorize(http, redirect_uri="https://evil.example/cb")
    assert resp.status_code == 400 and "location" not in resp.headers
    assert "text/html" in resp.headers["content-type"]
    resp, _ = await authorize(http, client_id="nobody")
    assert resp.status_code == 400 and "location" not in resp.headers
    resp = await http.get("/authorize", params={"response_type": "code"})
    assert resp.status_code == 400
    resp = await http.get("/authorize?client_id=web-app&client_id=spa")
    assert resp.status_code == 400


async def test_redirectable_errors(idp: IdP, http: httpx.AsyncClient) -> None:
    idp.login_as("alice")
    _, challenge = pkce()
    common = {"code_challenge": challenge, "code_challenge_method": "S256"}
    _, q = await authorize(http, response_type="token", **common)
    assert q["error"] == "unsupported_response_type"
    _, q = await authorize(http, scope="admin", **common)
    assert q["error"] == "invalid_scope"
    _, q = await authorize(http, scope="openid", resource="ftp://x", **common)
    assert q["error"] == "invalid_target"
    _, q = await authorize(http, scope="openid", claims="{not json", **common)
    assert q["error"] == "invalid_request"
    _, q = await authorize(http, scope="openid", claims='{"id_token": 3}', **common)
    assert q["error"] == "invalid_request"
    _, q = await authorize(http, scope="openid", max_age="-1", **common)
    assert q["error"] == "invalid_request"
    _, q = await authorize(http, scope="openid", prompt="none login", **common)
    assert q["error"] == "invalid_request"
    _, q = await authorize(http, scope="openid", request="eyJ.x.y", **common)
    assert q["error"] == "request_not_supported"


async def test_native_loopback_port_flexibility(idp: IdP, http: httpx.AsyncClient) -> None:
    idp.register_client(
        "cli",
        redirect_uris=["http://127.0.0.1/callback", "http://[::1]/cb"],
        token_endpoint_auth_method="none",
        application_type="native",
    )
    idp.login_as("alice")
    _, challenge = pkce()
    for uri in ("http://127.0.0.1:53121/callback", "http://[::1]:6000/cb"):
        resp, q = await authorize(
            http,
            client_id="cli",
            redirect_uri=uri,
            scope="openid",
            code_challenge=challenge,
            code_challenge_method="S256",
        )
        assert resp.headers["location"].startswith(uri) and "code" in q
    resp, _ = await authorize(
        http,
        client_id="cli",
        redirect_uri="http://127.0.0.1:5/other",
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    assert resp.status_code == 400
    resp, _ = await authorize(
        http,
        client_id="cli",
        redirect_uri="http://localhost:5/callback",
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    assert resp.status_code == 400


async def test_max_age_and_prompt(idp: IdP, http: httpx.AsyncClient, clock: Clock) -> None:
    first_login = int(clock.now)
    idp.login_as("alice", acr="pwd")
    clock.now += 100
    body = await code_flow(http)
    assert claims_of(idp, body["id_token"])["auth_time"] == first_login
    body = await code_flow(http, max_age="10")
    assert claims_of(idp, body["id_token"])["auth_time"] == int(clock.now)
    clock.now += 5
    body = await code_flow(http, prompt="login")
    assert claims_of(idp, body["id_token"])["auth_time"] == int(clock.now)
    idp.logout()
    _, challenge = pkce()
    _, q = await authorize(
        http, scope="openid", prompt="none", code_challenge=challenge, code_challenge_method="S256"
    )
    assert q["error"] == "login_required" and q["iss"] == ISSUER
    idp.login_as("alice", consent=False)
    _, q = await authorize(
        http, scope="openid", code_challenge=challenge, code_challenge_method="S256"
    )
    assert q["error"] == "access_denied"
    _, q = await authorize(
        http, scope="openid", prompt="none", code_challenge=challenge, code_challenge_method="S256"
    )
    assert q["error"] == "consent_required"


async def test_acr_values_and_essential_acr(idp: IdP, http: httpx.AsyncClient) -> None:
    idp.login_as("alice", acr="pwd")
    body = await code_flow(http, acr_values="mf")  # voluntary: the user's level is reported
    assert claims_of(idp, body["access_token"])["acr"] == "pwd"
    _, challenge = pkce()
    claims = json.dumps({"id_token": {"acr": {"essential": True, "values": ["mf"]}}})
    _, q = await authorize(
        http, scope="openid", claims=claims, code_challenge=challenge, code_challenge_method="S256"
    )
    assert q["error"] == "unmet_authentication_requirements"
    idp.login_as("alice", acr="mf")
    body = await code_flow(http, claims=claims)
    assert claims_of(idp, body["id_token"])["acr"] == "mf"


async def test_claims_request_and_userinfo(idp: IdP, http: httpx.AsyncClient) -> None:
    idp.login_as("alice")
    claims = json.dumps(
        {
            "id_token": {"email": {"essential": True}, "given_name": None},
            "userinfo": {"phone_number": None, "auth_time": None},
        }
    )
    body = await code_flow(http, scope="openid", claims=claims)
    idt = claims_of(idp, body["id_token"])
    assert idt["email"] == "alice@example.com" and idt["given_name"] == "Alice"
    at = claims_of(idp, body["access_token"])
    assert at["email"] == "alice@example.com"
    info = await http.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200
    assert info.json() == {
        "sub": "alice",
        "phone_number": "+15555550100",
        "auth_time": idt["auth_time"],
    }
    body = await code_flow(http, scope="openid email")
    info = await http.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.json() == {"sub": "alice", "email": "alice@example.com", "email_verified": True}
    bad = await http.get("/userinfo", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and "invalid_token" in bad.headers["www-authenticate"]
    assert (await http.get("/userinfo")).status_code == 401
    cc = idp.issue_access_token("alice", client_id="web-app", scope="items:read")
    no_openid = await http.get("/userinfo", headers={"Authorization": f"Bearer {cc}"})
    assert no_openid.status_code == 403


async def test_phone_verification_scripting(idp: IdP, http: httpx.AsyncClient) -> None:
    idp.login_as("alice")
    _, challenge = pkce()
    claims = json.dumps({"userinfo": {"phone_number_verified": {"value": True}}})
    _, q = await authorize(
        http,
        scope="openid phone",
        claims=claims,
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    assert q["error"] == "access_denied"
    idp.script_phone_verification("alice", succeeds=True)
    body = await code_flow(http, scope="openid phone", claims=claims)
    info = await http.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.json()["phone_number_verified"] is True


async def test_login_form_when_not_scripted(idp: IdP, http: httpx.AsyncClient) -> None:
    _, challenge = pkce()
    resp, _ = await authorize(
        http,
        scope="openid items:read",
        state="st",
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    assert resp.status_code == 200 and "<form" in resp.text and "web-app" in resp.text
    assert "items:read" in resp.text and 'lang="en"' in resp.text and "<label" in resp.text
    assert "http://" not in resp.text and "https://" not in resp.text  # no external assets
    form_id = resp.text.split('name="form_id" value="')[1].split('"')[0]
    done = await http.post(
        "/authorize",
        data={"form_id": form_id, "login_user": "carol", "login_acr": "phr", "decision": "approve"},
    )
    assert done.status_code == 303
    q = query(done.headers["location"])
    assert q["state"] == "st" and q["iss"] == ISSUER and "code" in q
    assert idp.session is not None and idp.session.acr == "phr"
    replay = await http.post(
        "/authorize", data={"form_id": form_id, "login_user": "carol", "decision": "approve"}
    )
    assert replay.status_code == 400
    resp, _ = await authorize(
        http,
        scope="openid",
        code_challenge=challenge,
        code_challenge_method="S256",
        prompt="consent",
    )
    form_id = resp.text.split('name="form_id" value="')[1].split('"')[0]
    deny = await http.post(
        "/authorize", data={"form_id": form_id, "login_user": "carol", "decision": "deny"}
    )
    assert query(deny.headers["location"])["error"] == "access_denied"


async def test_refresh_rotation_and_reuse(idp: IdP, http: httpx.AsyncClient) -> None:
    idp.login_as("alice")
    body = await code_flow(http, scope="openid items:read items:write", resource=API)
    auth = ("web-app", "web-secret")
    r1 = await http.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "scope": "items:read",
        },
        auth=auth,
    )
    assert r1.status_code == 200, r1.text
    assert r1.json()["scope"] == "items:read"
    assert claims_of(idp, r1.json()["access_token"])["aud"] == API
    assert r1.json()["refresh_token"] != body["refresh_token"]
    wider = await http.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": r1.json()["refresh_token"],
            "scope": "admin",
        },
        auth=auth,
    )
    assert wider.json()["error"] == "invalid_scope"
    reuse = await http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        auth=auth,
    )
    assert reuse.json()["error"] == "invalid_grant"
    # The whole family is gone.
    after = await http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": r1.json()["refresh_token"]},
        auth=auth,
    )
    assert after.json()["error"] == "invalid_grant"
    assert idp.introspect(r1.json()["access_token"]) == {"active": False}


async def test_token_exchange(idp: IdP, http: httpx.AsyncClient, clock: Clock) -> None:
    subject = idp.issue_access_token(
        "alice", client_id="web-app", audience=API, scope="items:read items:write", acr="mf"
    )
    actor = idp.issue_access_token(None, client_id="service", scope="")
    auth = ("service", "service-secret")
    resp = await http.post(
        "/token",
        data={
            "grant_type": TE,
            "subject_token": subject,
            "subject_token_type": AT,
            "actor_token": actor,
            "actor_token_type": AT,
            "audience": "https://down.example",
            "scope": "items:read",
        },
        auth=auth,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["issued_token_type"] == AT and body["scope"] == "items:read"
    new = claims_of(idp, body["access_token"])
    assert new["aud"] == "https://down.example" and new["sub"] == "alice"
    assert new["act"]["sub"] == "service" and new["client_id"] == "service" and new["acr"] == "mf"
    wider = await http.post(
        "/token",
        data={
            "grant_type": TE,
            "subject_token": subject,
            "subject_token_type": AT,
            "scope": "admin",
        },
        auth=auth,
    )
    assert wider.json()["error"] == "invalid_scope"
    forged = IdP(ISSUER).issue_access_token("alice", client_id="web-app")
    bad = await http.post(
        "/token",
        data={"grant_type": TE, "subject_token": forged, "subject_token_type": AT},
        auth=auth,
    )
    # RFC 8693 §2.2.2: a refused subject token is invalid_request.
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"
    restricted = idp.issue_access_token(
        "alice",
        client_id="web-app",
        scope="items:read",
        claims={"may_act": {"sub": "someone-else"}},
    )
    denied = await http.post(
        "/token",
        data={"grant_type": TE, "subject_token": restricted, "subject_token_type": AT},
        auth=auth,
    )
    assert denied.json()["error"] == "invalid_request"
    allowed = idp.issue_access_token(
        "alice",
        client_id="web-app",
        scope="items:read",
        claims={"may_act": {"client_id": "service"}},
    )
    ok = await http.post(
        "/token",
        data={
            "grant_type": TE,
            "subject_token": allowed,
            "subject_token_type": AT,
            "resource": API,
        },
        auth=auth,
    )
    assert ok.status_code == 200 and claims_of(idp, ok.json()["access_token"])["aud"] == API
    missing = await http.post(
        "/token", data={"grant_type": TE, "subject_token": subject}, auth=auth
    )
    assert missing.json()["error"] == "invalid_request"
    clock.now += 400
    expired = await http.post(
        "/token",
        data={"grant_type": TE, "subject_token": subject, "subject_token_type": AT},
        auth=auth,
    )
    assert expired.json()["error"] == "invalid_request"


async def test_id_token_uses_client_alg(idp: IdP, http: httpx.AsyncClient) -> None:
    idp.register_client(
        "ed", "ed-secret", redirect_uris=[REDIRECT], id_token_signed_response_alg="EdDSA"
    )
    idp.login_as("alice")
    verifier, challenge = pkce()
    _, q = await authorize(
        http, client_id="ed", scope="openid", code_challenge=challenge, code_challenge_method="S256"
    )
    tok = await http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": q["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        auth=("ed", "ed-secret"),
    )
    assert jwt.get_unverified_header(tok.json()["id_token"])["alg"] == "EdDSA"
    assert claims_of(idp, tok.json()["id_token"])["aud"] == "ed"
