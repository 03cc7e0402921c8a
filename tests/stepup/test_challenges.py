"""Step-up and scope challenges through HTTP, on all three surfaces, with exact header strings."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import httpx
import pytest

from rs_guard.challenge import authorization_params, decode_claims, parse_bearer_challenge

from .conftest import METADATA_URL, RESOURCE, Clock, bearer

pytestmark = pytest.mark.anyio

RFC9470_ACR = (
    'Bearer error="insufficient_user_authentication", '
    'error_description="A different authentication level is required", '
    'acr_values="myACR"'
)
RFC9470_MAX_AGE = (
    'Bearer error="insufficient_user_authentication", '
    'error_description="More recent authentication is required", '
    'max_age="5"'
)
# Every parameter is `name="value"` with the value inside RFC 6750's charset.
QUOTED = re.compile(r'^Bearer( [a-z_]+="[\x20\x21\x23-\x5b\x5d-\x7e]*",?)+$')


def assert_all_quoted(challenge: str) -> None:
    assert QUOTED.match(challenge), challenge
    assert challenge.count('"') % 2 == 0


async def get(api: httpx.AsyncClient, path: str, token: str | None = None) -> httpx.Response:
    return await api.get(path, headers=bearer(token) if token else {})


# -- RFC 9470 §3, byte for byte ----------------------------------------------------------------


async def test_rfc9470_acr_example_byte_for_byte(
    make_api: Callable[..., httpx.AsyncClient], token: Callable[..., str], clock: Clock
) -> None:
    async with make_api(serve_metadata=False) as api:
        r = await get(api, "/purchase", token(acr="pwd", auth_time=int(clock.now)))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == RFC9470_ACR
    assert r.json()["error"] == "insufficient_user_authentication"
    assert r.headers["cache-control"] == "no-store"


async def test_rfc9470_max_age_example_byte_for_byte(
    make_api: Callable[..., httpx.AsyncClient], token: Callable[..., str], clock: Clock
) -> None:
    # RFC 9470's example has max_age=5: judged without clock leeway (max_age shares exp's).
    async with make_api(serve_metadata=False, leeway=0) as api:
        r = await get(api, "/recent", token(auth_time=int(clock.now) - 6))
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == RFC9470_MAX_AGE
        ok = await get(api, "/recent", token(auth_time=int(clock.now) - 5))
        assert ok.status_code == 200


async def test_rfc9470_challenges_carry_resource_metadata_when_served(
    api: httpx.AsyncClient, token: Callable[..., str], clock: Clock
) -> None:
    r = await get(api, "/purchase", token(acr="pwd"))
    assert r.headers["www-authenticate"] == (RFC9470_ACR + f', resource_metadata="{METADATA_URL}"')
    r = await get(api, "/recent", token(auth_time=int(clock.now) - 3600))
    assert r.headers["www-authenticate"] == (
        RFC9470_MAX_AGE + f', resource_metadata="{METADATA_URL}"'
    )


async def test_matching_acr_passes_and_acr_list_is_any_of(
    api: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    assert (await get(api, "/purchase", token(acr="myACR"))).status_code == 200
    for acr in ("mf", "phr"):
        r = await get(api, "/mf", token(acr=acr, scope="payments"))
        assert r.status_code == 200, acr
        assert r.json()["acr"] == acr
    r = await get(api, "/mf", token(acr="pwd", scope="payments"))
    assert r.status_code == 401
    assert parse_bearer_challenge(r.headers["www-authenticate"])["acr_values"] == "mf phr"


@pytest.mark.parametrize(
    "auth_time",
    [None, "1800000000", True, [1_800_000_000], {"t": 1}, 1_800_000_000 + 3600],
    ids=["missing", "string", "bool", "list", "object", "future"],
)
async def test_auth_time_missing_or_wrong_type_is_unmet(
    api: httpx.AsyncClient, token: Callable[..., str], auth_time: object
) -> None:
    claims = {} if auth_time is None else {"auth_time": auth_time}
    r = await get(api, "/fresh", token(claims=claims))
    assert r.status_code == 401
    challenge = r.headers["www-authenticate"]
    assert 'error="insufficient_user_authentication"' in challenge
    assert 'max_age="300"' in challenge
    assert "acr_values" not in challenge


@pytest.mark.parametrize("acr", [None, 42, ["mf"], {"v": "mf"}, True], ids=str)
async def test_acr_missing_or_wrong_type_is_unmet(
    api: httpx.AsyncClient, token: Callable[..., str], acr: object
) -> None:
    claims = {} if acr is None else {"acr": acr}
    r = await get(api, "/mf", token(scope="payments", claims=claims))
    assert r.status_code == 401
    assert 'acr_values="mf phr"' in r.headers["www-authenticate"]


async def test_acr_and_max_age_both_short_in_one_challenge(
    api: httpx.AsyncClient, token: Callable[..., str], clock: Clock
) -> None:
    r = await get(api, "/strict", token(scope="payments", acr="pwd", auth_time=0))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == (
        'Bearer error="insufficient_user_authentication", '
        'error_description="A different authentication level is required", '
        'scope="payments", '
        f'acr_values="mf", max_age="300", resource_metadata="{METADATA_URL}"'
    )
    fresh = token(scope="payments", acr="mf", auth_time=int(clock.now) - 10)
    assert (await get(api, "/strict", fresh)).status_code == 200


async def test_scope_and_authentication_level_short_in_one_challenge(
    api: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    # One round of re-authorization: the 401 asks for the scope and the acr together, and its
    # description names both (#15).
    r = await get(api, "/strict", token(scope="other", acr="pwd"))
    assert r.status_code == 401
    params = parse_bearer_challenge(r.headers["www-authenticate"])
    assert params["error"] == "insufficient_user_authentication"
    assert params["scope"] == "payments"
    assert params["acr_values"] == "mf"
    assert params["error_description"] == (
        "A different authentication level is required, and scope payments"
    )


async def test_scope_alone_short_is_a_403(
    api: httpx.AsyncClient, token: Callable[..., str], clock: Clock
) -> None:
    r = await get(api, "/strict", token(scope="other", acr="mf", auth_time=int(clock.now)))
    assert r.status_code == 403
    assert parse_bearer_challenge(r.headers["www-authenticate"])["error"] == "insufficient_scope"


# -- MCP authorization examples (parameters and quoting) ---------------------------------------


async def test_mcp_401_example(api: httpx.AsyncClient) -> None:
    r = await get(api, "/files/read")
    assert r.status_code == 401
    challenge = r.headers["www-authenticate"]
    assert_all_quoted(challenge)
    assert parse_bearer_challenge(challenge) == {
        "resource_metadata": "https://mcp.example.com/.well-known/oauth-protected-resource",
        "scope": "files:read",
    }


async def test_mcp_403_example(api: httpx.AsyncClient, token: Callable[..., str]) -> None:
    r = await get(api, "/files", token(scope="files:read"))
    assert r.status_code == 403
    challenge = r.headers["www-authenticate"]
    assert_all_quoted(challenge)
    assert parse_bearer_challenge(challenge) == {
        "error": "insufficient_scope",
        "scope": "files:read files:write user:profile",
        "resource_metadata": "https://mcp.example.com/.well-known/oauth-protected-resource",
        "error_description": "Additional file write permission required",
    }
    assert r.json() == {
        "error": "insufficient_scope",
        "error_description": "Additional file write permission required",
    }


async def test_every_401_and_403_names_the_metadata(
    api: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    responses = [
        await get(api, "/files/read"),
        await get(api, "/files/read", "garbage.token.value"),
        await get(api, "/files", token(scope="files:read")),
        await get(api, "/purchase", token(acr="pwd")),
        await get(api, "/phone", token()),
    ]
    for r in responses:
        assert r.status_code in (401, 403)
        params = parse_bearer_challenge(r.headers["www-authenticate"])
        assert params is not None
        assert params["resource_metadata"] == METADATA_URL
        assert_all_quoted(r.headers["www-authenticate"])


# -- insufficient_scope ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "granted",
    ["", "files:read", "files:write", "user:profile", "files:read user:profile"],
)
async def test_insufficient_scope_names_every_scope_in_one_challenge(
    api: httpx.AsyncClient, token: Callable[..., str], granted: str
) -> None:
    r = await get(api, "/files", token(scope=granted))
    assert r.status_code == 403
    params = parse_bearer_challenge(r.headers["www-authenticate"])
    assert params is not None
    # Never one missing scope at a time: the whole set the operation needs.
    assert params["scope"] == "files:read files:write user:profile"


async def test_offline_access_never_challenged(
    api: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    r = await get(api, "/files", token(scope="offline_access"))
    assert r.status_code == 403
    assert "offline_access" not in r.headers["www-authenticate"]


async def test_scope_hierarchy_write_implies_read(
    api: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    r = await get(api, "/files/read", token(scope="files:write"))
    assert r.status_code == 200
    assert "files:read" in r.json()["scopes"]  # request.auth.scopes includes implied scopes
    r = await get(api, "/files", token(scope="files:write user:profile"))
    assert r.status_code == 200
    r = await get(api, "/files/read", token(scope="files:readonly"))
    assert r.status_code == 403


async def test_scope_hierarchy_admin_implies_everything_under_it(
    api: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    assert (await get(api, "/admin/users", token(scope="admin"))).status_code == 200
    assert (await get(api, "/admin/users", token(scope="admin:users"))).status_code == 200
    for granted in ("admin:groups", "administrator", "adminx", ""):
        r = await get(api, "/admin/users", token(scope=granted))
        assert r.status_code == 403, granted
        assert 'scope="admin:users"' in r.headers["www-authenticate"]


async def test_without_hierarchy_write_does_not_imply_read(
    make_api: Callable[..., httpx.AsyncClient], token: Callable[..., str]
) -> None:
    async with make_api(scope_hierarchy=None) as api:
        assert (await get(api, "/files/read", token(scope="files:write"))).status_code == 403


# -- claims requirement ------------------------------------------------------------------------


async def test_claims_requirement_gives_an_oidc_claims_request(
    api: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    r = await get(api, "/phone", token())
    assert r.status_code == 401
    challenge = r.headers["www-authenticate"]
    assert_all_quoted(challenge)
    params = parse_bearer_challenge(challenge)
    assert params is not None
    assert params["error"] == "insufficient_user_authentication"
    assert params["error_description"] == "Additional verified user attributes are required"
    request = decode_claims(params["claims"])
    assert request == {"id_token": {"phone_number_verified": {"value": True}}}
    # What the client puts in its authorization request.
    assert json.loads(authorization_params(challenge)["claims"]) == request


@pytest.mark.parametrize("value", [False, 1, "true", None, [True]], ids=repr)
async def test_claims_requirement_is_strict_json_equality(
    api: httpx.AsyncClient, token: Callable[..., str], value: object
) -> None:
    r = await get(api, "/phone", token(claims={"phone_number_verified": value}))
    assert r.status_code == 401


async def test_claims_requirement_met(api: httpx.AsyncClient, token: Callable[..., str]) -> None:
    r = await get(api, "/phone", token(claims={"phone_number_verified": True}))
    assert r.status_code == 200


# -- step-up decided inside the handler --------------------------------------------------------


async def test_handler_decides_the_level_from_the_payment_amount(
    api: httpx.AsyncClient, token: Callable[..., str], clock: Clock
) -> None:
    weak = token(acr="pwd", auth_time=int(clock.now))
    r = await api.post("/pay", json={"amount": 20}, headers=bearer(weak))
    assert r.status_code == 200
    assert r.json()["paid"] == 20
    r = await api.post("/pay", json={"amount": 5000}, headers=bearer(weak))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == (
        'Bearer error="insufficient_user_authentication", '
        'error_description="A different authentication level is required", '
        f'acr_values="mf", resource_metadata="{METADATA_URL}"'
    )
    stale = token(acr="mf", auth_time=int(clock.now) - 3600)
    r = await api.post("/pay", json={"amount": 5000}, headers=bearer(stale))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == (
        'Bearer error="insufficient_user_authentication", '
        'error_description="More recent authentication is required", '
        f'max_age="300", resource_metadata="{METADATA_URL}"'
    )
    strong = token(acr="mf", auth_time=int(clock.now) - 10)
    r = await api.post("/pay", json={"amount": 5000}, headers=bearer(strong))
    assert r.status_code == 200


async def test_handler_can_raise_the_error_itself(
    api: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    r = await api.post("/wire", json={"amount": 5000}, headers=bearer(token(acr="pwd")))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == (
        'Bearer error="insufficient_user_authentication", '
        'error_description="A wire transfer this large needs a multi-factor login", '
        f'acr_values="mf", resource_metadata="{METADATA_URL}"'
    )
    r = await api.post("/wire", json={"amount": 5000}, headers=bearer(token(acr="mf")))
    assert r.status_code == 200


async def test_wrong_audience_is_refused_before_any_requirement(
    api: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    other = token(audience="https://other.example.com", acr="myACR")
    r = await get(api, "/purchase", other)
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert RESOURCE  # the audience checked is the configured resource


async def test_late_step_up_when_the_guard_wraps_the_app_from_outside(
    idp_http: httpx.AsyncClient, token: Callable[..., str], clock: Clock
) -> None:
    from starlette.applications import Starlette

    from rs_guard import ResourceGuard
    from rs_guard.decorators import exception_handlers

    from .conftest import HANDLER_ROUTES, ISSUER

    # Starlette's ServerErrorMiddleware sits between the guard and the handler here, so the
    # exception handler renders the challenge (never a 500).
    inner = Starlette(routes=HANDLER_ROUTES, exception_handlers=exception_handlers)
    app = ResourceGuard(inner, issuer=ISSUER, resource=RESOURCE, http_client=idp_http, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=RESOURCE) as api:
        weak = token(acr="pwd", auth_time=int(clock.now))
        r = await api.post("/pay", json={"amount": 5000}, headers=bearer(weak))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == (
        'Bearer error="insufficient_user_authentication", '
        'error_description="A different authentication level is required", '
        f'acr_values="mf", resource_metadata="{METADATA_URL}"'
    )
    assert r.headers["cache-control"] == "no-store"
