"""POST /events: the IdP signs a publisher's event for a receiver, and can push it (RFC 8935).

Only the IdP's keys are trusted by every service, so a publisher does not sign its own webhook
events: it asks the IdP, which authenticates it, checks it may publish to that receiver,
converts the user from the publisher's PPID to the receiver's, and returns a Security Event
Token (RFC 8417) signed like an ID token for the receiver, but typed `secevent+jwt` so that it
can never be taken for an ID token or an access token. With `"deliver": true` the IdP also POSTs
it to the receiver's registered `event_delivery_uri`, retrying on 5xx and network errors.

Which publisher may send to which receiver is deny-by-default: `idp.events.allow(publisher,
receiver)` from Python, or the receiver's client metadata member `event_publishers` (a JSON
array of client ids, settable at registration).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import Response

from .._jws import MalformedJWS, parse_json_object
from ._client_auth import authenticate_caller
from ._util import OAuthError, json_ok, random_token, read_json_object

if TYPE_CHECKING:
    from .app import IdP

PATH = "/events"
SCOPE = "events:publish"
SET_TYPE = "secevent+jwt"
SET_MEDIA_TYPE = "application/secevent+jwt"
EVENT_LIFETIME = 300
PUBLISHERS_MEMBER = "event_publishers"
MAX_BODY_BYTES = 64 * 1024
MAX_EVENTS = 32
MAX_ID_CHARS = 2048
_MAX_EVENT_TYPE_CHARS = 512
_MEMBERS = frozenset({"audience", "subject", "events", "deliver", "txn"})
_MAX_ANSWER_BYTES = 4096
# RFC 8417 §2.2: event identifiers are URIs (scheme ":" then no whitespace).
_EVENT_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s]+")


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of pushing one event to a receiver."""

    delivered: bool
    attempts: int
    status: int | None
    """The receiver's last HTTP status (None when it was never reached)."""
    err: str | None = None
    """The receiver's RFC 8935 error code, or `network_error`."""
    description: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form returned by POST /events."""
        return asdict(self)


class EventService:
    """The IdP's event signing and delivery, reachable as `idp.events`."""

    def __init__(self, idp: IdP) -> None:
        self.idp = idp
        self._pairs: set[tuple[str, str]] = set()
        self.max_attempts = 5
        """Delivery attempts in all (the first one included)."""
        self.backoff = 0.5
        """Seconds before the second attempt; doubled for each further one."""
        self.max_backoff = 8.0
        """Upper bound of one wait, also of a receiver's `Retry-After`."""
        self.timeout = 5.0
        """Seconds allowed for one delivery attempt."""

    # ----- permissions ----------------------------------------------------------------------

    def allow(self, publisher: str, receiver: str) -> None:
        """Let `publisher` have events signed for (and pushed to) `receiver`."""
        if not publisher or not receiver:
            raise ValueError("client ids must not be empty")
        self._pairs.add((publisher, receiver))

    def deny(self, publisher: str, receiver: str) -> None:
        """Withdraw what `allow` granted (a receiver's `event_publishers` still counts)."""
        self._pairs.discard((publisher, receiver))

    def permits(self, publisher: str, receiver: str) -> bool:
        """True when `publisher` may publish to `receiver` (deny by default)."""
        if (publisher, receiver) in self._pairs:
            return True
        client = self.idp.get_client(receiver)
        listed = client.metadata.get(PUBLISHERS_MEMBER) if client is not None else None
        return isinstance(listed, list) and publisher in listed

    # ----- signing --------------------------------------------------------------------------

    def sign(
        self,
        receiver: str,
        events: Mapping[str, Mapping[str, Any]],
        *,
        user: str | None = None,
        subject: str | None = None,
        publisher: str | None = None,
        txn: str | None = None,
        lifetime: int = EVENT_LIFETIME,
        claims: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        alg: str | None = None,
    ) -> str:
        """Sign an event for `receiver` about `user` (an IdP user id) or `subject` (the
        publisher's PPID for the user), as the endpoint does, but trusted like
        `issue_access_token`: no permission check, and `claims` / `headers` override members
        (for negative tests)."""
        token, _ = self._sign(
            receiver,
            events,
            user=user,
            subject=subject,
            publisher=publisher,
            txn=txn,
            lifetime=lifetime,
            claims=claims,
            headers=headers,
            alg=alg,
        )
        return token

    def _sign(
        self,
        receiver: str,
        events: Mapping[str, Mapping[str, Any]],
        *,
        user: str | None,
        subject: str | None,
        publisher: str | None,
        txn: str | None = None,
        lifetime: int = EVENT_LIFETIME,
        claims: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        alg: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        idp = self.idp
        client = idp.get_client(receiver)
        if client is None:
            raise ValueError(f"unknown receiver client {receiver!r}")
        if (user is None) == (subject is None):
            raise ValueError("give exactly one of user (a user id) or subject (a publisher PPID)")
        if subject is not None:
            if publisher is None:
                raise ValueError("a subject is a publisher's PPID: give the publisher too")
            user = idp.user_for_subject(subject, publisher)
            if user is None:
                raise ValueError("the subject is unknown to the IdP")
        assert user is not None
        now = idp.now()
        payload: dict[str, Any] = {
            "iss": idp.issuer,
            "aud": receiver,
            "sub": idp.subject_for(user, receiver),
            "iat": now,
            "exp": now + lifetime,
            "jti": random_token(16),
            "events": {name: dict(body) for name, body in events.items()},
        }
        if publisher is not None:
            # `azp`: the party that asked for this token (see the README for the choice).
            payload["azp"] = publisher
        if txn is not None:
            payload["txn"] = txn
        if claims:
            payload.update(claims)
        alg = alg or client.id_token_signed_response_alg or idp.keys.default_alg
        token = idp.keys.sign(payload, typ=SET_TYPE, alg=alg, headers=dict(headers or {}))
        return token, payload

    # ----- delivery (RFC 8935) --------------------------------------------------------------

    async def deliver(self, receiver: str, token: str) -> Delivery:
        """POST `token` to the receiver's `event_delivery_uri`, retrying 5xx / network errors.

        A 2xx ends it (delivered), a 4xx other than 429 too (the receiver refused; a retry
        would be refused again). Waits grow from `backoff` by doubling, with a little jitter,
        bounded by `max_backoff`; a receiver's `Retry-After` (seconds) is honoured up to it.
        """
        client = self.idp.get_client(receiver)
        uri = client.event_delivery_uri if client is not None else None
        if uri is None:
            raise ValueError(f"client {receiver!r} has no event_delivery_uri")
        last = Delivery(False, 0, None, "network_error", "not attempted")
        for attempt in range(1, self.max_attempts + 1):
            last, wait = await self._attempt(uri, token, attempt)
            if last.delivered or wait is None or attempt == self.max_attempts:
                break
            await anyio.sleep(wait)
        return last

    async def _attempt(self, uri: str, token: str, attempt: int) -> tuple[Delivery, float | None]:
        """One POST; returns its outcome and how long to wait before retrying (None: stop)."""
        backoff = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        backoff *= 1 + random.uniform(-0.1, 0.1)  # spread a burst of retries apart
        try:
            async with self.idp.outbound().stream(
                "POST",
                uri,
                content=token.encode("ascii"),
                headers={"Content-Type": SET_MEDIA_TYPE, "Accept": "application/json"},
                timeout=self.timeout,
                follow_redirects=False,
            ) as response:
                body = await _read_limited(response)
        except httpx.HTTPError as exc:
            kind = "timeout" if isinstance(exc, httpx.TimeoutException) else "unreachable"
            return Delivery(False, attempt, None, "network_error", kind), backoff
        status = response.status_code
        if 200 <= status < 300:
            return Delivery(True, attempt, status), None
        err, description = _error_of(body)
        outcome = Delivery(False, attempt, status, err, description)
        if status >= 500 or status == 429:
            retry_after = response.headers.get("retry-after", "")
            if retry_after.isdigit():
                backoff = min(self.max_backoff, float(retry_after))
            return outcome, backoff
        return outcome, None


async def _read_limited(response: httpx.Response) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > _MAX_ANSWER_BYTES:
            break
    return bytes(body[:_MAX_ANSWER_BYTES])


def _error_of(body: bytes) -> tuple[str | None, str | None]:
    """The RFC 8935 §2.3 `err` / `description` of an error answer, when there is one."""
    try:
        doc = parse_json_object(body)
    except MalformedJWS:
        return None, None
    err, description = doc.get("err"), doc.get("description")
    return (
        err[:100] if isinstance(err, str) else None,
        description[:300] if isinstance(description, str) else None,
    )


# ----- the endpoint -----------------------------------------------------------------------


def install(idp: IdP) -> EventService:
    """Mount POST /events on `idp` (fault switch `events`) and return its EventService.

    Also binds the shortcuts `idp.sign_event`, `idp.allow_events` and `idp.deliver_event`.
    """
    service = EventService(idp)

    async def endpoint(idp: IdP, request: Request) -> Response:
        return await publish(idp, service, request)

    idp.add_route(PATH, endpoint, methods=("POST",), fault="events")
    setattr(idp, "sign_event", service.sign)  # noqa: B010 - shortcuts the IdP does not declare
    setattr(idp, "allow_events", service.allow)  # noqa: B010
    setattr(idp, "deliver_event", service.deliver)  # noqa: B010
    return service


async def publish(idp: IdP, service: EventService, request: Request) -> Response:
    """Authenticate the publisher, check the receiver and subject, sign, maybe deliver."""
    publisher = await authenticate_caller(idp, request, scope=SCOPE, path=PATH)
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
    if not service.permits(publisher.client_id, audience):
        raise OAuthError(
            "access_denied", f"{publisher.client_id} may not publish events to {audience}", 403
        )
    receiver = idp.get_client(audience)
    if receiver is None:
        raise OAuthError("invalid_request", f"audience {audience!r} is not a registered client")
    if deliver and receiver.event_delivery_uri is None:
        raise OAuthError("invalid_request", "the receiver has no registered event_delivery_uri")
    if idp.user_for_subject(subject, publisher.client_id) is None:
        raise OAuthError("invalid_request", "unknown subject")
    token, payload = service._sign(
        audience, events, user=None, subject=subject, publisher=publisher.client_id, txn=txn
    )
    answer: dict[str, Any] = {"token": token, "jti": payload["jti"], "delivered": False}
    if deliver:
        outcome = await service.deliver(audience, token)
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
