"""Helpers shared by the test folders."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

ISSUER = "https://idp.example"
"""The issuer of the shared `idp` fixture (tests/conftest.py)."""


class Clock:
    """A settable clock shared by the IdP and the code under test: tests move time, not sleep."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingApp:
    """Counts the requests reaching the IdP per path (a real ASGI wrapper, not a mock)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.calls[scope["path"]] += 1
        await self.app(scope, receive, send)


def free_port() -> int:
    """A loopback port that was free a moment ago, for a child process that binds it itself.

    Racy by nature; an ASGI app served in-process takes `rs_guard.testing.loopback_socket()`
    instead (bound once, never released).
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


REDIS_ARGS = ("--bind", "127.0.0.1", "--save", "", "--appendonly", "no")


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A real redis-server on a free loopback port (no persistence); yields its URL. Skips the
    test when redis-server is not installed (`make system-deps` installs it)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (make system-deps installs it)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), *REDIS_ARGS],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()

