"""ResourceGuard through HTTP: credentials, challenges, auth in the app, WebSocket, lifespan."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from .conftest import RESOURCE, bearer

pytestmark = pytest.mark.anyio

METADATA_URL = "https://api.example/.well-known/oauth-protected-resource/items"


async def test_no_token_gets_bare_challenge(client: httpx.AsyncClient) -> None:
    r = await client.get("/whoami")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == f'Bearer resource_metadata="{METADATA_URL}"'
    assert "error" not in r.headers["www-authenticate"].replace("resource_metadata", "")


async def test_no_token_on_decorated_route_names_its_scope(client: httpx.AsyncClient) -> None:
    r = await client.get("/items")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == (
        f'Bearer scope="items:read", resource_metadata="{METADATA_URL}"'
    )


async def test_valid_token_reaches_app_with_auth_and_user(
    client: httpx.AsyncClient, token: Callable[..., str], idp: Any
) -> None:
    t = token(scope="items:read items:write", acr="mf", auth_time=1_799_999_000)
    r = await client.get("/whoami", headers=bearer(t))
    assert r.status_code == 200
    body = r.json()
    assert body["sub"] == idp.subject_for("alice", "client-a")
    assert body["client_id"] == "client-a"
    assert body["scopes"] == ["items:read", "items:write"]
    assert body["acr"] == "mf"
    assert body["auth_time"] == 1_799_999_000
    assert body["user"] == body["sub"]


async def test_scheme_is_case_insensitive_and_allows_several_spaces(
    client: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    t = token()
    for header in (f"bearer {t}", f"BEARER {t}", f"BeArEr   {t}"):
        r = await client.get("/whoami", headers={"Authorization": header})
        assert r.status_code == 200, header


async def test_starlette_requires_works_unchanged(
    client: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    r = await client.get("/items/write", headers=bearer(token(scope="items:write")))
    assert r.status_code == 200
    r = await client.get("/items/write", headers=bearer(token(scope="items:read")))
    assert r.status_code == 403  # Starlette's own @requires answers


async def test_insufficient_scope_is_403_with_challenge(
    client: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    r = await client.get("/items", headers=bearer(token(scope="other")))
    assert r.status_code == 403
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="insufficient_scope"')
    assert 'scope="items:read"' in challenge
    assert f'resource_metadata="{METADATA_URL}"' in challenge
    assert r.json()["error"] == "insufficient_scope"


async def test_invalid_token_is_401_invalid_token(client: httpx.AsyncClient) -> None:
    r = await client.get("/whoami", headers=bearer("not.a.jwt"))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == (
        'Bearer error="invalid_token", error_description="The access token is invalid", '
        f'resource_metadata="{METADATA_URL}"'
    )
    assert r.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ", "Bearer a b", "Bearer a,b", 'Bearer "abc"', "Bearer\tabc"],
)
async def test_malformed_bearer_header_is_invalid_request(
    client: httpx.AsyncClient, header: str
) -> None:
    r = await client.get("/whoami", headers={"Authorization": header})
    assert r.status_code == 400
    assert r.headers["www-authenticate"].startswith('Bearer error="invalid_request"')


async def test_other_scheme_counts_as_no_credentials(client: httpx.AsyncClient) -> None:
    r = await client.get("/whoami", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert r.status_code == 401
    assert "error=" not in r.headers["www-authenticate"]


async def test_two_authorization_headers_are_refused(
    client: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    t = token()
    r = await client.get(
        "/whoami", headers=[("Authorization", f"Bearer {t}"), ("Authorization", f"Bearer {t}")]
    )
    assert r.status_code == 400
    assert 'error="invalid_request"' in r.headers["www-authenticate"]


async def test_token_in_query_refused_unless_enabled(
    make_client: Callable[..., httpx.AsyncClient], token: Callable[..., str]
) -> None:
    t = token()
    async with make_client() as c:
        r = await c.get("/whoami", params={"access_token": t})
        assert r.status_code == 400
        assert 'error="invalid_request"' in r.headers["www-authenticate"]
    async with make_client(bearer_methods=["header", "query"]) as c:
        assert (await c.get("/whoami", params={"access_token": t})).status_code == 200
        r = await c.get("/whoami", params={"access_token": t}, headers=bearer(t))
        assert r.status_code == 400  # more than one method


async def test_token_in_form_body_when_enabled_and_body_still_reaches_app(
    make_client: Callable[..., httpx.AsyncClient], token: Callable[..., str]
) -> None:
    t = token()
    async with make_client(bearer_methods=["header", "body"]) as c:
        r = await c.post("/echo", data={"access_token": t, "note": "hello"})
        assert r.status_code == 200
        assert r.text == "hello"
        r = await c.post("/echo", data={"access_token": t, "note": "x"}, headers=bearer(t))
        assert r.status_code == 400
    async with make_client() as c:
        # Not enabled: a body token is not a credential.
        r = await c.post("/echo", data={"access_token": t, "note": "x"})
        assert r.status_code == 401


async def test_public_paths_need_no_token_but_reject_a_bad_one(
    client: httpx.AsyncClient, token: Callable[..., str]
) -> None:
    r = await client.get("/health")
    assert (r.status_code, r.text) == (200, "ok")
    r = await client.get("/health", headers=bearer(token()))
    assert (r.status_code, r.text) == (200, "ok-auth")
    r = await client.get("/health", headers=bearer("garbage"))
    assert r.status_code == 401


async def test_metadata_document_is_served(client: httpx.AsyncClient) -> None:
    r = await client.get("/.well-known/oauth-protected-resource/items")
    assert r.status_code == 200
    doc = r.json()
    assert doc["resource"] == RESOURCE
    assert doc["authorization_servers"] == ["https://idp.example"]
    assert doc["bearer_methods_supported"] == ["header"]


async def test_cors_preflight_passes_through(client: httpx.AsyncClient) -> None:
    r = await client.options(
        "/whoami",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"},
    )
    # The app's router answers (no OPTIONS handler here: 405), not the guard's challenge.
    assert r.status_code == 405
    assert "www-authenticate" not in r.headers


async def test_per_path_requirements_table(
    make_client: Callable[..., httpx.AsyncClient], token: Callable[..., str]
) -> None:
    from rs_guard import Requirement

    async with make_client(
        requirements={
            "/whoami": Requirement(scopes=("admin",)),
            "/items/*": Requirement(scopes=("w",)),
        }
    ) as c:
        r = await c.get("/whoami")
        assert r.headers["www-authenticate"].startswith('Bearer scope="admin"')
        r = await c.get("/whoami", headers=bearer(token(scope="items:read")))
        assert r.status_code == 403
        r = await c.get("/whoami", headers=bearer(token(scope="admin")))
        assert r.status_code == 200 and r.json()["scopes"] == ["admin"]
        r = await c.get("/items/write", headers=bearer(token(scope="items:write")))
        assert r.status_code == 403 and 'scope="w"' in r.headers["www-authenticate"]


def test_websocket_handshake_is_authenticated(
    idp: Any, token: Callable[..., str], clock: Any
) -> None:
    from starlette.testclient import WebSocketDenialResponse

    from .conftest import ISSUER, build_app

    idp_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=idp.app), base_url=ISSUER)
    app = build_app(idp_http, clock=clock)
    with TestClient(app) as tc:
        with tc.websocket_connect("/ws", headers=bearer(token())) as socket:
            assert socket.receive_text() == idp.subject_for("alice", "client-a")
        # The server supports the denial-response extension: a real 401 with the challenge.
        with pytest.raises(WebSocketDenialResponse) as denied, tc.websocket_connect("/ws"):
            pass
        assert denied.value.status_code == 401
        assert denied.value.headers["www-authenticate"].startswith("Bearer ")


async def test_websocket_without_denial_extension_closes_1008(
    make_client: Callable[..., httpx.AsyncClient], idp_http: httpx.AsyncClient, clock: Any
) -> None:
    from .conftest import build_app

    app = build_app(idp_http, clock=clock)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/ws",
        "headers": [],
        "query_string": b"",
        "root_path": "",
        "scheme": "wss",
        "server": ("api.example", 443),
    }
    await app(scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": ""}]


def test_lifespan_passes_through(idp: Any) -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware

    from rs_guard import ResourceGuard

    events: list[str] = []

    async def lifespan(app: Any) -> Any:
        events.append("start")
        yield
        events.append("stop")

    from contextlib import asynccontextmanager

    app = Starlette(
        lifespan=asynccontextmanager(lifespan),
        middleware=[Middleware(ResourceGuard, issuer="https://idp.example", resource=RESOURCE)],
    )
    with TestClient(app):
        pass
    assert events == ["start", "stop"]


async def test_public_decorated_route(
    client: httpx.AsyncClient, token: Callable[..., str], idp: Any
) -> None:
    r = await client.get("/open")
    assert (r.status_code, r.text) == (200, "hello anonymous")
    r = await client.get("/open", headers=bearer(token()))
    assert (r.status_code, r.text) == (200, f"hello {idp.subject_for('alice', 'client-a')}")
    r = await client.get("/open", headers=bearer("bad"))
    assert r.status_code == 401
