"""The caller of the MCP request being handled, for tools and `tools/list` filters."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

from starlette.requests import HTTPConnection
from starlette.types import Scope

from .. import AccessToken
from ..decorators import check
from ..errors import RSGuardError
from ..policy import Requirement
from ._tools import ToolPolicy

HideTools = Literal["never", "forbidden", "unmet"]
"""Which tools `tools/list` leaves out for the caller (see `tool_visible`)."""


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
