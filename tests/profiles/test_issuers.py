"""#12 item 3: several issuers in one guard, routed by exact `iss` before any fetch; Entra
tenant allow-lists; every issuer in the protected-resource metadata; an issuer that cannot be
reached is a 503 with Retry-After."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from rs_guard import Issuer

from .vendors import OTHER_TENANT, TENANT, Vendor, VendorApp

pytestmark = pytest.mark.anyio


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def served(vendor_app: VendorApp, name: str) -> Vendor:
    return next(v for v, _ in vendor_app._docs.values() if v.name == name)


def issuer_of(vendor: Vendor) -> Issuer:
    return Issuer(
        vendor.issuer, audience=vendor.audience, profile=vendor.profile, jwks_uri=vendor.jwks_uri
    )


async def test_each_issuer_with_its_own_keys_audience_and_profile(
    guarded: Callable[..., httpx.AsyncClient], idp_http: httpx.AsyncClient, vendor_app: VendorApp
) -> None:
    names = ("keycloak", "auth0", "okta", "cognito")
    chosen = [served(vendor_app, n) for n in names]
    client = guarded(issuers=[issuer_of(v) for v in chosen], http_client=idp_http)
    for vendor in chosen:
        answer = await client.get("/whoami", headers=bearer(vendor.access_token()))
        assert answer.status_code == 200, (vendor.name, answer.headers)
        assert answer.json()["client_id"] == vendor.expect_client
        refused = await client.get("/whoami", headers=bearer(vendor.id_token()))
        assert refused.status_code == 401, vendor.name
    # A Keycloak token re-signed as if Okta issued it: Okta's keys, not Keycloak's, decide.
    keycloak, okta = chosen[0], chosen[2]
    forged = keycloak.sign({**okta.access_claims})
    assert (await client.get("/whoami", headers=bearer(forged))).status_code == 401


async def test_an_unlisted_issuer_costs_no_request(
    guarded: Callable[..., httpx.AsyncClient], idp_http: httpx.AsyncClient, vendor_app: VendorApp
) -> None:
    keycloak, auth0 = served(vendor_app, "keycloak"), served(vendor_app, "auth0")
    client = guarded(issuers=[issuer_of(keycloak)], http_client=idp_http)
    for iss in (auth0.issuer, keycloak.issuer + "/", keycloak.issuer.upper(), ""):
        token = keycloak.access_token(iss=iss)
        answer = await client.get("/whoami", headers=bearer(token))
        assert answer.status_code == 401
    assert vendor_app.total == 0  # no discovery, no JWKS: nothing was fetched for them


async def test_entra_tenant_allow_list_and_tid(
    guarded: Callable[..., httpx.AsyncClient], idp_http: httpx.AsyncClient, vendor_app: VendorApp
) -> None:
    v2 = served(vendor_app, "entra-v2")
    template = Issuer(
        "https://login.microsoftonline.com/{tenant}/v2.0",
        audience=v2.audience,
        profile="entra-v2",
        tenants=[TENANT],
        jwks_uri=v2.jwks_uri,
    )
    client = guarded(issuers=[template], http_client=idp_http)
    assert (await client.get("/whoami", headers=bearer(v2.access_token()))).status_code == 200
    # The allowed tenant's issuer with another tenant's tid: refused.
    mixed = v2.access_token(tid=OTHER_TENANT)
    assert (await client.get("/whoami", headers=bearer(mixed))).status_code == 401
    # Another tenant altogether: not listed, refused without a fetch.
    before = vendor_app.total
    other = v2.access_token(
        iss=f"https://login.microsoftonline.com/{OTHER_TENANT}/v2.0", tid=OTHER_TENANT
    )
    assert (await client.get("/whoami", headers=bearer(other))).status_code == 401
    assert vendor_app.total == before


async def test_metadata_lists_every_issuer(
    guarded: Callable[..., httpx.AsyncClient], idp_http: httpx.AsyncClient, vendor_app: VendorApp
) -> None:
    keycloak, okta = served(vendor_app, "keycloak"), served(vendor_app, "okta")
    tenants = Issuer(
        "https://login.microsoftonline.com/{tenant}/v2.0",
        audience="x",
        profile="entra",
        tenants=[TENANT, OTHER_TENANT],
    )
    client = guarded(issuers=[issuer_of(keycloak), issuer_of(okta), tenants], http_client=idp_http)
    document = (await client.get("/.well-known/oauth-protected-resource/items")).json()
    assert document["authorization_servers"] == [
        keycloak.issuer,
        okta.issuer,
        f"https://login.microsoftonline.com/{TENANT}/v2.0",
        f"https://login.microsoftonline.com/{OTHER_TENANT}/v2.0",
    ]


async def test_a_listed_issuer_that_cannot_be_reached_is_a_503(
    guarded: Callable[..., httpx.AsyncClient], idp_http: httpx.AsyncClient, vendor_app: VendorApp
) -> None:
    keycloak, okta = served(vendor_app, "keycloak"), served(vendor_app, "okta")
    vendor_app.failing.add(okta.issuer)
    client = guarded(issuers=[issuer_of(keycloak), issuer_of(okta)], http_client=idp_http)
    down = await client.get("/whoami", headers=bearer(okta.access_token()))
    assert down.status_code == 503
    assert down.headers["retry-after"].isdigit()
    # The other issuer is unaffected.
    up = await client.get("/whoami", headers=bearer(keycloak.access_token()))
    assert up.status_code == 200
