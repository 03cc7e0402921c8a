"""RFC 6750 (Bearer token usage) against ResourceGuard: §2 ways of sending a token, §3 the
challenges, reproduced byte for byte where the RFC gives the exact header."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from .conftest import Clock, bearer, challenge_of

pytestmark = pytest.mark.anyio


# -- §3 examples, byte for byte ----------------------------------------------------------


async def test_no_credentials_is_the_rfc_example(api: Callable[..., httpx.AsyncClient]) -> None:
    """§3: `WWW-Authenticate: Bearer realm="example"`, and no error code without credentials."""
    async with api(realm="example", serve_metadata=False) as client:
        resp = await client.get("/whoami")
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == 'Bearer realm="example"'
    assert "error" not in challenge_of(resp).params


async def test_expired_token_is_the_rfc_example(
    api: Callable[..., httpx.AsyncClient], mint: Callable[..., str], clock: Clock
) -> None:
    """§3: `Bearer realm="example", error="invalid_token", error_description="The access
    token expired"` (the RFC folds it over three lines; on the wire it is one)."""
    token = mint(lifetime=60)
    clock.now += 3600
    async with api(realm="example", serve_metadata=False) as client:
        resp = await client.get("/whoami", headers=bearer(token))
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == (
        'Bearer realm="example", error="invalid_token", '
        'error_description="The access token expired"'
    )
    challenge_of(resp)


async def test_expired_token_after_a_cache_hit_says_the_same(
    api: Callable[..., httpx.AsyncClient], mint: Callable[..., str], clock: Clock
) -> None:
    token = mint(lifetime=60)
    async with api(realm="example", serve_metadata=False) as client:
        assert (await client.get("/whoami", headers=bearer(token))).status_code == 200
        clock.now += 3600
        resp = await client.get("/whoami", headers=bearer(token))
    assert resp.headers["www-authenticate"] == (
        'Bearer realm="example", error="invalid_token", '
        'error_description="The access token expired"'
    )


async def test_insufficient_scope_is_403_with_scope(
    api: Callable[..., httpx.AsyncClient], mint: Callable[..., str]
) -> None:
    """§3.1: insufficient_scope -> 403, and `scope` names what the resource needs."""
    token = mint(scope="profile")
    async with api(realm="example", serve_metadata=False) as client:
        resp = await client.get("/items", headers=bearer(token))
    assert resp.status_code == 403
    ch = challenge_of(resp)
    assert ch.params["realm"] == "example"
    assert ch.params["error"] == "insufficient_scope"
    assert ch.params["scope"] == "items:read"


async def test_invalid_token_variants_are_401_invalid_token(
    api: Callable[..., httpx.AsyncClient], mint: Callable[..., str]
) -> None:
    good = mint()
    bad = [
        "not-a-jwt",
        good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        good.split(".")[0] + ".e30.",
        "abc==",  # b64token with padding: well-formed, just not a token we know
    ]
    async with api() as client:
        for token in bad:
            resp = await client.get("/whoami", headers=bearer(token))
            assert resp.status_code == 401, token
            assert challenge_of(resp).params["error"] == "invalid_token"
            assert token not in resp.text and token not in resp.headers["www-authenticate"]


# -- §2.1 Authorization request header ---------------------------------------------------


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_scheme_is_case_insensitive(
    api: Callable[..., httpx.AsyncClient], mint: Callable[..., str], scheme: str
) -> None:
    async with api() as client:
        resp = await client.get("/whoami", headers={"Authorization": f"{scheme} {mint()}"})
    assert resp.status_code == 200


async def test_one_or_more_spaces_after_the_scheme(
    api: Callable[..., httpx.AsyncClient], mint: Callable[..., str]
) -> None:
    """credentials = "Bearer" 1*SP b64token."""
    async with api() as client:
        resp = await client.get("/whoami", headers={"Authorization": f"Bearer   {mint()}"})
    assert resp.status_code == 200


@pytest.mark.parametrize(
    "value", ["Bearer", "Bearer ", "Bearer a b", "Bearer tok\u00e9n", "Bearer ==", "Bearer a,b"]
)
async def test_malformed_bearer_credentials_are_invalid_request(
    api: Callable[..., httpx.AsyncClient], value: str
) -> None:
    async with api() as client:
        resp = await client.get("/whoami", headers={"Authorization": value.encode("utf-8")})
    assert resp.status_code == 400
    assert challenge_of(resp).params["error"] == "invalid_request"


async def test_another_scheme_counts_as_no_bearer_credentials(
    api: Callable[..., httpx.AsyncClient],
) -> None:
    async with api(realm="example", serve_metadata=False) as client:
        resp = await client.get("/whoami", headers={"Authorization": "Basic YTpi"})
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == 'Bearer realm="example"'


# -- §2.2 form-encoded body parameter, §2.3 URI query parameter ----------------------------


async def test_body_parameter_when_enabled(
    api: Callable[..., httpx.AsyncClient], mint: Callable[..., str]
) -> None:
    token = mint()
    async with api(bearer_methods=("header", "body")) as client:
        ok = await client.post("/whoami", data={"access_token": token})
        # §2.2: only with Content-Type application/x-www-form-urlencoded and not with GET.
        json_body = await client.post("/whoami", json={"access_token": token})
        meta = await client.get("/.well-known/oauth-protected-resource/items")
    assert ok.status_code == 200 and ok.json()["sub"] == "alice"
    assert json_body.status_code == 401
    assert "error" not in challenge_of(json_body).params
    assert meta.json()["bearer_methods_supported"] == ["body", "header"]


async def test_body_parameter_off_by_default(
    api: Callable[..., httpx.AsyncClient], mint: Callable[..., str]
) -> None:
    async with api() as client:
        resp = await client.post("/whoami", data={"access_token": mint()})
    assert resp.status_code == 401
    assert "error" not in challenge_of(resp).params


async def test_query_parameter_refused_by_default(
    api: Callable[..., httpx.AsyncClient], mint: Callable[..., str]
) -> None:
    """§2.3 is discouraged (and banned by OAuth 2.1 / MCP): invalid_request, not a pass."""
    token = mint()
    async with api() as client:
        resp = await client.get("/whoami", params={"access_token": token})
    assert resp.status_code == 400
    assert challenge_of(resp).params["error"] == "invalid_request"
    assert token not in resp.text


async def test_query_parameter_when_enabled(
    api: Callable[..., httpx.AsyncClient], mint: Callable[..., str]
) -> None:
    async with api(bearer_methods=("header", "query")) as client:
        resp = await client.get("/whoami", params={"access_token": mint()})
    assert resp.status_code == 200
    # §2.3: a success answer to a request carrying the token in the URI SHOULD be private.
    assert "private" in resp.headers.get("cache-control", "")


async def test_more_than_one_method_is_invalid_request(
    api: Callable[..., httpx.AsyncClient], mint: Callable[..., str]
) -> None:
    """§2: clients MUST NOT use more than one method in one request."""
    token = mint()
    async with api(bearer_methods=("header", "body", "query")) as client:
        both = await client.post("/whoami", data={"access_token": token}, headers=bearer(token))
        query = await client.get("/whoami", params={"access_token": token}, headers=bearer(token))
        twice = await client.get("/whoami", params=[("access_token", token)] * 2)
    for resp in (both, query, twice):
        assert resp.status_code == 400
        assert challenge_of(resp).params["error"] == "invalid_request"


async def test_two_authorization_headers_is_invalid_request(
    api: Callable[..., httpx.AsyncClient], mint: Callable[..., str]
) -> None:
    token = mint()
    async with api() as client:
        resp = await client.get("/whoami", headers=[("Authorization", f"Bearer {token}")] * 2)
    assert resp.status_code == 400
    assert challenge_of(resp).params["error"] == "invalid_request"


async def test_error_answers_are_not_cached(
    api: Callable[..., httpx.AsyncClient], mint: Callable[..., str]
) -> None:
    async with api() as client:
        resp = await client.get("/items", headers=bearer(mint(scope="")))
    assert resp.status_code == 403
    assert resp.headers["cache-control"] == "no-store"
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json()["error"] == "insufficient_scope"
