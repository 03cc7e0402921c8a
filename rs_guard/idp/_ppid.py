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

from ._client_auth import authenticate_caller
from ._util import OAuthError, json_ok, read_json_object

if TYPE_CHECKING:
    from .app import IdP

PATH = "/ppid/convert"
SCOPE = "ppid:convert"
MAX_SUBJECTS = 100
MAX_SUBJECT_CHARS = 512
MAX_CLIENT_ID_CHARS = 2048
MAX_BODY_BYTES = 64 * 1024
_MEMBERS = frozenset({"from_client", "to_client", "subjects"})

Direction = Literal["from", "to", "both"]
ANY = "*"


class ConversionPolicy:
    """Which client may convert subjects from (into its own) or to (from its own) which other.

    Rules are looked up most specific first: (caller, other), (caller, "*"), ("*", other),
    ("*", "*"); the first rule found decides, and without any rule the answer is no.
    A client may always "convert" between its own namespace and itself.
    """

    def __init__(self) -> None:
        self._rules: dict[tuple[str, str, str], bool] = {}

    def allow(self, caller: str, other: str = ANY, *, direction: Direction = "both") -> None:
        """Let `caller` convert from `other`'s namespace ("from"), into it ("to"), or both."""
        self._set(caller, other, direction, True)

    def deny(self, caller: str, other: str = ANY, *, direction: Direction = "both") -> None:
        """Forbid what `allow` permits; a specific deny overrides a wildcard allow."""
        self._set(caller, other, direction, False)

    def clear(self) -> None:
        """Forget every rule (back to deny-all)."""
        self._rules.clear()

    def permits(self, caller: str, other: str, direction: Literal["from", "to"]) -> bool:
        """True when `caller` may convert in `direction` with `other`."""
        if caller == other:
            return True
        for key in (
            (caller, other, direction),
            (caller, ANY, direction),
            (ANY, other, direction),
            (ANY, ANY, direction),
        ):
            decision = self._rules.get(key)
            if decision is not None:
                return decision
        return False

    def _set(self, caller: str, other: str, direction: Direction, value: bool) -> None:
        if direction not in ("from", "to", "both"):
            raise ValueError("direction must be 'from', 'to' or 'both'")
        if not caller or not other:
            raise ValueError("client ids must not be empty")
        for d in ("from", "to") if direction == "both" else (direction,):
            self._rules[(caller, other, d)] = value


def install(idp: IdP) -> ConversionPolicy:
    """Mount POST /ppid/convert on `idp` (fault switch `ppid`); returns its deny-all policy."""
    policy = ConversionPolicy()

    async def endpoint(idp: IdP, request: Request) -> Response:
        return await convert(idp, policy, request)

    idp.add_route(PATH, endpoint, methods=("POST",), fault="ppid")
    return policy


async def convert(idp: IdP, policy: ConversionPolicy, request: Request) -> Response:
    """Authenticate the caller, check the pair, and convert each subject (see module docs)."""
    caller = await authenticate_caller(idp, request, scope=SCOPE, path=PATH)
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
    if not policy.permits(me, other, direction):
        raise OAuthError("access_denied", f"{me} may not convert subjects {direction} {other}", 403)
    if idp.get_client(other) is None:
        raise OAuthError("invalid_request", f"{side} {other!r} is not a registered client")
    results: list[dict[str, str]] = []
    for subject in subjects:
        user_id = idp.user_for_subject(subject, from_client)
        if user_id is None:
            results.append({"subject": subject, "error": "unknown_subject"})
        else:
            results.append({"subject": subject, "converted": idp.subject_for(user_id, to_client)})
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
