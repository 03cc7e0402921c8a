"""The RFCs' own example values, replayed against the IdP and the resource server."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from rs_guard.idp import IdP

from .conftest import REDIRECT, challenge_of

pytestmark = pytest.mark.anyio

# RFC 7636 Appendix B.
RFC7636_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC7636_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


async def test_rfc7636_appendix_b_pair(idp: IdP, idp_http: httpx.AsyncClient) -> None:
    idp.login_as("alice")
    resp = await idp_http.get(
        "/authorize",
        params={
            "response_type": "code",
            "client_id": "spa",
            "redirect_uri": "https://spa.example/cb",
            "code_challenge": RFC7636_CHALLENGE,
            "code_challenge_method": "S256",
        },
    )
    code = parse_qs(urlsplit(resp.headers["location"]).query)["code"][0]
    tok = await idp_http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "https://spa.example/cb",
            "client_id": "spa",
            "code_verifier": RFC7636_VERIFIER,
        },
    )
    assert tok.status_code == 200, tok.text


async def test_rfc6750_example_token_is_well_formed_but_unknown(
    api: Callable[..., httpx.AsyncClient],
) -> None:
    """§2.1's `Authorization: Bearer mF_9.B5f-4.1JqM` is syntactically fine: 401
    invalid_token, not 400 invalid_request; the same for §2.2's form body."""
    async with api(bearer_methods=("header", "body")) as client:
        header = await client.get("/whoami", headers={"Authorization": "Bearer mF_9.B5f-4.1JqM"})
        body = await client.post("/whoami", data={"access_token": "mF_9.B5f-4.1JqM"})
    for resp in (header, body):
        assert resp.status_code == 401
        assert challenge_of(resp).params["error"] == "invalid_token"


async def test_rfc7009_example_request(idp_http: httpx.AsyncClient) -> None:
    """§2.1's example: token=45ghiukldjahdnhzdauz&token_type_hint=refresh_token -> 200."""
    resp = await idp_http.post(
        "/revoke",
        content=b"token=45ghiukldjahdnhzdauz&token_type_hint=refresh_token",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=("service", "service-secret"),
    )
    assert resp.status_code == 200


async def test_rfc8414_section_3_1_example() -> None:
    """Issuer https://example.com/issuer1 ->
    https://example.com/.well-known/oauth-authorization-server/issuer1."""
    idp = IdP("https://example.com/issuer1")
    async with httpx.AsyncClient(transport=idp.transport(), base_url="https://example.com") as c:
        resp = await c.get("/.well-known/oauth-authorization-server/issuer1")
    assert resp.status_code == 200
    assert resp.json()["issuer"] == "https://example.com/issuer1"


@pytest.mark.parametrize(
    "resource", ["foo", "/relative", "https://api.example/x#frag", "urn:example:thing#f"]
)
async def test_rfc8707_invalid_target(idp_http: httpx.AsyncClient, resource: str) -> None:
    """§2: a resource that is not an absolute URI without fragment -> invalid_target."""
    resp = await idp_http.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": resource},
        auth=("service", "service-secret"),
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_target"


async def test_rfc8707_token_request_cannot_widen_the_authorized_resources(
    idp: IdP, idp_http: httpx.AsyncClient
) -> None:
    from .test_rfc9470 import _pkce

    idp.login_as("alice")
    verifier, challenge = _pkce()
    resp = await idp_http.get(
        "/authorize",
        params={
            "response_type": "code",
            "client_id": "web-app",
            "redirect_uri": REDIRECT,
            "scope": "items:read",
            "resource": "https://api.example/items",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    code = parse_qs(urlsplit(resp.headers["location"]).query)["code"][0]
    tok = await idp_http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "resource": "https://other.example/",
        },
        auth=("web-app", "web-secret"),
    )
    assert tok.status_code == 400 and tok.json()["error"] == "invalid_target"


async def test_rfc6749_request_rules(idp_http: httpx.AsyncClient) -> None:
    """§3.1: parameters sent at most once; §2.3: one authentication method per request;
    §3.2: the token endpoint takes POST only."""
    repeated = await idp_http.post(
        "/token",
        content=b"grant_type=client_credentials&grant_type=client_credentials",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=("service", "service-secret"),
    )
    both = await idp_http.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "service",
            "client_secret": "service-secret",
        },
        auth=("service", "service-secret"),
    )
    get = await idp_http.get("/token", params={"grant_type": "client_credentials"})
    assert repeated.status_code == 400 and repeated.json()["error"] == "invalid_request"
    assert both.status_code == 400 and both.json()["error"] == "invalid_request"
    assert get.status_code == 405
