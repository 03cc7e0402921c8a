"""Issue #14, "address checks that hold": the IdP's outbound fetches (Client ID Metadata
Documents, sector_identifier_uri, jwks_uri, event delivery) check the address a host name
resolves to when they connect, connect to exactly that address, and tell the caller nothing
of what the service behind the URL answered.

Real parts throughout: uvicorn on loopback for the IdP and the "internal" services, a raw
loopback listener that counts connections (to show none was made), and the system resolver
for names that resolve to loopback locally (the machine's own name or one from /etc/hosts).
A resolver is injected only as a fault: DNS pointing a name at a private range, or failing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from rs_guard.idp import AddressRefused, Delivery, IdP, PublicAddressTransport
from rs_guard.testing import loopback_socket, loopback_tls, serve, socket_url

pytestmark = pytest.mark.anyio

EVENT = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
SECRET = "internal-db-password=hunter2-7f3a"
KINDS = ("client_id", "sector_identifier_uri", "jwks_uri", "event_delivery_uri")
# What the caller is told when the fetch fails, whatever the reason.
GENERIC = {
    "client_id": "client metadata document could not be fetched",
    "sector_identifier_uri": "sector_identifier_uri could not be fetched",
    "jwks_uri": "client assertion could not be verified",
}


def _loopback_name() -> str | None:
    """A DNS name (not localhost, not a literal) the system resolver maps to loopback only."""
    candidates = [socket.gethostname()]
    try:
        for line in Path("/etc/hosts").read_text().splitlines():
            candidates += line.split("#")[0].split()[1:]
    except OSError:
        pass
    for name in candidates:
        lowered = name.lower().rstrip(".")
        if lowered == "localhost" or lowered.endswith(".localhost"):
            continue
        try:
            ipaddress.ip_address(lowered)
            continue
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(name, 443, type=socket.SOCK_STREAM)
        except OSError:
            continue
        if infos and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos):
            return name
    return None


LOOPBACK_NAME = _loopback_name()
needs_name = pytest.mark.skipif(
    LOOPBACK_NAME is None, reason="no local name resolving to loopback on this machine"
)


class Listener:
    """A raw TCP server on 127.0.0.1 that only counts the connections it accepts."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Listener]:
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        async with server:
            yield self


HANG = "hang"


class FakeDNS:
    """A resolver fault: fixed answers for some names (an exception to raise, or HANG for a
    resolver that never answers), the system resolver for the rest."""

    def __init__(self, answers: dict[str, Sequence[str] | Exception | str]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append((host, port))
        answer = self.answers.get(host)
        if isinstance(answer, Exception):
            raise answer
        if answer == HANG:
            await asyncio.sleep(3600)
        if isinstance(answer, list):
            return answer
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return [str(i[4][0]) for i in infos]


@asynccontextmanager
async def served_idp(**options: Any) -> AsyncIterator[tuple[IdP, httpx.AsyncClient]]:
    """The bundled IdP on a loopback port (uvicorn), a user, and a client for it."""
    sock = loopback_socket()
    url = socket_url(sock)
    idp = IdP(url, **options)
    idp.add_user("alice")
    try:
        async with serve(idp.app, sock=sock), httpx.AsyncClient(base_url=url) as http:
            yield idp, http
    finally:
        await idp.aclose()


def _assertion(idp: IdP, client_id: str) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": idp.endpoint("token"),
        "jti": f"j{now}",
        "iat": now,
        "exp": now + 60,
    }
    key = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1"})


async def attempt(idp: IdP, http: httpx.AsyncClient, kind: str, url: str) -> str:
    """Make the IdP fetch (or deliver to) `url` as `kind`; the text the caller gets back.

    Each answer is checked for being a refusal (never a 500); the text is what a caller could
    learn about the URL's server.
    """
    if kind == "client_id":
        resp = await http.get(
            "/authorize",
            params={
                "response_type": "code",
                "client_id": url,
                "redirect_uri": "https://app.example/cb",
                "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "code_challenge_method": "S256",
            },
        )
        assert resp.status_code in (400, 401) and "location" not in resp.headers, resp.text
        return resp.text
    if kind == "sector_identifier_uri":
        resp = await http.post(
            "/register",
            json={"redirect_uris": ["https://app.example/cb"], "sector_identifier_uri": url},
        )
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"] == "invalid_client_metadata"
        return resp.text
    if kind == "jwks_uri":
        idp.register_client(
            "keyed", jwks_uri=url, token_endpoint_auth_method="private_key_jwt", scope="a"
        )
        resp = await http.post(
            "/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": _assertion(idp, "keyed"),
            },
        )
        assert resp.status_code == 401 and resp.json()["error"] == "invalid_client", resp.text
        return resp.text
    assert kind == "event_delivery_uri"
    idp.register_client("receiver", "s", event_delivery_uri=url)
    idp.events.backoff, idp.events.max_backoff, idp.events.max_attempts = 0.01, 0.02, 2
    token = idp.events.sign("receiver", {EVENT: {}}, user="alice")
    outcome = await idp.events.deliver("receiver", token)
    assert isinstance(outcome, Delivery) and not outcome.delivered
    return json.dumps(outcome.as_dict())


def _url(kind: str, host: str, port: int, scheme: str = "https") -> str:
    path = {"client_id": "/client.json", "event_delivery_uri": "/events"}.get(kind, f"/{kind}")
    return f"{scheme}://{host}:{port}{path}"


# ----- a name resolving to loopback: refused before any connection, outside dev mode --------


@needs_name
@pytest.mark.parametrize("kind", KINDS)
async def test_a_name_resolving_to_loopback_is_refused_without_a_connection(kind: str) -> None:
    assert LOOPBACK_NAME is not None
    async with Listener().running() as listener, served_idp() as (idp, http):
        text = await attempt(idp, http, kind, _url(kind, LOOPBACK_NAME, listener.port))
    assert listener.connections == 0, "the IdP connected to a loopback address"
    if kind == "event_delivery_uri":
        # A refusal is final: retrying could only reach the same (or a rebound) address.
        assert json.loads(text) == {
            "delivered": False,
            "attempts": 1,
            "status": None,
            "err": "network_error",
            "description": "refused",
        }
    else:
        assert GENERIC[kind] in text


@needs_name
async def test_dev_mode_still_fetches_from_loopback_names() -> None:
    """`idp.dev` is read per request: off, a name resolving to loopback is refused before any
    connection; on, it is fetched, from the address the name resolved to, with the name as
    Host (and over http, which dev mode also allows)."""
    assert LOOPBACK_NAME is not None
    seen: list[str] = []

    async def document(request: Request) -> Response:
        seen.append(request.headers["host"])
        return JSONResponse(
            {
                "client_id": str(request.url),
                "redirect_uris": ["http://127.0.0.1/cb"],
                "application_type": "native",
            }
        )

    site = Starlette(routes=[Route("/client.json", document)])
    sock = loopback_socket()
    port = sock.getsockname()[1]
    params = {
        "response_type": "code",
        "redirect_uri": "http://127.0.0.1:4444/cb",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    async with (
        Listener().running() as listener,
        serve(site, sock=sock),
        served_idp() as (idp, http),
    ):
        idp.login_as("alice")
        refused = await http.get(
            "/authorize",
            params={**params, "client_id": f"https://{LOOPBACK_NAME}:{listener.port}/c.json"},
        )
        assert refused.status_code in (400, 401) and listener.connections == 0
        idp.dev = True
        resp = await http.get(
            "/authorize",
            params={**params, "client_id": f"http://{LOOPBACK_NAME}:{port}/client.json"},
        )
        assert resp.status_code == 302 and "code=" in resp.headers["location"], resp.text
    assert seen == [f"{LOOPBACK_NAME}:{port}"]


# ----- DNS pointing a name at a private range (injected as a fault) --------------------------


@pytest.mark.parametrize(
    "addresses",
    [
        ["10.0.0.5"],
        ["127.0.0.1"],
        ["93.184.216.34", "127.0.0.1"],  # a public address first, a private one after it
        ["::ffff:127.0.0.1"],  # IPv4-mapped
        ["64:ff9b::a9fe:a9fe"],  # NAT64 of 169.254.169.254 (cloud metadata)
        ["2002:a00:5::1"],  # 6to4 of 10.0.0.5
        ["fd00::1"],
        ["100.64.0.1"],
        ["0.0.0.0"],
        ["224.0.0.1"],
    ],
)
@pytest.mark.parametrize("kind", KINDS)
async def test_a_name_resolving_to_a_private_address_is_refused(
    kind: str, addresses: list[str]
) -> None:
    dns = FakeDNS({"site.example": addresses})
    client = httpx.AsyncClient(transport=PublicAddressTransport(resolver=dns))
    async with Listener().running() as listener, served_idp(http_client=client) as (idp, http):
        text = await attempt(idp, http, kind, _url(kind, "site.example", listener.port))
    await client.aclose()
    assert ("site.example", listener.port) in dns.asked
    assert listener.connections == 0
    assert "refused" in text if kind == "event_delivery_uri" else GENERIC[kind] in text
    for address in addresses:
        assert address not in text


@pytest.mark.parametrize("kind", KINDS)
async def test_resolution_failures_are_generic_refusals(kind: str) -> None:
    """An unknown name (or a resolver that fails) is the same generic refusal, never a 500."""
    dns = FakeDNS({"nowhere.example": socket.gaierror(socket.EAI_NONAME, "Name not known")})
    client = httpx.AsyncClient(transport=PublicAddressTransport(resolver=dns))
    async with served_idp(http_client=client) as (idp, http):
        text = await attempt(idp, http, kind, _url(kind, "nowhere.example", 443))
    await client.aclose()
    assert dns.asked == [("nowhere.example", 443)] * (2 if kind == "event_delivery_uri" else 1)
    assert "Name not known" not in text
    if kind == "event_delivery_uri":
        assert json.loads(text)["description"] == "unreachable"
    else:
        assert GENERIC[kind] in text


@pytest.mark.parametrize("kind", KINDS)
async def test_a_resolver_that_never_answers_is_bounded(kind: str) -> None:
    """Name resolution counts against the fetch's deadline (the delivery's timeout): a
    resolver that never answers ends in the same generic refusal, in bounded time."""
    dns = FakeDNS({"slow.example": HANG})
    client = httpx.AsyncClient(transport=PublicAddressTransport(resolver=dns))
    async with served_idp(http_client=client) as (idp, http):
        idp.fetch_deadline = 0.3
        idp.events.timeout = 0.3
        started = time.monotonic()
        text = await attempt(idp, http, kind, _url(kind, "slow.example", 443))
        elapsed = time.monotonic() - started
    await client.aclose()
    assert dns.asked and elapsed < 3, elapsed
    if kind == "event_delivery_uri":
        assert json.loads(text)["description"] == "timeout"
    else:
        assert GENERIC[kind] in text


async def test_redirects_are_not_followed() -> None:
    """Dev mode, so loopback is reachable: a document URL answering a redirect to another
    (internal) address is not followed, and the caller is not told it was a redirect."""
    async with Listener().running() as listener:
        target = f"http://127.0.0.1:{listener.port}/internal"

        async def moved(request: Request) -> Response:
            return Response(status_code=302, headers={"Location": target})

        site = Starlette(routes=[Route("/{path:path}", moved)])
        sock = loopback_socket()
        port = sock.getsockname()[1]
        async with serve(site, sock=sock), served_idp(dev=True) as (idp, http):
            for kind in ("client_id", "sector_identifier_uri"):
                text = await attempt(idp, http, kind, _url(kind, "127.0.0.1", port, "http"))
                assert GENERIC[kind] in text and "302" not in text
    assert listener.connections == 0


async def test_tls_verifies_the_name_while_connecting_to_the_checked_address() -> None:
    """The connection goes to the resolved address, but the certificate is checked against the
    URL's name (SNI and hostname check), not against the address: the loopback certificate
    names 127.0.0.1 and localhost, so `cimd.example` pointed at 127.0.0.1 must fail TLS, even
    right after a verified connection to the same address (no pooled connection reused)."""
    hosts: list[str] = []

    async def hello(request: Request) -> Response:
        hosts.append(request.headers["host"])
        return PlainTextResponse("hello")

    app = Starlette(routes=[Route("/", hello)])
    dns = FakeDNS({"cimd.example": ["127.0.0.1"], "localhost": ["127.0.0.1"]})
    with loopback_tls() as tls:
        sock = loopback_socket()
        port = sock.getsockname()[1]
        transport = PublicAddressTransport(
            allow_non_public=lambda: True, resolver=dns, verify=tls.client_context()
        )
        async with serve(app, sock=sock, tls=tls), httpx.AsyncClient(transport=transport) as c:
            assert (await c.get(f"https://localhost:{port}/")).text == "hello"
            with pytest.raises(httpx.ConnectError, match="(?i)certificate"):
                await c.get(f"https://cimd.example:{port}/")
        strict = PublicAddressTransport(resolver=dns, verify=tls.client_context())
        async with httpx.AsyncClient(transport=strict) as c:
            with pytest.raises(AddressRefused):
                await c.get(f"https://localhost:{port}/")
    assert hosts == [f"localhost:{port}"]


# ----- what the caller learns: nothing of the internal service's answer -----------------------


@pytest.mark.parametrize("kind", ["client_id", "sector_identifier_uri", "event_delivery_uri"])
async def test_error_text_never_repeats_the_internal_answer(kind: str) -> None:
    """Dev mode, so the loopback service is reached: it answers 500 (or, as a receiver, an
    RFC 8935 error with made-up members) carrying a secret; the caller sees neither. (A
    jwks_uri failure was already one generic "could not be verified".)"""
    hits: list[str] = []

    async def leaky(request: Request) -> Response:
        hits.append(request.url.path)
        if request.url.path == "/events":
            body = {"err": f"x_{SECRET}", "description": f"db says {SECRET}"}
            return JSONResponse(body, status_code=400)
        return PlainTextResponse(f"Traceback: {SECRET}", status_code=500)

    site = Starlette(routes=[Route("/{path:path}", leaky, methods=["GET", "POST"])])
    sock = loopback_socket()
    port = sock.getsockname()[1]
    async with serve(site, sock=sock), served_idp(dev=True) as (idp, http):
        text = await attempt(idp, http, kind, _url(kind, "127.0.0.1", port, "http"))
    assert hits, "dev mode must still reach the loopback service"
    assert SECRET not in text and "Traceback" not in text
    if kind == "event_delivery_uri":
        assert json.loads(text) == {
            "delivered": False,
            "attempts": 1,
            "status": 400,
            "err": None,
            "description": None,
        }
    else:
        assert "500" not in text and GENERIC[kind] in text
