"""Issue #14, token exchange policy (RFC 8693 §2.1): who may exchange which token for which
audiences, and a subject namespace no caller chooses — through the public HTTP API, the IdP
served by uvicorn on a loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rs_guard.idp import IdP
from rs_guard.testing import loopback_socket, serve, socket_url

pytestmark = pytest.mark.anyio

TE = "urn:ietf:params:oauth:grant-type:token-exchange"
AT = "urn:ietf:params:oauth:token-type:access_token"
API = "https://api.example/items"
DOWN = "https://down.example/api"
OTHER = "https://other.example/api"
VICTIM_CB = "https://victim.example/cb"
VICTIM_SECTOR = "https://victim.example/sector.json"


def victim_site() -> Starlette:
    """The victim's web site: its sector identifier document lists its own redirect URI."""

    async def sector(request: Request) -> Response:
        return JSONResponse([VICTIM_CB])

    return Starlette(routes=[Route("/sector.json", sector)])


@asynccontextmanager
async def served(**options: Any) -> AsyncIterator[tuple[IdP, httpx.AsyncClient]]:
    """The bundled IdP on a loopback port (its own fetches reach the victim's site)."""
    sock = loopback_socket()
    url = socket_url(sock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=victim_site())) as outbound:
        idp = IdP(url, http_client=outbound, **options)
        idp.add_user("alice")
        async with serve(idp.app, sock=sock), httpx.AsyncClient(base_url=url) as http:
            yield idp, http


async def exchange(
    http: httpx.AsyncClient, auth: tuple[str, str], subject: str, **form: str
) -> httpx.Response:
    data = {"grant_type": TE, "subject_token": subject, "subject_token_type": AT, **form}
    return await http.post("/token", data=data, auth=auth)


def sub_of(resp: httpx.Response) -> str:
    assert resp.status_code == 200, resp.text
    sub: str = jwt.decode(resp.json()["access_token"], options={"verify_signature": False})["sub"]
    return sub


def refused(resp: httpx.Response, error: str, status: int = 400) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json()["error"] == error, resp.text


async def register(http: httpx.AsyncClient, **meta: Any) -> httpx.Response:
    return await http.post("/register", json=meta)


async def test_open_registration_does_not_hand_out_token_exchange() -> None:
    async with served() as (idp, http):
        meta = {"grant_types": ["client_credentials", TE], "response_types": []}
        refused(await register(http, **meta), "invalid_client_metadata")
        # Within the operator's choice it works, and an operator who narrows it again wins
        # over what clients registered meanwhile (RFC 6749 §5.2 unauthorized_client).
        idp.dcr_grant_types = [*idp.dcr_grant_types, TE]
        reg = await register(http, **meta)
        assert reg.status_code == 201, reg.text
        auth = (reg.json()["client_id"], reg.json()["client_secret"])
        own = await http.post("/token", data={"grant_type": "client_credentials"}, auth=auth)
        assert (await exchange(http, auth, own.json()["access_token"])).status_code == 200
        # Nor does a registrant set the operator-only policy members for itself: ignored (not
        # registered, not echoed), so naming the API it wants tokens of entitles it to nothing.
        claiming = await register(
            http, **meta, served_resources=[API], exchange_audiences=["https://x.example/"]
        )
        assert claiming.status_code == 201, claiming.text
        assert not {"served_resources", "exchange_audiences"} & set(claiming.json())
        claimer = (claiming.json()["client_id"], claiming.json()["client_secret"])
        for_api = idp.issue_access_token("alice", client_id="web", audience=API)
        refused(await exchange(http, claimer, for_api), "invalid_request")
        idp.dcr_grant_types = ["client_credentials"]
        refused(await exchange(http, auth, own.json()["access_token"]), "unauthorized_client")


async def test_the_caller_must_be_entitled_to_the_subject_token() -> None:
    async with served() as (idp, http):
        idp.register_client("web", "web-secret", redirect_uris=["https://web.example/cb"])
        idp.register_client("api", "api-secret", served_resources=[API])
        idp.register_client("bystander", "bystander-secret")
        token = idp.issue_access_token("alice", client_id="web", audience=API, scope="a")
        # A token that reached the bystander somehow is still not its to exchange.
        stolen = await exchange(http, ("bystander", "bystander-secret"), token, audience=DOWN)
        refused(stolen, "invalid_request")
        # The service the token was addressed to, and the token's own client, may.
        assert (await exchange(http, ("api", "api-secret"), token, audience=DOWN)).is_success
        assert (await exchange(http, ("web", "web-secret"), token)).is_success
        # An audience naming the client id, or may_act naming the client, entitles it too.
        to_it = idp.issue_access_token("alice", client_id="web", audience="bystander")
        assert (await exchange(http, ("bystander", "bystander-secret"), to_it)).is_success
        delegated = idp.issue_access_token(
            "alice", client_id="web", audience=API, claims={"may_act": {"sub": "bystander"}}
        )
        by_name = await exchange(http, ("bystander", "bystander-secret"), delegated)
        assert by_name.is_success, by_name.text
        # An actor token must be the caller's own: the api service presenting the bystander's
        # token would pass for the bystander that may_act names.
        actor = idp.issue_access_token(None, client_id="bystander")
        posing = await exchange(
            http, ("api", "api-secret"), delegated, actor_token=actor, actor_token_type=AT
        )
        refused(posing, "invalid_request")


async def test_exchange_audiences_per_client() -> None:
    async with served() as (idp, http):
        idp.register_client("api", "api-secret", served_resources=[API], exchange_audiences=[DOWN])
        auth = ("api", "api-secret")
        token = idp.issue_access_token("alice", client_id="web", audience=API, scope="a")
        assert (await exchange(http, auth, token, audience=DOWN)).is_success
        assert (await exchange(http, auth, token, resource=DOWN)).is_success
        refused(await exchange(http, auth, token, audience=OTHER), "invalid_target")
        refused(await exchange(http, auth, token, resource=OTHER), "invalid_target")
        # Its own audience widens nothing: naming it is always allowed.
        assert (await exchange(http, auth, token, audience=API)).is_success
        # A self-registered client (allowed the grant) gets the operator's DCR list: empty by
        # default, so it may narrow its tokens but not re-address them.
        idp.dcr_grant_types = [*idp.dcr_grant_types, TE]
        reg = await register(http, grant_types=["client_credentials", TE], response_types=[])
        dcr = (reg.json()["client_id"], reg.json()["client_secret"])
        own = await http.post("/token", data={"grant_type": "client_credentials"}, auth=dcr)
        refused(
            await exchange(http, dcr, own.json()["access_token"], audience=DOWN), "invalid_target"
        )
        idp.dcr_exchange_audiences = [DOWN]
        assert (await exchange(http, dcr, own.json()["access_token"], audience=DOWN)).is_success


async def test_clients_file_sets_the_exchange_policy(tmp_path: Path) -> None:
    path = tmp_path / "clients.toml"
    path.write_text(
        """
[clients.api]
grant_types = ["client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"]
response_types = []
client_secret_env = "API_SECRET"
served_resources = ["https://api.example/items"]
exchange_audiences = ["https://down.example/api"]
"""
    )
    secret = "api-secret-from-the-environment"
    idp = IdP("https://idp.example")
    idp.clients_file.load(path, now=idp.now(), secrets_dir=None, env={"API_SECRET": secret})
    client = idp.clients["api"]
    assert client.served_resources == [API] and client.exchange_audiences == [DOWN]
    token = idp.issue_access_token("alice", client_id="web", audience=API)
    async with idp.http_client() as http:
        assert (await exchange(http, ("api", secret), token, audience=DOWN)).is_success
        refused(await exchange(http, ("api", secret), token, audience=OTHER), "invalid_target")


async def test_a_registrant_cannot_take_another_clients_sector_and_read_its_ppids() -> None:
    """The attack of issue #14: a DCR client names the victim's redirect host as its own, so
    the pairwise sector is the victim's, then exchanges a token of the user (no browser
    needed) and reads the victim's pairwise identifier for them."""
    async with served() as (idp, http):
        idp.register_client(
            "victim", "victim-secret", redirect_uris=[VICTIM_CB], subject_type="pairwise"
        )
        victim_ppid = idp.subject_for("alice", "victim")
        assert victim_ppid != "alice"
        # A token of alice the attacker holds (say, sent to the API it runs by another app).
        token = idp.issue_access_token("alice", client_id="web", audience="https://evil.example/")
        as_victim = {
            "redirect_uris": [VICTIM_CB],
            "subject_type": "pairwise",
            "grant_types": ["authorization_code", "client_credentials", TE],
        }
        # 1. Open registration hands out no token exchange.
        refused(await register(http, **as_victim), "invalid_client_metadata")
        # 2. Even where the operator allows it, nobody joins the victim's sector unproven.
        idp.dcr_grant_types = [*idp.dcr_grant_types, TE]
        taken = await register(http, **as_victim)
        refused(taken, "invalid_client_metadata")
        assert "sector_identifier_uri" in taken.json()["error_description"]
        # 3. Nor by an update (RFC 7592) of a client registered on its own host.
        own = await register(http, **{**as_victim, "redirect_uris": ["https://evil.example/cb"]})
        assert own.status_code == 201, own.text
        attacker = own.json()
        auth = (attacker["client_id"], attacker["client_secret"])
        update = {**attacker, "redirect_uris": [VICTIM_CB]}
        for name in ("registration_access_token", "registration_client_uri"):
            update.pop(name)
        moved = await http.put(
            f"/register/{attacker['client_id']}",
            json=update,
            headers={"Authorization": f"Bearer {attacker['registration_access_token']}"},
        )
        refused(moved, "invalid_client_metadata")
        # 4. Holding a token of alice is not enough to exchange it; in its own sector its
        # identifiers are its own anyway.
        refused(await exchange(http, auth, token), "invalid_request")
        assert idp.subject_for("alice", attacker["client_id"]) != victim_ppid
        # 5. Pointing at the victim's own sector document works only with the victim's
        # redirect URIs (OIDC Registration §5): the sector then is the victim's, but codes go
        # to the victim and the exchange still needs a token the attacker was entitled to.
        copied = await register(http, **as_victim, sector_identifier_uri=VICTIM_SECTOR)
        assert copied.status_code == 201, copied.text
        copy = (copied.json()["client_id"], copied.json()["client_secret"])
        assert idp.subject_for("alice", copy[0]) == victim_ppid  # the endorsed, shared sector
        refused(await exchange(http, copy, token), "invalid_request")
        own_token = await http.post("/token", data={"grant_type": "client_credentials"}, auth=copy)
        assert sub_of(await exchange(http, copy, own_token.json()["access_token"])) == copy[0]
        # Legitimate sharing still works: operator-registered clients of one sector, on purpose.
        idp.register_client(
            "victim-mobile",
            "s",
            redirect_uris=["https://m.victim.example/cb"],
            subject_type="pairwise",
            sector_identifier_uri=VICTIM_SECTOR,
        )
        idp.register_client(
            "victim-web2",
            "s",
            redirect_uris=["https://victim.example/other"],
            subject_type="pairwise",
        )
        assert idp.subject_for("alice", "victim-mobile") == idp.subject_for("alice", "victim")
        assert idp.subject_for("alice", "victim-web2") == victim_ppid


async def test_exchanged_audiences_are_written_as_resources_are() -> None:
    # RFC 8693 `audience` naming a URI is compared and written as RFC 8707 `resource` is
    # (scheme and host lower-cased), so a resource server comparing `aud` exactly takes it.
    async with served(resource_allowlist=[API, DOWN]) as (idp, http):
        idp.register_client("api", "api-secret", served_resources=[API])
        auth = ("api", "api-secret")
        token = idp.issue_access_token("alice", client_id="web", audience=API)
        resp = await exchange(http, auth, token, audience="HTTPS://DOWN.Example/api")
        assert resp.status_code == 200, resp.text
        claims = jwt.decode(resp.json()["access_token"], options={"verify_signature": False})
        assert claims["aud"] == DOWN
        # Off the allow-list in any spelling: invalid_target.
        refused(
            await exchange(http, auth, token, audience="https://OTHER.example/api"),
            "invalid_target",
        )


async def test_an_exchange_without_a_target_keeps_a_login_token_good_for_userinfo() -> None:
    # A token minted for the IdP's default audience (a plain OIDC login) exchanged with no
    # audience/resource stays a token for the IdP, so /userinfo takes it (OIDC Core §5.3).
    # With a default audience other than the issuer (as TestIdP sets it: its resource).
    async with served(default_audience=API) as (idp, http):
        idp.register_client("web", "web-secret", redirect_uris=["https://web.example/cb"])
        login = idp.issue_access_token("alice", client_id="web", scope="openid")
        resp = await exchange(http, ("web", "web-secret"), login)
        assert resp.status_code == 200, resp.text
        info = await http.get(
            "/userinfo", headers={"Authorization": f"Bearer {resp.json()['access_token']}"}
        )
        assert info.status_code == 200, info.text
        # One for an API, exchanged with no target, stays one for that API.
        for_api = idp.issue_access_token("alice", client_id="web", audience=API, scope="openid")
        resp = await exchange(http, ("web", "web-secret"), for_api)
        assert resp.status_code == 200, resp.text
        info = await http.get(
            "/userinfo", headers={"Authorization": f"Bearer {resp.json()['access_token']}"}
        )
        assert info.status_code == 401
