"""AuthorizationServer: one issuer's discovery, keys and HTTP client, shared by every user."""

from __future__ import annotations

import asyncio

import httpx
import jwt
import pytest

from rs_guard import AuthorizationServer
from rs_guard._http import FetchError
from rs_guard.idp import IdP
from tests.support import CountingApp

from .conftest import ISSUER

pytestmark = pytest.mark.anyio

DISCOVERY = "/.well-known/oauth-authorization-server"


async def test_discovery_is_fetched_once_for_every_user(
    idp_http: httpx.AsyncClient, counting: CountingApp
) -> None:
    server = AuthorizationServer(ISSUER, http_client=idp_http)
    # The key cache, endpoint look-ups and several concurrent callers share one document.
    urls = await asyncio.gather(
        server.endpoint("token_endpoint"),
        server.endpoint("introspection_endpoint"),
        *(server.endpoint("jwks_uri") for _ in range(20)),
    )
    assert urls[0] == f"{ISSUER}/token"
    await server.metadata.get()
    assert counting.calls[DISCOVERY] == 1
    assert server.http_client is idp_http


async def test_keys_are_fetched_through_the_shared_document(
    idp: IdP, idp_http: httpx.AsyncClient, counting: CountingApp
) -> None:
    server = AuthorizationServer(ISSUER, http_client=idp_http)
    token = idp.issue_access_token("alice", client_id="c", audience="https://api.example/x")
    header = jwt.get_unverified_header(token)
    await server.endpoint("jwks_uri")
    key = await server.keys.get_key(header.get("kid"), header["alg"])
    assert key in server.keys.keys
    assert counting.calls[DISCOVERY] == 1
    assert counting.calls["/jwks"] == 1


async def test_a_missing_endpoint_is_a_fetch_error(idp_http: httpx.AsyncClient) -> None:
    server = AuthorizationServer(ISSUER, http_client=idp_http)
    with pytest.raises(FetchError, match="missing_no_such_endpoint"):
        await server.endpoint("no_such_endpoint")


async def test_a_given_client_is_never_closed(idp_http: httpx.AsyncClient) -> None:
    async with AuthorizationServer(ISSUER, http_client=idp_http) as server:
        assert server.http_client is idp_http
    assert not idp_http.is_closed


async def test_a_client_it_made_is_closed() -> None:
    server = AuthorizationServer("https://idp.invalid")
    client = server.http_client
    assert server.http_client is client  # made once
    assert client.follow_redirects is False
    await server.aclose()
    assert client.is_closed
    await server.aclose()  # twice is fine


async def test_closing_before_any_use_makes_no_client() -> None:
    async with AuthorizationServer("https://idp.invalid"):
        pass


def test_repr_names_the_issuer() -> None:
    assert repr(AuthorizationServer(ISSUER)) == f"AuthorizationServer({ISSUER!r})"
