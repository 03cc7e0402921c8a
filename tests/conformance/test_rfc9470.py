"""RFC 9470 (step-up authentication challenge) against ResourceGuard and the bundled IdP."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from rs_guard import Requirement
from rs_guard.challenge import authorization_params
from rs_guard.idp import IdP

from .conftest import REDIRECT, RESOURCE, Clock, bearer, challenge_of

pytestmark = pytest.mark.anyio


async def test_acr_values_challenge_is_the_rfc_example(
    api: Callable[..., httpx.AsyncClient], mint: Callable[..., str]
) -> None:
    """§3, first example, byte for byte."""
    reqs = {"/whoami": Requirement(acr_values=("myACR",))}
    async with api(requirements=reqs, serve_metadata=False) as client:
        resp = await client.get("/whoami", headers=bearer(mint(acr="pwd")))
        ok = await client.get("/whoami", headers=bearer(mint(acr="myACR")))
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == (
        'Bearer error="insufficient_user_authentication", '
        'error_description="A different authentication level is required", '
        'acr_values="myACR"'
    )
    challenge_of(resp)
    assert ok.status_code == 200


async def test_max_age_challenge_is_the_rfc_example(
    api: Callable[..., httpx.AsyncClient], mint: Callable[..., str], clock: Clock
) -> None:
    """§3, second example, byte for byte."""
    reqs = {"/whoami": Requirement(max_age=5)}
    async with api(requirements=reqs, serve_metadata=False) as client:
        stale = await client.get("/whoami", headers=bearer(mint(auth_time=int(clock.now) - 60)))
        fresh = await client.get("/whoami", headers=bearer(mint(auth_time=int(clock.now) - 1)))
        missing = await client.get("/whoami", headers=bearer(mint()))
    assert stale.status_code == 401
    assert stale.headers["www-authenticate"] == (
        'Bearer error="insufficient_user_authentication", '
        'error_description="More recent authentication is required", '
        'max_age="5"'
    )
    assert fresh.status_code == 200
    # No auth_time at all cannot prove a recent authentication.
    assert challenge_of(missing).params["max_age"] == "5"


async def test_both_parameters_and_resource_metadata_combine(
    api: Callable[..., httpx.AsyncClient], mint: Callable[..., str], clock: Clock
) -> None:
    reqs = {"/whoami": Requirement(acr_values=("phr", "mf"), max_age=300)}
    async with api(requirements=reqs) as client:
        resp = await client.get(
            "/whoami", headers=bearer(mint(acr="pwd", auth_time=int(clock.now) - 3600))
        )
    ch = challenge_of(resp)
    assert ch.params["error"] == "insufficient_user_authentication"
    assert ch.params["acr_values"] == "phr mf"  # order of preference kept
    assert ch.params["max_age"] == "300"
    assert ch.params["resource_metadata"] == (
        "https://api.example/.well-known/oauth-protected-resource/items"
    )


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def _authorize(idp_http: httpx.AsyncClient, extra: dict[str, str]) -> dict[str, object]:
    verifier, challenge = _pkce()
    params = {
        "response_type": "code",
        "client_id": "web-app",
        "redirect_uri": REDIRECT,
        "scope": "items:read",
        "resource": RESOURCE,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    params = {k: v for k, v in params.items() if v}  # extra={"resource": ""}: none named
    resp = await idp_http.get("/authorize", params=params)
    assert resp.status_code == 302, resp.text
    code = parse_qs(urlsplit(resp.headers["location"]).query)["code"][0]
    tok = await idp_http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        auth=("web-app", "web-secret"),
    )
    assert tok.status_code == 200, tok.text
    body: dict[str, object] = tok.json()
    return body


async def test_the_step_up_dance_end_to_end(
    api: Callable[..., httpx.AsyncClient], idp: IdP, idp_http: httpx.AsyncClient, clock: Clock
) -> None:
    """§4-§5: challenge -> authorization request with acr_values / max_age -> a token whose
    `acr` and `auth_time` satisfy the resource."""
    meta = (await idp_http.get("/.well-known/oauth-authorization-server")).json()
    assert "mf" in meta["acr_values_supported"]  # §6: AS metadata advertises acr values
    idp.login_as("alice", acr="pwd")
    first = await _authorize(idp_http, {})
    reqs = {"/whoami": Requirement(acr_values=("mf",), max_age=120)}
    async with api(requirements=reqs) as client:
        clock.now += 200  # the password login is now too old as well (token still valid)
        resp = await client.get("/whoami", headers=bearer(str(first["access_token"])))
        assert resp.status_code == 401
        extra = authorization_params(resp.headers["www-authenticate"])
        assert extra == {"acr_values": "mf", "max_age": "120"}
        idp.login_as("alice", acr="mf")
        stepped = await _authorize(idp_http, extra)
        ok = await client.get("/whoami", headers=bearer(str(stepped["access_token"])))
    assert ok.status_code == 200
    claims = idp.introspect(str(stepped["access_token"]))
    assert claims["acr"] == "mf"
    assert isinstance(claims["auth_time"], int)
    assert clock.now - claims["auth_time"] <= 120
