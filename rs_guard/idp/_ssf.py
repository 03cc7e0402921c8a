"""The IdP as an SSF 1.0 transmitter: streams, verification, CAEP / RISC events, push and poll.

A receiver (a client registered here) creates one stream through the management API with its
own client-credentials token (scope `ssf`). When the IdP itself takes access away - a logout,
a token revocation, a user disabled or a credential changed through the Python API - it signs
a Security Event Token per stream that asked for that event type, naming the user as that
receiver sees them (`iss_sub` with the receiver's pairwise subject), and pushes it (RFC 8935,
retried like every IdP push) or queues it for the receiver's polls (RFC 8936).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._util import random_token

if TYPE_CHECKING:
    from ._clients import ClientRegistry
    from ._events import Delivery, EventService
    from ._keys import KeyStore
    from ._routes import Urls
    from ._settings import Settings
    from ._subjects import SubjectMapper

SET_TYPE = "secevent+jwt"
PUSH = "urn:ietf:rfc:8935"
POLL = "urn:ietf:rfc:8936"
SCOPE = "ssf"
_CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
_RISC = "https://schemas.openid.net/secevent/risc/event-type/"
EVENTS_SUPPORTED = (
    *(_CAEP + name for name in ("session-revoked", "credential-change")),
    *(_CAEP + name for name in ("assurance-level-change", "token-claims-change")),
    *(_RISC + name for name in ("account-disabled", "account-purged")),
)
"""What the transmitter sends: the events by which it takes access away."""
(
    SESSION_REVOKED,
    CREDENTIAL_CHANGE,
    ASSURANCE_LEVEL_CHANGE,
    TOKEN_CLAIMS_CHANGE,
    ACCOUNT_DISABLED,
    ACCOUNT_PURGED,
) = EVENTS_SUPPORTED
VERIFICATION = "https://schemas.openid.net/secevent/ssf/event-type/verification"
MAX_QUEUE = 10_000


@dataclass
class StreamRecord:
    """One receiver's stream (SSF 1.0 §8.1.1)."""

    stream_id: str
    client_id: str
    delivery: dict[str, Any]
    events_requested: list[str]
    description: str | None = None
    status: str = "enabled"
    queue: OrderedDict[str, str] = field(default_factory=OrderedDict)
    """Poll: jti -> SET not yet acknowledged, oldest first."""
    errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Poll: what the receiver reported in `setErrs`, by jti."""
    deliveries: list[Delivery] = field(default_factory=list)
    """Push: the outcome of every delivery, newest last (for tests and operators)."""

    @property
    def events_delivered(self) -> list[str]:
        return [t for t in self.events_requested if t in EVENTS_SUPPORTED]


class SignalTransmitter:
    """Streams and events of the IdP's transmitter, reachable as `idp.ssf`."""

    def __init__(
        self,
        settings: Settings,
        urls: Urls,
        keys: KeyStore,
        clients: ClientRegistry,
        subjects: SubjectMapper,
        events: EventService,
    ) -> None:
        self._settings, self._urls, self._keys = settings, urls, keys
        self._clients, self._subjects, self._events = clients, subjects, events
        self.streams: dict[str, StreamRecord] = {}
        self.min_verification_interval = 0
        self._pushes: set[asyncio.Task[None]] = set()
        self._unstarted: list[tuple[StreamRecord, str]] = []

    # ----- metadata and streams ---------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """The transmitter configuration (served at /.well-known/ssf-configuration)."""
        url = self._urls.url
        return {
            "spec_version": "1_0",
            "issuer": self._settings.issuer,
            "jwks_uri": url("jwks"),
            "delivery_methods_supported": [PUSH, POLL],
            "configuration_endpoint": url("ssf/stream"),
            "status_endpoint": url("ssf/status"),
            "verification_endpoint": url("ssf/verify"),
            "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6749"}],
            "default_subjects": "ALL",
        }

    def stream_of(self, client_id: str) -> StreamRecord | None:
        """The stream a receiver created (one per receiver)."""
        return next((s for s in self.streams.values() if s.client_id == client_id), None)

    def create(
        self,
        client_id: str,
        *,
        delivery: dict[str, Any] | None,
        events_requested: list[str],
        description: str | None = None,
    ) -> StreamRecord:
        """A new stream for `client_id`; ValueError if it has one (the endpoint answers 409)."""
        if self.stream_of(client_id) is not None:
            raise ValueError("the receiver already has a stream")
        stream_id = random_token(16)
        if delivery is None or delivery.get("method") == POLL:
            delivery = {"method": POLL, "endpoint_url": self._urls.url(f"ssf/poll/{stream_id}")}
        record = StreamRecord(
            stream_id, client_id, dict(delivery), list(events_requested), description
        )
        self.streams[stream_id] = record
        return record

    def config(self, record: StreamRecord) -> dict[str, Any]:
        """The stream configuration document."""
        doc: dict[str, Any] = {
            "stream_id": record.stream_id,
            "iss": self._settings.issuer,
            "aud": record.client_id,
            "delivery": {k: v for k, v in record.delivery.items() if k != "authorization_header"},
            "events_supported": list(EVENTS_SUPPORTED),
            "events_requested": record.events_requested,
            "events_delivered": record.events_delivered,
            "min_verification_interval": self.min_verification_interval,
        }
        if record.description is not None:
            doc["description"] = record.description
        return doc

    # ----- events -------------------------------------------------------------------------------

    def sign(
        self, record: StreamRecord, event_type: str, sub_id: dict[str, Any], payload: dict[str, Any]
    ) -> tuple[str, str]:
        """A SET for one stream; returns (jti, token)."""
        client = self._clients.get(record.client_id)
        jti = random_token(16)
        claims = {
            "iss": self._settings.issuer,
            "jti": jti,
            "iat": self._settings.now(),
            "aud": record.client_id,
            "sub_id": sub_id,
            "events": {event_type: payload},
        }
        alg = (
            client.id_token_signed_response_alg if client is not None else None
        ) or self._keys.default_alg
        return jti, self._keys.sign(claims, typ=SET_TYPE, alg=alg)

    def emit(
        self,
        event_type: str,
        user_id: str,
        payload: dict[str, Any] | None = None,
        *,
        session: str | None = None,
    ) -> int:
        """Send an event about `user_id` on every enabled stream that asked for its type.

        The payload gets `event_timestamp` (now) unless it has one. Push deliveries run in the
        background (`await idp.ssf.drain()` waits for them); returns how many streams got it.
        """
        body = {"event_timestamp": self._settings.now(), **(payload or {})}
        sent = 0
        for record in self._streams_for(event_type):
            user = {
                "format": "iss_sub",
                "iss": self._settings.issuer,
                "sub": self._subjects.subject_for(user_id, record.client_id),
            }
            sub_id: dict[str, Any] = user
            if session is not None:
                sub_id = {
                    "format": "complex",
                    "user": user,
                    "session": {"format": "opaque", "id": session},
                }
            jti, token = self.sign(record, event_type, sub_id, body)
            self.send(record, jti, token)
            sent += 1
        return sent

    def credential_changed(self, user_id: str, credential_type: str, change: str = "update") -> int:
        """CAEP credential-change about `user_id`."""
        payload = {"credential_type": credential_type, "change_type": change}
        return self.emit(CREDENTIAL_CHANGE, user_id, payload)

    def assurance_lowered(
        self, user_id: str, current: str, previous: str, namespace: str = "RFC8176"
    ) -> int:
        """CAEP assurance-level-change (decrease) about `user_id`."""
        payload = {
            "namespace": namespace,
            "current_level": current,
            "previous_level": previous,
            "change_direction": "decrease",
        }
        return self.emit(ASSURANCE_LEVEL_CHANGE, user_id, payload)

    def token_revoked(self, user_id: str | None, jti: str | None) -> None:
        """A token was revoked here: a whole grant ends the user's session (session-revoked
        about the user); one access token is named by its `jti` (`jwt_id` subject)."""
        if user_id is None:
            return
        if jti is None:
            self.emit(SESSION_REVOKED, user_id)
            return
        sub_id = {"format": "jwt_id", "iss": self._settings.issuer, "jti": jti}
        body = {"event_timestamp": self._settings.now()}
        for record in self._streams_for(SESSION_REVOKED):
            self.send(record, *self.sign(record, SESSION_REVOKED, sub_id, body))

    def _streams_for(self, event_type: str) -> list[StreamRecord]:
        return [
            r
            for r in self.streams.values()
            if r.status == "enabled" and event_type in r.events_delivered
        ]

    def verification(self, record: StreamRecord, state: str | None) -> None:
        """Send a verification event on a stream (SSF 1.0 §8.1.4.1)."""
        payload = {"state": state} if state is not None else {}
        sub_id = {"format": "opaque", "id": record.stream_id}
        jti, token = self.sign(record, VERIFICATION, sub_id, payload)
        self.send(record, jti, token)

    def send(self, record: StreamRecord, jti: str, token: str) -> None:
        """Queue for poll, or push in the background."""
        if record.delivery.get("method") == POLL:
            while len(record.queue) >= MAX_QUEUE:
                record.queue.popitem(last=False)
            record.queue[jti] = token
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called from synchronous code: pushed by the next drain()
            self._unstarted.append((record, token))
            return
        task = loop.create_task(self._push(record, token))
        self._pushes.add(task)
        task.add_done_callback(self._pushes.discard)

    async def _push(self, record: StreamRecord, token: str) -> None:
        uri = record.delivery.get("endpoint_url")
        if not isinstance(uri, str):
            return
        authorization = record.delivery.get("authorization_header")
        outcome = await self._events.deliver(
            record.client_id,
            token,
            uri=uri,
            authorization=authorization if isinstance(authorization, str) else None,
        )
        record.deliveries.append(outcome)

    async def drain(self) -> None:
        """Wait until every push started so far has finished (retries included)."""
        unstarted, self._unstarted = self._unstarted, []
        for record, token in unstarted:
            self.send(record, "", token)
        while self._pushes:
            await asyncio.gather(*list(self._pushes), return_exceptions=True)

    def poll(
        self, record: StreamRecord, ack: list[str], errors: dict[str, Any], max_events: int
    ) -> tuple[dict[str, str], bool]:
        """RFC 8936 §2.4: drop acknowledged SETs, record errors, return what is waiting."""
        for jti in ack:
            record.queue.pop(jti, None)
        for jti, error in errors.items():
            if record.queue.pop(jti, None) is not None:
                record.errors[jti] = error
        sets = dict(list(record.queue.items())[:max_events])
        return sets, len(record.queue) > len(sets)
