"""An independent OAuth client (authlib) completes every grant against the IdP."""

from __future__ import annotations

import httpx2  # authlib 1.9 is built on the httpx2 fork
import jwt
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client

from rs_guard.idp import IdP

from .conftest import API, ISSUER, REDIRECT

pytestmark = pytest.mark.anyio
TE = "urn:ietf:params:oauth:grant-type:token-exchange"
AT = "urn:ietf:params:oauth:token-type:access_token"


def verify_id_token(jwks: dict, token: str, audience: str, nonce: str) -> dict:
    client = jwt.PyJWKSet.from_dict(jwks)
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in client.keys if k.key_id == kid)
    claims = jwt.decode(
        token,
        key.key,
        algorithms=["ES256"],
        audience=audience,
        issuer=ISSUER,
        options={"verify_exp": False},
    )
    assert claims["nonce"] == nonce
    return claims


async def test_authlib_code_pkce_refresh_client_credentials_exchange(idp: IdP) -> None:
    idp.login_as("alice", acr="mf")
    transport = httpx2.ASGITransport(app=idp.app)
    async with AsyncOAuth2Client(
        client_id="web-app",
        client_secret="web-secret",
        redirect_uri=REDIRECT,
        scope="openid items:read",
        code_challenge_method="S256",
        transport=transport,
        base_url=ISSUER,
    ) as oauth:
        verifier = generate_token(48)
        nonce = generate_token(16)
        url, state = oauth.create_authorization_url(
            f"{ISSUER}/authorize", code_verifier=verifier, nonce=nonce, resource=API
        )
        async with idp.http_client() as browser:  # the user agent follows the URL
            resp = await browser.get(url)
            jwks = (await browser.get("/jwks")).json()
        assert resp.status_code == 302
        token = await oauth.fetch_token(
            f"{ISSUER}/token",
            authorization_response=resp.headers["location"],
            code_verifier=verifier,
            state=state,
        )
        claims = verify_id_token(jwks, token["id_token"], "web-app", nonce)
        assert claims["acr"] == "mf"
        refreshed = await oauth.refresh_token(
            f"{ISSUER}/token", refresh_token=token["refresh_token"]
        )
        assert refreshed["access_token"] != token["access_token"]
    async with AsyncOAuth2Client(
        client_id="service",
        client_secret="service-secret",
        transport=httpx2.ASGITransport(app=idp.app),
        base_url=ISSUER,
    ) as svc:
        cc = await svc.fetch_token(
            f"{ISSUER}/token", grant_type="client_credentials", scope="items:read"
        )
        assert cc["token_type"] == "Bearer" and cc["scope"] == "items:read"
        exchanged = await svc.fetch_token(
            f"{ISSUER}/token",
            grant_type=TE,
            subject_token=refreshed["access_token"],
            subject_token_type=AT,
            audience="https://down.example",
        )
        assert exchanged["issued_token_type"] == AT
        assert idp.introspect(exchanged["access_token"])["aud"] == "https://down.example"
