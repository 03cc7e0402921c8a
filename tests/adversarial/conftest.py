"""Fixtures for the adversarial suite: the bundled IdP behind a request-counting wrapper, a
protected example service behind ResourceGuard, and helpers that check the exact answer."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from rs_guard import InsufficientScope, InvalidToken, JWTValidator, Requirement, ResourceGuard
from rs_guard.decorators import exception_handlers
from rs_guard.discovery import ServerMetadata
from rs_guard.idp import IdP
from rs_guard.keys import JWKSCache
from tests.support import Clock

ISSUER = "https://idp.example"
RESOURCE = "https://api.example/items"
API_BASE = "https://api.example"
PRM_URL = "https://api.example/.well-known/oauth-protected-resource/items"
START = 1_700_000_000.0


class CountingApp:
    """ASGI wrapper around the IdP app that records every request reaching it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.paths: Counter[str] = Counter()
        self.override: dict[str, Callable[[], Response]] = {}

    @property
    def total(self) -> int:
        return sum(self.paths.values())

    def count(self, suffix: str) -> int:
        return sum(n for p, n in self.paths.items() if p.endswith(suffix))

    def reset(self) -> None:
        self.paths.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths[scope["path"]] += 1
            make = self.override.get(scope["path"])
            if make is not None:
                await make()(scope, receive, send)
                return
        await self.app(scope, receive, send)


class GuardedTransport(httpx.AsyncBaseTransport):
    """The guard's only way out: the IdP in-process, with timeouts enforced and faults injected.

    ASGITransport ignores httpx timeouts, so they are applied here; a request for any host other
    than the IdP's is recorded and refused, so a test can prove nothing else was contacted.
    """

    def __init__(self, app: ASGIApp, host: str = "idp.example") -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.host = host
        self.foreign: list[str] = []
        self.fault: str | None = None  # "connect" | "timeout" | None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host != self.host:
            self.foreign.append(str(request.url))
            raise httpx.ConnectError("only the IdP is reachable in these tests", request=request)
        if self.fault == "connect":
            raise httpx.ConnectError("injected", request=request)
        if self.fault == "timeout":
            raise httpx.ReadTimeout("injected", request=request)
        timeout = request.extensions.get("timeout", {}).get("read")
        try:
            with anyio.fail_after(timeout if timeout is not None else 3600):
                response = await self.inner.handle_async_request(request)
                # Read the body inside the deadline as a real socket read would be.
                body = await response.aread()
        except TimeoutError:
            raise httpx.ReadTimeout("timed out", request=request) from None
        return httpx.Response(
            response.status_code, headers=response.headers, content=body, request=request
        )


@dataclass
class Events:
    """An observer recording every event (the hook operators plug metrics into)."""

    items: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, event: str, fields: dict[str, Any]) -> None:
        self.items.append((event, dict(fields)))

    def names(self) -> list[str]:
        return [e for e, _ in self.items]

    def reasons(self) -> list[str]:
        return [f["reason"] for e, f in self.items if e == "token_rejected"]

    def clear(self) -> None:
        self.items.clear()


async def _items(request: Request) -> Response:
    auth = request.auth
    return JSONResponse({"sub": auth.subject, "scopes": list(auth.scopes)})


async def _public(request: Request) -> Response:
    return JSONResponse({"public": True, "authenticated": request.user.is_authenticated})


async def _echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse({"body": body.decode("latin-1"), "sub": request.auth.subject})


async def _reflect(request: Request) -> Response:
    # A handler that builds errors from request data: what an attacker might try to reflect.
    value = request.query_params.get("v", "")
    if request.path_params["kind"] == "scope":
        raise InsufficientScope([value], value)
    raise InvalidToken(value, reason="custom")


def protected_app() -> Starlette:
    # exception_handlers render errors raised by handlers (late step-up) as challenges.
    return Starlette(
        exception_handlers=exception_handlers,
        routes=[
            Route("/items", _items),
            Route("/items/write", _items),
            Route("/items/mfa", _items),
            Route("/items/recent", _items),
            Route("/items/verified", _items),
            Route("/public", _public),
            Route("/echo", _echo, methods=["POST"]),
            Route("/reflect/{kind}", _reflect),
        ],
    )


REQUIREMENTS = {
    "/items": Requirement(scopes=("items:read",)),
    "/items/write": Requirement(scopes=("items:write",)),
    "/items/mfa": Requirement(scopes=("items:read",), acr_values=("mf", "phr")),
    "/items/recent": Requirement(scopes=("items:read",), max_age=60),
    "/items/verified": Requirement(claims={"phone_number_verified": True}),
}


@dataclass
class World:
    """Everything one adversarial test needs, wired the way a user would wire it."""

    idp: IdP
    clock: Clock
    counter: CountingApp
    transport: GuardedTransport
    events: Events
    guard: ResourceGuard
    client: httpx.AsyncClient
    idp_http: httpx.AsyncClient
    _clients: list[httpx.AsyncClient] = field(default_factory=list)

    def token(self, user: str | None = "alice", **kwargs: Any) -> str:
        """A valid access token for the protected resource (overridable)."""
        kwargs.setdefault("client_id", "client-a")
        kwargs.setdefault("audience", RESOURCE)
        kwargs.setdefault("scope", "items:read")
        return self.idp.issue_access_token(user, **kwargs)

    async def get(
        self, token: str | None = None, path: str = "/items", **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return await self.client.get(path, headers=headers, **kwargs)

    def use_guard(self, **overrides: Any) -> ResourceGuard:
        """Replace the guard with one configured differently (same IdP, observer, clock)."""
        self.guard = build_guard(self.idp_http, self.events, self.clock, **overrides)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.guard), base_url=API_BASE
        )
        self._clients.append(self.client)
        return self.guard

    def use_keys(self, **cache_options: Any) -> tuple[Clock, JWKSCache]:
        """A guard whose JWKS cache runs on a settable monotonic clock (rotation, cooldowns)."""
        mono = Clock(1000.0)
        metadata = ServerMetadata(
            ISSUER, http_client=self.idp_http, observer=self.events, clock=mono
        )
        cache = JWKSCache(metadata=metadata, observer=self.events, clock=mono, **cache_options)
        validator = JWTValidator(
            issuer=ISSUER, audience=RESOURCE, keys=cache, observer=self.events, clock=self.clock
        )
        self.use_guard(validator=validator)
        return mono, cache

    async def warm(self) -> None:
        """Let the guard fetch discovery and keys once, then forget the counts."""
        resp = await self.get(self.token())
        assert resp.status_code == 200, resp.text
        self.counter.reset()
        self.events.clear()


def build_guard(
    idp_http: httpx.AsyncClient, events: Events, clock: Clock, **overrides: Any
) -> ResourceGuard:
    options: dict[str, Any] = {
        "issuer": ISSUER,
        "resource": RESOURCE,
        "http_client": idp_http,
        "requirements": REQUIREMENTS,
        "public_paths": ["/public"],
        "observer": events,
        "clock": clock,
        "realm": "api",
    }
    options.update(overrides)
    return ResourceGuard(protected_app(), **options)


@pytest.fixture
def clock_start() -> float:
    return START  # the instant the expected claim values here are written against


def add_clients(idp: IdP) -> None:
    """The client the tokens are for, the resource server itself, and alice."""
    idp.register_client("client-a", "secret-a", scope="items:read items:write")
    # The resource server of RESOURCE: introspection answers it about RESOURCE's tokens.
    idp.register_client("rs", "rs-secret", scope="", served_resources=[RESOURCE])
    idp.add_user("alice", email="alice@example.com")


@pytest.fixture
def idp_setup() -> Callable[[IdP], None]:
    return add_clients


@pytest.fixture
async def world(idp: IdP, clock: Clock) -> AsyncIterator[World]:
    counter = CountingApp(idp.app)
    transport = GuardedTransport(counter)
    events = Events()
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER, timeout=2.0) as idp_http:
        guard = build_guard(idp_http, events, clock)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=guard), base_url=API_BASE
        ) as client:
            w = World(idp, clock, counter, transport, events, guard, client, idp_http)
            yield w
            for extra in w._clients:
                await extra.aclose()


_PARAM = re.compile(r'([a-z_]+)="([^"]*)"')


def challenge(resp: httpx.Response) -> dict[str, str]:
    """The parameters of the response's Bearer challenge."""
    value = resp.headers.get("www-authenticate", "")
    assert value.startswith("Bearer"), value
    return dict(_PARAM.findall(value))


def expect(
    resp: httpx.Response,
    status: int,
    error: str | None,
    reason: str | None = None,
    events: Events | None = None,
) -> None:
    """Assert the exact answer: status, challenge error code, JSON body, logged reason."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    if status == 503:
        assert resp.headers["retry-after"].isdigit()
        assert resp.json()["error"] == "temporarily_unavailable"
    else:
        params = challenge(resp)
        assert params.get("error") == error, params
        assert params["resource_metadata"] == PRM_URL
        body = resp.json()
        assert body["error"] == (error or "unauthorized")
    assert resp.headers["cache-control"] == "no-store"
    if reason is not None:
        assert events is not None
        assert events.reasons()[-1] == reason, events.reasons()


async def asgi_call(
    app: ASGIApp, scope: dict[str, Any], body: bytes = b""
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Call an ASGI app directly with a hand-made scope (bytes no client library would send)."""
    base = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": "/items",
        "raw_path": b"/items",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"api.example")],
        "server": ("api.example", 443),
        "client": ("127.0.0.1", 50000),
    }
    base.update(scope)
    sent = False
    out: dict[str, Any] = {"status": None, "headers": [], "body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
            out["headers"] = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    await app(base, receive, send)
    return out["status"], out["headers"], out["body"]


def header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


AsyncFactory = Callable[..., Awaitable[Any]]
