"""#12 items 1, 2 and 5: provider-shaped tokens through the public API, one preset each.

Every vendor's access token (header, claims and JWK Set shaped as its documentation shows; the
URLs are in `vendors.py`, on each Vendor's `docs`) is accepted with that profile, with the
client, scopes and roles read from the vendor's own claims; its ID token, signed by the same
key and naming the same audience where the vendor allows that, is refused.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from rs_guard import Requirement

from .conftest import server_for
from .vendors import Vendor, VendorApp, vendors

pytestmark = pytest.mark.anyio

VENDORS = {v.name: v for v in vendors()}
NAMES = sorted(VENDORS)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def guard_for(
    vendor: Vendor,
    guarded: Callable[..., httpx.AsyncClient],
    idp_http: httpx.AsyncClient,
    **kw: object,
) -> httpx.AsyncClient:
    return guarded(
        server=server_for(vendor, idp_http), audience=vendor.audience, profile=vendor.profile, **kw
    )


@pytest.fixture(params=NAMES)
def vendor(request: pytest.FixtureRequest, vendor_app: VendorApp) -> Vendor:
    # The app serves the keys of `vendors()` built for it: use that very object.
    name = request.param
    return next(v for v, _ in vendor_app._docs.values() if v.name == name)


async def test_access_token_accepted_and_read_the_vendor_way(
    vendor: Vendor, guarded: Callable[..., httpx.AsyncClient], idp_http: httpx.AsyncClient
) -> None:
    client = guard_for(vendor, guarded, idp_http)
    answer = await client.get("/whoami", headers=bearer(vendor.access_token()))
    assert answer.status_code == 200, (answer.status_code, answer.headers, vendor.docs)
    body = answer.json()
    assert body["client_id"] == vendor.expect_client
    assert body["scopes"] == vendor.expect_scopes
    assert body["roles"] == vendor.expect_roles


# What stops each vendor's ID token (the profile's `stops_id_tokens`, docs/guides/providers/).
ID_TOKEN_STOPPED_BY = {
    "keycloak": "not_access_token",  # typ claim "ID", not "Bearer"
    "auth0": "missing_claim",  # no azp; its aud (the client id) would fail next
    "entra-v1": "not_access_token",  # neither scp nor roles
    "entra-v2": "missing_claim",  # no azp, though aud and roles are those of the API
    "okta": "id_token",  # jti "ID."
    "cognito": "not_access_token",  # token_use "id"
}


async def test_id_token_refused(
    vendor: Vendor, guarded: Callable[..., httpx.AsyncClient], idp_http: httpx.AsyncClient
) -> None:
    reasons: list[str] = []

    def observe(event: str, fields: dict[str, object]) -> None:
        if event == "token_rejected":
            reasons.append(str(fields["reason"]))

    client = guard_for(vendor, guarded, idp_http, observer=observe)
    answer = await client.get("/whoami", headers=bearer(vendor.id_token()))
    assert answer.status_code == 401
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]
    assert reasons == [ID_TOKEN_STOPPED_BY[vendor.name]]


async def test_the_strict_default_refuses_every_vendor_token(
    vendor: Vendor, guarded: Callable[..., httpx.AsyncClient], idp_http: httpx.AsyncClient
) -> None:
    """`rfc9068` stays the default and stays strict: none of these is an RFC 9068 token."""
    client = guarded(server=server_for(vendor, idp_http), audience=vendor.audience)
    answer = await client.get("/whoami", headers=bearer(vendor.access_token()))
    assert answer.status_code == 401


async def test_scope_requirements_work_the_same_under_every_profile(
    vendor: Vendor, guarded: Callable[..., httpx.AsyncClient], idp_http: httpx.AsyncClient
) -> None:
    granted = vendor.expect_scopes[-1]
    ok = guard_for(
        vendor, guarded, idp_http, requirements={"/items": Requirement(scopes=(granted,))}
    )
    assert (await ok.get("/items", headers=bearer(vendor.access_token()))).status_code == 200
    short = guard_for(
        vendor, guarded, idp_http, requirements={"/items": Requirement(scopes=("nope",))}
    )
    answer = await short.get("/items", headers=bearer(vendor.access_token()))
    assert answer.status_code == 403
    assert 'error="insufficient_scope"' in answer.headers["www-authenticate"]


async def test_token_for_another_audience_refused(
    vendor: Vendor, guarded: Callable[..., httpx.AsyncClient], idp_http: httpx.AsyncClient
) -> None:
    client = guard_for(vendor, guarded, idp_http)
    if vendor.name == "cognito":
        token = vendor.access_token(client_id="another-app-client")
    else:
        token = vendor.access_token(aud="https://other.example")
    assert (await client.get("/whoami", headers=bearer(token))).status_code == 401


async def test_keycloak_refresh_and_logout_tokens_refused(
    guarded: Callable[..., httpx.AsyncClient], idp_http: httpx.AsyncClient, vendor_app: VendorApp
) -> None:
    keycloak = next(v for v, _ in vendor_app._docs.values() if v.name == "keycloak")
    client = guard_for(keycloak, guarded, idp_http)
    refresh = keycloak.access_token(typ="Refresh")
    logout = keycloak.sign(
        {
            **{k: keycloak.access_claims[k] for k in ("iss", "aud", "sub", "iat", "exp", "jti")},
            "typ": "Logout",
            "sid": "s",
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        },
        {"alg": "RS256", "typ": "logout+jwt"},
    )
    for token in (refresh, logout):
        assert (await client.get("/whoami", headers=bearer(token))).status_code == 401


async def test_entra_tokens_of_the_other_version_refused(
    guarded: Callable[..., httpx.AsyncClient], idp_http: httpx.AsyncClient, vendor_app: VendorApp
) -> None:
    v2 = next(v for v, _ in vendor_app._docs.values() if v.name == "entra-v2")
    client = guard_for(v2, guarded, idp_http)
    v1_shaped = v2.access_token(ver="1.0")
    assert (await client.get("/whoami", headers=bearer(v1_shaped))).status_code == 401


async def test_id_token_claims_refused_under_every_profile(
    vendor: Vendor, guarded: Callable[..., httpx.AsyncClient], idp_http: httpx.AsyncClient
) -> None:
    client = guard_for(vendor, guarded, idp_http)
    for claim in ("nonce", "at_hash"):
        token = vendor.access_token(**{claim: "x"})
        assert (await client.get("/whoami", headers=bearer(token))).status_code == 401
