"""Small helpers shared by the IdP's endpoints: errors, form parsing, URIs, encodings."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

MAX_FORM_BYTES = 64 * 1024
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

# Parameters that RFC 8707 / RFC 8693 allow to repeat; every other one must appear at most once.
REPEATABLE = frozenset({"resource", "audience"})
_NOT_IN_DESCRIPTION = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


class OAuthError(Exception):
    """An OAuth error answer (RFC 6749 §5.2 shape) raised anywhere inside an endpoint."""

    def __init__(
        self,
        error: str,
        description: str = "",
        status_code: int = 400,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        # RFC 6749 §5.2 / §4.1.2.1: error_description is limited to %x20-21 / %x23-5B /
        # %x5D-7E; descriptions quote request values, which may hold anything.
        description = _NOT_IN_DESCRIPTION.sub("?", description)
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status_code = status_code
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        """Render this error as the JSON body of RFC 6749 §5.2, never cached."""
        body: dict[str, str] = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        headers = {**NO_STORE, **self.headers}
        if self.status_code == 401 and not any(k.lower() == "www-authenticate" for k in headers):
            # RFC 9110 §15.5.2: a 401 always names a scheme; client authentication here
            # is HTTP Basic (RFC 6749 §5.2), also when the client tried client_secret_post.
            headers["WWW-Authenticate"] = 'Basic realm="rs_guard-idp"'
        return JSONResponse(body, status_code=self.status_code, headers=headers)


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def random_token(nbytes: int = 32) -> str:
    """A URL-safe random string with `nbytes` bytes of entropy."""
    return secrets.token_urlsafe(nbytes)


def token_hash(token: str) -> str:
    """The key under which a token or secret is stored (never the token itself)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def json_ok(body: Any, status_code: int = 200, *, no_store: bool = True) -> JSONResponse:
    """A JSON answer; token-bearing answers must not be cached (RFC 6749 §5.1)."""
    return JSONResponse(body, status_code=status_code, headers=NO_STORE if no_store else None)


def garbage_response() -> Response:
    """A 200 answer whose body is not JSON, for the `garbage` fault."""
    return Response(b"<html>this is not json", media_type="application/json")


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
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise OAuthError("invalid_request", "request body too large", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def _no_duplicate_members(error: str) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        # Two members with one name let different parsers see different requests.
        out: dict[str, Any] = {}
        for name, value in pairs:
            if name in out:
                raise OAuthError(error, f"member {name!r} appears more than once")
            out[name] = value
        return out

    return hook


def _no_constants(error: str) -> Callable[[str], Any]:
    def hook(name: str) -> Any:
        raise OAuthError(error, f"the body is not valid JSON ({name})")

    return hook


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
        body = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_no_duplicate_members(error),
            parse_constant=_no_constants(error),
        )
    except UnicodeDecodeError:
        raise OAuthError(error, "the body is not UTF-8") from None
    except (ValueError, RecursionError):
        raise OAuthError(error, "the body is not valid JSON") from None
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


def split_scope(scope: str | Iterable[str] | None) -> list[str]:
    """Scope as an ordered list without duplicates (RFC 6749 §3.3)."""
    if scope is None:
        return []
    items = scope.split(" ") if isinstance(scope, str) else list(scope)
    seen: dict[str, None] = {}
    for item in items:
        if item:
            seen.setdefault(item, None)
    return list(seen)


def safe_split(uri: str) -> tuple[str, str, int | None, str, str, str] | None:
    """(scheme, host, port, path, query, fragment) or None when the URI cannot be parsed."""
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return None
    return parts.scheme.lower(), host, port, parts.path, parts.query, parts.fragment


def has_fragment(uri: str) -> bool:
    """True when the URI carries a fragment (even an empty one)."""
    return "#" in uri


def dumps(obj: Any) -> str:
    """Compact JSON."""
    return json.dumps(obj, separators=(",", ":"))
