"""POST /events: a publisher asks the IdP to sign (and maybe push) an event for a receiver;
the answer is the event's `jti` and the delivery outcome, never the signed token.

The EventService (`idp.events`) behind it decides permissions and delivers.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from .._errors import OAuthError
from ._client_auth import authenticate_caller
from ._wire import json_ok, read_json_object

if TYPE_CHECKING:
    from ._context import EventsContext

SCOPE = "events:publish"
MAX_BODY_BYTES = 64 * 1024
MAX_EVENTS = 32
MAX_ID_CHARS = 2048
_MAX_EVENT_TYPE_CHARS = 512
_MEMBERS = frozenset({"audience", "subject", "events", "deliver", "txn"})
# RFC 8417 §2.2: event identifiers are URIs (scheme ":" then no whitespace).
_EVENT_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s]+")


async def publish(ctx: EventsContext, request: Request) -> Response:
    """Authenticate the publisher, check the receiver and subject, sign, maybe deliver."""
    publisher = await authenticate_caller(ctx, request, scope=SCOPE, endpoint="events")
    # Unknown members are refused: a misspelt one ("deliever") would be silently ignored.
    body = await read_json_object(request, MAX_BODY_BYTES, members=_MEMBERS)
    audience = _string(body, "audience")
    subject = _string(body, "subject")
    txn = _string(body, "txn") if "txn" in body else None
    events = _events(body.get("events"))
    deliver = body.get("deliver", False)
    if not isinstance(deliver, bool):
        raise OAuthError("invalid_request", "deliver must be true or false")
    # Permission before existence: a publisher learns nothing about clients it may not reach.
    if not ctx.events.permits(publisher.client_id, audience):
        raise OAuthError(
            "access_denied", f"{publisher.client_id} may not publish events to {audience}", 403
        )
    receiver = ctx.clients.get(audience)
    if receiver is None:
        raise OAuthError("invalid_request", f"audience {audience!r} is not a registered client")
    if deliver and receiver.event_delivery_uri is None:
        raise OAuthError("invalid_request", "the receiver has no registered event_delivery_uri")
    if ctx.subjects.user_for_subject(subject, publisher.client_id) is None:
        raise OAuthError("invalid_request", "unknown subject")
    token, payload = ctx.minter.event_token(
        audience, events, user=None, subject=subject, publisher=publisher.client_id, txn=txn
    )
    ctx.events.keep(payload["jti"], token)
    # The outcome, never the token: its `sub` is the receiver's pairwise identifier, which the
    # publisher may not learn (/ppid/convert would refuse it; docs: "What POST /events answers").
    answer: dict[str, Any] = {"jti": payload["jti"], "delivered": False}
    if deliver:
        outcome = await ctx.events.deliver(audience, token)
        answer["delivered"] = outcome.delivered
        answer["delivery"] = outcome.as_dict()
    return json_ok(answer)


def _string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS:
        raise OAuthError("invalid_request", f"{name} must be a non-empty string")
    return value


def _events(value: Any) -> dict[str, dict[str, Any]]:
    """RFC 8417 §2.2: a non-empty object of event type URI -> JSON object."""
    if not isinstance(value, dict) or not value:
        raise OAuthError("invalid_request", "events must be a non-empty JSON object")
    if len(value) > MAX_EVENTS:
        raise OAuthError("invalid_request", f"at most {MAX_EVENTS} event types per token")
    for name, payload in value.items():
        if len(name) > _MAX_EVENT_TYPE_CHARS or not _EVENT_TYPE.fullmatch(name):
            raise OAuthError("invalid_request", f"event type {name[:80]!r} is not a URI")
        if not isinstance(payload, dict):
            raise OAuthError("invalid_request", f"the payload of {name[:80]!r} must be an object")
    return value
