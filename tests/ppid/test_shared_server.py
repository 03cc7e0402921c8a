"""One AuthorizationServer shared by the guard, the translator, the token exchanger and the
event verifier: one discovery fetch and one key cache for the whole service."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rs_guard import AuthorizationServer, ConfigurationError, ResourceGuard
from rs_guard.events import EventVerifier
from rs_guard.idp import IdP
from rs_guard.outbound import ClientCredentials, TokenExchanger
from rs_guard.ppid import PPIDTranslator

from .conftest import API, ISSUER, CountingApp, bearer, user_token

pytestmark = pytest.mark.anyio

DOWNSTREAM = "https://downstream.example/api"
UPDATED = "https://schemas.example/event/account-updated"


def discovery_calls(counting: CountingApp) -> int:
    return sum(n for path, n in counting.calls.items() if "/.well-known/" in path)


async def test_one_server_for_every_feature_fetches_discovery_once(
    idp: IdP, idp_http: httpx.AsyncClient, counting: CountingApp
) -> None:
    idp.register_client("billing", "billing-secret", scope="events:publish")
    idp.events.allow("billing", "rs")
    async with AuthorizationServer(ISSUER, http_client=idp_http) as server:
        translator = PPIDTranslator(server=server, client_id="rs", client_secret="rs-secret")
        exchanger = TokenExchanger(server=server, client_id="rs", client_secret="rs-secret")
        verifier = EventVerifier(server=server, audience="rs")

        async def me(request: Request) -> JSONResponse:
            downstream = await exchanger.exchange(request.auth, resource=DOWNSTREAM)
            return JSONResponse({"local": request.auth.local_subject, "token": downstream})

        guard = ResourceGuard(
            Starlette(routes=[Route("/me", me)]),
            server=server,
            resource=API,
            subject_translator=translator,
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=guard), base_url="https://rs.example"
        ) as api:
            resp = await api.get("/me", headers=bearer(user_token(idp, "alice", "web-a")))
        assert resp.status_code == 200, resp.text
        assert resp.json()["local"] == idp.subject_for("alice", "rs")
        token = idp.events.sign("rs", {UPDATED: {}}, user="alice", publisher="billing")
        event = await verifier.verify(token)
        assert event.subject == idp.subject_for("alice", "rs")
        await translator.aclose()
        await exchanger.aclose()
    assert discovery_calls(counting) == 1
    assert counting.calls["/jwks"] == 1  # one key cache for access tokens and events
    assert counting.calls["/ppid/convert"] == 1
    assert counting.calls["/token"] == 2  # the translator's own token, then the exchange


async def test_server_and_keywords_that_would_build_another_one_are_refused(
    idp_http: httpx.AsyncClient,
) -> None:
    server = AuthorizationServer(ISSUER, http_client=idp_http)
    with pytest.raises(ConfigurationError):
        PPIDTranslator(server=server, client_id="rs", client_secret="s", http_client=idp_http)
    with pytest.raises(ConfigurationError):
        ClientCredentials(server=server, client_id="rs", client_secret="s", issuer="https://x")
    with pytest.raises(ConfigurationError):
        EventVerifier(server=server, audience="rs", jwks_uri=f"{ISSUER}/jwks")
    # The same issuer spelled out again is not a conflict.
    assert EventVerifier(server=server, audience="rs", issuer=ISSUER).issuer == ISSUER
