"""The SSF receiver: CAEP / RISC events turned into revocations, by push or by poll.

`SignalReceiver` registers one handler per event type on an `EventReceiver` (the RFC 8935
endpoint, which verifies signature, issuer, audience, freshness and replay) and applies the
configured `Reaction` to the revocation state the guard consults. `poll` fetches, processes
and acknowledges events from an RFC 8936 poll endpoint with the same handlers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from ..errors import ConfigurationError, EventError, RSGuardError
from ..events import EventReceiver, EventVerifier, SecurityEvent
from ..events.receiver import HandlerFailed
from ..observe import Observer, emit
from .revocations import (
    AUTHENTICATED,
    EMAIL,
    ISSUED,
    JTI,
    SESSION,
    SID,
    STEP_UP,
    MemoryRevocations,
)
from .subjects import Target, targets

if TYPE_CHECKING:
    from ..middleware import SubjectTranslator
    from .transmitter import Stream, Transmitter

logger = logging.getLogger("rs_guard.ssf")

CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
SSF = "https://schemas.openid.net/secevent/ssf/event-type/"
SESSION_REVOKED = CAEP + "session-revoked"
CREDENTIAL_CHANGE = CAEP + "credential-change"
ASSURANCE_LEVEL_CHANGE = CAEP + "assurance-level-change"
TOKEN_CLAIMS_CHANGE = CAEP + "token-claims-change"
ACCOUNT_DISABLED = RISC + "account-disabled"
ACCOUNT_PURGED = RISC + "account-purged"
ACCOUNT_CREDENTIAL_CHANGE_REQUIRED = RISC + "account-credential-change-required"
VERIFICATION = SSF + "verification"
STREAM_UPDATED = SSF + "stream-updated"


class Reaction(StrEnum):
    """What the guard does when an event arrives about a subject."""

    REFUSE_ISSUED = "refuse_issued"
    """Refuse the subject's tokens issued at or before the event (401 invalid_token)."""
    REFUSE_AUTHENTICATED = "refuse_authenticated"
    """Refuse the subject's tokens whose authentication (auth_time) is not newer."""
    STEP_UP = "step_up"
    """Requests needing an `acr` get the RFC 9470 challenge until the user authenticates again."""
    REVALIDATE = "revalidate"
    """Drop cached validation results of the subject: the next request validates afresh."""
    IGNORE = "ignore"
    """Accept the event (202) and change nothing."""


DEFAULT_REACTIONS: Mapping[str, Reaction] = {
    SESSION_REVOKED: Reaction.REFUSE_ISSUED,
    ACCOUNT_DISABLED: Reaction.REFUSE_ISSUED,
    ACCOUNT_PURGED: Reaction.REFUSE_ISSUED,
    CREDENTIAL_CHANGE: Reaction.REFUSE_AUTHENTICATED,
    ASSURANCE_LEVEL_CHANGE: Reaction.STEP_UP,
    TOKEN_CLAIMS_CHANGE: Reaction.REVALIDATE,
}
"""The reactions of a `SignalReceiver` unless `reactions=` overrides some."""

_KIND = {Reaction.REFUSE_ISSUED: ISSUED, Reaction.REFUSE_AUTHENTICATED: AUTHENTICATED}


class SignalReceiver:
    """Receives SSF events for one resource and keeps its revocation state up to date.

    `verifier` must accept SETs without `sub` (`EventVerifier(..., require_subject=False)`):
    SSF names subjects in `sub_id`. Subjects are matched in the resource's own namespace;
    when the transmitter names them as another client sees them (`subject_client=`), they are
    translated with `subject_translator` (a `PPIDTranslator`). Event types without a reaction
    are accepted and ignored, as SSF asks of a receiver.
    """

    def __init__(
        self,
        verifier: EventVerifier,
        revocations: MemoryRevocations,
        *,
        reactions: Mapping[str, Reaction | str] | None = None,
        subject_translator: SubjectTranslator | None = None,
        subject_client: str | None = None,
        stream_id: str | None = None,
        observer: Observer | None = None,
    ) -> None:
        if verifier.require_subject:
            raise ConfigurationError("SSF events carry sub_id: use require_subject=False")
        if (subject_translator is None) != (subject_client is None):
            raise ConfigurationError("subject_translator= and subject_client= go together")
        self.verifier = verifier
        self.revocations = revocations
        self.reactions = {
            **DEFAULT_REACTIONS,
            **{k: Reaction(v) for k, v in (reactions or {}).items()},
        }
        self.subject_translator, self.subject_client = subject_translator, subject_client
        self.stream_id = stream_id
        self._observer = observer
        self._states: dict[str, asyncio.Future[SecurityEvent]] = {}
        self.endpoint = EventReceiver(verifier, ignore_unknown_events=True, observer=observer)
        self.endpoint.add_handler(VERIFICATION, self._verification)
        self.endpoint.add_handler(STREAM_UPDATED, self._stream_updated)
        for event_type in self.reactions:
            self.endpoint.add_handler(event_type, self._handler(event_type))

    def route(self, path: str = "/ssf/events") -> Route:
        """The RFC 8935 push endpoint as a Starlette route."""
        return self.endpoint.route(path)

    # ----- verification (SSF 1.0 §8.1.4) -------------------------------------------------------

    def expect_verification(self, state: str) -> asyncio.Future[SecurityEvent]:
        """A future resolved when the verification event carrying `state` arrives."""
        future: asyncio.Future[SecurityEvent] = asyncio.get_running_loop().create_future()
        self._states[state] = future
        return future

    def _verification(self, event: SecurityEvent, payload: Mapping[str, Any]) -> None:
        sub_id = event.claims.get("sub_id")
        stream = sub_id.get("id") if isinstance(sub_id, dict) else None
        if self.stream_id is not None and stream != self.stream_id:
            raise EventError(description="Verification for another stream", reason="bad_stream")
        state = payload.get("state")
        if state is None:
            return  # a transmitter-initiated verification carries no state
        future = self._states.pop(state, None) if isinstance(state, str) else None
        if future is None:
            raise EventError("invalid_state", "Unexpected verification state", reason="bad_state")
        if not future.done():
            future.set_result(event)

    def _stream_updated(self, event: SecurityEvent, payload: Mapping[str, Any]) -> None:
        logger.warning("SSF stream updated by the transmitter: status=%s", payload.get("status"))

    # ----- CAEP / RISC --------------------------------------------------------------------------

    def _handler(
        self, event_type: str
    ) -> Callable[[SecurityEvent, Mapping[str, Any]], Awaitable[None]]:
        async def handle(event: SecurityEvent, payload: Mapping[str, Any]) -> None:
            await self._react(event_type, event, payload)

        return handle

    async def _react(
        self, event_type: str, event: SecurityEvent, payload: Mapping[str, Any]
    ) -> None:
        reaction = self.reactions.get(event_type, Reaction.IGNORE)
        if reaction is Reaction.IGNORE:
            return
        if reaction is Reaction.STEP_UP and payload.get("change_direction") == "increase":
            return  # a stronger authentication takes nothing away
        found = targets(
            event.claims,
            payload,
            self.verifier.issuer,
            opaque_is_session=event_type == SESSION_REVOKED,
        )
        cutoff = _cutoff(event, payload)
        for target in found:
            await self._apply(reaction, target, cutoff)
        emit(
            self._observer,
            "revocation_received",
            type=event_type.rsplit("/", 1)[-1],
            reaction=str(reaction),
            subjects=len(found),
        )

    async def _apply(self, reaction: Reaction, target: Target, cutoff: float) -> None:
        store = self.revocations
        if target.jti is not None:
            if reaction is Reaction.REVALIDATE:
                await store.revalidate(JTI + target.jti)
            elif reaction in _KIND:
                await store.revoke(JTI + target.jti, ISSUED, cutoff)
            return
        subject = await self._local(target.subject) if target.subject is not None else None
        if reaction is Reaction.REVALIDATE:
            if subject is not None:
                await store.revalidate(subject)
            return
        if reaction is Reaction.STEP_UP:
            if subject is not None:
                await store.revoke(subject, STEP_UP, cutoff)
            return
        kind = _KIND[reaction]
        if target.session is not None:
            if subject is None:
                await store.revoke(SID + target.session, ISSUED, cutoff)
            else:
                await store.revoke(subject, SESSION + target.session, cutoff)
        elif subject is not None:
            await store.revoke(subject, kind, cutoff)

    async def _local(self, subject: str) -> str:
        """The subject in this resource's namespace."""
        if self.subject_translator is None or subject.startswith(EMAIL):
            return subject
        assert self.subject_client is not None
        return await self.subject_translator.to_local(self.subject_client, subject)

    # ----- poll delivery (RFC 8936) -------------------------------------------------------------

    async def poll(self, transmitter: Transmitter, stream: Stream, *, max_events: int = 100) -> int:
        """Fetch what is waiting, process each SET, acknowledge; how many were accepted.

        Refused SETs are reported back in `setErrs` (RFC 8936 §2.4.4); a SET that failed for a
        reason of ours (handler error, store unreachable) is neither acknowledged nor reported,
        so the transmitter offers it again on the next poll.
        """
        ack: list[str] = []
        errors: dict[str, dict[str, str]] = {}
        accepted = 0
        while True:
            answer = await transmitter.poll(stream, ack=ack, set_errs=errors, max_events=max_events)
            ack, errors = [], {}
            for jti, token in answer.sets.items():
                try:
                    await self.endpoint.process(token)
                except EventError as exc:
                    if exc.reason == "replayed":
                        ack.append(jti)  # processed before: acknowledge it now
                        continue
                    errors[jti] = {
                        "err": exc.error or "invalid_request",
                        "description": exc.description or "",
                    }
                except (RSGuardError, HandlerFailed):
                    continue
                else:
                    ack.append(jti)
                    accepted += 1
            if not answer.more_available:
                break
        if ack or errors:
            await transmitter.poll(stream, ack=ack, set_errs=errors, max_events=0)
        return accepted


def _cutoff(event: SecurityEvent, payload: Mapping[str, Any]) -> float:
    """When it happened: `event_timestamp`, never later than the SET's own `iat`."""
    stamp = payload.get("event_timestamp")
    if isinstance(stamp, (int, float)) and not isinstance(stamp, bool):
        return min(float(stamp), event.issued_at)
    return event.issued_at
