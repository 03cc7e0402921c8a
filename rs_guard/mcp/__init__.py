"""MCP servers: per-tool requirements checked on `tools/call` before the MCP app runs.

Framework bridges live in submodules: `rs_guard.mcp.sdk` (the official SDK's `MCPServer`) and
`rs_guard.mcp.fastmcp` (FastMCP). This module needs neither package.

Every MCP request goes to one HTTP endpoint, so ResourceGuard's per-path table can only say what
the endpoint as a whole needs. `ToolGuard` sits between ResourceGuard and the MCP app, reads the
JSON-RPC body of each POST, and checks the called tool's `Requirement` against the request's
token. An unmet requirement raises the rs_guard error, which ResourceGuard turns into the HTTP
403 `insufficient_scope` or 401 `insufficient_user_authentication` challenge that MCP clients act
on (a tool-level error inside a 200 response would not make any client re-authorize).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from .._asgi import BodyTooLarge, ClientDisconnected, read_body, replay, send_response
from .._json import JSONError, no_duplicates
from .._responses import send_unguarded
from ..decorators import check
from ..errors import InvalidRequest
from ..health import refuse_unguarded_lifespan
from ..middleware import endpoint_requirement, guard_of
from ..policy import Requirement
from ._context import Caller, HideTools, current_caller, current_token, tool_visible
from ._routing import NAME_PARAMS, decode_header_value, routing_mismatch
from ._routing import jsonrpc_error as _jsonrpc_error
from ._tools import ToolPolicy, ToolRequirements, check_tool_names

__all__ = [
    "MAX_BODY",
    "NAME_PARAMS",
    "Caller",
    "HideTools",
    "ToolGuard",
    "ToolPolicy",
    "ToolRequirements",
    "check_tool_names",
    "current_caller",
    "current_token",
    "decode_header_value",
    "routing_mismatch",
    "tool_visible",
]

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
        if scope["type"] == "lifespan":  # start-up fails without a ResourceGuard in front
            await refuse_unguarded_lifespan(self.app, scope, receive, send, "ToolGuard")
            return
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
        mismatch = routing_mismatch(scope, body)
        if mismatch is not None:
            # What the SDK answers too (HEADER_MISMATCH / INVALID_REQUEST, HTTP 400): a request
            # whose routing headers disagree with its body is never dispatched, so it is never
            # authorized either; a router trusting the headers cannot be steered past a check.
            await _jsonrpc_error(send, *mismatch)
            return
        try:
            requirements = self._requirements(body)
        except JSONError:
            # Duplicate members could make this check and the MCP app see different tools.
            raise InvalidRequest(
                "The request body has duplicate JSON members", reason="duplicate_member"
            ) from None
        if requirements:
            if guard_of(scope) is None:
                await send_unguarded(send, "ToolGuard")  # fail closed, naming the fix
                return
            endpoint = endpoint_requirement(scope)  # matched on the guard's own route path
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
