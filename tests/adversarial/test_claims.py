"""RFC 9068 §4 / RFC 8725 §3.11-3.12: `typ`, `iss`, `aud`, `exp`, `nbf`, `iat`, required
claims, `scope`, `acr`, `auth_time` with wrong values and wrong JSON types, and token-type
confusion in every direction (access, ID, event, refresh tokens; other audiences)."""

from __future__ import annotations

from typing import Any

import pytest

from rs_guard.challenge import decode_claims
from rs_guard.introspection import Introspection

from .conftest import ISSUER, RESOURCE, START, World, challenge, expect
from .forge import DROP, idp_sign, parts, resign

pytestmark = pytest.mark.anyio

NOW = int(START)


# ----- typ (RFC 9068 §2.1, §4; RFC 8725 §3.11) -------------------------------------------


@pytest.mark.parametrize(
    "typ", ["at+jwt", "at+JWT", "AT+JWT", "application/at+jwt", "Application/AT+JWT"]
)
async def test_accepted_typ_spellings(world: World, typ: str) -> None:
    token = idp_sign(world.idp, {"alg": "ES256", "typ": typ}, parts(world.token())[1])
    assert (await world.get(token)).status_code == 200


@pytest.mark.parametrize(
    "typ",
    [
        DROP,
        None,
        "",
        "JWT",
        "jwt",
        "application/jwt",
        "JOSE",
        "JOSE+JSON",
        "secevent+jwt",
        "application/secevent+jwt",
        "logout+jwt",
        "dpop+jwt",
        "token-introspection+jwt",
        "at+jwt ",
        " at+jwt",
        "at+jwt;charset=utf-8",
        "application/application/at+jwt",
        "at-jwt",
        "at+jwe",
        1,
        True,
        ["at+jwt"],
        {"typ": "at+jwt"},
    ],
    ids=repr,
)
async def test_refused_typ(world: World, typ: Any) -> None:
    header = {"alg": "ES256", "typ": typ}
    if typ is DROP:
        del header["typ"]
    token = idp_sign(world.idp, header, parts(world.token())[1])
    expect(await world.get(token), 401, "invalid_token", "bad_typ", world.events)
    assert world.counter.total == 0  # typ is checked before any key is fetched


# ----- iss / aud ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "iss",
    [
        "https://evil.example",
        ISSUER + "/",
        "http://idp.example",
        "HTTPS://IDP.EXAMPLE",
        "https://IDP.example",
        "https://idp.example.evil.example",
        "https://idp.example:443",
        "https://idp.example\u0000",
        " https://idp.example",
        "https://idp.example#",
        "",
        [ISSUER],
        {"iss": ISSUER},
        1,
        True,
        None,
    ],
    ids=repr,
)
async def test_wrong_issuer(world: World, iss: Any) -> None:
    token = resign(world.idp, world.token(), iss=iss)  # PyJWT refuses to write some of these
    expect(await world.get(token), 401, "invalid_token", "bad_issuer", world.events)


@pytest.mark.parametrize(
    "aud",
    [
        "https://evil.example",
        RESOURCE + "/",
        RESOURCE.upper(),
        "https://api.example/Items",
        "https://api.example",
        RESOURCE + "/other",
        RESOURCE + "?x=1",
        "http://api.example/items",
        "",
        [],
        ["https://evil.example"],
        [RESOURCE, 1],
        [RESOURCE, None],
        [[RESOURCE]],
        {RESOURCE: True},
        1,
        True,
        None,
    ],
    ids=repr,
)
async def test_wrong_audience(world: World, aud: Any) -> None:
    token = world.token(claims={"aud": aud})
    expect(await world.get(token), 401, "invalid_token", "bad_audience", world.events)


async def test_audience_list_naming_this_resource_is_accepted(world: World) -> None:
    token = world.token(audience=["https://other.example", RESOURCE])
    assert (await world.get(token)).status_code == 200


# ----- time claims -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "status", "reason"),
    [
        ({"exp": NOW - 31}, 401, "expired"),
        ({"exp": NOW - 30}, 401, "expired"),
        ({"exp": NOW - 29}, 200, None),  # within the 30 s leeway
        ({"exp": NOW + 0.5}, 200, None),
        ({"exp": 1e308}, 200, None),
        ({"exp": -1}, 401, "expired"),
        ({"exp": 0}, 401, "expired"),
        ({"nbf": NOW + 31}, 401, "not_yet_valid"),
        ({"nbf": NOW + 29}, 200, None),
        ({"iat": NOW + 31}, 401, "issued_in_future"),
        ({"iat": NOW + 29}, 200, None),
        ({"iat": 0}, 200, None),  # old iat alone means nothing: exp decides
    ],
    ids=repr,
)
async def test_time_claim_values(
    world: World, claims: dict[str, Any], status: int, reason: str | None
) -> None:
    resp = await world.get(world.token(claims=claims))
    if status == 200:
        assert resp.status_code == 200, resp.text
    else:
        expect(resp, status, "invalid_token", reason, world.events)


WRONG_NUMBERS: list[Any] = [
    "1700000300",
    "NaN",
    "Infinity",
    True,
    False,
    None,
    [NOW + 300],
    {"$date": NOW + 300},
    10**400,  # valid JSON, beyond any float
    -(10**400),
    "",
]


@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", WRONG_NUMBERS, ids=lambda v: repr(v)[:20])
async def test_time_claims_of_wrong_json_type(world: World, name: str, value: Any) -> None:
    token = world.token(claims={name: value})
    expect(await world.get(token), 401, "invalid_token", "bad_claim_type", world.events)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
async def test_non_finite_exp_literals(world: World, literal: str) -> None:
    import json

    _, payload, _ = parts(world.token())
    del payload["exp"]
    text = json.dumps(payload)[:-1] + f', "exp": {literal}}}'
    token = idp_sign(world.idp, {"alg": "ES256", "typ": "at+jwt"}, text)
    # NaN/Infinity are not JSON; 1e999 is JSON but overflows to infinity.
    reason = "bad_claim_type" if "e999" in literal else "malformed"
    expect(await world.get(token), 401, "invalid_token", reason, world.events)


async def test_cached_token_expires_on_time(world: World) -> None:
    token = world.token(lifetime=60)
    assert (await world.get(token)).status_code == 200
    world.clock.now += 60 + 29
    assert (await world.get(token)).status_code == 200  # cached, still inside the leeway
    world.clock.now += 2
    expect(await world.get(token), 401, "invalid_token", "expired", world.events)


# ----- required and typed claims -----------------------------------------------------------


@pytest.mark.parametrize("name", ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"])
async def test_required_claims_missing(world: World, name: str) -> None:
    token = resign(world.idp, world.token(), **{name: DROP})
    expect(await world.get(token), 401, "invalid_token", "missing_claim", world.events)


@pytest.mark.parametrize("name", ["sub", "client_id", "jti"])
@pytest.mark.parametrize("value", [None, "", 1, True, ["alice"], {"id": "alice"}], ids=repr)
async def test_string_claims_of_wrong_type(world: World, name: str, value: Any) -> None:
    token = world.token(claims={name: value})
    expect(await world.get(token), 401, "invalid_token", "bad_claim_type", world.events)


@pytest.mark.parametrize(
    "scope", [["items:read"], 1, True, {"items:read": True}, [["items:read"]]], ids=repr
)
async def test_scope_of_wrong_type(world: World, scope: Any) -> None:
    token = world.token(claims={"scope": scope})
    expect(await world.get(token), 401, "invalid_token", "bad_claim_type", world.events)


@pytest.mark.parametrize(
    ("scope", "path", "status"),
    [
        ("items:read", "/items", 200),
        ("  items:read  ", "/items", 200),
        ("items:read  items:write", "/items/write", 200),
        ("", "/items", 403),
        (None, "/items", 403),
        ("items:readX", "/items", 403),
        ("ITEMS:READ", "/items", 403),
        ("items:*", "/items", 403),
        ("items:read\titems:write", "/items/write", 403),  # a tab is no delimiter
        ("items:read,items:write", "/items/write", 403),
        ("items:write", "/items", 403),  # no hierarchy configured
    ],
    ids=repr,
)
async def test_scope_values(world: World, scope: Any, path: str, status: int) -> None:
    resp = await world.get(world.token(claims={"scope": scope}), path=path)
    if status == 200:
        assert resp.status_code == 200, resp.text
        return
    expect(resp, 403, "insufficient_scope", "insufficient_scope", world.events)
    assert challenge(resp)["scope"] == ("items:write" if path.endswith("write") else "items:read")


async def step_up_challenge(
    world: World, path: str, status: int, **claims: Any
) -> dict[str, str] | None:
    """Re-sign the world's token with `claims` and call `path`: None when it was accepted (as
    `status` 200 expects), else the RFC 9470 challenge's parameters (checked to be one)."""
    resp = await world.get(resign(world.idp, world.token(), **claims), path=path)
    if status == 200:
        assert resp.status_code == 200
        return None
    expect(resp, 401, "insufficient_user_authentication", None, world.events)
    return challenge(resp)


@pytest.mark.parametrize(
    ("acr", "status"),
    [
        ("mf", 200),
        ("phr", 200),
        ("pwd", 401),
        ("MF", 401),
        ("mf ", 401),
        (["mf"], 401),
        (1, 401),
        (None, 401),
        (DROP, 401),
        ({"value": "mf"}, 401),
    ],
    ids=repr,
)
async def test_acr_values_and_types(world: World, acr: Any, status: int) -> None:
    params = await step_up_challenge(world, "/items/mfa", status, acr=acr)
    if params is None:
        return
    assert params["acr_values"] == "mf phr"
    assert "max_age" not in params


@pytest.mark.parametrize(
    ("auth_time", "status"),
    [
        (NOW - 10, 200),
        # max_age=60 gets the 30 s leeway `exp` gets (#13): the boundary is at 90 s.
        (NOW - 90, 200),
        (NOW - 91, 401),
        (float(NOW - 10), 200),
        (NOW + 3600, 401),  # authentication "in the future": inconsistent, not fresh
        (str(NOW), 401),
        (True, 401),
        (None, 401),
        (DROP, 401),
        ([NOW], 401),
        (10**400, 401),
        (1e308, 401),
    ],
    ids=lambda v: repr(v)[:20],
)
async def test_auth_time_values_and_types(world: World, auth_time: Any, status: int) -> None:
    params = await step_up_challenge(world, "/items/recent", status, auth_time=auth_time)
    if params is None:
        return
    assert params["max_age"] == "60"
    assert "acr_values" not in params


@pytest.mark.parametrize(
    ("value", "status"),
    [(True, 200), ("true", 401), (1, 401), (1.0, 401), ([True], 401), (None, 401), (DROP, 401)],
    ids=repr,
)
async def test_required_claim_values_are_compared_as_json(
    world: World, value: Any, status: int
) -> None:
    params = await step_up_challenge(
        world, "/items/verified", status, phone_number_verified=value
    )
    if params is None:
        return
    assert decode_claims(params["claims"]) == {
        "id_token": {"phone_number_verified": {"value": True}}
    }


# ----- token-type confusion ----------------------------------------------------------------


async def test_id_token_is_not_an_access_token(world: World) -> None:
    idt = world.idp.issue_id_token("alice", client_id="client-a", nonce="n-1")
    expect(await world.get(idt), 401, "invalid_token", "bad_typ", world.events)
    # Re-typed and re-aimed by a confused (or malicious) client: its claims still betray it.
    for extra in ({"nonce": "n-1"}, {"at_hash": "abc"}, {"c_hash": "x"}, {"s_hash": "y"}):
        disguised = world.token(claims=extra)
        expect(await world.get(disguised), 401, "invalid_token", "id_token", world.events)
    # An ID token minted with typ at+jwt still lacks what RFC 9068 requires.
    retyped = world.idp.issue_id_token(
        "alice", client_id="client-a", headers={"typ": "at+jwt"}, claims={"aud": RESOURCE}
    )
    expect(await world.get(retyped), 401, "invalid_token", "missing_claim", world.events)


async def test_event_tokens_are_not_access_tokens(world: World) -> None:
    events = {"https://schemas.example/event/account-updated": {"fields": ["email"]}}
    _, payload, _ = parts(world.token())
    set_claims = {**payload, "events": events}
    for typ in ("secevent+jwt", "application/secevent+jwt", "logout+jwt"):
        token = idp_sign(world.idp, {"alg": "ES256", "typ": typ}, set_claims)
        expect(await world.get(token), 401, "invalid_token", "bad_typ", world.events)
    # The same claims under typ at+jwt are still refused: `events` marks a SET (RFC 8417 §2.2).
    token = idp_sign(world.idp, {"alg": "ES256", "typ": "at+jwt"}, set_claims)
    expect(await world.get(token), 401, "invalid_token", "security_event_token", world.events)


async def test_refresh_token_and_opaque_strings_are_not_jwts(world: World) -> None:
    grant = world.idp.tokens.new_grant("client-a", "alice", ["items:read"], [RESOURCE])
    refresh = world.idp.minter.refresh_token(grant, ["items:read"])
    expect(await world.get(refresh), 401, "invalid_token", "malformed", world.events)
    assert world.counter.total == 0


async def test_refresh_token_is_refused_by_introspection(world: World) -> None:
    # The guard introspects with the holder's own credentials: the IdP answers a client about
    # its own refresh token only (RFC 7662 §4; any other caller gets "active": false).
    world.use_guard(introspection=Introspection("client-a", "secret-a"))
    grant = world.idp.tokens.new_grant("client-a", "alice", ["items:read"], [RESOURCE])
    refresh = world.idp.minter.refresh_token(grant, ["items:read"])
    assert world.idp.introspect(refresh)["active"] is True
    # Active at the IdP, but not an access token for this resource.
    expect(await world.get(refresh), 401, "invalid_token", "bad_audience", world.events)
    assert world.counter.count("/introspect") == 1


async def test_access_tokens_for_other_audiences_and_the_idp(world: World) -> None:
    other = world.token(audience="https://other.example/api")
    expect(await world.get(other), 401, "invalid_token", "bad_audience", world.events)
    # The IdP's default audience (a client-credentials token for the IdP itself).
    own = world.idp.issue_access_token(None, client_id="client-a", scope="items:read")
    expect(await world.get(own), 401, "invalid_token", "bad_audience", world.events)
    # A token minted for client-a as audience (an ID-token-like audience).
    as_client = world.token(audience="client-a")
    expect(await world.get(as_client), 401, "invalid_token", "bad_audience", world.events)
