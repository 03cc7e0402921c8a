"""Request parsing and plain answers shared by the endpoints: forms, strict JSON, bodies."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse

from ... import _asgi
from ..._json import JSONError, loads
from .._errors import NO_STORE, OAuthError

MAX_FORM_BYTES = 64 * 1024
# Parameters that RFC 8707 / RFC 8693 allow to repeat; every other one must appear at most once.
REPEATABLE = frozenset({"resource", "audience"})


def bearer(*, realm: str | None = None, error: str | None = None, **params: Any) -> str:
    """A `Bearer` WWW-Authenticate challenge, rendered by the core's challenge builder."""
    # Imported on the first refusal: an IdP that only mints tokens never needs it, and it is
    # a noticeable part of importing the IdP.
    from ...challenge import bearer_challenge

    return bearer_challenge(realm=realm, error=error, **params)


def json_ok(body: Any, status_code: int = 200, *, no_store: bool = True) -> JSONResponse:
    """A JSON answer; token-bearing answers must not be cached (RFC 6749 §5.1)."""
    return JSONResponse(body, status_code=status_code, headers=NO_STORE if no_store else None)


async def read_form(request: Request) -> dict[str, list[str]]:
    """Parse an application/x-www-form-urlencoded body (bounded) into name -> values."""
    ctype = request.headers.get("content-type", "")
    if ctype.split(";", 1)[0].strip().lower() != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "body must be application/x-www-form-urlencoded")
    body = await read_body(request, MAX_FORM_BYTES)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise OAuthError("invalid_request", "body is not UTF-8") from None
    return parse_params(parse_qsl(text, keep_blank_values=True))


async def read_body(request: Request, limit: int) -> bytes:
    """Read the request body, refusing anything larger than `limit` bytes."""
    try:
        return await _asgi.read_body(request.receive, limit=limit)
    except _asgi.BodyTooLarge:
        raise OAuthError("invalid_request", "request body too large", 413) from None


# What the strict parser refused, as the IdP has always worded it.
_JSON_REFUSALS = {
    "not_utf8": "the body is not UTF-8",
    "malformed": "the body is not valid JSON",
}


async def read_json_object(
    request: Request,
    limit: int,
    *,
    error: str = "invalid_request",
    media_type: bool = True,
    members: frozenset[str] | None = None,
) -> dict[str, Any]:
    """Read a request body as strict JSON that must be an object, answering `error` (400) if not.

    Strict: UTF-8, no NaN / Infinity, no duplicate members, at most `limit` bytes; with
    `media_type` the Content-Type must be application/json, with `members` no other member
    may appear (a misspelt one would otherwise be silently ignored).
    """
    if media_type:
        ctype = request.headers.get("content-type", "")
        if ctype.split(";", 1)[0].strip().lower() != "application/json":
            raise OAuthError(error, "the body must be application/json")
    raw = await read_body(request, limit)
    try:
        body = loads(raw)
    except JSONError as exc:
        if exc.reason == "duplicate_member":
            description = f"member {exc.name!r} appears more than once"
        elif exc.reason == "constant":
            description = f"the body is not valid JSON ({exc.name})"
        else:
            description = _JSON_REFUSALS.get(exc.reason, "the body is not valid JSON")
        raise OAuthError(error, description) from None
    if not isinstance(body, dict):
        raise OAuthError(error, "the body must be a JSON object")
    unknown = sorted(set(body) - members) if members is not None else []
    if unknown:
        raise OAuthError(error, f"unknown member {unknown[0]!r}")
    return body


def parse_params(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Group parameters; empty values count as absent (RFC 6749 §3.1)."""
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        if value == "":
            continue
        out.setdefault(name, []).append(value)
    for name, values in out.items():
        if len(values) > 1 and name not in REPEATABLE:
            raise OAuthError("invalid_request", f"parameter {name!r} repeated")
    return out


def single(params: Mapping[str, list[str]], name: str) -> str | None:
    """The single value of a parameter, or None."""
    values = params.get(name)
    return values[0] if values else None
