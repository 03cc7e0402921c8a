"""RFC 7662 as the resource server uses it: ResourceGuard with an IntrospectionValidator against
the bundled IdP's /introspect, checking the request it sends (§2.1) and how it reads answers."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from rs_guard import IntrospectionValidator
from rs_guard.discovery import ServerMetadata
from rs_guard.idp import IdP

from .conftest import ISSUER, RESOURCE, Clock, bearer, challenge_of, protected_app

pytestmark = pytest.mark.anyio


class Recorder:
    """A real ASGI wrapper in front of the IdP that keeps what /introspect was sent."""

    def __init__(self, idp: IdP) -> None:
        self.app = idp.app
        self.requests: list[tuple[str, dict[str, str], bytes]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/introspect":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.requests.append((scope["method"], headers, body))
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


@pytest.fixture
def recorder(idp: IdP) -> Recorder:
    # The resource server of RESOURCE: introspection answers it about its tokens (RFC 7662 §4).
    idp.register_client("rs", "rs s3cret&more", scope="", served_resources=[RESOURCE])
    return Recorder(idp)


@pytest.fixture
async def rs(recorder: Recorder, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=recorder), base_url=ISSUER
    ) as idp_http:
        validator = IntrospectionValidator(
            issuer=ISSUER,
            audience=RESOURCE,
            client_id="rs",
            client_secret="rs s3cret&more",
            metadata=ServerMetadata(ISSUER, http_client=idp_http),
            http_client=idp_http,
            cache_ttl=30,
            clock=clock,
        )
        app = protected_app(idp_http, validator=validator, clock=clock)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://api.example"
        ) as client:
            yield client


async def test_the_introspection_request(
    rs: httpx.AsyncClient, recorder: Recorder, idp: IdP
) -> None:
    """§2.1: POST, application/x-www-form-urlencoded, `token` (+ hint), client authentication
    (Basic with both parts form-urlencoded first, RFC 6749 §2.3.1), Accept JSON."""
    token = idp.issue_access_token(
        "alice", client_id="web-app", audience=RESOURCE, scope="items:read"
    )
    resp = await rs.get("/items", headers=bearer(token))
    assert resp.status_code == 200, resp.text
    ((method, headers, body),) = recorder.requests
    assert method == "POST"
    assert headers["content-type"].split(";")[0] == "application/x-www-form-urlencoded"
    assert "application/json" in headers["accept"]
    form = parse_qs(body.decode())
    assert form["token"] == [token]
    assert form.get("token_type_hint", ["access_token"]) == ["access_token"]
    scheme, credentials = headers["authorization"].split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(credentials) == b"rs:rs+s3cret%26more"


async def test_answers_are_read_like_the_rfc_says(
    rs: httpx.AsyncClient, recorder: Recorder, idp: IdP, clock: Clock
) -> None:
    good = idp.issue_access_token(
        "alice", client_id="web-app", audience=RESOURCE, scope="items:read"
    )
    revoked = idp.issue_access_token("alice", client_id="web-app", audience=RESOURCE)
    idp.revoke(revoked)
    elsewhere = idp.issue_access_token("alice", client_id="web-app", audience="https://other")
    ok = await rs.get("/whoami", headers=bearer(good))
    assert ok.json() == {"sub": "alice", "scopes": ["items:read"]}
    for token in (revoked, elsewhere, "opaque-and-unknown"):
        resp = await rs.get("/whoami", headers=bearer(token))
        assert resp.status_code == 401
        assert challenge_of(resp).params["error"] == "invalid_token"
    # §4: the answer may be cached, but never beyond the token's own expiry.
    calls = len(recorder.requests)
    await rs.get("/whoami", headers=bearer(good))
    assert len(recorder.requests) == calls
    clock.now += 301
    expired = await rs.get("/whoami", headers=bearer(good))
    assert expired.status_code == 401
    assert len(recorder.requests) == calls + 1


async def test_a_refresh_token_is_not_an_access_token(
    rs: httpx.AsyncClient, idp: IdP, idp_http: httpx.AsyncClient
) -> None:
    """The IdP answers `active: true` for a refresh token too; its token_type tells them apart."""
    idp.login_as("alice")
    from .test_rfc9470 import _authorize

    tokens = await _authorize(idp_http, {})
    assert idp.introspect(str(tokens["refresh_token"]))["active"] is True
    resp = await rs.get("/whoami", headers=bearer(str(tokens["refresh_token"])))
    assert resp.status_code == 401
    assert challenge_of(resp).params["error"] == "invalid_token"


async def test_idp_refusing_the_resource_server_is_503_not_401(
    recorder: Recorder, clock: Clock, idp: IdP
) -> None:
    """Wrong introspection credentials are the resource server's problem: the client gets a
    503 with Retry-After, never an invalid_token that would send it to re-authenticate."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=recorder), base_url=ISSUER
    ) as idp_http:
        validator = IntrospectionValidator(
            issuer=ISSUER,
            audience=RESOURCE,
            client_id="rs",
            client_secret="wrong",
            introspection_endpoint=f"{ISSUER}/introspect",
            http_client=idp_http,
            clock=clock,
        )
        app = protected_app(idp_http, validator=validator, clock=clock)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://api.example"
        ) as client:
            token = idp.issue_access_token("alice", client_id="web-app", audience=RESOURCE)
            resp = await client.get("/whoami", headers=bearer(token))
    assert resp.status_code == 503
    assert resp.headers["retry-after"].isdigit()
