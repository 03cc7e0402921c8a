"""rs_guard.testing's servers and TLS, used the way a user's tests would use them."""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rs_guard.testing import (
    Switchboard,
    app_client,
    loopback_socket,
    loopback_tls,
    serve,
    socket_url,
)

pytestmark = pytest.mark.anyio


def lifespan_app(events: list[str]) -> Starlette:
    """An app whose lifespan records startup/shutdown and hands state to its requests."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, str]]:
        events.append("startup")
        yield {"greeting": "hello"}
        events.append("shutdown")

    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"greeting": request.state.greeting})

    return Starlette(routes=[Route("/", hello)], lifespan=lifespan)


def broken_app() -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("database unavailable")
        yield

    return Starlette(lifespan=lifespan)


def test_serve_in_a_thread_runs_the_lifespan_and_stops() -> None:
    events: list[str] = []
    threads = threading.active_count()
    with serve(lifespan_app(events)) as url:
        assert url.startswith("http://127.0.0.1:")
        assert events == ["startup"]
        response = httpx.get(url, trust_env=False)
        assert response.json() == {"greeting": "hello"}
    assert events == ["startup", "shutdown"]
    assert threading.active_count() == threads
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, trust_env=False)


async def test_serve_in_the_event_loop_runs_the_lifespan_and_stops() -> None:
    events: list[str] = []
    async with serve(lifespan_app(events)) as url:
        assert events == ["startup"]
        async with httpx.AsyncClient(trust_env=False) as http:
            assert (await http.get(url)).json() == {"greeting": "hello"}
    assert events == ["startup", "shutdown"]
    async with httpx.AsyncClient(trust_env=False) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(url)


def test_a_failed_startup_in_a_thread_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="lifespan startup failed"), serve(broken_app()):
        pass


async def test_a_failed_startup_in_the_event_loop_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="lifespan startup failed"):
        async with serve(broken_app()):
            pass


def test_a_server_runs_once() -> None:
    server = serve(Starlette())
    with server:
        pass
    with pytest.raises(RuntimeError, match="runs once"), server:
        pass


async def test_a_socket_bound_first_gives_the_url_before_the_app_exists() -> None:
    sock = loopback_socket()
    url = socket_url(sock)

    async def whoami(request: Request) -> JSONResponse:
        return JSONResponse({"me": url})

    async with serve(Starlette(routes=[Route("/", whoami)]), sock=sock) as served:
        assert served == url
        async with httpx.AsyncClient(trust_env=False) as http:
            assert (await http.get(url)).json() == {"me": url}


def test_only_loopback_addresses_are_served() -> None:
    with pytest.raises(ValueError, match="loopback"):
        loopback_socket("0.0.0.0")
    with pytest.raises(ValueError):
        loopback_socket("localhost")  # an address, not a name that could resolve elsewhere


def test_ipv6_urls_are_bracketed() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        sock = loopback_socket("::1")
    except OSError:
        pytest.skip("::1 is not configured")
    with sock:
        assert socket_url(sock).startswith("http://[::1]:")


async def test_loopback_tls_serves_https_trusted_only_by_its_own_ca() -> None:
    with loopback_tls() as tls:
        async with serve(lifespan_app([]), tls=tls) as url:
            assert url.startswith("https://127.0.0.1:")
            async with httpx.AsyncClient(verify=tls.client_context(), trust_env=False) as http:
                assert (await http.get(url)).json() == {"greeting": "hello"}
            async with httpx.AsyncClient(trust_env=False) as stranger:
                with pytest.raises(httpx.ConnectError):
                    await stranger.get(url)  # the system trust store does not know this CA
        assert oct(tls.key_file.stat().st_mode & 0o777) == "0o600"
        assert tls.server_context() is not None
    assert not tls.directory.exists()


def test_a_switchboard_serves_one_app_at_a_time() -> None:
    board = Switchboard()
    first = Starlette(routes=[Route("/", lambda r: JSONResponse({"app": 1}))])
    with serve(board) as url:
        assert httpx.get(url, trust_env=False).status_code == 503
        with board.plug(first):
            assert httpx.get(url, trust_env=False).json() == {"app": 1}
        assert board.target is None
        assert httpx.get(url, trust_env=False).status_code == 503


async def test_app_client_runs_the_lifespan_around_its_use() -> None:
    events: list[str] = []
    async with app_client(lifespan_app(events), token="abc") as client:
        assert events == ["startup"]
        response = await client.get("/")
        assert response.json() == {"greeting": "hello"}
        assert response.request.headers["authorization"] == "Bearer abc"
    assert events == ["startup", "shutdown"]


async def test_app_client_without_lifespan() -> None:
    events: list[str] = []
    async with app_client(lifespan_app(events), lifespan=False) as client:
        with pytest.raises(AttributeError):
            await client.get("/")  # no lifespan state without the lifespan
    assert events == []
