"""The guard is right wherever it is mounted: real uvicorn, real routing, a positive control each.

The per-path table, `public_paths`, the metadata path and ToolGuard's endpoint requirement are
matched on the path the router dispatches on (`scope["path"]` minus `root_path`), as Starlette's
routing does. Before #13 they were matched on the full path, so under a `Mount` or behind
`uvicorn --root-path` a table keyed by the app's own route paths never matched and any valid
token passed without its scope check (fail-open).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Host, Mount, Route
from starlette.types import Receive, Scope, Send

from rs_guard import Requirement, ResourceGuard
from rs_guard.decorators import exception_handlers
from rs_guard.mcp import ToolGuard
from rs_guard.resource_metadata import metadata_routes
from rs_guard.testing import TestIdP, loopback_socket, serve, socket_url

pytestmark = pytest.mark.anyio

RESOURCE = "https://api.test"
ADMIN = Requirement(scopes=("admin",))


async def hello(request: Request) -> Response:
    return PlainTextResponse(f"hello {request.url.path}")


def notes() -> Starlette:
    """The app as its author wrote it: route paths relative to wherever it ends up mounted."""
    paths = ["/items", "/admin", "/admin/users", "/docs", "/docs/page", "/docs-internal"]
    return Starlette(routes=[Route(p, hello) for p in paths])


def guarded(idp: TestIdP, **options: Any) -> ResourceGuard:
    settings: dict[str, Any] = {
        "requirements": {"/admin*": ADMIN},
        "public_paths": ["/docs*"],
        "serve_metadata": False,
        **options,
    }
    return ResourceGuard(notes(), **idp.guard_settings(**settings))


@pytest.fixture
def idp() -> TestIdP:
    return TestIdP()


@pytest.fixture
def bearer(idp: TestIdP) -> Callable[..., dict[str, str]]:
    def make(*scopes: str) -> dict[str, str]:
        return idp.auth_headers("alice", list(scopes))

    return make


async def check_table(
    client: httpx.AsyncClient,
    prefix: str,
    bearer: Callable[..., dict[str, str]],
    public: str | None = None,
) -> None:
    """The guard's table, enforced under `prefix` (both sides of each rule); `public` is the
    path prefix the app sees in its URLs (root_path), when it differs from `prefix`."""
    # The fail-open before #13: a valid token without `admin` reached /admin under a mount.
    r = await client.get(f"{prefix}/admin", headers=bearer("items"))
    assert r.status_code == 403, r.text
    assert 'scope="admin"' in r.headers["www-authenticate"]
    r = await client.get(f"{prefix}/admin/users", headers=bearer("items"))
    assert r.status_code == 403
    # Positive controls: the right scope passes; a route without a requirement needs a token.
    r = await client.get(f"{prefix}/admin", headers=bearer("admin"))
    assert r.status_code == 200 and r.text == f"hello {prefix if public is None else public}/admin"
    assert (await client.get(f"{prefix}/items", headers=bearer())).status_code == 200
    assert (await client.get(f"{prefix}/items")).status_code == 401
    # public_paths under the mount: `/docs*` is /docs and below it, on a segment boundary.
    assert (await client.get(f"{prefix}/docs")).status_code == 200
    assert (await client.get(f"{prefix}/docs/page")).status_code == 200
    assert (await client.get(f"{prefix}/docs-internal")).status_code == 401


async def test_nested_mount(idp: TestIdP, bearer: Callable[..., dict[str, str]]) -> None:
    app = Starlette(routes=[Mount("/v1", routes=[Mount("/notes", app=guarded(idp))])])
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        await check_table(client, "/v1/notes", bearer)


async def test_host_routing(idp: TestIdP, bearer: Callable[..., dict[str, str]]) -> None:
    app = Starlette(
        routes=[
            Host("notes.test", app=Mount("/notes", app=guarded(idp))),
            Host("other.test", app=PlainTextResponse("other")),
        ]
    )
    async with serve(app) as url:
        async with httpx.AsyncClient(base_url=url, headers={"host": "notes.test"}) as client:
            await check_table(client, "/notes", bearer)
        async with httpx.AsyncClient(base_url=url, headers={"host": "other.test"}) as client:
            assert (await client.get("/admin")).text == "other"  # control: not the guard's host


async def test_uvicorn_root_path(idp: TestIdP, bearer: Callable[..., dict[str, str]]) -> None:
    # uvicorn --root-path /api: a proxy strips /api, uvicorn puts it back in scope["path"].
    async with (
        serve(guarded(idp), root_path="/api") as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        await check_table(client, "", bearer, public="/api")


async def test_reverse_proxy_prefix(idp: TestIdP, bearer: Callable[..., dict[str, str]]) -> None:
    """A real proxy on its own port strips /api and forwards to uvicorn --root-path /api."""
    async with (
        serve(guarded(idp), root_path="/api") as backend,
        httpx.AsyncClient(base_url=backend) as upstream,
    ):

        async def proxy(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                return
            request = Request(scope, receive)
            path = request.url.path
            if not path.startswith("/api/"):
                await PlainTextResponse("not proxied", 404)(scope, receive, send)
                return
            headers = {k: v for k, v in request.headers.items() if k != "host"}
            answer = await upstream.get(path[len("/api") :], headers=headers)
            keep = {k: v for k, v in answer.headers.items() if k.lower() == "www-authenticate"}
            response = Response(answer.content, answer.status_code, headers=keep)
            await response(scope, receive, send)

        async with serve(proxy) as front, httpx.AsyncClient(base_url=front) as client:
            await check_table(client, "/api", bearer)


async def test_requirement_for_takes_route_paths(idp: TestIdP) -> None:
    guard = guarded(idp)
    assert guard.requirement_for("/admin/users") is ADMIN
    assert guard.requirement_for("/administrator") is None  # segment boundary
    assert guard.requirement_for("/items") is None


# -- ToolGuard's endpoint requirement under a mount ---------------------------------------------


async def mcp_app(scope: Scope, receive: Receive, send: Send) -> None:
    request = Request(scope, receive)
    body = await request.body()
    await JSONResponse({"jsonrpc": "2.0", "id": 1, "result": {"echo": len(body)}})(
        scope, receive, send
    )


async def test_tool_guard_endpoint_requirement_under_mount(idp: TestIdP) -> None:
    tools = ToolGuard(mcp_app, {"delete": Requirement(scopes=("notes:write",))})
    inner = Starlette(
        routes=[Route("/mcp", tools, methods=["POST"])], exception_handlers=exception_handlers
    )
    guard = ResourceGuard(
        inner,
        **idp.guard_settings(
            requirements={"/mcp": Requirement(scopes=("mcp",))}, serve_metadata=False
        ),
    )
    app = Starlette(routes=[Mount("/svc", app=guard)])
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "delete"}}
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        # Only the tool's scope: the endpoint's own requirement (matched on /mcp) is enforced.
        r = await client.post("/svc/mcp", json=call, headers=idp.auth_headers("a", "notes:write"))
        assert r.status_code == 403
        assert r.headers["www-authenticate"].endswith('scope="mcp"')
        # Only the endpoint's: ToolGuard's one challenge names every scope the call needs.
        r = await client.post("/svc/mcp", json=call, headers=idp.auth_headers("a", "mcp"))
        assert r.status_code == 403
        assert 'scope="mcp notes:write"' in r.headers["www-authenticate"]
        # Positive control: both scopes.
        both = idp.auth_headers("a", "mcp notes:write")
        r = await client.post("/svc/mcp", json=call, headers=both)
        assert r.status_code == 200 and r.json()["result"]["echo"] > 0


# -- Protected Resource Metadata for a percent-encoded resource path (RFC 9728 §3.1) -----------


@pytest.fixture
def sock() -> socket.socket:
    return loopback_socket()


async def test_metadata_for_percent_encoded_resource(idp: TestIdP, sock: socket.socket) -> None:
    resource = socket_url(sock) + "/caf%C3%A9"
    guard = ResourceGuard(notes(), **idp.guard_settings(resource=resource))
    async with serve(guard, sock=sock) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.get("/items")
        assert r.status_code == 401
        advertised = r.headers["www-authenticate"].split('resource_metadata="')[1].split('"')[0]
        assert advertised.endswith("/.well-known/oauth-protected-resource/caf%C3%A9")
        r = await client.get(urlsplit(advertised).path)  # httpx sends it encoded, as given
        assert r.status_code == 200, r.text
        assert r.json()["resource"] == resource
        # Control: another encoded path is not this resource's document.
        other = await client.get("/.well-known/oauth-protected-resource/caf%C3%A8")
        assert other.status_code == 401


async def test_metadata_routes_for_percent_encoded_resource(idp: TestIdP) -> None:
    from rs_guard import ProtectedResourceMetadata

    doc = ProtectedResourceMetadata("https://api.test/caf%C3%A9", [idp.issuer])
    plain = ProtectedResourceMetadata("https://api.test/notes", [idp.issuer])
    app = Starlette(routes=metadata_routes(doc, plain))
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.get("/.well-known/oauth-protected-resource/caf%C3%A9")
        assert r.status_code == 200 and r.json()["resource"] == "https://api.test/caf%C3%A9"
        r = await client.get("/.well-known/oauth-protected-resource/notes")
        assert r.status_code == 200 and r.json()["resource"] == "https://api.test/notes"


# -- the form-body method: a disconnect mid-body reaches the app as a disconnect ------------------


async def test_mid_body_disconnect_reaches_the_app_as_a_disconnect(idp: TestIdP) -> None:
    seen: list[Any] = []
    done = asyncio.Event()

    async def upload(request: Request) -> Response:
        try:
            seen.append(len(await request.body()))
        except ClientDisconnect:
            seen.append("disconnect")
        done.set()
        return PlainTextResponse("ok")

    app = ResourceGuard(
        Starlette(routes=[Route("/upload", upload, methods=["POST"])]),
        **idp.guard_settings(bearer_methods=["header", "body"], serve_metadata=False),
    )
    token = idp.token("alice")
    async with serve(app) as url:
        host, port = urlsplit(url).hostname, urlsplit(url).port
        assert host is not None and port is not None

        async def post(body: bytes, declared: int) -> None:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(
                b"POST /upload HTTP/1.1\r\nHost: api.test\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n"
                + f"Authorization: Bearer {token}\r\nContent-Length: {declared}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            if len(body) < declared:
                await asyncio.sleep(0.2)  # the server has read the partial body
                writer.close()  # ...and the client goes away
            else:
                await reader.readline()
                writer.close()
            await asyncio.wait_for(done.wait(), 5)
            done.clear()

        await post(b"a=1&b=2", 7)  # control: a complete body arrives whole
        await post(b"a=1&b=", 1000)
    assert seen == [7, "disconnect"]


def test_metadata_path_in_document_is_encoded() -> None:
    from rs_guard import ProtectedResourceMetadata

    doc = ProtectedResourceMetadata("https://api.test/caf%C3%A9", ["https://idp.test"])
    assert doc.url == "https://api.test/.well-known/oauth-protected-resource/caf%C3%A9"
    assert json.loads(doc.body)["resource"] == "https://api.test/caf%C3%A9"
