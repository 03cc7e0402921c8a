"""Hardening: what the IdP fetches for private_key_jwt (jwks_uri checked at fetch time, bounded,
no redirects), strict JSON request bodies at every IdP JSON endpoint (no duplicate members),
late handler errors reported like the guard's own, and a Retry-After after the keys are gone
that does not send clients back before the guard may fetch them again."""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rs_guard import IntrospectionUnavailable, IntrospectionValidator
from rs_guard.decorators import check, exception_handlers
from rs_guard.idp import IdP
from rs_guard.policy import Requirement

from .conftest import World, expect

pytestmark = pytest.mark.anyio

ISSUER = "https://idp.example"
JWKS_URI = "https://keys.example/jwks"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class Outbound(httpx.AsyncBaseTransport):
    """The IdP's only way out: records every URL, answers only the URLs given a response."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.responses: dict[str, Callable[[], httpx.Response]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        self.urls.append(url)
        make = self.responses.get(url)
        if make is None:
            raise httpx.ConnectError("no network in tests", request=request)
        return make()


class Signer:
    """A private_key_jwt client's key pair and assertions."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        public = ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        self.jwks = {"keys": [dict(public, kid="k1", alg="ES256", use="sig")]}

    def assertion(self, client_id: str) -> str:
        now = int(time.time())
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": f"{ISSUER}/token",
            "iat": now,
            "exp": now + 60,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": "k1"})


@pytest.fixture
def outbound() -> Outbound:
    return Outbound()


@pytest.fixture
async def outbound_client(outbound: Outbound) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=outbound) as client:
        yield client


def make_idp(outbound_client: httpx.AsyncClient, *, dev: bool = False) -> IdP:
    idp = IdP(ISSUER, http_client=outbound_client, dev=dev)
    idp.register_client("pub", "pub-secret", scope="events:publish ppid:convert")
    idp.register_client("rcv", "rcv-secret")
    idp.add_user("alice")
    return idp


async def client_credentials(idp: IdP, signer: Signer, client_id: str) -> httpx.Response:
    form = {
        "grant_type": "client_credentials",
        "client_assertion": signer.assertion(client_id),
        "client_assertion_type": ASSERTION_TYPE,
    }
    async with idp.http_client() as http:
        return await http.post("/token", data=form)


def serve_json(body: bytes) -> Callable[[], httpx.Response]:
    return lambda: httpx.Response(200, content=body, headers={"content-type": "application/json"})


# ----- jwks_uri: checked when fetched, bounded, never redirected ----------------------------


async def test_jwks_uri_is_fetched_and_used(
    outbound: Outbound, outbound_client: httpx.AsyncClient
) -> None:
    idp = make_idp(outbound_client)
    signer = Signer()
    idp.register_client("pk", token_endpoint_auth_method="private_key_jwt", jwks_uri=JWKS_URI)
    outbound.responses[JWKS_URI] = lambda: httpx.Response(200, json=signer.jwks)
    resp = await client_credentials(idp, signer, "pk")
    assert resp.status_code == 200, resp.text
    assert outbound.urls == [JWKS_URI]


@pytest.mark.parametrize(
    "uri",
    [
        "https://127.0.0.1/jwks",
        "https://2130706433/jwks",
        "https://localhost./jwks",
        "https://[::1]/jwks",
        "https://10.0.0.8/jwks",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fe80::1]/jwks",
        "http://keys.example/jwks",
        "https://user:pw@keys.example/jwks",
    ],
)
async def test_jwks_uri_on_an_internal_address_is_never_fetched(
    outbound: Outbound, outbound_client: httpx.AsyncClient, uri: str
) -> None:
    # Registered from Python (or as a metadata document): registration's check never ran.
    idp = make_idp(outbound_client)
    signer = Signer()
    idp.register_client("pk", token_endpoint_auth_method="private_key_jwt", jwks_uri=uri)
    outbound.responses[uri] = lambda: httpx.Response(200, json=signer.jwks)
    resp = await client_credentials(idp, signer, "pk")
    assert resp.status_code == 401
    assert resp.json() == {
        "error": "invalid_client",
        "error_description": "client assertion could not be verified",
    }
    assert outbound.urls == []


async def test_a_dev_idp_fetches_loopback_jwks(
    outbound: Outbound, outbound_client: httpx.AsyncClient
) -> None:
    idp = make_idp(outbound_client, dev=True)
    signer = Signer()
    uri = "http://127.0.0.1:8999/jwks"
    idp.register_client("pk", token_endpoint_auth_method="private_key_jwt", jwks_uri=uri)
    outbound.responses[uri] = lambda: httpx.Response(200, json=signer.jwks)
    assert (await client_credentials(idp, signer, "pk")).status_code == 200
    assert outbound.urls == [uri]


async def test_jwks_uri_body_is_bounded(
    outbound: Outbound, outbound_client: httpx.AsyncClient
) -> None:
    idp = make_idp(outbound_client)
    signer = Signer()
    idp.register_client("pk", token_endpoint_auth_method="private_key_jwt", jwks_uri=JWKS_URI)
    keys = json.dumps(signer.jwks)[:-1]
    outbound.responses[JWKS_URI] = serve_json(f'{keys}, "pad": "{"x" * 70_000}"}}'.encode())
    assert (await client_credentials(idp, signer, "pk")).status_code == 401
    # The same keys in a document within the bound work.
    outbound.responses[JWKS_URI] = serve_json(f'{keys}, "pad": "{"x" * 1000}"}}'.encode())
    assert (await client_credentials(idp, signer, "pk")).status_code == 200


async def test_jwks_uri_redirect_is_not_followed(
    outbound: Outbound, outbound_client: httpx.AsyncClient
) -> None:
    idp = make_idp(outbound_client)
    signer = Signer()
    idp.register_client("pk", token_endpoint_auth_method="private_key_jwt", jwks_uri=JWKS_URI)
    elsewhere = "https://169.254.169.254/jwks"
    outbound.responses[JWKS_URI] = lambda: httpx.Response(302, headers={"location": elsewhere})
    outbound.responses[elsewhere] = lambda: httpx.Response(200, json=signer.jwks)
    assert (await client_credentials(idp, signer, "pk")).status_code == 401
    assert outbound.urls == [JWKS_URI]


# ----- strict JSON bodies: no duplicate members -----------------------------------------------


async def post_raw(idp: IdP, method: str, path: str, body: bytes, **kwargs: Any) -> httpx.Response:
    headers = {"content-type": "application/json", **kwargs.pop("headers", {})}
    async with idp.http_client() as http:
        return await http.request(method, path, content=body, headers=headers, **kwargs)


async def test_registration_refuses_duplicate_members(outbound_client: httpx.AsyncClient) -> None:
    idp = make_idp(outbound_client)
    body = b'{"redirect_uris": ["https://a.example/cb"], "redirect_uris": ["https://b.example/cb"]}'
    resp = await post_raw(idp, "POST", "/register", body)
    assert resp.status_code == 400
    assert resp.json() == {
        "error": "invalid_client_metadata",
        "error_description": "member 'redirect_uris' appears more than once",
    }
    assert idp.clients.keys() == {"pub", "rcv"}


@pytest.mark.parametrize(
    ("body", "description"),
    [
        (b'{"redirect_uris": ["https://a.example/cb"], "x": NaN}', "the body is not valid JSON"),
        (b"\xff\xfe", "the body is not UTF-8"),
        (b"[]", "the body must be a JSON object"),
        (b'{"redirect_uris": ', "the body is not valid JSON"),
    ],
)
async def test_registration_bodies_are_strict_json(
    outbound_client: httpx.AsyncClient, body: bytes, description: str
) -> None:
    idp = make_idp(outbound_client)
    resp = await post_raw(idp, "POST", "/register", body)
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_client_metadata"
    assert resp.json()["error_description"].startswith(description)


async def test_registration_update_refuses_duplicate_members(
    outbound_client: httpx.AsyncClient,
) -> None:
    idp = make_idp(outbound_client)
    async with idp.http_client() as http:
        created = await http.post("/register", json={"redirect_uris": ["https://a.example/cb"]})
    assert created.status_code == 201
    client_id = created.json()["client_id"]
    rat = created.json()["registration_access_token"]
    body = (
        b'{"client_id": "%s", "redirect_uris": ["https://a.example/cb"], '
        b'"redirect_uris": ["https://evil.example/cb"]}' % client_id.encode()
    )
    resp = await post_raw(
        idp, "PUT", f"/register/{client_id}", body, headers={"authorization": f"Bearer {rat}"}
    )
    assert resp.status_code == 400
    assert resp.json() == {
        "error": "invalid_client_metadata",
        "error_description": "member 'redirect_uris' appears more than once",
    }
    assert idp.clients[client_id].redirect_uris == ["https://a.example/cb"]


async def test_conversion_refuses_duplicate_members(outbound_client: httpx.AsyncClient) -> None:
    idp = make_idp(outbound_client)
    body = b'{"subjects": ["alice"], "to_client": "pub", "to_client": "rcv"}'
    resp = await post_raw(idp, "POST", "/ppid/convert", body, auth=("pub", "pub-secret"))
    assert resp.status_code == 400
    assert resp.json() == {
        "error": "invalid_request",
        "error_description": "member 'to_client' appears more than once",
    }


async def test_event_signing_refuses_duplicate_members(outbound_client: httpx.AsyncClient) -> None:
    idp = make_idp(outbound_client)
    idp.events.allow("pub", "rcv")
    body = (
        b'{"audience": "rcv", "subject": "alice", "events": {"https://e.example/x": {}}, '
        b'"deliver": false, "deliver": true}'
    )
    resp = await post_raw(idp, "POST", "/events", body, auth=("pub", "pub-secret"))
    assert resp.status_code == 400
    assert resp.json() == {
        "error": "invalid_request",
        "error_description": "member 'deliver' appears more than once",
    }
    # Nested objects are held to the same rule.
    body = b'{"audience": "rcv", "subject": "alice", "events": {"https://e.example/x": {}, '
    body += b'"https://e.example/x": {"a": 1}}}'
    resp = await post_raw(idp, "POST", "/events", body, auth=("pub", "pub-secret"))
    assert resp.status_code == 400 and "appears more than once" in resp.text


async def test_claims_parameter_refuses_duplicate_members(
    outbound_client: httpx.AsyncClient,
) -> None:
    idp = make_idp(outbound_client)
    idp.register_client("web", "web-secret", redirect_uris=["https://app.example/cb"])
    idp.login_as("alice")
    params = {
        "response_type": "code",
        "client_id": "web",
        "redirect_uri": "https://app.example/cb",
        "scope": "openid",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        "claims": '{"id_token": {"acr": {"essential": true}}, "id_token": {}}',
    }
    async with idp.http_client() as http:
        resp = await http.get("/authorize", params=params)
    assert resp.status_code == 302
    query = parse_qs(urlsplit(resp.headers["location"]).query)
    assert query["error"] == ["invalid_request"]
    assert query["error_description"] == ["claims parameter has a member twice"]


# ----- late handler errors are reported like the guard's own --------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "error", "reason"),
    [
        ("scope", 403, "insufficient_scope", "insufficient_scope"),
        ("token", 401, "invalid_token", "custom"),
    ],
)
async def test_handler_errors_reach_the_observer(
    world: World, kind: str, status: int, error: str, reason: str
) -> None:
    # The guard wraps the Starlette app from outside: Starlette's exception handler answers.
    resp = await world.get(world.token(), path=f"/reflect/{kind}", params={"v": "x"})
    expect(resp, status, error, reason, world.events)
    assert world.events.items[-1] == ("token_rejected", {"reason": reason, "status": status})


async def test_handler_errors_without_a_guard_are_logged(caplog: Any) -> None:
    async def handler(request: Request) -> Response:
        check(request, Requirement(scopes=("items:read",)))
        return Response("never")

    app = Starlette(routes=[Route("/", handler)], exception_handlers=exception_handlers)
    caplog.set_level(logging.INFO, logger="rs_guard")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://api.example"
    ) as client:
        resp = await client.get("/")
    assert resp.status_code == 401
    assert "token_rejected reason=missing_token status=401" in caplog.messages


# ----- Retry-After once the keys are gone ---------------------------------------------------


async def test_retry_after_covers_the_refetch_cooldown(world: World) -> None:
    mono, cache = world.use_keys(max_age=300, stale_for=600, cooldown=30)
    assert (await world.get(world.token())).status_code == 200
    world.idp.faults.jwks = "down"
    mono.now += 300 + 600  # past max_age + stale_for: the failed refresh drops the keys
    resp = await world.get(world.token())
    expect(resp, 503, None, "jwks_http_503", world.events)
    assert resp.headers["retry-after"] == "30"  # the next fetch is allowed in 30 s
    fetches = world.counter.count("/jwks")
    mono.now += 12
    resp = await world.get(world.token())
    expect(resp, 503, None, "keys_unavailable", world.events)
    assert resp.headers["retry-after"] == "18"
    assert world.counter.count("/jwks") == fetches  # no fetch before the cooldown ends
    mono.now += 17.5
    assert (await world.get(world.token())).headers["retry-after"] == "1"
    # A client that waited as told finds the guard fetching again, and recovering.
    world.idp.faults.jwks = None
    mono.now += 0.5
    assert (await world.get(world.token())).status_code == 200
    assert world.counter.count("/jwks") == fetches + 1


async def test_retry_after_follows_max_age_when_it_is_below_the_cooldown(world: World) -> None:
    mono, cache = world.use_keys(max_age=10, stale_for=5, cooldown=60)
    assert (await world.get(world.token())).status_code == 200
    world.idp.faults.jwks = "down"
    mono.now += 16
    resp = await world.get(world.token())
    expect(resp, 503, None, "jwks_http_503", world.events)
    # Refetches wait min(cooldown, max_age) = 10 s here, and so does the client.
    assert resp.headers["retry-after"] == "10"


async def test_a_cold_guard_keeps_the_default_retry_after(world: World) -> None:
    world.use_keys(max_age=300, stale_for=600, cooldown=30)
    world.idp.faults.jwks = "down"
    resp = await world.get(world.token())
    expect(resp, 503, None, "jwks_http_503", world.events)
    assert resp.headers["retry-after"] == "5"  # never fetched: the next request tries again


# ----- introspection configured with only its endpoint --------------------------------------


async def test_introspection_with_only_an_endpoint_makes_its_own_client() -> None:
    # Before, no http_client and no metadata ended in an AssertionError (a 500).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: connections are refused
    validator = IntrospectionValidator(
        issuer=ISSUER,
        audience="https://api.example",
        client_id="rs",
        client_secret="rs-secret",
        introspection_endpoint=f"http://127.0.0.1:{port}/introspect",
        timeout=2.0,
    )
    try:
        with pytest.raises(IntrospectionUnavailable) as caught:
            await validator.validate("opaque-token")
        assert caught.value.reason == "introspection_unreachable"
    finally:
        await validator.aclose()
