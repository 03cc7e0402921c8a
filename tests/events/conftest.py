"""Fixtures for webhook events: an in-process IdP and receivers joined by an in-process network,
and a real redis-server on a loopback port."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.types import ASGIApp

from rs_guard.events import (
    EventReceiver,
    EventVerifier,
    MemoryReplayStore,
    RedisReplayStore,
    ReplayStore,
    SecurityEvent,
)
from rs_guard.idp import IdP
from tests.support import Clock, redis_server

ISSUER = "https://idp.example"
PUBLISHER = "billing"
PUBLISHER_SECRET = "billing-secret"
RECEIVER = "mailer"
RECEIVER_SECRET = "mailer-secret"
RECEIVER_URL = "https://mailer.example/events"
UPDATED = "https://schemas.example/event/account-updated"
LOGGED_OUT = "https://schemas.example/event/logged-out"


class LocalNet(httpx.AsyncBaseTransport):
    """An in-process network: each host is served by an ASGI app; unknown hosts refuse."""

    def __init__(self) -> None:
        self.hosts: dict[str, httpx.ASGITransport] = {}

    def add(self, host: str, app: ASGIApp) -> None:
        self.hosts[host] = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self.hosts.get(request.url.host)
        if transport is None:
            raise httpx.ConnectError("connection refused", request=request)
        return await transport.handle_async_request(request)


class Receiver:
    """A receiver service: an EventReceiver mounted in a Starlette app, recording handled events."""

    def __init__(
        self,
        idp: IdP,
        *,
        clock: Clock,
        client_id: str = RECEIVER,
        path: str = "/events",
        **verifier_kwargs: Any,
    ) -> None:
        self.handled: list[tuple[str, SecurityEvent, Mapping[str, Any]]] = []
        self.fail_next = 0
        self.delay = 0.0
        self.verifier = EventVerifier(
            issuer=idp.issuer,
            audience=client_id,
            http_client=idp.http_client(),
            clock=clock,
            **verifier_kwargs,
        )
        self.endpoint = EventReceiver(self.verifier)

        async def updated(event: SecurityEvent, payload: Mapping[str, Any]) -> None:
            if self.fail_next:
                self.fail_next -= 1
                raise RuntimeError("database unavailable")
            if self.delay:
                await asyncio.sleep(self.delay)
            self.handled.append((UPDATED, event, payload))

        def logged_out(event: SecurityEvent, payload: Mapping[str, Any]) -> None:
            self.handled.append((LOGGED_OUT, event, payload))

        self.endpoint.add_handler(UPDATED, updated)
        self.endpoint.add_handler(LOGGED_OUT, logged_out)
        self.app = Starlette(routes=[self.endpoint.route(path)])
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="https://mailer.example"
        )

    async def post(
        self, body: str | bytes, content_type: str | None = "application/secevent+jwt"
    ) -> httpx.Response:
        headers = {"Content-Type": content_type} if content_type else {}
        return await self.client.post("/events", content=body, headers=headers)


@pytest.fixture
def clock_start() -> float:
    return float(int(time.time()))


@pytest.fixture
def net() -> LocalNet:
    return LocalNet()


@pytest.fixture
async def idp_options(clock: Clock, net: LocalNet) -> AsyncIterator[dict[str, Any]]:
    """The IdP delivers events over the in-process network."""
    async with httpx.AsyncClient(transport=net) as outbound:
        yield {"clock": clock, "http_client": outbound}


def add_clients(idp: IdP) -> None:
    """The publisher billing, the receiver mailer (pairwise, with a delivery URL), users."""
    idp.register_client(PUBLISHER, PUBLISHER_SECRET, scope="events:publish")
    idp.register_client(
        RECEIVER,
        RECEIVER_SECRET,
        redirect_uris=["https://mailer.example/cb"],
        subject_type="pairwise",
        event_delivery_uri=RECEIVER_URL,
    )
    idp.events.allow(PUBLISHER, RECEIVER)
    idp.events.backoff = 0.01
    idp.events.max_backoff = 0.05
    idp.add_user("alice", email="alice@example.com")
    idp.add_user("bob")


@pytest.fixture
def idp_setup() -> Callable[[IdP], None]:
    return add_clients


@pytest.fixture
def make_receiver(idp: IdP, clock: Clock, net: LocalNet) -> Iterator[Callable[..., Receiver]]:
    """Build receivers (the last one built also answers at mailer.example)."""
    made: list[Receiver] = []

    def make(**kwargs: Any) -> Receiver:
        receiver = Receiver(idp, clock=clock, **kwargs)
        net.add("mailer.example", receiver.app)
        made.append(receiver)
        return receiver

    yield make


@pytest.fixture
def receiver(make_receiver: Callable[..., Receiver]) -> Receiver:
    return make_receiver()


def sign(idp: IdP, user: str = "alice", **kwargs: Any) -> str:
    """An event for the receiver from the publisher, as the IdP signs it."""
    events = kwargs.pop("events", {UPDATED: {"fields": ["email"]}})
    kwargs.setdefault("publisher", PUBLISHER)
    return idp.events.sign(RECEIVER, events, user=user, **kwargs)


# ----- a real redis-server ------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A redis-server started on a free loopback port for this test session."""
    with redis_server() as url:
        yield url


@pytest.fixture
async def redis_store(redis_url: str) -> AsyncIterator[RedisReplayStore]:
    """A Redis replay store on an empty database."""
    store = RedisReplayStore(url=redis_url)
    await store.client.flushdb()
    yield store
    await store.aclose()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest) -> ReplayStore:
    """Each replay store implementation in turn."""
    if request.param == "memory":
        return MemoryReplayStore()
    result: RedisReplayStore = request.getfixturevalue("redis_store")
    return result
