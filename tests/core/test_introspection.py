"""Opaque-token validation through RFC 7662 introspection at the bundled IdP."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from rs_guard import IntrospectionUnavailable, IntrospectionValidator, InvalidToken
from rs_guard.idp import IdP
from rs_guard.introspection import Introspection

from .conftest import ISSUER, RESOURCE, Clock, CountingApp

pytestmark = pytest.mark.anyio


@pytest.fixture
def validator(idp: IdP, idp_http: httpx.AsyncClient, clock: Clock) -> IntrospectionValidator:
    idp.register_client(
        client_id="rs",
        client_secret="rs-secret",
        grant_types=["client_credentials"],
        served_resources=[RESOURCE],  # the resource server of RESOURCE (RFC 7662 §4)
    )
    return IntrospectionValidator(
        issuer=ISSUER,
        audience=RESOURCE,
        client_id="rs",
        client_secret="rs-secret",
        introspection_endpoint=f"{ISSUER}/introspect",
        http_client=idp_http,
        cache_ttl=30,
        clock=clock,
    )


async def test_active_token_accepted_and_cached(
    validator: IntrospectionValidator, token: Callable[..., str], counting: CountingApp
) -> None:
    t = token(scope="items:read", acr="mf")
    access = await validator.validate(t)
    assert access.scopes == ["items:read"] and access.acr == "mf"
    await validator.validate(t)
    assert counting.calls["/introspect"] == 1


async def test_cache_never_outlives_token(
    validator: IntrospectionValidator,
    token: Callable[..., str],
    clock: Clock,
    counting: CountingApp,
) -> None:
    t = token(lifetime=10)
    await validator.validate(t)
    clock.now += 11
    with pytest.raises(InvalidToken):
        await validator.validate(t)
    assert counting.calls["/introspect"] == 2


async def test_revoked_token_inactive(
    validator: IntrospectionValidator, token: Callable[..., str], idp: IdP
) -> None:
    t = token()
    idp.revoke(t)
    with pytest.raises(InvalidToken) as info:
        await validator.validate(t)
    assert info.value.reason == "inactive"


async def test_forged_token_inactive(validator: IntrospectionValidator) -> None:
    with pytest.raises(InvalidToken):
        await validator.validate("opaque-token-the-idp-never-issued")


async def test_token_for_other_audience_refused(
    validator: IntrospectionValidator, token: Callable[..., str], idp: IdP
) -> None:
    # The bundled IdP tells a resource server nothing about another audience's token; an AS
    # that does (here: "rs" made an introspector of every token) meets the validator's own
    # audience check.
    idp.register_client(
        "rs", "rs-secret", grant_types=["client_credentials"], introspects_any=True
    )
    with pytest.raises(InvalidToken) as info:
        await validator.validate(token(audience="https://other.example"))
    assert info.value.reason == "bad_audience"


@pytest.mark.parametrize("fault", ["down", "garbage", "slow"])
async def test_idp_faults_are_503_and_not_cached(
    idp: IdP, token: Callable[..., str], clock: Clock, fault: str
) -> None:
    idp.register_client(
        client_id="rs",
        client_secret="rs-secret",
        grant_types=["client_credentials"],
        served_resources=[RESOURCE],  # the resource server of RESOURCE (RFC 7662 §4)
    )
    idp.faults.introspection = fault
    idp.faults.delay = 1.0
    async with idp.http_client() as http:
        v = IntrospectionValidator(
            issuer=ISSUER,
            audience=RESOURCE,
            client_id="rs",
            client_secret="rs-secret",
            introspection_endpoint=f"{ISSUER}/introspect",
            http_client=http,
            timeout=0.2,
            clock=clock,
        )
        t = token()
        with pytest.raises(IntrospectionUnavailable):
            await v.validate(t)
        idp.faults.introspection = None
        assert (await v.validate(t)).subject


async def test_wrong_client_secret_is_503_not_401(
    idp: IdP, token: Callable[..., str], clock: Clock
) -> None:
    # A misconfigured resource server is a server problem, never the client's token's fault.
    idp.register_client(
        client_id="rs",
        client_secret="rs-secret",
        grant_types=["client_credentials"],
        served_resources=[RESOURCE],  # the resource server of RESOURCE (RFC 7662 §4)
    )
    async with idp.http_client() as http:
        v = IntrospectionValidator(
            issuer=ISSUER,
            audience=RESOURCE,
            client_id="rs",
            client_secret="wrong",
            introspection_endpoint=f"{ISSUER}/introspect",
            http_client=http,
            clock=clock,
        )
        with pytest.raises(IntrospectionUnavailable):
            await v.validate(token())


async def test_guard_routes_opaque_tokens_to_introspection(
    idp: IdP, make_client: Callable[..., httpx.AsyncClient], token: Callable[..., str]
) -> None:
    idp.register_client(
        client_id="rs",
        client_secret="rs-secret",
        grant_types=["client_credentials"],
        served_resources=[RESOURCE],  # the resource server of RESOURCE (RFC 7662 §4)
    )
    async with make_client(introspection=Introspection("rs", "rs-secret")) as c:
        # A JWT still takes the local path; an opaque string goes to introspection (inactive).
        assert (
            await c.get("/whoami", headers={"Authorization": f"Bearer {token()}"})
        ).status_code == 200
        r = await c.get("/whoami", headers={"Authorization": "Bearer opaque-abc"})
        assert r.status_code == 401
