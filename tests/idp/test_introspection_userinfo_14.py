"""Issue #14: who may introspect which token (RFC 7662 §4) and which access tokens /userinfo
takes (OIDC Core §5.3), over the bundled IdP's HTTP API.

The clients (tests/idp/conftest.py): `web-app` logs alice in, `service` is also the resource
server of API (`served_resources=[API]`), `other-app` (registered here) is an unrelated
confidential client of the same IdP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from rs_guard.challenge import parse_challenges
from rs_guard.clients import ClientsFileError
from rs_guard.idp import IdP

from .conftest import API, ISSUER, REDIRECT, code_flow

pytestmark = pytest.mark.anyio

OTHER = ("other-app", "other-secret")
SERVICE = ("service", "service-secret")
WEB = ("web-app", "web-secret")
INACTIVE = {"active": False}


async def introspect(http: httpx.AsyncClient, token: str, auth: tuple[str, str]) -> Any:
    resp = await http.post("/introspect", data={"token": token}, auth=auth)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def userinfo(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def other_app(idp: IdP) -> None:
    idp.register_client(*OTHER, redirect_uris=["https://other.example/cb"])


# -- RFC 7662 §4: the caller must be entitled to the token ------------------------------------


@pytest.mark.usefixtures("other_app")
async def test_another_client_learns_nothing_about_a_token_for_a_resource(
    idp: IdP, http: httpx.AsyncClient
) -> None:
    """web-app's token for API: its resource server and web-app learn about it; other-app
    gets exactly what a never-issued token gets, so it cannot even tell the token exists."""
    idp.login_as("alice")
    token = (await code_flow(http, scope="openid items:read", resource=API))["access_token"]
    assert await introspect(http, token, OTHER) == INACTIVE
    assert await introspect(http, "never-issued", OTHER) == INACTIVE
    for caller in (SERVICE, WEB):
        body = await introspect(http, token, caller)
        assert body["active"] is True and body["aud"] == API and body["client_id"] == "web-app"
        assert body["sub"] == "alice" and body["scope"] == "openid items:read"


async def test_a_self_registered_client_cannot_claim_a_resource(
    idp: IdP, http: httpx.AsyncClient
) -> None:
    """Which resources a client serves is the operator's to say: the same member sent to
    /register (RFC 7591) gives the client no say over API's tokens."""
    resp = await http.post(
        "/register",
        json={"grant_types": ["client_credentials"], "served_resources": [API]},
    )
    assert resp.status_code == 201, resp.text
    reg = resp.json()
    assert "served_resources" not in reg  # ignored, so not echoed as registered (RFC 7591)
    token = idp.issue_access_token("alice", client_id="web-app", audience=API)
    auth = (reg["client_id"], reg["client_secret"])
    assert await introspect(http, token, auth) == INACTIVE


@pytest.mark.usefixtures("other_app")
async def test_audience_by_client_id_and_operator_introspectors(
    idp: IdP, http: httpx.AsyncClient
) -> None:
    """A token whose `aud` names the caller's client_id is the caller's to inspect; an
    operator-designated introspector (`introspects_any`) sees every access token."""
    for_other = idp.issue_access_token("alice", client_id="web-app", audience="other-app")
    assert (await introspect(http, for_other, OTHER))["active"] is True
    assert await introspect(http, for_other, SERVICE) == INACTIVE
    idp.register_client("audit", "audit-secret", introspects_any=True)
    body = await introspect(http, for_other, ("audit", "audit-secret"))
    assert body["active"] is True and body["aud"] == "other-app"


async def test_resource_server_matches_the_audience_as_rfc8707_compares_it(
    idp: IdP, http: httpx.AsyncClient
) -> None:
    """Served resources compare like resource indicators: scheme and host case-insensitively,
    the path exactly."""
    idp.register_client(
        "rs-upper", "rs-upper-secret", served_resources=["HTTPS://API.Example/items"]
    )
    token = idp.issue_access_token("alice", client_id="web-app", audience=API)
    assert (await introspect(http, token, ("rs-upper", "rs-upper-secret")))["active"] is True
    idp.register_client("rs-path", "rs-path-secret", served_resources=["https://api.example/Items"])
    assert await introspect(http, token, ("rs-path", "rs-path-secret")) == INACTIVE


@pytest.mark.usefixtures("other_app")
async def test_a_refresh_token_is_only_its_clients_to_introspect(
    idp: IdP, http: httpx.AsyncClient
) -> None:
    """A refresh token never leaves its client (RFC 6749 §1.5): web-app learns about its own,
    nobody else does, not even the resource server of the grant's resource."""
    idp.login_as("alice")
    body = await code_flow(http, scope="openid items:read", resource=API)
    refresh = body["refresh_token"]
    own = await introspect(http, refresh, WEB)
    assert own["active"] is True and own["token_type"] == "refresh_token"
    assert own["client_id"] == "web-app"
    assert await introspect(http, refresh, OTHER) == INACTIVE
    assert await introspect(http, refresh, SERVICE) == INACTIVE
    idp.register_client("audit", "audit-secret", introspects_any=True)
    assert await introspect(http, refresh, ("audit", "audit-secret")) == INACTIVE


# -- OIDC Core §5.3: /userinfo is the IdP's own protected resource -----------------------------


def assert_invalid_token(resp: httpx.Response) -> None:
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"] == "invalid_token"
    ((scheme, params),) = parse_challenges(resp.headers["www-authenticate"])
    assert scheme.lower() == "bearer" and params["error"] == "invalid_token"


async def test_userinfo_refuses_a_token_for_an_api(idp: IdP, http: httpx.AsyncClient) -> None:
    """A login that named `resource=API` (RFC 8707) got a token for API only: /userinfo,
    another audience, refuses it with RFC 6750 invalid_token, scope openid or not."""
    idp.login_as("alice")
    body = await code_flow(http, scope="openid email items:read", resource=API)
    assert_invalid_token(await userinfo(http, body["access_token"]))
    # The same for a token minted for API from Python (TestIdP.token() and friends).
    minted = idp.issue_access_token("alice", client_id="web-app", audience=API, scope="openid")
    assert_invalid_token(await userinfo(http, minted))
    # And for a refreshed token still bound to API.
    again = await http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        auth=WEB,
    )
    assert again.status_code == 200, again.text
    assert_invalid_token(await userinfo(http, again.json()["access_token"]))


async def test_userinfo_serves_a_login_token(idp: IdP, http: httpx.AsyncClient) -> None:
    """A plain OIDC login (scope openid, no resource indicator) gets the IdP's default audience
    and /userinfo answers it; so does a token whose resources include the userinfo endpoint."""
    idp.login_as("alice")
    body = await code_flow(http, scope="openid email")
    resp = await userinfo(http, body["access_token"])
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"sub": "alice", "email": "alice@example.com", "email_verified": True}
    both = await code_flow(
        http, scope="openid email items:read", resource=[API, idp.endpoint("userinfo")]
    )
    resp = await userinfo(http, both["access_token"])
    assert resp.status_code == 200 and resp.json()["sub"] == "alice"
    # Without openid the token is for the IdP but not for userinfo: 403 insufficient_scope.
    service = idp.issue_access_token("alice", client_id="web-app", scope="items:read")
    assert (await userinfo(http, service)).status_code == 403


async def test_the_userinfo_rule_survives_a_restart(tmp_path: Path) -> None:
    """The state directory keeps which tokens were minted for a resource."""
    first = IdP(ISSUER, state_dir=tmp_path)
    first.register_client("web-app", "web-secret", redirect_uris=[REDIRECT], scope="openid")
    api_token = first.issue_access_token("alice", client_id="web-app", audience=API, scope="openid")
    login_token = first.issue_access_token("alice", client_id="web-app", scope="openid")
    first.close_state()
    again = IdP(ISSUER, state_dir=tmp_path)
    async with again.http_client() as http:
        assert_invalid_token(await userinfo(http, api_token))
        assert (await userinfo(http, login_token)).status_code == 200
    again.close_state()


async def test_a_clients_file_names_the_resource_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rs_guard idp --clients FILE`: the operator's file says which resources a client serves
    (and a wrong value is refused, naming the file, the client and the field)."""
    monkeypatch.setenv("ITEMS_API_SECRET", "items-api-secret-0123456789")
    path = tmp_path / "clients.toml"
    path.write_text(
        "[clients.items-api]\n"
        'grant_types = ["client_credentials"]\n'
        "response_types = []\n"
        'client_secret_env = "ITEMS_API_SECRET"\n'
        f'served_resources = ["{API}"]\n'
    )
    idp = IdP(ISSUER, clients_file=path)
    token = idp.issue_access_token("alice", client_id="web-app", audience=API)
    elsewhere = idp.issue_access_token("alice", client_id="web-app", audience="https://b.example")
    auth = ("items-api", "items-api-secret-0123456789")
    async with idp.http_client() as http:
        assert (await introspect(http, token, auth))["active"] is True
        assert await introspect(http, elsewhere, auth) == INACTIVE
    path.write_text(path.read_text().replace(f'"{API}"', '"not a uri"'))
    with pytest.raises(ClientsFileError) as info:
        IdP(ISSUER, clients_file=path)
    assert any("items-api" in p and "served_resources" in p for p in info.value.problems)


async def test_userinfo_compares_its_audience_as_resources_are_compared() -> None:
    # `resource=` values are written into `aud` with scheme and host lower-cased (RFC 8707),
    # so an issuer configured with upper-case letters in its host must still recognise itself.
    issuer = "https://IdP.Example"
    idp = IdP(issuer)
    idp.add_user("alice")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=idp.app), base_url=issuer
    ) as http:
        for aud in ("https://idp.example", "https://idp.example/", "HTTPS://IDP.EXAMPLE/userinfo"):
            token = idp.issue_access_token("alice", client_id="web", audience=aud, scope="openid")
            assert (await userinfo(http, token)).status_code == 200, aud
        api = idp.issue_access_token("alice", client_id="web", audience=API, scope="openid")
        assert (await userinfo(http, api)).status_code == 401
