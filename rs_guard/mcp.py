"""MCP servers: per-tool requirements checked on `tools/call` before the MCP app runs.

Every MCP request goes to one HTTP endpoint, so ResourceGuard's per-path table can only say what
the endpoint as a whole needs. `ToolGuard` sits between ResourceGuard and the MCP app, reads the
JSON-RPC body of each POST, and checks the called tool's `Requirement` against the request's
token. An unmet requirement raises the rs_guard error, which ResourceGuard turns into the HTTP
403 `insufficient_scope` or 401 `insufficient_user_authentication` challenge that MCP clients act
on (a tool-level error inside a 200 response would not make any client re-authorize).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from ._asgi import BodyTooLarge, ClientDisconnected, read_body, replay, send_response
from ._json import JSONError, no_duplicates
from .decorators import check
from .errors import InvalidRequest
from .middleware import guard_of
from .policy import Requirement

__all__ = ["MAX_BODY", "ToolGuard", "ToolPolicy"]

ToolPolicy = Requirement | Callable[[Mapping[str, Any]], Requirement | None]
"""A tool's requirement, or a function of the call's arguments returning one (or None)."""

MAX_BODY = 4 * 1024 * 1024  # the MCP SDK's own default request size limit


class ToolGuard:
    """ASGI middleware: `tools/call` requests must meet the called tool's requirement."""

    def __init__(
        self,
        app: ASGIApp,
        tools: Mapping[str, ToolPolicy],
        *,
        max_body: int = MAX_BODY,
    ) -> None:
        self.app = app
        self.tools = dict(tools)
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            body = await read_body(receive, limit=self.max_body)
        except ClientDisconnected:
            return  # the client went away
        except BodyTooLarge:
            # A body that cannot be inspected cannot be authorized: fail closed.
            await send_response(
                send, 413, b"request body too large", [(b"content-type", b"text/plain")]
            )
            return
        try:
            requirements = self._requirements(body)
        except JSONError:
            # Duplicate members could make this check and the MCP app see different tools.
            raise InvalidRequest(
                "The request body has duplicate JSON members", reason="duplicate_member"
            ) from None
        if requirements:
            guard = guard_of(scope)
            endpoint = guard.requirement_for(scope["path"]) if guard is not None else None
            connection = HTTPConnection(scope)
            for requirement in requirements:
                if endpoint is not None and endpoint.scopes and requirement.scopes:
                    # One challenge naming every scope the call needs (endpoint + tool).
                    scopes = tuple(dict.fromkeys((*endpoint.scopes, *requirement.scopes)))
                    requirement = replace(requirement, scopes=scopes)
                check(connection, requirement)  # raises; ResourceGuard renders the challenge

        await self.app(scope, replay(body, receive), send)

    def _requirements(self, body: bytes) -> list[Requirement]:
        try:
            # Not the strict parser: what the MCP app accepts (NaN too) must be checked here.
            doc = json.loads(body, object_pairs_hook=no_duplicates)
        except JSONError:
            raise
        except (ValueError, RecursionError):
            return []  # not JSON: the MCP app answers with a parse error, no tool runs
        messages = doc if isinstance(doc, list) else [doc]
        out: list[Requirement] = []
        for message in messages:
            if not isinstance(message, dict) or message.get("method") != "tools/call":
                continue
            params = message.get("params")
            name = params.get("name") if isinstance(params, dict) else None
            policy = self.tools.get(name) if isinstance(name, str) else None
            if policy is None:
                continue
            if isinstance(policy, Requirement):
                out.append(policy)
                continue
            arguments = params.get("arguments") if isinstance(params, dict) else None
            decided = policy(arguments if isinstance(arguments, dict) else {})
            if decided is not None:
                out.append(decided)
        return out
