"""The warm path's shortcuts (issue #16) answer exactly as the full path does.

A reused Authorization value is remembered with its parsed token, the app is called with a
`send` that only records whether the answer started, `Counters` counts field-less events by
name, and a requirement of scopes alone is a membership test: none of them may change what a
client gets back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from rs_guard import Requirement, ResourceGuard
from rs_guard.decorators import check
from rs_guard.errors import InsufficientScope
from rs_guard.observe import Counters, emit, emit_hot
from tests.support import Clock

from .conftest import ISSUER, RESOURCE, bearer

pytestmark = pytest.mark.anyio


async def test_a_remembered_authorization_value_still_meets_every_header_check(
    client: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    t = token()
    for _ in range(3):  # the second and third request take the remembered value
        assert (await client.get("/whoami", headers=bearer(t))).status_code == 200
    # The same value twice in one request is still two credentials.
    r = await client.get(
        "/whoami", headers=[("Authorization", f"Bearer {t}"), ("Authorization", f"Bearer {t}")]
    )
    assert r.status_code == 400
    assert 'error="invalid_request"' in r.headers["www-authenticate"]
    # And in the query string too (not accepted by default).
    r = await client.get(f"/whoami?access_token={t}", headers=bearer(t))
    assert r.status_code == 400


async def test_a_malformed_value_is_refused_every_time(client: httpx.AsyncClient) -> None:
    for _ in range(2):  # a refused value is never remembered as a token
        r = await client.get("/whoami", headers={"Authorization": "Bearer a,b"})
        assert r.status_code == 400
        assert 'error="invalid_request"' in r.headers["www-authenticate"]


@pytest.fixture
def protect(idp: Any, clock: Clock) -> Callable[..., httpx.AsyncClient]:
    """A client of one endpoint at /pay behind a ResourceGuard on the test's clock."""

    def build(endpoint: Callable[[Request], Any], **guard: Any) -> httpx.AsyncClient:
        return _app(idp, endpoint, clock=clock, **guard)

    return build


def _app(idp: Any, endpoint: Callable[[Request], Any], **guard: Any) -> httpx.AsyncClient:
    # The guard inside Starlette's stack (as users add it): between it and the handler only the
    # ExceptionMiddleware, which passes an RSGuardError on.
    options = {"issuer": ISSUER, "resource": RESOURCE, "http_client": idp.http_client(), **guard}
    app = Starlette(
        routes=[Route("/pay", endpoint)], middleware=[Middleware(ResourceGuard, **options)]
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://api.example")


async def test_a_late_refusal_before_the_answer_starts_is_a_challenge(
    protect: Callable[..., httpx.AsyncClient], token: Callable[..., str]
) -> None:
    async def pay(request: Request) -> PlainTextResponse:
        check(request, Requirement(scopes=("payments:write",)))
        return PlainTextResponse("paid")

    async with protect(pay) as client:
        for _ in range(2):  # cold, then warm
            r = await client.get("/pay", headers=bearer(token()))
            assert r.status_code == 403
            assert 'scope="payments:write"' in r.headers["www-authenticate"]


async def test_a_late_refusal_after_the_answer_started_is_not_a_second_answer(
    protect: Callable[..., httpx.AsyncClient], token: Callable[..., str]
) -> None:
    async def chunks() -> Any:
        yield b"first"
        raise InsufficientScope(("payments:write",))

    async def pay(request: Request) -> StreamingResponse:
        return StreamingResponse(chunks())

    async with protect(pay) as client:
        with pytest.raises(InsufficientScope):  # the server sees the error; no 403 after a 200
            await client.get("/pay", headers=bearer(token()))


async def test_scope_requirements_with_and_without_a_hierarchy(
    protect: Callable[..., httpx.AsyncClient], token: Callable[..., str]
) -> None:
    async def pay(request: Request) -> PlainTextResponse:
        return PlainTextResponse("paid")

    needs = {"/pay": Requirement(scopes=("payments:read",))}
    async with protect(pay, requirements=needs) as client:
        assert (
            await client.get("/pay", headers=bearer(token(scope="items:read")))
        ).status_code == 403
        granted = token(scope="payments:read items:read")
        assert (await client.get("/pay", headers=bearer(granted))).status_code == 200
    hierarchy = {"payments:admin": ["payments:read"]}
    async with protect(pay, requirements=needs, scope_hierarchy=hierarchy) as client:
        admin = token(scope="payments:admin")
        for _ in range(2):
            assert (await client.get("/pay", headers=bearer(admin))).status_code == 200


def test_counters_count_events_with_and_without_fields_alike() -> None:
    counters = Counters()
    for _ in range(3):
        emit_hot(counters, "token_cache_hit")
    emit(counters, "token_cache_hit")  # with no fields, through the logging path
    emit(counters, "token_rejected", reason="expired", status=401)
    emit(counters, "token_validated", seconds=0.001)
    assert counters.get("token_cache_hit") == 4
    assert counters.get("token_rejected") == 1
    assert counters.get("token_rejected", "expired") == 1
    assert counters.reasons() == {"expired": 1}
    assert counters.snapshot() == {
        "token_cache_hit": 4,
        "token_rejected:expired": 1,
        "token_validated": 1,
    }
    counters.reset()
    assert counters.snapshot() == {}
    assert counters.get("token_cache_hit") == 0


async def test_an_app_cannot_widen_a_cached_tokens_scopes_for_later_requests(
    protect: Callable[..., httpx.AsyncClient], token: Callable[..., str]
) -> None:
    # The cached token serves every request that presents it: an app that appends to
    # request.auth.scopes must not grant that scope to the next request with the token
    # (Starlette's @requires reads that list).
    attempts: list[str] = []

    async def widen(request: Request) -> PlainTextResponse:
        try:
            request.auth.scopes.append("payments:write")
        except TypeError as exc:
            attempts.append(str(exc))
        mine = list(request.auth.scopes)  # a copy is the app's own
        mine.append("payments:write")
        return PlainTextResponse(" ".join(request.auth.scopes))

    shared = token(scope="items:read")
    async with protect(widen) as client:
        for _ in range(2):  # cold, then the cached token
            r = await client.get("/pay", headers=bearer(shared))
            assert r.status_code == 200 and r.text == "items:read"
    assert len(attempts) == 2 and "copy it" in attempts[0]


def test_token_scopes_copy_and_pickle_as_plain_lists() -> None:
    import copy
    import pickle

    from rs_guard import AccessToken

    access = AccessToken({"sub": "alice", "scope": "a b"})
    assert access.scopes == ["a", "b"] and isinstance(access.scopes, list)
    for other in (copy.copy(access.scopes), pickle.loads(pickle.dumps(access.scopes))):
        assert type(other) is list and other == ["a", "b"]
        other.append("c")
    assert access.scopes == ["a", "b"]
    with pytest.raises(TypeError):
        access.scopes[0] = "admin"
    with pytest.raises(TypeError):
        access.scopes += ["admin"]
