"""The verified-token cache: bounded under a flood of distinct tokens."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from rs_guard import JWTValidator
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
