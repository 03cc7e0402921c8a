"""The IdP's token and authorization endpoints against RFC 6749 §4.1 / §5, RFC 7636, RFC 8693
(token exchange) and RFC 9207 (`iss` in authorization responses)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from rs_guard.idp import IdP

from .conftest import ISSUER, REDIRECT, RESOURCE

pytestmark = pytest.mark.anyio

TE = "urn:ietf:params:oauth:grant-type:token-exchange"
AT = "urn:ietf:params:oauth:token-type:access_token"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"


def check_success(resp: httpx.Response) -> dict[str, Any]:
    """RFC 6749 §5.1: 200, JSON, no-store + no-cache, token_type, integer expires_in."""
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].split(";")[0] == "application/json"
    assert resp.headers["cache-control"] == "no-store"
    assert resp.headers["pragma"] == "no-cache"
    body: dict[str, Any] = resp.json()
    assert isinstance(body["access_token"], str)
    assert body["token_type"] == "Bearer"
    assert type(body["expires_in"]) is int and body["expires_in"] > 0
    assert isinstance(body["scope"], str)
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == body["expires_in"]
    return body


def query(location: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(location).query)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def test_client_credentials_response(idp_http: httpx.AsyncClient) -> None:
    body = check_success(
        await idp_http.post(
            "/token",
            data={"grant_type": "client_credentials", "scope": "items:read", "resource": RESOURCE},
            auth=("service", "service-secret"),
        )
    )
    assert body["scope"] == "items:read"
    assert "refresh_token" not in body  # §4.4.3: SHOULD NOT be included
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["aud"] == RESOURCE


async def test_code_flow_responses_and_rfc9207_iss(idp: IdP, idp_http: httpx.AsyncClient) -> None:
    idp.login_as("alice")
    verifier, challenge = pkce()
    resp = await idp_http.get(
        "/authorize",
        params={
            "response_type": "code",
            "client_id": "web-app",
            "redirect_uri": REDIRECT,
            "scope": "openid items:read",
            "state": "af0ifjsldkj",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    assert resp.status_code == 302
    assert resp.headers["location"].startswith(REDIRECT + "?")
    q = query(resp.headers["location"])
    assert q["state"] == ["af0ifjsldkj"]  # §4.1.2: exactly as received
    assert q["iss"] == [ISSUER]  # RFC 9207 §2: exactly the issuer, no normalisation
    body = check_success(
        await idp_http.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": q["code"][0],
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
            },
            auth=("web-app", "web-secret"),
        )
    )
    assert body["scope"] == "openid items:read"
    assert {"id_token", "refresh_token"} <= body.keys()
    refreshed = check_success(
        await idp_http.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
            auth=("web-app", "web-secret"),
        )
    )
    # §6: a narrower scope may be asked for on refresh, never a wider one.
    narrower = check_success(
        await idp_http.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": refreshed["refresh_token"],
                "scope": "items:read",
            },
            auth=("web-app", "web-secret"),
        )
    )
    assert narrower["scope"] == "items:read"
    wider = await idp_http.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": narrower["refresh_token"],
            "scope": "items:read items:write",
        },
        auth=("web-app", "web-secret"),
    )
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": "code", "code_challenge_method": "plain"}, "invalid_request"),
        ({"response_type": "code", "scope": "admin"}, "invalid_scope"),
        ({"response_type": "code", "request": "eyJ..."}, "request_not_supported"),
        ({}, "invalid_request"),
    ],
)
async def test_authorization_error_redirects_carry_iss_and_state(
    idp: IdP, idp_http: httpx.AsyncClient, params: dict[str, str], error: str
) -> None:
    """RFC 6749 §4.1.2.1 errors go back to the client with `state`, and RFC 9207 §2 puts
    `iss` into error responses too."""
    idp.login_as("alice")
    _, challenge = pkce()
    base = {
        "client_id": "web-app",
        "redirect_uri": REDIRECT,
        "state": "s-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    resp = await idp_http.get("/authorize", params={**base, **params})
    assert resp.status_code == 302
    q = query(resp.headers["location"])
    assert q["error"] == [error]
    assert q["state"] == ["s-1"] and q["iss"] == [ISSUER]
    assert "code" not in q


async def test_bad_redirect_uri_is_never_redirected_to(
    idp: IdP, idp_http: httpx.AsyncClient
) -> None:
    """§4.1.2.1: an unknown client or a wrong redirect_uri is shown to the user, not sent
    to the (possibly attacker's) URI."""
    for params in (
        {"client_id": "web-app", "redirect_uri": "https://evil.example/cb"},
        {"client_id": "ghost", "redirect_uri": REDIRECT},
    ):
        resp = await idp_http.get("/authorize", params={"response_type": "code", **params})
        assert resp.status_code == 400
        assert "location" not in resp.headers


async def test_public_client_must_use_pkce(idp: IdP, idp_http: httpx.AsyncClient) -> None:
    idp.login_as("alice")
    resp = await idp_http.get(
        "/authorize",
        params={
            "response_type": "code",
            "client_id": "spa",
            "redirect_uri": "https://spa.example/cb",
        },
    )
    assert query(resp.headers["location"])["error"] == ["invalid_request"]


# -- RFC 8693 --------------------------------------------------------------------------------


@pytest.fixture
def subject(idp: IdP) -> str:
    return idp.issue_access_token(
        "alice", client_id="web-app", audience="https://service.example", scope="items:read"
    )


async def exchange(http: httpx.AsyncClient, **form: str) -> httpx.Response:
    return await http.post(
        "/token", data={"grant_type": TE, **form}, auth=("service", "service-secret")
    )


async def test_exchange_response(idp_http: httpx.AsyncClient, subject: str) -> None:
    """§2.2.1: access_token, issued_token_type, token_type (Bearer: it is an access token),
    expires_in, scope."""
    body = check_success(
        await exchange(idp_http, subject_token=subject, subject_token_type=AT, resource=RESOURCE)
    )
    assert body["issued_token_type"] == AT
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["aud"] == RESOURCE and claims["sub"] == "alice"
    assert claims["client_id"] == "service"
    assert "refresh_token" not in body


async def test_exchange_issued_type_matches_the_request(
    idp_http: httpx.AsyncClient, subject: str
) -> None:
    for requested in (AT, JWT_TYPE):
        body = check_success(
            await exchange(
                idp_http,
                subject_token=subject,
                subject_token_type=AT,
                requested_token_type=requested,
                audience="https://down.example",
            )
        )
        assert body["issued_token_type"] == requested
        jwt.get_unverified_header(body["access_token"])  # a JWT either way


async def test_exchange_with_an_actor_token(
    idp: IdP, idp_http: httpx.AsyncClient, subject: str
) -> None:
    """§4.1: delegation records the actor in `act`."""
    actor = idp.issue_access_token(None, client_id="service")
    body = check_success(
        await exchange(
            idp_http,
            subject_token=subject,
            subject_token_type=AT,
            actor_token=actor,
            actor_token_type=AT,
        )
    )
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["act"]["sub"] == "service"


async def test_exchange_errors(idp: IdP, idp_http: httpx.AsyncClient, subject: str) -> None:
    """§2.2.2: an invalid or unacceptable subject/actor token -> invalid_request (a MUST)."""
    foreign = IdP(ISSUER).issue_access_token("alice", client_id="web-app")
    revoked = idp.issue_access_token("alice", client_id="web-app")
    idp.revoke(revoked)
    restricted = idp.issue_access_token(
        "alice", client_id="web-app", claims={"may_act": {"client_id": "someone-else"}}
    )
    cases: list[tuple[dict[str, str], str]] = [
        ({"subject_token": foreign, "subject_token_type": AT}, "invalid_request"),
        ({"subject_token": revoked, "subject_token_type": AT}, "invalid_request"),
        ({"subject_token": restricted, "subject_token_type": AT}, "invalid_request"),
        (
            {
                "subject_token": subject,
                "subject_token_type": AT,
                "actor_token": "forged",
                "actor_token_type": AT,
            },
            "invalid_request",
        ),
        ({"subject_token": subject}, "invalid_request"),
        ({"subject_token": subject, "subject_token_type": "urn:x"}, "invalid_request"),
        ({"subject_token": subject, "subject_token_type": AT, "scope": "admin"}, "invalid_scope"),
    ]
    for form, error in cases:
        resp = await exchange(idp_http, **form)
        assert resp.status_code == 400, form
        assert resp.json()["error"] == error, (form, resp.json())
        assert resp.headers["cache-control"] == "no-store"
