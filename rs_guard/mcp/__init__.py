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

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, replace
from types import MappingProxyType
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
        mismatch = routing_mismatch(scope, bytes(body))
        if mismatch is not None:
            # What the SDK answers too (HEADER_MISMATCH / INVALID_REQUEST, HTTP 400): a request
            # whose routing headers disagree with its body is never dispatched, so it is never
            # authorized either; a router trusting the headers cannot be steered past a check.
            await _jsonrpc_error(send, *mismatch)
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


# The 2026-07-28 transport's routing headers (MCP SDK: mcp.shared.inbound) and what they mirror.
_MCP_PROTOCOL_VERSION = b"mcp-protocol-version"
_MCP_METHOD = b"mcp-method"
_MCP_NAME = b"mcp-name"
_ROUTING_HEADERS = (_MCP_PROTOCOL_VERSION, _MCP_METHOD, _MCP_NAME)
NAME_PARAMS: Mapping[str, str] = MappingProxyType(
    {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
)
"""Method -> the params member its `Mcp-Name` header mirrors."""
HEADER_MISMATCH = -32020  # JSON-RPC error codes the SDK answers with
INVALID_REQUEST = -32600
_BASE64_VALUE = re.compile(r"^=\?base64\?(?P<payload>.*)\?=$")


def decode_header_value(value: str | None) -> str | None:
    """An `Mcp-Name` value: verbatim, or the UTF-8 inside a `=?base64?...?=` sentinel; None
    for a malformed sentinel (bad or non-canonical base64, bad UTF-8), which matches nothing."""
    if value is None:
        return None
    match = _BASE64_VALUE.fullmatch(value)
    if match is None:
        return value
    payload = match["payload"]
    try:
        raw = base64.b64decode(payload, validate=True)
        if base64.b64encode(raw).decode("ascii") != payload:
            return None
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def routing_mismatch(scope: Scope, body: bytes) -> tuple[int, str, Any] | None:
    """(JSON-RPC error code, message, request id) when the request's `Mcp-Method` / `Mcp-Name`
    headers (2026-07-28 transport) disagree with its body, as the MCP SDK decides it; else None.

    Requests without the headers (2025-11-25 clients) are not affected: their requirements come
    from the body, which is what the server dispatches, either way.
    """
    seen: dict[bytes, str] = {}
    duplicated: bytes | None = None
    for key, value in scope.get("headers", ()):
        if key in _ROUTING_HEADERS:
            if key in seen:
                duplicated = key  # first-copy and last-copy readers would disagree
            seen.setdefault(key, value.decode("latin-1"))
    if duplicated is None and _MCP_METHOD not in seen and _MCP_NAME not in seen:
        return None  # a 2025-11-25 request: nothing to compare (the common case, no parsing)
    try:
        doc = json.loads(body, object_pairs_hook=reject_duplicate_members)
    except (ValueError, RecursionError, MalformedJWS):
        return None  # the body check after this answers (or the app's parse error does)
    if not isinstance(doc, dict):
        # One Mcp-Method header cannot describe a batch; the SDK refuses batches on this path.
        message = "Body must be a single JSON-RPC request or notification object"
        return INVALID_REQUEST, message, None
    request_id = doc.get("id")
    if duplicated is not None:
        return HEADER_MISMATCH, f"{duplicated.decode()} header appears more than once", request_id
    method = doc.get("method")
    if seen.get(_MCP_METHOD) != method:
        message = "mcp-method header does not match the request body's method"
        return HEADER_MISMATCH, message, request_id
    key = NAME_PARAMS.get(method) if isinstance(method, str) else None
    params = doc.get("params")
    if key is not None and isinstance(params, dict):
        value = params.get(key)
        if value is not None and decode_header_value(seen.get(_MCP_NAME)) != value:
            message = f"mcp-name header does not match the request body's {key!r} parameter"
            return HEADER_MISMATCH, message, request_id
    return None


async def _jsonrpc_error(send: Send, code: int, message: str, request_id: Any) -> None:
    body = json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}},
        separators=(",", ":"),
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


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
