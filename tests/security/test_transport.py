"""RFC 6750 §2-3 transport: every Authorization header variant, tokens in several places, and
header injection through anything that could be reflected into `WWW-Authenticate`."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from rs_guard import InsufficientUserAuthentication, Requirement
from rs_guard.decorators import exception_handlers

from .conftest import World, asgi_call, challenge, expect, header

pytestmark = pytest.mark.anyio

_HEADER_SAFE = re.compile(rb"[\x20-\x7e]*")


def _assert_safe_headers(headers: list[tuple[bytes, bytes]]) -> None:
    for name, value in headers:
        assert _HEADER_SAFE.fullmatch(name), name
        assert _HEADER_SAFE.fullmatch(value), value


async def _raw(world: World, values: list[bytes], **scope: Any) -> tuple[int, dict[str, Any]]:
    """Send Authorization header bytes exactly as given; return status and challenge params."""
    headers = [(b"host", b"api.example"), *((b"authorization", v) for v in values)]
    status, out_headers, body = await asgi_call(world.guard, {"headers": headers, **scope})
    _assert_safe_headers(out_headers)
    params: dict[str, Any] = {"body": json.loads(body) if body else None}
    www = header(out_headers, b"www-authenticate")
    if www is not None:
        params.update(re.findall(r'([a-z_]+)="([^"]*)"', www.decode()))
    return status, params


@pytest.mark.parametrize(
    "template",
    [
        b"Bearer %s",
        b"bearer %s",
        b"BEARER %s",
        b"BeArEr %s",
        b"Bearer  %s",
        b"Bearer     %s",
        b"Bearer %s ",
        b"Bearer %s   ",
    ],
)
async def test_accepted_header_spellings(world: World, template: bytes) -> None:
    token = world.token().encode()
    status, _ = await _raw(world, [template % token])
    assert status == 200


@pytest.mark.parametrize(
    "template",
    [
        b"Bearer",
        b"Bearer ",
        b"Bearer    ",
        b"bearer\t%s",
        b"Bearer\t\t%s",
        b"Bearer \t%s",
        b"Bearer %s\t",
        b"Bearer\x0b%s",
        b"Bearer %s extra",
        b"Bearer %s,Bearer %s",
        b"Bearer %s, Bearer %s",
        b"Bearer %s;",
        b'Bearer "%s"',
        b"Bearer <%s>",
        b"Bearer %s\xff",
        b"Bearer \xc3\xa9%s",
        b"Bearer token=%s",
        b"Bearer =%s",
        b"Bearer ===",
        b"Bearer %s=.x",
    ],
)
async def test_malformed_bearer_credentials(world: World, template: bytes) -> None:
    token = world.token().encode()
    value = template.replace(b"%s", token)
    status, params = await _raw(world, [value])
    assert status == 400, value
    assert params["error"] == "invalid_request"
    assert params["body"]["error"] == "invalid_request"
    assert world.events.reasons()[-1] == "malformed_header"
    assert world.counter.total == 0


@pytest.mark.parametrize(
    "template",
    [
        b"",
        b"%s",
        b" Bearer %s",  # servers strip leading whitespace; raw, it names no known scheme
        b"Bearerx %s",
        b"Bearer\x00%s",
        b"Bearer-%s",
        b"Basic dXNlcjpwYXNz",
        b"Token %s",
        b"JWT %s",
        b"DPoP %s",
        b"MAC id=%s",
        b"Negotiate abc",
    ],
)
async def test_other_schemes_get_a_bare_challenge(world: World, template: bytes) -> None:
    value = template.replace(b"%s", world.token().encode())
    status, params = await _raw(world, [value])
    assert status == 401, value
    assert "error" not in params  # RFC 6750 §3.1: no error code when no Bearer credentials
    assert params["scope"] == "items:read"  # the route's requirement, named up front
    assert params["body"]["error"] == "unauthorized"
    assert world.events.reasons()[-1] == "missing_token"


async def test_two_authorization_headers(world: World) -> None:
    token = world.token().encode()
    for pair in (
        [b"Bearer " + token, b"Bearer " + token],
        [b"Bearer " + token, b"Basic dXNlcjpwYXNz"],
        [b"Basic dXNlcjpwYXNz", b"Bearer " + token],
        [b"Bearer " + token, b""],
    ):
        status, params = await _raw(world, pair)
        assert status == 400
        assert params["error"] == "invalid_request"
        assert world.events.reasons()[-1] == "multiple_credentials"


async def test_oversized_token(world: World) -> None:
    big = "a" * 100_000
    status, params = await _raw(world, [b"Bearer " + big.encode()])
    assert status == 401 and params["error"] == "invalid_token"
    assert world.events.reasons()[-1] == "token_too_large"
    assert world.counter.total == 0


# ----- tokens in other places --------------------------------------------------------------


async def test_query_token_refused_when_not_enabled(world: World) -> None:
    token = world.token()
    resp = await world.client.get("/items", params={"access_token": token})
    expect(resp, 400, "invalid_request", "token_in_query", world.events)
    resp = await world.get(token, params={"access_token": token})
    expect(resp, 400, "invalid_request", "token_in_query", world.events)
    resp = await world.client.get("/items?access_token=")
    expect(resp, 400, "invalid_request", "token_in_query", world.events)
    assert token not in resp.text
    # Other spellings of the parameter are simply not tokens.
    resp = await world.client.get("/items", params={"ACCESS_TOKEN": token})
    expect(resp, 401, None, "missing_token", world.events)


async def test_body_token_ignored_when_not_enabled(world: World) -> None:
    resp = await world.client.post("/echo", data={"access_token": world.token()})
    expect(resp, 401, None, "missing_token", world.events)


async def test_query_enabled(world: World) -> None:
    world.use_guard(bearer_methods=["header", "query"])
    token = world.token()
    assert (await world.client.get("/items", params={"access_token": token})).status_code == 200
    resp = await world.get(token, params={"access_token": token})
    expect(resp, 400, "invalid_request", "multiple_credentials", world.events)
    resp = await world.client.get(f"/items?access_token={token}&access_token={token}")
    expect(resp, 400, "invalid_request", "multiple_credentials", world.events)
    resp = await world.client.get("/items?access_token=")
    expect(resp, 401, "invalid_token", "malformed", world.events)
    resp = await world.client.get("/items", params={"access_token": "not a\r\njwt"})
    expect(resp, 401, "invalid_token", "malformed", world.events)


async def test_body_enabled(world: World) -> None:
    world.use_guard(bearer_methods=["header", "body"])
    token = world.token()
    resp = await world.client.post("/echo", data={"access_token": token, "x": "1"})
    assert resp.status_code == 200
    assert resp.json()["body"] == f"access_token={token}&x=1"  # the app still gets its body
    resp = await world.client.post(
        "/echo",
        content=f"access_token={token}".encode(),
        headers={"content-type": "Application/X-WWW-Form-URLEncoded; charset=utf-8"},
    )
    assert resp.status_code == 200
    resp = await world.client.post(
        "/echo", data={"access_token": token}, headers={"Authorization": f"Bearer {token}"}
    )
    expect(resp, 400, "invalid_request", "multiple_credentials", world.events)
    resp = await world.client.post(
        "/echo",
        content=f"access_token={token}&access_token={token}",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    expect(resp, 400, "invalid_request", "multiple_credentials", world.events)
    # Not a form: the body is not read for tokens.
    resp = await world.client.post("/echo", json={"access_token": token})
    expect(resp, 401, None, "missing_token", world.events)
    resp = await world.client.post("/echo", files={"access_token": ("t", token.encode())})
    expect(resp, 401, None, "missing_token", world.events)
    # Bounded: a huge form is refused rather than buffered.
    resp = await world.client.post("/echo", data={"pad": "a" * 70_000, "access_token": token})
    expect(resp, 400, "invalid_request", "body_too_large", world.events)


async def test_query_and_body_together_when_both_enabled(world: World) -> None:
    world.use_guard(bearer_methods=["header", "query", "body"])
    token = world.token()
    resp = await world.client.post(
        "/echo", params={"access_token": token}, data={"access_token": token}
    )
    expect(resp, 400, "invalid_request", "multiple_credentials", world.events)


async def test_public_path_still_refuses_a_bad_token(world: World) -> None:
    resp = await world.client.get("/public")
    assert resp.json() == {"public": True, "authenticated": False}
    resp = await world.get(world.token(), path="/public")
    assert resp.json() == {"public": True, "authenticated": True}
    resp = await world.get("not-a-token", path="/public")
    expect(resp, 401, "invalid_token", "malformed", world.events)


async def test_websocket_handshake_with_a_bad_token_is_closed(world: World) -> None:
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "websocket",
        "path": "/items",
        "raw_path": b"/items",
        "query_string": b"",
        "headers": [(b"host", b"api.example"), (b"authorization", b"Bearer x.y.z")],
        "scheme": "wss",
        "server": ("api.example", 443),
        "client": ("127.0.0.1", 1),
        "root_path": "",
        "subprotocols": [],
        "asgi": {"version": "3.0"},
    }
    await world.guard(scope, receive, send)
    assert messages == [{"type": "websocket.close", "code": 1008, "reason": ""}]


# ----- reflected values --------------------------------------------------------------------

INJECTIONS = [
    'x"\r\nSet-Cookie: pwned=1',
    "x\r\n\r\n<html>",
    'x", error="invalid_request',
    "x\\",
    "x\u2028y\u0085z",
    "x\x00y",
    "é\u202e",
    '"' * 50,
]


@pytest.mark.parametrize("payload", INJECTIONS)
@pytest.mark.parametrize("kind", ["scope", "token"])
async def test_reflected_values_cannot_inject_headers(
    world: World, kind: str, payload: str
) -> None:
    token = world.token().encode()
    from urllib.parse import quote

    status, out_headers, body = await asgi_call(
        world.guard,
        {
            "path": f"/reflect/{kind}",
            "raw_path": f"/reflect/{kind}".encode(),
            "query_string": b"v=" + quote(payload).encode(),
            "headers": [(b"host", b"api.example"), (b"authorization", b"Bearer " + token)],
        },
    )
    assert status == (403 if kind == "scope" else 401)
    _assert_safe_headers(out_headers)
    www = header(out_headers, b"www-authenticate")
    assert www is not None
    names = re.findall(r'([a-z_]+)="[^"]*"', www.decode())
    assert len(names) == len(set(names))  # no parameter smuggled in twice
    assert re.fullmatch(r'Bearer ([a-z_]+="[^"]*"(, )?)+', www.decode())
    expected = "insufficient_scope" if kind == "scope" else "invalid_token"
    assert dict(re.findall(r'([a-z_]+)="([^"]*)"', www.decode()))["error"] == expected
    assert b"Set-Cookie" not in b"".join(v for _, v in out_headers if _ != b"www-authenticate")
    assert all(k != b"set-cookie" for k, _ in out_headers)
    json.loads(body)  # still one well-formed JSON document


async def test_hostile_configuration_values_are_cleaned(world: World) -> None:
    world.use_guard(
        realm='api"\r\nX-Evil: 1',
        requirements={
            "/items": Requirement(
                scopes=("items:read",),
                claims={"note": 'a"\r\nX-Evil: 1'},
                description='step "up"\r\nX-Evil: 1',
            )
        },
    )
    resp = await world.get(world.token())
    assert resp.status_code == 401
    params = challenge(resp)
    assert params["error"] == "insufficient_user_authentication"
    assert "X-Evil" not in resp.headers
    assert "\r" not in resp.headers["www-authenticate"]
    status, out_headers, _ = await asgi_call(
        world.guard,
        {"headers": [(b"host", b"api.example"), (b"authorization", b"Bearer x")]},
    )
    _assert_safe_headers(out_headers)


async def test_late_step_up_from_a_handler_is_rendered_safely(world: World) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Route

    async def pay(request: Any) -> Any:
        raise InsufficientUserAuthentication('need "mf"\r\nX: 1', acr_values=['mf"\r\n'])

    world.use_guard()
    world.guard.app = Starlette(
        routes=[Route("/items", pay)], exception_handlers=exception_handlers
    )
    resp = await world.get(world.token())
    assert resp.status_code == 401
    params = challenge(resp)
    assert params["error"] == "insufficient_user_authentication"
    # A value outside the charset is dropped whole, never sent mangled.
    assert "acr_values" not in params
    assert "\n" not in resp.headers["www-authenticate"]


async def test_preflight_shaped_requests_reach_handlers_anonymously(world: World) -> None:
    """OPTIONS + Access-Control-Request-Method skips authentication (browsers send no
    credentials on a preflight); a handler that accepts OPTIONS must then see nobody."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def both(request: Any) -> Any:
        return JSONResponse({"authenticated": request.user.is_authenticated})

    world.guard.app = Starlette(routes=[Route("/items", both, methods=["GET", "OPTIONS"])])
    token = world.token()
    resp = await world.client.options(
        "/items",
        headers={"Access-Control-Request-Method": "GET", "Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 200
    assert resp.json() == {"authenticated": False}
    resp = await world.client.options("/items")  # a plain OPTIONS is authenticated as usual
    expect(resp, 401, None, "missing_token", world.events)
