"""The IdP's one fault model, for resilience tests: per-endpoint switches (named in the route
table), a whole-IdP outage, and "unreachable" (connection refused at the transport)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import anyio
import httpx
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

FaultMode = Literal["down", "slow", "garbage"] | None
WholeMode = Literal["down", "slow", "garbage", "unreachable"] | None
MODES: tuple[FaultMode, ...] = (None, "down", "slow", "garbage")
WHOLE_MODES: tuple[WholeMode, ...] = (*MODES, "unreachable")


class Faults:
    """Fault switches: `faults.<endpoint> = "down" | "slow" | "garbage" | None` for one
    endpoint (503, sleep `delay` then answer, 200 with a non-JSON body), `faults.whole` for the
    whole IdP (the same modes plus "unreachable": in-process clients get a connection error)."""

    delay: float
    whole: WholeMode
    _modes: dict[str, FaultMode]

    def __init__(self, switches: Iterable[str], delay: float = 5.0) -> None:
        object.__setattr__(self, "_modes", dict.fromkeys(switches))
        object.__setattr__(self, "delay", delay)
        object.__setattr__(self, "whole", None)

    @property
    def names(self) -> tuple[str, ...]:
        """The endpoint switches, as the route table names them."""
        return tuple(self._modes)

    def __getattr__(self, name: str) -> FaultMode:
        modes: dict[str, FaultMode] = object.__getattribute__(self, "_modes")
        if name in modes:
            return modes[name]
        raise AttributeError(name)

    def __setattr__(self, name: str, value: object) -> None:
        # Catch typos early: a misspelt switch or mode would otherwise silently do nothing.
        if name == "delay":
            object.__setattr__(self, name, value)
        elif name == "whole":
            if value not in WHOLE_MODES:
                raise ValueError(f"fault mode must be one of {WHOLE_MODES}, got {value!r}")
            object.__setattr__(self, name, value)
        elif name in self._modes:
            if value not in MODES:
                raise ValueError(f"fault mode must be one of {MODES}, got {value!r}")
            self._modes[name] = value
        else:
            raise ValueError(f"unknown fault switch {name!r}; use one of {self.names}")

    def mode(self, name: str) -> FaultMode:
        """The mode of the switch `name` (unknown names are never faulty)."""
        return self._modes.get(name)

    def reset(self) -> None:
        """Turn every switch off, the whole-IdP one included."""
        for name in self._modes:
            self._modes[name] = None
        object.__setattr__(self, "whole", None)

    async def intercept(self, mode: WholeMode) -> Response | None:
        """The answer a faulty IdP gives in `mode` instead of the real one (None: answer for
        real, after the delay when "slow")."""
        if mode == "slow":
            await anyio.sleep(self.delay)
            return None
        if mode == "garbage":
            return Response(b"<html>this is not json", media_type="application/json")
        if mode is not None:
            # "unreachable" reaches here only through a real socket; 503 is the closest answer.
            return JSONResponse(
                {"error": "temporarily_unavailable"},
                status_code=503,
                headers={"Retry-After": "1", "Cache-Control": "no-store"},
            )
        return None


class FaultGate:
    """ASGI middleware in front of the whole IdP: answers for it during a whole-IdP outage."""

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.faults.whole is not None:
            answer = await self.faults.intercept(self.faults.whole)
            if answer is not None:
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


class FaultyTransport(httpx.ASGITransport):
    """httpx's ASGI transport to the IdP, refusing connections while it is "unreachable"."""

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        super().__init__(app=app)
        self.faults = faults

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.faults.whole == "unreachable":
            raise httpx.ConnectError("the IdP is unreachable (outage)", request=request)
        return await super().handle_async_request(request)
