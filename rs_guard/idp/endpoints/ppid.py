"""POST /ppid/convert: batch conversion of subjects between two clients' namespaces.

A caller always works with the PPIDs issued to itself, so one side of every conversion must be
the caller: "these subjects, as issued to X, expressed for me" (direction "from") or "these of
mine, expressed for Y" (direction "to"). Which pairs may convert is decided by a
`ConversionPolicy` (`idp.ppid_policy`), which denies everything not explicitly allowed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from starlette.requests import Request
from starlette.responses import Response

from .._errors import OAuthError
from ._client_auth import authenticate_caller
from ._wire import json_ok, read_json_object

if TYPE_CHECKING:
    from ._context import PPIDContext

SCOPE = "ppid:convert"
MAX_SUBJECTS = 100
MAX_SUBJECT_CHARS = 512
MAX_CLIENT_ID_CHARS = 2048
MAX_BODY_BYTES = 64 * 1024
_MEMBERS = frozenset({"from_client", "to_client", "subjects"})


async def convert(ctx: PPIDContext, request: Request) -> Response:
    """Authenticate the caller, check the pair, and convert each subject (see module docs)."""
    caller = await authenticate_caller(ctx, request, scope=SCOPE, endpoint="ppid/convert")
    # Unknown members are refused: a misspelt one would silently default to the caller.
    body = await read_json_object(request, MAX_BODY_BYTES, members=_MEMBERS)
    from_client = _client_member(body, "from_client", caller.client_id)
    to_client = _client_member(body, "to_client", caller.client_id)
    subjects = _subjects(body)
    me = caller.client_id
    if me not in (from_client, to_client):
        raise OAuthError("access_denied", "the caller must be from_client or to_client", 403)
    direction: Literal["from", "to"]
    if from_client == me:
        other, direction, side = to_client, "to", "to_client"
    else:
        other, direction, side = from_client, "from", "from_client"
    # The policy is checked before the other client's existence, so a caller learns nothing
    # about client ids it has no business with.
    if not ctx.ppid_policy.permits(me, other, direction):
        raise OAuthError("access_denied", f"{me} may not convert subjects {direction} {other}", 403)
    if ctx.clients.get(other) is None:
        raise OAuthError("invalid_request", f"{side} {other!r} is not a registered client")
    results: list[dict[str, str]] = []
    for subject in subjects:
        user_id = ctx.subjects.user_for_subject(subject, from_client)
        if user_id is None:
            results.append({"subject": subject, "error": "unknown_subject"})
        else:
            converted = ctx.subjects.subject_for(user_id, to_client)
            results.append({"subject": subject, "converted": converted})
    return json_ok({"from_client": from_client, "to_client": to_client, "results": results})


def _client_member(body: dict[str, Any], name: str, default: str) -> str:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, str) or not value or len(value) > MAX_CLIENT_ID_CHARS:
        raise OAuthError("invalid_request", f"{name} must be a non-empty string (a client id)")
    return value


def _subjects(body: dict[str, Any]) -> list[str]:
    value = body.get("subjects")
    if value is None:
        raise OAuthError("invalid_request", "subjects is required")
    if not isinstance(value, list):
        raise OAuthError("invalid_request", "subjects must be an array of strings")
    if not value:
        raise OAuthError("invalid_request", "subjects must not be empty")
    if len(value) > MAX_SUBJECTS:
        raise OAuthError(
            "invalid_request",
            f"subjects holds {len(value)} items; at most {MAX_SUBJECTS} are allowed per request",
        )
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item or len(item) > MAX_SUBJECT_CHARS:
            raise OAuthError(
                "invalid_request",
                f"subjects[{i}] must be a non-empty string of at most "
                f"{MAX_SUBJECT_CHARS} characters",
            )
    return value
