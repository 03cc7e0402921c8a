"""The 2026-07-28 transport's routing headers (`Mcp-Method`, `Mcp-Name`) against the body."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from starlette.types import Scope, Send

from .._asgi import send_response
from .._json import no_duplicates

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
        doc = json.loads(body, object_pairs_hook=no_duplicates)
    except (ValueError, RecursionError):  # JSONError (a duplicate member) is a ValueError
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


async def jsonrpc_error(send: Send, code: int, message: str, request_id: Any) -> None:
    """The SDK's answer to a refused request: HTTP 400 with a JSON-RPC error object."""
    body = json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}},
        separators=(",", ":"),
    ).encode()
    await send_response(send, 400, body, [(b"content-type", b"application/json")])
