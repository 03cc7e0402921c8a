"""oauthlib + requests-oauthlib, a widely used independent client, against the bundled IdP
served by uvicorn on loopback: client credentials (Basic and post), code + PKCE, refresh, and
the RFC 6749 §5.2 error answers as oauthlib reads them."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
from oauthlib.oauth2 import (
    BackendApplicationClient,
    InvalidClientError,
    InvalidGrantError,
    InvalidScopeError,
    OAuth2Error,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)
from oauthlib.oauth2.rfc6749.parameters import parse_token_response
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from rs_guard.idp import IdP

from .conftest import REDIRECT

pytestmark = pytest.mark.usefixtures("insecure_transport")


def token_url(idp: IdP) -> str:
    return idp.endpoint("token")


def check_token_response(token: dict[str, Any], scope: list[str]) -> None:
    """What oauthlib hands the application: RFC 6749 §5.1 members, typed."""
    assert token["token_type"] == "Bearer"
    assert isinstance(token["expires_in"], int) and token["expires_in"] > 0
    assert isinstance(token["expires_at"], int | float)  # oauthlib derived it from expires_in
    assert token["scope"] == scope  # oauthlib splits the space-delimited string
    assert jwt.get_unverified_header(token["access_token"])["typ"] == "at+jwt"


def test_client_credentials_with_basic(live_idp: IdP) -> None:
    session = OAuth2Session(client=BackendApplicationClient(client_id="service"))
    token = session.fetch_token(
        token_url(live_idp),
        auth=HTTPBasicAuth("service", "service-secret"),
        scope=["items:read"],
    )
    check_token_response(token, ["items:read"])
    assert live_idp.introspect(token["access_token"])["client_id"] == "service"


def test_client_credentials_with_post(live_idp: IdP) -> None:
    session = OAuth2Session(client=BackendApplicationClient(client_id="poster"))
    token = session.fetch_token(
        token_url(live_idp),
        client_id="poster",
        client_secret="poster-secret",
        include_client_id=True,
    )
    check_token_response(token, ["items:read"])


def test_wrong_secret_is_invalid_client_for_both_methods(live_idp: IdP) -> None:
    basic = OAuth2Session(client=BackendApplicationClient(client_id="service"))
    with pytest.raises(InvalidClientError) as info:
        basic.fetch_token(token_url(live_idp), auth=HTTPBasicAuth("service", "nope"))
    assert info.value.error == "invalid_client"
    post = OAuth2Session(client=BackendApplicationClient(client_id="poster"))
    with pytest.raises(InvalidClientError):
        post.fetch_token(
            token_url(live_idp), client_id="poster", client_secret="x", include_client_id=True
        )


def _authorize(live_idp: IdP, session: OAuth2Session, **extra: str) -> str:
    """The user agent's part: follow the authorization URL to the redirect (scripted login)."""
    live_idp.login_as("alice", acr="mf")
    url, _state = session.authorization_url(live_idp.endpoint("authorize"), **extra)
    resp = requests.get(url, allow_redirects=False, timeout=10)
    assert resp.status_code == 302, resp.text
    location: str = resp.headers["location"]
    assert location.startswith(session.redirect_uri + "?")
    # RFC 9207: the response names its issuer.
    assert parse_qs(urlsplit(location).query)["iss"] == [live_idp.issuer]
    return location


def test_code_pkce_then_refresh(live_idp: IdP) -> None:
    nonce = secrets.token_urlsafe(16)
    session = OAuth2Session(
        "web-app", redirect_uri=REDIRECT, scope=["openid", "items:read"], pkce="S256"
    )
    location = _authorize(live_idp, session, nonce=nonce)
    token = session.fetch_token(
        token_url(live_idp), authorization_response=location, client_secret="web-secret"
    )
    check_token_response(token, ["openid", "items:read"])
    jwks = jwt.PyJWKClient(live_idp.endpoint("jwks"))
    id_claims = jwt.decode(
        token["id_token"],
        jwks.get_signing_key_from_jwt(token["id_token"]).key,
        algorithms=["ES256"],
        audience="web-app",
        issuer=live_idp.issuer,
    )
    assert id_claims["nonce"] == nonce and id_claims["acr"] == "mf"
    assert id_claims["sub"] == "alice"

    refreshed = session.refresh_token(
        token_url(live_idp), auth=HTTPBasicAuth("web-app", "web-secret")
    )
    check_token_response(refreshed, ["openid", "items:read"])
    assert refreshed["access_token"] != token["access_token"]
    assert refreshed["refresh_token"] != token["refresh_token"]  # rotated
    # The rotated-out refresh token is dead, and using it again is treated as theft.
    with pytest.raises(InvalidGrantError):
        session.refresh_token(
            token_url(live_idp),
            refresh_token=token["refresh_token"],
            auth=HTTPBasicAuth("web-app", "web-secret"),
        )
    assert live_idp.introspect(refreshed["access_token"]) == {"active": False}


def test_public_client_code_pkce(live_idp: IdP) -> None:
    session = OAuth2Session(
        "spa", redirect_uri="https://spa.example/cb", scope=["items:read"], pkce="S256"
    )
    location = _authorize(live_idp, session)
    token = session.fetch_token(
        token_url(live_idp), authorization_response=location, include_client_id=True
    )
    check_token_response(token, ["items:read"])
    refreshed = session.refresh_token(token_url(live_idp), client_id="spa", include_client_id=True)
    check_token_response(refreshed, ["items:read"])


def test_wrong_code_verifier_is_invalid_grant(live_idp: IdP) -> None:
    """RFC 7636 §4.6: a code without the matching verifier is invalid_grant (and spent)."""
    session = OAuth2Session("web-app", redirect_uri=REDIRECT, scope=["items:read"], pkce="S256")
    location = _authorize(live_idp, session)
    verifier = session._code_verifier
    session._code_verifier = "x" * 43  # what an attacker holding only the code would send
    with pytest.raises(InvalidGrantError) as info:
        session.fetch_token(
            token_url(live_idp), authorization_response=location, client_secret="web-secret"
        )
    assert "code_verifier" in (info.value.description or "")
    session._code_verifier = verifier
    with pytest.raises(InvalidGrantError):
        session.fetch_token(
            token_url(live_idp), authorization_response=location, client_secret="web-secret"
        )


# -- RFC 6749 §5.2: every error as oauthlib parses it ---------------------------------------


def _post(live_idp: IdP, data: dict[str, str], auth: Any = None) -> requests.Response:
    return requests.post(token_url(live_idp), data=data, auth=auth, timeout=10)


@pytest.mark.parametrize(
    ("data", "auth", "error", "status"),
    [
        ({"grant_type": "client_credentials"}, ("service", "bad"), "invalid_client", 401),
        ({"grant_type": "client_credentials"}, None, "invalid_client", 401),
        (
            {"grant_type": "client_credentials", "client_id": "ghost", "client_secret": "x"},
            None,
            "invalid_client",
            401,
        ),
        ({"scope": "items:read"}, ("service", "service-secret"), "invalid_request", 400),
        ({"grant_type": "password"}, ("service", "service-secret"), "unsupported_grant_type", 400),
        (
            {"grant_type": "client_credentials", "scope": "admin"},
            ("service", "service-secret"),
            "invalid_scope",
            400,
        ),
        (
            {"grant_type": "authorization_code", "code": "forged", "redirect_uri": REDIRECT},
            ("web-app", "web-secret"),
            "invalid_grant",
            400,
        ),
        (
            {"grant_type": "refresh_token", "refresh_token": "forged"},
            ("service", "service-secret"),
            "invalid_grant",
            400,
        ),
        ({"grant_type": "client_credentials", "client_id": "spa"}, None, "invalid_client", 401),
    ],
)
def test_error_responses(
    live_idp: IdP, data: dict[str, str], auth: Any, error: str, status: int
) -> None:
    resp = _post(live_idp, data, auth)
    assert resp.status_code == status
    assert resp.headers["content-type"].split(";")[0] == "application/json"
    assert resp.headers["cache-control"] == "no-store"
    body = resp.json()
    assert body["error"] == error
    assert set(body) <= {"error", "error_description", "error_uri"}
    if status == 401:
        # RFC 6749 §5.2 with RFC 9110 §15.5.2: a 401 names the scheme to authenticate with.
        scheme = resp.headers["www-authenticate"].split(" ", 1)[0]
        assert scheme.lower() == "basic"
    with pytest.raises(OAuth2Error) as info:
        parse_token_response(resp.text)
    assert info.value.error == error
    expected = {
        "invalid_client": InvalidClientError,
        "unsupported_grant_type": UnsupportedGrantTypeError,
        "invalid_scope": InvalidScopeError,
        "invalid_grant": InvalidGrantError,
    }.get(error)
    if expected is not None:
        assert isinstance(info.value, expected)


def test_unauthorized_client(live_idp: IdP) -> None:
    live_idp.register_client(
        "cc-only", "cc-secret", grant_types=["client_credentials"], scope="items:read"
    )
    resp = _post(
        live_idp,
        {"grant_type": "refresh_token", "refresh_token": "x"},
        ("cc-only", "cc-secret"),
    )
    with pytest.raises(UnauthorizedClientError):
        parse_token_response(resp.text)


def test_error_description_charset(live_idp: IdP) -> None:
    """§5.2: error_description uses %x20-21 / %x23-5B / %x5D-7E only, whatever was sent."""
    allowed = {chr(c) for c in (0x20, 0x21, *range(0x23, 0x5C), *range(0x5D, 0x7F))}
    for grant in ('ev"il\\grant', "gr\u00e4nt\u2028", "x\r\ny"):
        resp = _post(live_idp, {"grant_type": grant}, ("service", "service-secret"))
        assert resp.status_code == 400
        assert set(resp.json()["error_description"]) <= allowed, resp.json()
