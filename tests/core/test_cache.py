"""The verified-token cache: bounded under a flood of distinct tokens."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable

import httpx
import pytest
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from rs_guard import AccessToken, JWTValidator, ResourceGuard, TokenUser
from rs_guard.access_token import Limits
from rs_guard.idp import IdP
from rs_guard.keys import JWKSCache

from .conftest import ISSUER, RESOURCE, Clock

pytestmark = pytest.mark.anyio


async def test_cache_is_bounded(
    idp: IdP, idp_http: httpx.AsyncClient, token: Callable[..., str], clock: Clock
) -> None:
    keys = JWKSCache(f"{ISSUER}/jwks", http_client=idp_http)
    validator = JWTValidator(
        issuer=ISSUER, audience=RESOURCE, keys=keys, cache_size=50, clock=clock
    )
    for i in range(500):
        await validator.validate(token(user=f"user-{i}"))
    assert len(validator._cache) == 50


async def test_reused_token_is_not_reverified(
    idp_http: httpx.AsyncClient, token: Callable[..., str], clock: Clock
) -> None:
    keys = JWKSCache(f"{ISSUER}/jwks", http_client=idp_http)
    validator = JWTValidator(issuer=ISSUER, audience=RESOURCE, keys=keys, clock=clock)
    t = token()
    first = await validator.validate(t)
    assert await validator.validate(t) is first


async def test_evicted_tokens_are_freed_without_a_full_collection(
    idp_http: httpx.AsyncClient, token: Callable[..., str], clock: Clock
) -> None:
    # Issue #16: a cached token must not sit in a reference cycle (token -> its request.user
    # -> the same token), or every entry the LRU evicts is garbage that only a full (gen-2)
    # collection frees: stop-the-world pauses under sustained load and RSS beyond the bound.
    seen: list[weakref.ref[AccessToken]] = []

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        user, access = scope["user"], scope["auth"]
        # What handlers rely on: request.user is a TokenUser that gives access to the token.
        assert isinstance(user, TokenUser) and user.is_authenticated
        assert user.token is access and user.identity == access.subject
        seen.append(weakref.ref(access))
        await PlainTextResponse("ok")(scope, receive, send)

    guard = ResourceGuard(
        endpoint,
        issuer=ISSUER,
        resource=RESOURCE,
        http_client=idp_http,
        limits=Limits(cache_size=2),
        clock=clock,
    )
    tokens = [token(user=f"user-{i}") for i in range(4)]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=guard), base_url="https://api.example"
    ) as client:
        first = await client.get("/", headers={"Authorization": f"Bearer {tokens[0]}"})
        assert first.status_code == 200  # the keys are fetched (and cached) by now
        gc.collect()
        gc.disable()
        try:
            for t in [*tokens[1:], tokens[3]]:  # the last one again: a cache hit
                r = await client.get("/", headers={"Authorization": f"Bearer {t}"})
                assert r.status_code == 200
            alive = [ref() is not None for ref in seen]
        finally:
            gc.enable()
    # Cache of 2: the two oldest tokens were evicted by the newer ones and freed by reference
    # counting alone, with the cyclic collector off. The two newest are still cached.
    assert alive == [False, False, True, True, True]
    assert seen[3]() is seen[4]()  # a cache hit answers with the cached token itself
