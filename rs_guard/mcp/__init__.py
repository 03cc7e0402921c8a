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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import AccessToken
from .._jose import MalformedJWS, reject_duplicate_members
from ..decorators import check
from ..errors import ConfigurationError, InvalidRequest, RSGuardError
from ..middleware import guard_of
from ..policy import Requirement

ToolPolicy = Requirement | Callable[[Mapping[str, Any]], Requirement | None]
"""A tool's requirement, or a function of the call's arguments returning one (or None)."""

MAX_BODY = 4 * 1024 * 1024  # the MCP SDK's own default request size limit

HideTools = Literal["never", "forbidden", "unmet"]
"""Which tools `tools/list` leaves out for the caller (see `tool_visible`)."""

F = TypeVar("F")


class ToolRequirements(Mapping[str, ToolPolicy]):
    """Per-tool requirements declared next to the tools; a mapping `ToolGuard` reads.

        tools = ToolRequirements()

        @mcp.tool()
        @tools.require("notes:write")
        async def add_note(text: str) -> str: ...

    The key is the tool's name: `name=` when the framework registers it under another name,
    else the decorated object's `name` (a framework's tool object) or `__name__`. A name
    declared twice is a configuration error: the second declaration would silently win.
    """

    def __init__(self, tools: Mapping[str, ToolPolicy] | None = None) -> None:
        self._tools: dict[str, ToolPolicy] = {}
        for name, policy in (tools or {}).items():
            self.add(name, policy)

    def add(self, name: str, policy: ToolPolicy) -> None:
        """Declare what the tool `name` needs."""
        if not isinstance(name, str) or not name:
            raise ConfigurationError("a tool name must be a non-empty string")
        if name in self._tools:
            raise ConfigurationError(f"the tool {name!r} already has a requirement")
        if not isinstance(policy, Requirement) and not callable(policy):
            raise ConfigurationError(f"the requirement of {name!r} is not a Requirement")
        self._tools[name] = policy

    def require(
        self,
        scopes: str | Sequence[str] = (),
        *,
        name: str | None = None,
        acr_values: str | Sequence[str] = (),
        max_age: int | None = None,
        claims: Mapping[str, Any] | None = None,
        predicate: Callable[[AccessToken], bool] | None = None,
        description: str | None = None,
        policy: Callable[[Mapping[str, Any]], Requirement | None] | None = None,
    ) -> Callable[[F], F]:
        """Decorator: the tool needs this (`Requirement`'s fields), or what `policy` decides
        from the call's arguments. Returns the decorated object unchanged."""
        if policy is not None:
            if scopes or acr_values or max_age is not None or claims or predicate:
                raise ConfigurationError("give either a policy function or requirement fields")
            decided: ToolPolicy = policy
        else:
            decided = Requirement(
                scopes=(scopes,) if isinstance(scopes, str) else tuple(scopes),
                acr_values=(acr_values,) if isinstance(acr_values, str) else tuple(acr_values),
                max_age=max_age,
                claims=dict(claims or {}),
                predicate=predicate,
                description=description,
            )

        def declare(tool: F) -> F:
            found = name or getattr(tool, "name", None) or getattr(tool, "__name__", None)
            if not isinstance(found, str):
                raise ConfigurationError("cannot tell the tool's name; pass name=")
            self.add(found, decided)
            return tool

        return declare

    def __getitem__(self, name: str) -> ToolPolicy:
        return self._tools[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tools)

    def __len__(self) -> int:
        return len(self._tools)

    def __repr__(self) -> str:
        return f"ToolRequirements({sorted(self._tools)!r})"


def check_tool_names(tools: Mapping[str, ToolPolicy], served: Sequence[str]) -> None:
    """Fail at startup when a requirement names a tool the server does not have: a misspelt
    name would leave the real tool unguarded (fail-open)."""
    unknown = sorted(set(tools) - set(served))
    if unknown:
        raise ConfigurationError(
            f"requirements name tools the MCP server does not have: {', '.join(unknown)}"
        )


@dataclass(frozen=True, slots=True)
class Caller:
    """The request an MCP handler is serving: its ASGI scope, as ResourceGuard left it."""

    scope: Scope

    @property
    def token(self) -> AccessToken | None:
        token = self.scope.get("auth")
        return token if isinstance(token, AccessToken) else None


# Set by the framework bridges for the duration of one HTTP request. The MCP SDK carries each
# message's context variables from the HTTP request into the handler (and FastMCP's handlers
# run inside the SDK's dispatch), so a tool sees the caller of the request that called it.
_caller: ContextVar[Caller | None] = ContextVar("rs_guard_mcp_caller", default=None)


def current_caller() -> Caller | None:
    """The caller of the MCP request being handled, behind a bridge; else None."""
    return _caller.get()


def current_token() -> AccessToken | None:
    """The rs_guard `AccessToken` of the MCP request being handled (inside a tool, a list
    handler or framework middleware behind a bridge); None elsewhere."""
    caller = _caller.get()
    return caller.token if caller is not None else None


def tool_visible(policy: ToolPolicy | None, caller: Caller | None, hide: HideTools) -> bool:
    """Whether `tools/list` shows a tool with this policy to this caller.

    - `"never"` (the default everywhere): every tool is listed; calling one the token cannot
      use answers the HTTP challenge that tells the client how to get there.
    - `"forbidden"`: tools whose `predicate` rejects the token are left out: no scope or
      step-up re-authorization is expected to change that (e.g. a role claim). Tools that more
      scopes or a stronger login would unlock stay listed.
    - `"unmet"`: every tool the current token cannot call right now is left out, including
      those a re-authorization or step-up would unlock; clients then do not know they exist.

    A policy that depends on the call's arguments is always listed (nothing to decide on).
    """
    if hide == "never" or not isinstance(policy, Requirement):
        return True
    token = caller.token if caller is not None else None
    if caller is None or token is None:
        return hide != "unmet"
    if hide == "forbidden":
        return policy.predicate is None or bool(policy.predicate(token))
    try:
        check(HTTPConnection(caller.scope), policy)  # the guard's hierarchy and clock
    except RSGuardError:
        return False
    return True


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
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                # A body that cannot be inspected cannot be authorized: fail closed.
                await _plain(send, 413, b"request body too large")
                return
        try:
            requirements = self._requirements(bytes(body))
        except MalformedJWS:
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

        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _requirements(self, body: bytes) -> list[Requirement]:
        try:
            doc = json.loads(body, object_pairs_hook=reject_duplicate_members)
        except MalformedJWS:
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


async def _plain(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
