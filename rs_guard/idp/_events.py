"""Events: the IdP signs a publisher's event for a receiver, and can push it (RFC 8935).

Only the IdP's keys are trusted by every service, so a publisher does not sign its own webhook
events: it asks the IdP, which authenticates it, checks it may publish to that receiver,
converts the user from the publisher's PPID to the receiver's, and signs a Security Event
Token (RFC 8417) like an ID token for the receiver, but typed `secevent+jwt` so that it can
never be taken for an ID token or an access token. With `"deliver": true` the IdP POSTs it to
the receiver's registered `event_delivery_uri`, retrying on 5xx and network errors. The
publisher learns the `jti` and the delivery outcome, never the token: its `sub` is the
receiver's PPID. The operator reads a signed token in-process (`signed(jti)`).

Which publisher may send to which receiver is deny-by-default: `idp.events.allow(publisher,
receiver)` from Python, or the receiver's client metadata member `event_publishers` (a JSON
array of client ids, settable at registration).
"""

from __future__ import annotations

import logging
import random
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import anyio
import httpx

from .._http import AddressRefused, parse_retry_after
from .._json import JSONError, loads_object
from ._minting import EVENT_LIFETIME

if TYPE_CHECKING:
    from ._clients import ClientRegistry
    from ._fetch import Fetcher
    from ._minting import TokenMinter

SET_MEDIA_TYPE = "application/secevent+jwt"
PUBLISHERS_MEMBER = "event_publishers"
_MAX_ANSWER_BYTES = 4096
# RFC 8935 §7.1 (Push Delivery Error Codes registry): the only `err` values passed on to the
# publisher; anything else a receiver's URL answers stays with the IdP (logged at DEBUG).
_REGISTERED_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_key",
        "invalid_issuer",
        "invalid_audience",
        "authentication_failed",
        "access_denied",
    }
)

logger = logging.getLogger("rs_guard.idp")


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of pushing one event to a receiver."""

    delivered: bool
    attempts: int
    status: int | None
    """The receiver's last HTTP status (None when it was never reached)."""
    err: str | None = None
    """The receiver's RFC 8935 error code (registered ones only), or `network_error`."""
    description: str | None = None
    """For `network_error`, what went wrong (`timeout`, `unreachable`, `refused`: the address
    is not public, `invalid_url`); never text from the receiver's answer."""

    def as_dict(self) -> dict[str, Any]:
        """The JSON form returned by POST /events."""
        return asdict(self)


class EventService:
    """The IdP's event signing and delivery, reachable as `idp.events`."""

    def __init__(self, clients: ClientRegistry, minter: TokenMinter, fetcher: Fetcher) -> None:
        self._clients = clients
        self._minter = minter
        self._fetcher = fetcher
        self._pairs: set[tuple[str, str]] = set()
        self.max_attempts = 5
        """Delivery attempts in all (the first one included)."""
        self.backoff = 0.5
        """Seconds before the second attempt; doubled for each further one."""
        self.max_backoff = 8.0
        """Upper bound of one wait, also of a receiver's `Retry-After`."""
        self.timeout = 5.0
        """Seconds allowed for one delivery attempt."""
        self.kept = 1000
        """How many tokens signed by POST /events `signed()` still finds (oldest go first)."""
        self._signed: OrderedDict[str, str] = OrderedDict()

    # ----- what POST /events signed (for the operator, never for the publisher) -------------

    def keep(self, jti: str, token: str) -> None:
        """Remember a token POST /events signed, up to `kept` of them."""
        self._signed[jti] = token
        while len(self._signed) > max(0, self.kept):
            self._signed.popitem(last=False)

    def signed(self, jti: str) -> str | None:
        """The token POST /events signed with this `jti` (None when unknown or forgotten).

        The publisher's answer carries only the `jti`: the token's `sub` is the receiver's
        pairwise identifier. The operator (a test, a dev console) reads it here, in-process.
        """
        return self._signed.get(jti)

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
        client = self._clients.get(receiver)
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
        token, _ = self._minter.event_token(
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

    # ----- delivery (RFC 8935) --------------------------------------------------------------

    async def deliver(
        self, receiver: str, token: str, *, uri: str | None = None, authorization: str | None = None
    ) -> Delivery:
        """POST `token` to the receiver's `event_delivery_uri`, retrying 5xx / network errors.

        A 2xx ends it (delivered), a 4xx other than 429 too (the receiver refused; a retry
        would be refused again). Waits grow from `backoff` by doubling, with a little jitter,
        bounded by `max_backoff`; a receiver's `Retry-After` (seconds) is honoured up to it.
        """
        if uri is None:  # an SSF stream brings its own endpoint_url (and Authorization)
            client = self._clients.get(receiver)
            uri = client.event_delivery_uri if client is not None else None
        if uri is None:
            raise ValueError(f"client {receiver!r} has no event_delivery_uri")
        last = Delivery(False, 0, None, "network_error", "not attempted")
        for attempt in range(1, self.max_attempts + 1):
            last, wait = await self._attempt(uri, token, attempt, authorization)
            if last.delivered or wait is None or attempt == self.max_attempts:
                break
            await anyio.sleep(wait)
        return last

    async def _attempt(
        self, uri: str, token: str, attempt: int, authorization: str | None = None
    ) -> tuple[Delivery, float | None]:
        """One POST; returns its outcome and how long to wait before retrying (None: stop)."""
        backoff = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        backoff *= 1 + random.uniform(-0.1, 0.1)  # spread a burst of retries apart
        try:
            async with self._fetcher.client().stream(
                "POST",
                uri,
                content=token.encode("ascii"),
                headers={
                    "Content-Type": SET_MEDIA_TYPE,
                    "Accept": "application/json",
                    **({"Authorization": authorization} if authorization else {}),
                },
                timeout=self.timeout,
                follow_redirects=False,
            ) as response:
                body = await _read_limited(response)
        except AddressRefused:
            # Outside dev mode the URL's host resolved to a non-public address: no connection
            # was made, and a retry would be refused again (or reach a rebound address).
            return Delivery(False, attempt, None, "network_error", "refused"), None
        except httpx.HTTPError as exc:
            kind = "timeout" if isinstance(exc, httpx.TimeoutException) else "unreachable"
            return Delivery(False, attempt, None, "network_error", kind), backoff
        except (httpx.InvalidURL, UnicodeError):
            # A URL no connection can be made to (bad host encoding): retrying cannot help.
            return Delivery(False, attempt, None, "network_error", "invalid_url"), None
        status = response.status_code
        if 200 <= status < 300:
            return Delivery(True, attempt, status), None
        outcome = Delivery(False, attempt, status, _error_of(body))
        if status >= 500 or status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            if retry_after is not None:
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


def _error_of(body: bytes) -> str | None:
    """The RFC 8935 §2.3 `err` of an error answer, when it is a registered code.

    The receiver's `description` (free text) is not passed on: the publisher learns the
    outcome, not what the service behind the URL says."""
    try:
        doc = loads_object(body)
    except JSONError:
        return None
    err = doc.get("err")
    if isinstance(err, str) and err in _REGISTERED_ERRORS:
        return err
    logger.debug("event delivery: unregistered err %.100r", err)
    return None
