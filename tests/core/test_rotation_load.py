"""Key rotation under open-loop load (#12 item 6): no 401 for a validly signed token.

Requests arrive on a clock (one anyio task per tick, whatever the earlier ones are doing), not
one after another: a closed loop hides the requests that arrive while a refetch is in flight.
The IdP is the bundled one on a loopback uvicorn socket; the guard is the public ResourceGuard.
Every scenario is bounded in requests and in time (a few seconds each).
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from rs_guard import AuthorizationServer, ResourceGuard
from rs_guard.testing import TestIdP, loopback_socket, serve, socket_url
from tests.support import CountingApp

pytestmark = pytest.mark.anyio

RESOURCE = "https://api.example/items"


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


@dataclass
class Loop:
    """The IdP on loopback, a guard in front of a tiny app, and what the requests got."""

    idp: TestIdP
    counting: CountingApp
    client: httpx.AsyncClient
    answers: list[tuple[bool, int, str | None]] = field(default_factory=list)

    def jwks_fetches(self) -> int:
        return self.counting.calls["/jwks"]

    async def send(self, token: str, valid: bool = True) -> None:
        answer = await self.client.get("/", headers={"Authorization": f"Bearer {token}"})
        self.answers.append((valid, answer.status_code, answer.headers.get("retry-after")))

    async def open_loop(
        self, rate: float, seconds: float, at: dict[float, Callable[[], None]] | None = None
    ) -> None:
        """`rate` requests per second for `seconds`, each started at its tick; `at` runs
        actions (rotations) at given offsets. A token is minted at its tick, so it is signed
        with whatever key the IdP signs with at that moment."""
        actions = sorted((at or {}).items())
        start = time.monotonic()
        async with anyio.create_task_group() as tg:
            for i in range(int(rate * seconds)):
                tick = start + i / rate
                while actions and actions[0][0] <= tick - start:
                    actions.pop(0)[1]()
                await anyio.sleep(max(0.0, tick - time.monotonic()))
                tg.start_soon(self.send, self.idp.token(), True)

    def statuses(self, valid: bool = True) -> Counter[int]:
        return Counter(status for v, status, _ in self.answers if v is valid)


@pytest.fixture
async def make_loop() -> AsyncIterator[Callable[..., Loop]]:
    sock = loopback_socket()
    idp = TestIdP(socket_url(sock), resource=RESOURCE, in_process=False)
    counting = CountingApp(idp.app)
    made: list[httpx.AsyncClient] = []
    async with serve(counting, sock=sock, lifespan="off"), httpx.AsyncClient() as idp_http:

        def factory(**server_options: float) -> Loop:
            server = AuthorizationServer(idp.issuer, http_client=idp_http, **server_options)
            app = Starlette(routes=[Route("/", ok)])
            guard = ResourceGuard(app, resource=RESOURCE, server=server)
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=guard), base_url="https://api.example"
            )
            made.append(client)
            return Loop(idp, counting, client)

        try:
            yield factory
        finally:
            for client in made:
                await client.aclose()


async def warm(loop: Loop) -> None:
    await loop.send(loop.idp.token(), valid=True)
    assert loop.statuses()[200] == 1
    assert loop.jwks_fetches() == 1


async def test_key_used_right_after_the_first_fetch_is_fetched_at_once(
    make_loop: Callable[..., Loop],
) -> None:
    """The measured bug: the first fetch started the cooldown, so a key put to use within
    30 s of it gave 401s for the whole window. Now the first unknown kid refetches."""
    loop = make_loop()  # the default 30 s cooldown
    await warm(loop)
    await loop.open_loop(rate=200, seconds=1.5, at={0.2: loop.idp.rotate})
    assert loop.statuses()[401] == 0, loop.statuses()
    assert set(loop.statuses()) == {200}
    assert loop.jwks_fetches() == 2


async def test_requests_arriving_during_a_refetch_join_it(
    make_loop: Callable[..., Loop],
) -> None:
    """The second bug: requests arriving while the refetch was in flight were refused
    instead of waiting for it. With the JWKS answering 200 ms late, every request after the
    rotation arrives during that refetch or after it."""
    loop = make_loop()
    await warm(loop)
    loop.idp.faults.delay = 0.2
    loop.idp.faults.jwks = "slow"
    await loop.open_loop(rate=300, seconds=1.0, at={0.1: loop.idp.rotate})
    assert loop.statuses()[401] == 0, loop.statuses()
    assert set(loop.statuses()) == {200}
    assert loop.jwks_fetches() == 2  # one refetch for every request that needed it


async def test_second_rotation_inside_the_cooldown_is_a_503_then_accepted(
    make_loop: Callable[..., Loop],
) -> None:
    """Two rotations within one cooldown: the second key cannot be fetched until the cooldown
    ends. Its tokens get 503 + Retry-After (or are held when the wait is short), never 401,
    and are accepted once the refetch is allowed."""
    loop = make_loop(jwks_cooldown=2.0, jwks_hold=0.5)
    await warm(loop)
    started = time.monotonic()
    await loop.open_loop(rate=100, seconds=2.6, at={0.1: loop.idp.rotate, 0.4: loop.idp.rotate})
    statuses = loop.statuses()
    assert statuses[401] == 0, statuses
    assert set(statuses) <= {200, 503}
    assert statuses[503] > 0  # the window after the second rotation was really hit
    waits = {int(r) for v, s, r in loop.answers if s == 503 and r is not None}
    assert waits and waits <= {1, 2}  # seconds until the next allowed refetch
    assert all(r is not None for _, s, r in loop.answers if s == 503)
    assert loop.jwks_fetches() == 3  # warm-up, then one refetch per rotation
    # Once the cooldown has passed, tokens signed with the second new key are accepted.
    await anyio.sleep(max(0.0, started + 2.2 - time.monotonic()))
    late = loop.idp.token()
    await loop.send(late, valid=True)
    assert loop.answers[-1][1] == 200


async def test_forged_kids_cost_one_fetch_per_cooldown_under_load(
    make_loop: Callable[..., Loop],
) -> None:
    """Forged kids arriving on a clock alongside real traffic: the IdP sees at most one
    refetch per cooldown, and no real token is refused."""
    loop = make_loop(jwks_cooldown=1.0, jwks_hold=0.0)
    await warm(loop)
    start = time.monotonic()
    rate, seconds = 200, 2.5
    async with anyio.create_task_group() as tg:
        for i in range(int(rate * seconds)):
            await anyio.sleep(max(0.0, start + i / rate - time.monotonic()))
            if i % 4 == 0:
                tg.start_soon(loop.send, loop.idp.token(), True)
            else:
                forged = loop.idp.token(headers={"kid": secrets.token_urlsafe(9)})
                tg.start_soon(loop.send, forged, False)
    elapsed = time.monotonic() - start
    assert loop.statuses(valid=True)[401] == 0
    assert set(loop.statuses(valid=True)) == {200}
    assert set(loop.statuses(valid=False)) <= {401, 503}
    # The warm-up fetch, then at most one per started cooldown window.
    assert loop.jwks_fetches() <= 1 + int(elapsed / 1.0) + 1
