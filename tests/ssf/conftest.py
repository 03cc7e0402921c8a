"""Fixtures for continuous access evaluation: the bundled IdP as SSF transmitter, and resource
services (a ResourceGuard with an SSF receiver) joined to it by an in-process network."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rs_guard import Requirement, ResourceGuard
from rs_guard.decorators import check, exception_handlers
from rs_guard.events import EventVerifier
from rs_guard.idp import IdP
from rs_guard.outbound import ClientCredentials
from rs_guard.ssf import PUSH, MemoryRevocations, SignalReceiver, Stream, Transmitter
from tests.events.conftest import LocalNet, redis_url  # noqa: F401  (fixture)
from tests.support import ISSUER, Clock

RESOURCE = "https://api.example"
RECEIVER = "api"
RECEIVER_SECRET = "api-secret"
APP = "app"
CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
ALL_EVENTS = [
    CAEP + "session-revoked",
    CAEP + "credential-change",
    CAEP + "assurance-level-change",
    CAEP + "token-claims-change",
    RISC + "account-disabled",
    RISC + "account-purged",
]


async def data(request: Request) -> JSONResponse:
    return JSONResponse({"sub": request.user.identity})


async def pay(request: Request) -> JSONResponse:
    # A level only the handler decides on (rs_guard.check), as for a large payment.
    check(request, Requirement(acr_values=("mfa",)))
    return JSONResponse({"paid": True})


class Service:
    """One replica of a resource server: guard + SSF receiver on the same Starlette app."""

    def __init__(
        self,
        idp: IdP,
        clock: Clock,
        revocations: MemoryRevocations,
        *,
        host: str = "api.example",
        guard_options: dict[str, Any] | None = None,
        **receiver_options: Any,
    ) -> None:
        self.revocations = revocations
        self.http = idp.http_client()
        self.verifier = EventVerifier(
            issuer=ISSUER,
            audience=RECEIVER,
            http_client=self.http,
            require_subject=False,
            clock=clock,
        )
        self.receiver = SignalReceiver(self.verifier, revocations, **receiver_options)
        inner = Starlette(
            routes=[
                Route("/data", data),
                Route("/strong", data),
                Route("/pay", pay),
                self.receiver.route("/ssf/events"),
            ],
            exception_handlers=exception_handlers,
        )
        self.guard = ResourceGuard(
            inner,
            resource=RESOURCE,
            issuer=ISSUER,
            http_client=self.http,
            requirements={"/strong": Requirement(acr_values=("mfa",))},
            # The push endpoint is authenticated by each SET's signature, not an access token.
            public_paths=["/ssf/events"],
            revocations=revocations,
            clock=clock,
            **(guard_options or {}),
        )
        self.app = self.guard
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url=f"https://{host}"
        )

    async def get(self, token: str, path: str = "/data") -> httpx.Response:
        return await self.client.get(path, headers={"Authorization": f"Bearer {token}"})

    async def push(
        self, token: str | bytes, ctype: str = "application/secevent+jwt"
    ) -> httpx.Response:
        return await self.client.post("/ssf/events", content=token, headers={"Content-Type": ctype})

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.http.aclose()


def setup_idp(idp: IdP) -> None:
    idp.register_client(RECEIVER, RECEIVER_SECRET, scope="ssf")
    idp.register_client(APP, "app-secret", redirect_uris=["https://app.example/cb"])
    idp.add_user("alice", email="alice@example.com")
    idp.add_user("bob")
    idp.events.backoff = 0.01
    idp.events.max_backoff = 0.05


@pytest.fixture
def clock_start() -> float:
    return 1_800_000_000.0


@pytest.fixture
def net() -> LocalNet:
    return LocalNet()


@pytest.fixture
async def idp_options(clock: Clock, net: LocalNet) -> AsyncIterator[dict[str, Any]]:
    """The IdP pushes events over the in-process network."""
    async with httpx.AsyncClient(transport=net) as outbound:
        yield {"clock": clock, "http_client": outbound}


@pytest.fixture
def idp_setup() -> Callable[[IdP], None]:
    return setup_idp


async def connect(
    idp: IdP, service: Service, *, delivery: dict[str, Any] | None
) -> tuple[Transmitter, Stream]:
    """Discover the IdP's transmitter, create the stream, verify it end to end."""
    credentials = ClientCredentials(
        client_id=RECEIVER,
        client_secret=RECEIVER_SECRET,
        scope="ssf",
        issuer=ISSUER,
        http_client=service.http,
    )
    transmitter = await Transmitter.discover(
        ISSUER, credentials=credentials, http_client=service.http
    )
    stream = await transmitter.create_stream(
        delivery=delivery, events_requested=ALL_EVENTS, description="api replicas"
    )
    service.receiver.stream_id = stream.stream_id
    return transmitter, stream


@pytest.fixture
async def service(idp: IdP, clock: Clock, net: LocalNet) -> AsyncIterator[Service]:
    """One replica with memory revocations, its push stream created and verified."""
    svc = Service(idp, clock, MemoryRevocations(clock=clock))
    net.add("api.example", svc.app)
    transmitter, stream = await connect(
        idp, svc, delivery={"method": PUSH, "endpoint_url": "https://api.example/ssf/events"}
    )
    verified = svc.receiver.expect_verification("hello")
    await transmitter.request_verification(stream.stream_id, "hello")
    await idp.ssf.drain()
    assert verified.done()
    yield svc
    await svc.aclose()


def access_token(idp: IdP, user: str = "alice", **options: Any) -> str:
    options.setdefault("auth_time", idp.now())
    return idp.issue_access_token(user, client_id=APP, audience=RESOURCE, **options)
