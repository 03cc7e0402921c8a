"""The one route table: routes, discovery, endpoint(), CORS and fault names all agree."""

from __future__ import annotations

import inspect

import httpx
import pytest

from rs_guard.idp import FAULT_SWITCHES, IdP
from rs_guard.idp._routes import ROUTES, cors_paths

ISSUER = "https://idp.example/tenant"


def test_every_endpoint_resolves_to_a_coroutine_function() -> None:
    idp = IdP(ISSUER)
    paths = {getattr(route, "path", None) for route in idp.app.routes}
    for spec in ROUTES:
        assert f"/tenant{spec.path}" in paths
        module, _, name = spec.endpoint.partition(":")
        endpoint = getattr(__import__(f"rs_guard.idp.endpoints.{module}", fromlist=[name]), name)
        assert inspect.iscoroutinefunction(endpoint)


def test_discovery_and_endpoint_urls_come_from_the_table() -> None:
    idp = IdP(ISSUER)
    doc = idp.metadata()
    for spec in ROUTES:
        if spec.member is not None:
            assert doc[spec.member] == idp.endpoint(spec.name) == ISSUER + spec.path
    assert idp.endpoint("ppid/convert") == f"{ISSUER}/ppid/convert"


def test_fault_switches_and_cors_paths_come_from_the_table() -> None:
    idp = IdP(ISSUER)
    assert idp.faults.names == FAULT_SWITCHES == tuple(s.fault for s in ROUTES if s.fault)
    with pytest.raises(ValueError):
        idp.faults.jwsk = "down"  # a typo is refused, not silently ignored
    assert set(cors_paths("/tenant")) == {
        "/tenant/token",
        "/tenant/userinfo",
        "/tenant/jwks",
        "/tenant/revoke",
        "/tenant/.well-known/openid-configuration",
        "/tenant/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration/tenant",
        "/.well-known/oauth-authorization-server/tenant",
    }


@pytest.mark.anyio
async def test_whole_idp_outage_and_unreachable() -> None:
    idp = IdP(ISSUER)
    async with idp.http_client() as http:
        idp.faults.whole = "down"
        down = await http.get("/.well-known/openid-configuration")
        assert down.status_code == 503 and down.headers["retry-after"] == "1"
        idp.faults.whole = "unreachable"
        with pytest.raises(httpx.ConnectError):
            await http.get("/jwks")
        idp.faults.reset()
        assert (await http.get("/jwks")).status_code == 200
