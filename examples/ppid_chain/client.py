"""The end user's web app: signs alice in (code flow + PKCE) and calls service A."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt

CLIENT_ID = "web"
CLIENT_SECRET = "web-secret"
REDIRECT_URI = "https://web.example/callback"


async def sign_in(idp_http: httpx.AsyncClient, resource: str, scope: str) -> dict[str, Any]:
    """Run the authorization code flow with PKCE; returns the token response."""
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    resp = await idp_http.get(
        "/authorize",
        params={
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "scope": f"openid {scope}",
            "resource": resource,
            "state": secrets.token_urlsafe(16),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    if resp.status_code != 302:
        raise RuntimeError(f"authorization failed: {resp.status_code} {resp.text[:200]}")
    code = parse_qs(urlsplit(resp.headers["location"]).query)["code"][0]
    resp = await idp_http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            "resource": resource,
        },
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    resp.raise_for_status()
    body: dict[str, Any] = resp.json()
    return body


def id_token_subject(tokens: dict[str, Any]) -> str:
    """The `sub` of the ID token (the client validated it during sign-in; here we only read)."""
    return str(jwt.decode(tokens["id_token"], options={"verify_signature": False})["sub"])
