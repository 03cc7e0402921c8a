"""FastMCP servers behind ResourceGuard, seeing the token through FastMCP's own API.

`guard_app(mcp, ...)` returns the ASGI app to serve. ResourceGuard validates the token once;
`ToolGuard` checks per-tool requirements on `tools/call` and answers the HTTP 403 / 401
challenges MCP clients re-authorize on (FastMCP's own per-tool `auth=` hides a tool or answers a
tool error inside a 200, which no client acts on); `TokenContext` hands the validated token to
FastMCP as its own auth middleware would. Inside a tool, FastMCP's `get_access_token()`,
`CurrentAccessToken()` and `TokenClaim(...)` then return it (scopes, client id, expiry, subject,
all claims), and FastMCP's `auth=` checks and authorization middleware see the same token.
FastMCP's `auth=` provider must stay unset: nothing is validated twice.

    tools = ToolRequirements()
    mcp = FastMCP("notes")

    @mcp.tool
    @tools.require("notes:write")
    async def add_note(text: str) -> str:
        token = get_access_token()  # fastmcp.server.dependencies.get_access_token
        ...

    app = guard_app(mcp, tools=tools, resource="https://notes.example/mcp",
                    issuer="https://login.example")
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

try:
    from fastmcp import FastMCP
    from fastmcp.server.auth import AccessToken as FastMCPAccessToken
    from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
    from fastmcp.tools import Tool
    from mcp_types import ListToolsRequest
except ModuleNotFoundError as exc:  # pragma: no cover - exercised by test_packaging
    raise ModuleNotFoundError(
        "rs_guard.mcp.fastmcp needs the fastmcp package: pip install 'rs_guard[fastmcp]'",
        name=exc.name,
    ) from exc
from starlette.applications import Starlette
from starlette.middleware import Middleware as ASGIMiddleware
from starlette.routing import Mount

from .. import Requirement, ResourceGuard
from ..errors import ConfigurationError
from . import HideTools, ToolGuard, ToolPolicy, check_tool_names, current_caller, tool_visible
from .sdk import TokenContext

__all__ = ["ToolVisibility", "guard_app"]


class ToolVisibility(Middleware):
    """FastMCP middleware: `tools/list` leaves out what `hide` says (`tool_visible`)."""

    def __init__(self, tools: Mapping[str, ToolPolicy], hide: HideTools) -> None:
        self.tools = tools
        self.hide = hide

    async def on_list_tools(
        self,
        context: MiddlewareContext[ListToolsRequest],
        call_next: CallNext[ListToolsRequest, Sequence[Tool]],
    ) -> Sequence[Tool]:
        listed = await call_next(context)
        if self.hide == "never":
            return listed
        caller = current_caller()
        policies = self.tools
        return [tool for tool in listed if tool_visible(policies.get(tool.name), caller, self.hide)]


def guard_app(
    mcp: FastMCP[Any],
    *,
    resource: str,
    tools: Mapping[str, ToolPolicy] | None = None,
    endpoint: Requirement | None = None,
    hide_tools: HideTools = "never",
    bind_sessions: bool = True,
    http_app: Mapping[str, Any] | None = None,
    **guard: Any,
) -> Starlette:
    """The app serving `mcp` at `resource`'s path (FastMCP's `http_app`) behind ResourceGuard.

    - `resource`: the MCP server URL clients are given; the token audience and the `resource`
      of the RFC 9728 metadata, byte for byte.
    - `tools`: per-tool requirements (`ToolRequirements` or a plain mapping); names the server
      does not have fail at startup.
    - `endpoint`: what every request to the MCP endpoint needs; None means any valid token.
    - `hide_tools`: `"never"` (default), `"forbidden"` or `"unmet"` (see `tool_visible`).
    - `bind_sessions`: sessions bound to the token's principal (see `TokenContext`).
    - `http_app`: more keyword arguments for `FastMCP.http_app` (e.g. `json_response`,
      `stateless_http`, `host_origin_protection`).
    - everything else goes to `ResourceGuard` (`issuer`, `server`, `scope_hierarchy`, ...).
    """
    if mcp.auth is not None:
        raise ConfigurationError(
            "the FastMCP server has its own auth provider; behind ResourceGuard leave it unset "
            "(the guard validates the token, FastMCP sees it through get_access_token())"
        )
    path = urlsplit(resource).path or "/mcp"
    policies: Mapping[str, ToolPolicy] = tools if tools is not None else {}
    if hide_tools != "never":
        mcp.add_middleware(ToolVisibility(policies, hide_tools))
    requirements = dict(guard.pop("requirements", None) or {})
    if endpoint is not None:
        requirements.setdefault(path, endpoint)
    inner = mcp.http_app(
        path=path,
        middleware=[
            # Outermost first: validate, then per-tool checks, then FastMCP's view of the token.
            ASGIMiddleware(ResourceGuard, resource=resource, requirements=requirements, **guard),
            ASGIMiddleware(ToolGuard, tools=policies),
            ASGIMiddleware(
                TokenContext, token_type=FastMCPAccessToken, bind_sessions=bind_sessions
            ),
        ],
        **dict(http_app or {}),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        served = await mcp.list_tools(run_middleware=False)
        check_tool_names(policies, [tool.name for tool in served])
        async with inner.router.lifespan_context(inner):
            yield

    return Starlette(routes=[Mount("/", app=inner)], lifespan=lifespan)
