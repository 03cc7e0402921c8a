"""Helpers shared by the test folders."""

from __future__ import annotations

import socket
from collections import Counter
from typing import Any

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
