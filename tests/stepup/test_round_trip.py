"""The step-up loop with the bundled IdP: challenge -> re-authorization -> the new token passes.

The client is a plain OAuth client (code + PKCE + `resource`, RFC 9207 `iss` checked) that reads
the challenge with `rs_guard.challenge.authorization_params`; the user is scripted at the IdP.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from rs_guard.challenge import parse_bearer_challenge
from rs_guard.idp import IdP

from .conftest import RESOURCE, Clock, OAuthClient, bearer

pytestmark = pytest.mark.anyio


def claims_of(token: str) -> dict[str, Any]:
    import jwt

    return dict(jwt.decode(token, options={"verify_signature": False}))


async def test_acr_step_up_round_trip(
    api: httpx.AsyncClient, idp: IdP, idp_http: httpx.AsyncClient
) -> None:
    idp.login_as("alice", acr="pwd")
    client = OAuthClient(idp_http, scope="payments")
    first = await client.authorize()
    assert claims_of(first["access_token"])["acr"] == "pwd"

    r = await api.get("/mf", headers=bearer(first["access_token"]))
    assert r.status_code == 401
    challenge = r.headers["www-authenticate"]
    assert parse_bearer_challenge(challenge)["acr_values"] == "mf phr"

    # The user completes the second factor when the IdP asks for it.
    idp.login_as("alice", acr="mf")
    second = await client.authorize(challenge)
    assert client.sent[-1]["acr_values"] == "mf phr"
    assert client.sent[-1]["scope"] == "payments"
    claims = claims_of(second["access_token"])
    assert claims["acr"] == "mf"
    assert claims["aud"] == RESOURCE

    r = await api.get("/mf", headers=bearer(second["access_token"]))
    assert r.status_code == 200
    assert r.json()["acr"] == "mf"


async def test_max_age_round_trip_reauthenticates_the_user(
    api: httpx.AsyncClient, idp: IdP, idp_http: httpx.AsyncClient, clock: Clock
) -> None:
    # Signed in 340 s ago: past max_age (300) plus the clock leeway max_age shares with exp
    # (30 s, #13), with a token just issued from that session.
    idp.login_as("alice", acr="pwd", auth_time=int(clock.now) - 340)
    client = OAuthClient(idp_http, scope="")
    first = await client.authorize()
    r = await api.get("/fresh", headers=bearer(first["access_token"]))
    assert r.status_code == 401
    assert parse_bearer_challenge(r.headers["www-authenticate"])["max_age"] == "300"

    # No new scripting: max_age alone makes the IdP authenticate the user again.
    second = await client.authorize(r.headers["www-authenticate"])
    assert client.sent[-1]["max_age"] == "300"
    assert claims_of(second["access_token"])["auth_time"] == int(clock.now)
    r = await api.get("/fresh", headers=bearer(second["access_token"]))
    assert r.status_code == 200


async def test_claims_round_trip_verifies_the_phone_in_the_same_request(
    api: httpx.AsyncClient, idp: IdP, idp_http: httpx.AsyncClient
) -> None:
    idp.login_as("alice", acr="pwd")
    idp.script_phone_verification("alice", succeeds=True)
    client = OAuthClient(idp_http, scope="openid")
    first = await client.authorize()
    assert "phone_number_verified" not in claims_of(first["access_token"])

    r = await api.get("/phone", headers=bearer(first["access_token"]))
    assert r.status_code == 401
    second = await client.authorize(r.headers["www-authenticate"])
    # The challenge became the OIDC claims request parameter of the authorization request.
    assert json.loads(client.sent[-1]["claims"]) == {
        "id_token": {"phone_number_verified": {"value": True}}
    }
    assert claims_of(second["access_token"])["phone_number_verified"] is True
    assert idp.users["alice"].claims["phone_number_verified"] is True
    r = await api.get("/phone", headers=bearer(second["access_token"]))
    assert r.status_code == 200


async def test_insufficient_scope_round_trip(
    api: httpx.AsyncClient, idp: IdP, idp_http: httpx.AsyncClient
) -> None:
    idp.login_as("alice")
    client = OAuthClient(idp_http, scope="files:read")
    first = await client.authorize()
    r = await api.get("/files", headers=bearer(first["access_token"]))
    assert r.status_code == 403
    second = await client.authorize(r.headers["www-authenticate"])
    assert client.sent[-1]["scope"] == "files:read files:write user:profile"
    r = await api.get("/files", headers=bearer(second["access_token"]))
    assert r.status_code == 200


async def test_handler_step_up_round_trip(
    api: httpx.AsyncClient, idp: IdP, idp_http: httpx.AsyncClient
) -> None:
    idp.login_as("alice", acr="pwd")
    client = OAuthClient(idp_http, scope="payments")
    first = await client.authorize()
    r = await api.post("/pay", json={"amount": 2500}, headers=bearer(first["access_token"]))
    assert r.status_code == 401
    idp.login_as("alice", acr="mf")
    second = await client.authorize(r.headers["www-authenticate"])
    assert client.sent[-1]["acr_values"] == "mf"
    r = await api.post("/pay", json={"amount": 2500}, headers=bearer(second["access_token"]))
    assert r.status_code == 200
    assert r.json()["paid"] == 2500


async def test_a_user_who_cannot_step_up_gets_no_stronger_token(
    api: httpx.AsyncClient, idp: IdP, idp_http: httpx.AsyncClient
) -> None:
    idp.login_as("alice", acr="pwd")
    client = OAuthClient(idp_http, scope="payments")
    first = await client.authorize()
    r = await api.get("/mf", headers=bearer(first["access_token"]))
    # The scripted user only has a password: the IdP issues pwd again and the API still refuses.
    second = await client.authorize(r.headers["www-authenticate"])
    assert claims_of(second["access_token"])["acr"] == "pwd"
    r = await api.get("/mf", headers=bearer(second["access_token"]))
    assert r.status_code == 401
