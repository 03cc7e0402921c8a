"""The official MCP SDK's `MCPServer` behind ResourceGuard, seeing the token through its own API.

`guard_app(mcp, ...)` returns the Starlette app to serve: ResourceGuard validates the token once,
`ToolGuard` checks per-tool requirements on `tools/call` (HTTP 403 / 401 challenges), and
`TokenContext` hands the validated token to the SDK the way its own auth middleware would, so
inside a tool `mcp.server.auth.middleware.auth_context.get_access_token()` returns it (scopes,
client id, expiry, subject, claims), and the SDK binds each session to the token's principal
(client id, issuer, subject). No SDK token verifier runs: nothing is validated twice.

    tools = ToolRequirements()
    mcp = MCPServer("notes")

    @mcp.tool()
    @tools.require("notes:write")
    async def add_note(text: str) -> str:
        token = get_access_token()  # the SDK's own accessor
        ...

    app = guard_app(mcp, tools=tools, resource="https://notes.example/mcp",
                    issuer="https://login.example", scope_hierarchy={...})
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

try:
    from mcp.server.auth.middleware.auth_context import auth_context_var
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
    from mcp.server.auth.provider import AccessToken as SDKAccessToken
    from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
    from mcp.server.mcpserver import MCPServer
    from mcp.server.transport_security import TransportSecuritySettings
except ModuleNotFoundError as exc:  # pragma: no cover - exercised by test_packaging
    raise ModuleNotFoundError(
        "rs_guard.mcp.sdk needs the mcp package: pip install 'rs_guard[mcp]'",
        name=exc.name,
    ) from exc
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import AccessToken, Requirement, ResourceGuard
from ..middleware import guard_of
from . import ToolGuard
from ._context import Caller, HideTools, _caller, current_caller, tool_visible
from ._tools import ToolPolicy, check_tool_names

__all__ = [
    "GuardedUser",
    "TokenContext",
    "ToolVisibility",
    "guard_app",
    "sdk_access_token",
]


def sdk_access_token(
    token: AccessToken,
    *,
    resource: str | None = None,
    token_type: type[SDKAccessToken] = SDKAccessToken,
) -> SDKAccessToken:
    """The SDK's view of a validated rs_guard token.

    `scopes` are the effective scopes (the guard's scope hierarchy applied), so an SDK-side
    scope check agrees with ResourceGuard's; `claims` are all of the token's claims.
    """
    expires = token.expires_at
    return token_type(
        token=token.token,
        client_id=token.client_id or "",
        scopes=list(token.scopes),
        expires_at=int(expires) if expires is not None else None,
        resource=resource,
        subject=token.subject or None,
        claims=dict(token.claims),
    )


class GuardedUser(AuthenticatedUser):
    """The SDK's `AuthenticatedUser`, also carrying the rs_guard token it was made from."""

    def __init__(self, access_token: SDKAccessToken, guard_token: AccessToken) -> None:
        super().__init__(access_token)
        self.guard_token = guard_token


class TokenContext:
    """ASGI middleware between ResourceGuard and an MCP app: the validated token, as the SDK's
    auth middleware would have left it (`scope["user"]` an `AuthenticatedUser`, the SDK's
    `auth_context_var` set), plus `rs_guard.mcp.current_token()` for rs_guard's own view.

    `bind_sessions` (default True): `scope["user"]` becomes the SDK's `AuthenticatedUser`, so
    the SDK's session manager binds each MCP session to the principal that opened it (client
    id, issuer, subject) and answers 404 to the same session id with another principal's
    token. False leaves `scope["user"]` alone (sessions unbound, as without the bridge); the
    token is still reachable through the SDK's and FastMCP's `get_access_token()`. A client
    that registers again mid-session (a new client id) needs False.

    A request without a token (a public path) passes through untouched.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token_type: type[SDKAccessToken] = SDKAccessToken,
        bind_sessions: bool = True,
    ) -> None:
        self.app = app
        self.token_type = token_type
        self.bind_sessions = bind_sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = scope.get("auth") if scope["type"] in ("http", "websocket") else None
        if not isinstance(token, AccessToken):
            await self.app(scope, receive, send)
            return
        guard = guard_of(scope)
        resource = guard.resource if guard is not None else None
        user = GuardedUser(
            sdk_access_token(token, resource=resource, token_type=self.token_type), token
        )
        # A copy: the request's scope above this point keeps ResourceGuard's TokenUser.
        inner = {**scope, "user": user} if self.bind_sessions else scope
        caller = _caller.set(Caller(inner))
        sdk = auth_context_var.set(user)
        try:
            await self.app(inner, receive, send)
        finally:
            auth_context_var.reset(sdk)
            _caller.reset(caller)


class ToolVisibility:
    """SDK server middleware: `tools/list` leaves out what `hide` says (`tool_visible`)."""

    def __init__(self, tools: Mapping[str, ToolPolicy], hide: HideTools) -> None:
        self.tools = tools
        self.hide = hide

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method != "tools/list" or self.hide == "never" or result is None:
            return result
        caller = current_caller()
        listed = result.get("tools") if isinstance(result, dict) else getattr(result, "tools", None)
        if not isinstance(listed, list):
            return result
        kept = [tool for tool in listed if tool_visible(self._policy(tool), caller, self.hide)]
        if isinstance(result, dict):
            return {**result, "tools": kept}
        return result.model_copy(update={"tools": kept})

    def _policy(self, tool: Any) -> ToolPolicy | None:
        name = tool.get("name") if isinstance(tool, dict) else getattr(tool, "name", None)
        return self.tools.get(name) if isinstance(name, str) else None


def guard_app(
    mcp: MCPServer,
    *,
    resource: str,
    tools: Mapping[str, ToolPolicy] | None = None,
    endpoint: Requirement | None = None,
    hide_tools: HideTools = "never",
    transport_security: TransportSecuritySettings | None = None,
    http_app: Mapping[str, Any] | None = None,
    routes: Sequence[Any] = (),
    bind_sessions: bool = True,
    **guard: Any,
) -> Starlette:
    """The Starlette app serving `mcp` at `resource`'s path behind ResourceGuard.

    - `resource`: the MCP server URL clients are given; the token audience and the `resource`
      of the RFC 9728 metadata, byte for byte.
    - `tools`: per-tool requirements (`ToolRequirements` or a plain mapping); names the server
      does not have fail at startup.
    - `endpoint`: what every request to the MCP endpoint needs (e.g. the read scope); None
      means any valid token.
    - `hide_tools`: `"never"` (default), `"forbidden"` or `"unmet"` (see `tool_visible`).
    - `transport_security`: the SDK's DNS-rebinding protection; by default it allows
      `resource`'s host only.
    - `http_app`: more keyword arguments for `MCPServer.streamable_http_app` (e.g.
      `json_response`, `stateless_http`, `event_store`, `retry_interval`).
    - `bind_sessions`: sessions bound to the token's principal (see `TokenContext`).
    - `routes`: more Starlette routes, served before the MCP app (behind the guard too).
    - everything else goes to `ResourceGuard` (`issuer`, `server`, `scope_hierarchy`, ...).
    """
    parts = urlsplit(resource)
    path = parts.path or "/mcp"
    policies: Mapping[str, ToolPolicy] = tools if tools is not None else {}
    if transport_security is None:
        transport_security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=[parts.netloc],
            allowed_origins=[f"{parts.scheme}://{parts.netloc}"],
        )
    if hide_tools != "never":
        mcp.middleware.append(ToolVisibility(policies, hide_tools))
    mcp_app = mcp.streamable_http_app(
        streamable_http_path=path,
        transport_security=transport_security,
        host=parts.hostname or "127.0.0.1",
        **dict(http_app or {}),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        check_tool_names(policies, [tool.name for tool in await mcp.list_tools()])
        # A mounted app's lifespan is not run by Starlette: run the SDK's session manager here.
        async with mcp.session_manager.run():
            yield

    requirements = dict(guard.pop("requirements", None) or {})
    if endpoint is not None:
        requirements.setdefault(path, endpoint)
    bridged = TokenContext(mcp_app, bind_sessions=bind_sessions)
    return Starlette(
        routes=[*routes, Mount("/", app=ToolGuard(bridged, policies))],
        middleware=[
            Middleware(ResourceGuard, resource=resource, requirements=requirements, **guard)
        ],
        lifespan=lifespan,
    )
