"""Fixtures for clients-as-code: the bundled IdP served by uvicorn on a loopback port, and a
`cli` runner of `rs-guard clients ...` through `main(argv)` (output captured)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from rs_guard.__main__ import main
from rs_guard.idp import IdP

IAT = "iat-for-the-tests-0123456789"
IAT_ENV = "RS_GUARD_TEST_IAT"


@dataclass
class Served:
    idp: IdP
    issuer: str


def serve_idp(**options: Any) -> Iterator[Served]:
    """An IdP on a free loopback port; its issuer is known before it starts (bound socket)."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    issuer = f"http://127.0.0.1:{sock.getsockname()[1]}"
    idp = IdP(issuer, **options)
    config = uvicorn.Config(idp.app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.daemon = True
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield Served(idp, issuer)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def idp_served() -> Iterator[Served]:
    """The bundled IdP with an initial access token required at /register (RFC 7591 §3)."""
    yield from serve_idp(initial_access_token=IAT)


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


CLI = Callable[..., Run]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> CLI:
    """`cli("plan", path, ...)` runs `rs-guard clients plan path ...`; never raises."""
    return make_cli(capsys, monkeypatch)


def make_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> CLI:
    """The runner behind the `cli` fixture (for other folders' fixtures)."""
    monkeypatch.setenv(IAT_ENV, IAT)

    def run(*argv: str | Path) -> Run:
        capsys.readouterr()
        try:
            code = main(["clients", *map(str, argv)])
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def write_clients(path: Path, issuer: str, body: str, *, iat_env: str | None = IAT_ENV) -> Path:
    """A clients file for `issuer` with the client tables in `body`."""
    env = f'initial_access_token_env = "{iat_env}"\n' if iat_env else ""
    path.write_text(f'[server]\nissuer = "{issuer}"\n{env}\n{body}', encoding="utf-8")
    return path


class FailingTransport(httpx.AsyncBaseTransport):
    """Fault injection: the `fail_on`-th request (1-based) fails to connect."""

    def __init__(self, fail_on: int) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.count = 0
        self.fail_on = fail_on

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        if self.count == self.fail_on:
            raise httpx.ConnectError("injected fault", request=request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
