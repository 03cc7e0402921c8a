"""#12 bad input: every mistake in the profile and issuer options is a ConfigurationError at
construction that names the option; a profile defined by the user works like a preset."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from starlette.applications import Starlette

from rs_guard import ConfigurationError, Issuer, ResourceGuard, TokenProfile
from rs_guard.profiles import PROFILES

from .conftest import server_for
from .vendors import RESOURCE, Vendor, VendorApp

ISSUER = "https://idp.example"


def build(**options: object) -> ResourceGuard:
    return ResourceGuard(Starlette(), resource=RESOURCE, **options)  # type: ignore[arg-type]


def test_unknown_profile_name() -> None:
    with pytest.raises(ConfigurationError, match=r"profile='okta2'"):
        build(issuer=ISSUER, profile="okta2")


def test_empty_issuer_list() -> None:
    with pytest.raises(ConfigurationError, match=r"issuers="):
        build(issuers=[])


def test_issuers_beside_issuer() -> None:
    with pytest.raises(ConfigurationError, match=r"issuers=.*issuer="):
        build(issuers=[Issuer(ISSUER)], issuer=ISSUER)


@pytest.mark.parametrize(
    "url", ["http://idp.example", "ftp://idp.example", "idp.example", "https://"]
)
def test_issuer_not_https_outside_loopback(url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"issuers=.*https"):
        build(issuers=[Issuer(url)])


def test_http_issuer_on_loopback_is_allowed() -> None:
    build(issuers=[Issuer("http://127.0.0.1:8080"), Issuer("http://localhost:9000/realms/x")])


def test_tenant_template_needs_an_allow_list() -> None:
    with pytest.raises(ConfigurationError, match=r"tenants="):
        build(issuers=[Issuer("https://login.microsoftonline.com/{tenant}/v2.0")])
    with pytest.raises(ConfigurationError, match=r"tenants="):
        build(issuers=[Issuer(ISSUER, tenants=["t"])])


def test_issuer_listed_twice() -> None:
    with pytest.raises(ConfigurationError, match=r"twice"):
        build(issuers=[Issuer(ISSUER), Issuer(ISSUER, profile="okta")])


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"types": ["jwt"], "client_claims": ["azp"]}, "name"),
        ({"name": "mine", "client_claims": ["azp"]}, "types"),
        ({"name": "mine", "types": ["jwt"]}, "client_claims"),
        ({"name": "mine", "types": [], "client_claims": ["azp"]}, "types="),
        ({"name": "mine", "types": ["jwt"], "client_claims": []}, "client_claims="),
        ({"name": "mine", "types": ["jwt"], "client_claims": ["a"], "scope_shape": "csv"}, "scope"),
        ({"name": "mine", "types": ["jwt"], "client_claims": ["a"], "audience": "x"}, "audience="),
        ({"name": "mine", "types": ["jwt"], "client_claims": ["a"], "colour": 1}, "colour"),
    ],
)
def test_profile_with_a_missing_or_bad_field(fields: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        build(issuer=ISSUER, profile=fields)


def test_profile_cannot_be_combined_with_a_validator() -> None:
    from rs_guard import JWTValidator
    from rs_guard.keys import JWKSCache

    validator = JWTValidator(issuer=ISSUER, audience=RESOURCE, keys=JWKSCache(ISSUER + "/jwks"))
    with pytest.raises(ConfigurationError, match=r"profile="):
        build(issuer=ISSUER, validator=validator, profile="okta")


def test_every_preset_says_what_stops_an_id_token() -> None:
    assert {"rfc9068", "keycloak", "auth0", "entra-v1", "entra-v2", "okta", "cognito"} <= set(
        PROFILES
    )
    assert all(p.stops_id_tokens for p in PROFILES.values())


@pytest.mark.anyio
async def test_a_profile_of_ones_own(
    guarded: Callable[..., httpx.AsyncClient], idp_http: httpx.AsyncClient, vendor_app: VendorApp
) -> None:
    """The Okta preset written out by hand (as a config file would): same answers."""
    okta: Vendor = next(v for v, _ in vendor_app._docs.values() if v.name == "okta")
    mine = TokenProfile(
        name="my-okta",
        types=[None, "jwt"],
        client_claims=["cid"],
        scope_claim="scp",
        scope_shape="array",
        role_claims=["groups"],
        forbidden_jti_prefixes=["ID."],
    )
    client = guarded(server=server_for(okta, idp_http), audience=okta.audience, profile=mine)
    ok = await client.get("/whoami", headers={"Authorization": f"Bearer {okta.access_token()}"})
    assert ok.status_code == 200
    assert ok.json()["scopes"] == okta.expect_scopes
    refused = await client.get("/whoami", headers={"Authorization": f"Bearer {okta.id_token()}"})
    assert refused.status_code == 401
