"""The receiver's side of an SSF transmitter: discovery, stream management, poll (RFC 8936).

`Transmitter.discover(issuer, ...)` reads `/.well-known/ssf-configuration` (inserted before the
issuer's path, SSF 1.0 §7.2) and checks that it names the same issuer. Management calls are
authorised with the receiver's own access token, from `ClientCredentials`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from .._http import default_client, request_json
from ..errors import FetchError, TransmitterUnavailable
from ..outbound import ClientCredentials

PUSH = "urn:ietf:rfc:8935"
POLL = "urn:ietf:rfc:8936"
WELL_KNOWN = "/.well-known/ssf-configuration"
_MAX_BYTES = 256 * 1024
_STREAM_MEMBERS = ("stream_id", "iss", "aud", "delivery", "events_delivered")


@dataclass(frozen=True, slots=True)
class Stream:
    """A stream's configuration as the transmitter answered it (SSF 1.0 §8.1.1)."""

    stream_id: str
    audience: tuple[str, ...]
    delivery: Mapping[str, Any]
    events_delivered: tuple[str, ...]
    config: Mapping[str, Any]

    @property
    def method(self) -> str:
        """The delivery method URI (push or poll)."""
        return str(self.delivery.get("method", ""))

    @property
    def endpoint_url(self) -> str | None:
        """Push: where events are POSTed to us; poll: where we fetch them."""
        url = self.delivery.get("endpoint_url")
        return url if isinstance(url, str) else None


@dataclass(frozen=True, slots=True)
class PollAnswer:
    """One RFC 8936 answer: jti -> SET, and whether more are waiting."""

    sets: Mapping[str, str]
    more_available: bool


def configuration_url(issuer: str) -> str:
    """Where an issuer's transmitter metadata lives (path insertion, trailing "/" removed)."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, WELL_KNOWN + path, "", ""))


class Transmitter:
    """An SSF transmitter as seen by this receiver (build with `await Transmitter.discover`)."""

    def __init__(
        self,
        metadata: Mapping[str, Any],
        *,
        credentials: ClientCredentials | None,
        http_client: httpx.AsyncClient,
    ) -> None:
        self.metadata = MappingProxyType(dict(metadata))
        self.issuer: str = metadata["issuer"]
        self.credentials = credentials
        self.http_client = http_client

    @classmethod
    async def discover(
        cls,
        issuer: str,
        *,
        credentials: ClientCredentials | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> Transmitter:
        """Fetch and check the transmitter metadata of `issuer` (SSF 1.0 §7.2)."""
        client = http_client or default_client()
        if urlsplit(issuer).scheme != "https":
            raise TransmitterUnavailable("The issuer must use https", reason="ssf_not_https")
        try:
            answer = await request_json(
                client, "GET", configuration_url(issuer), max_bytes=_MAX_BYTES
            )
        except FetchError as exc:
            raise TransmitterUnavailable(reason=f"ssf_{exc}") from None
        if answer.body is None:
            raise TransmitterUnavailable(status=answer.status, reason=f"ssf_http_{answer.status}")
        if answer.body.get("issuer") != issuer:
            # SSF 1.0 §7.2.4: metadata naming another issuer must not be used.
            raise TransmitterUnavailable(
                "The transmitter metadata names another issuer", reason="ssf_issuer_mismatch"
            )
        return cls(answer.body, credentials=credentials, http_client=client)

    # ----- stream management (SSF 1.0 §8.1) ------------------------------------------------------

    async def create_stream(
        self,
        *,
        delivery: Mapping[str, Any] | None = None,
        events_requested: Sequence[str] = (),
        description: str | None = None,
    ) -> Stream:
        """POST the configuration endpoint: push with `{"method": PUSH, "endpoint_url": ...}`,
        poll when `delivery` is None (the transmitter then supplies the endpoint)."""
        body: dict[str, Any] = {"events_requested": list(events_requested)}
        if delivery is not None:
            body["delivery"] = dict(delivery)
        if description is not None:
            body["description"] = description
        return self._stream(await self._call("POST", "configuration_endpoint", json=body, ok=201))

    async def get_stream(self, stream_id: str) -> Stream:
        """GET one stream's configuration."""
        doc = await self._call("GET", "configuration_endpoint", params={"stream_id": stream_id})
        return self._stream(doc)

    async def update_stream(self, stream_id: str, changes: Mapping[str, Any]) -> Stream:
        """PATCH receiver-supplied members (events_requested, delivery, description)."""
        body = {**changes, "stream_id": stream_id}
        return self._stream(await self._call("PATCH", "configuration_endpoint", json=body))

    async def delete_stream(self, stream_id: str) -> None:
        """DELETE a stream (204)."""
        await self._call(
            "DELETE", "configuration_endpoint", params={"stream_id": stream_id}, ok=204
        )

    async def status(self, stream_id: str) -> str:
        """The stream's status: enabled, paused or disabled."""
        doc = await self._call("GET", "status_endpoint", params={"stream_id": stream_id})
        return str(doc.get("status"))

    async def request_verification(self, stream_id: str, state: str | None = None) -> None:
        """Ask for a verification event (SSF 1.0 §8.1.4.2); it arrives on the stream."""
        body = {"stream_id": stream_id, **({"state": state} if state is not None else {})}
        await self._call("POST", "verification_endpoint", json=body, ok=204)

    # ----- poll (RFC 8936) ------------------------------------------------------------------------

    async def poll(
        self,
        stream: Stream,
        *,
        ack: Sequence[str] = (),
        set_errs: Mapping[str, Mapping[str, str]] | None = None,
        max_events: int = 100,
        return_immediately: bool = True,
    ) -> PollAnswer:
        """One poll request: acknowledge / report errors and fetch up to `max_events` SETs."""
        url = stream.endpoint_url
        if stream.method != POLL or url is None:
            raise TransmitterUnavailable("The stream is not a poll stream", reason="ssf_not_poll")
        body: dict[str, Any] = {"maxEvents": max_events, "returnImmediately": return_immediately}
        if ack:
            body["ack"] = list(ack)
        if set_errs:
            body["setErrs"] = {k: dict(v) for k, v in set_errs.items()}
        doc = await self._call("POST", url, json=body)
        sets = doc.get("sets", {})
        if not isinstance(sets, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in sets.items()
        ):
            raise TransmitterUnavailable("The poll answer is malformed", reason="ssf_bad_answer")
        return PollAnswer(sets, doc.get("moreAvailable") is True)

    # ----- plumbing -------------------------------------------------------------------------------

    def _stream(self, doc: dict[str, Any]) -> Stream:
        if any(member not in doc for member in _STREAM_MEMBERS) or doc["iss"] != self.issuer:
            # SSF 1.0 §8.1.1.1: the stream must come from the issuer we discovered.
            raise TransmitterUnavailable(
                "The stream configuration is invalid", reason="ssf_bad_answer"
            )
        aud = doc["aud"]
        delivery = doc["delivery"]
        if not isinstance(delivery, dict) or not isinstance(doc["stream_id"], str):
            raise TransmitterUnavailable(
                "The stream configuration is invalid", reason="ssf_bad_answer"
            )
        return Stream(
            stream_id=doc["stream_id"],
            audience=(aud,) if isinstance(aud, str) else tuple(aud),
            delivery=MappingProxyType(delivery),
            events_delivered=tuple(doc["events_delivered"]),
            config=MappingProxyType(doc),
        )

    async def _call(
        self, method: str, endpoint: str, *, ok: int = 200, **kwargs: Any
    ) -> dict[str, Any]:
        url = endpoint if endpoint.startswith("https://") else self.metadata.get(endpoint)
        if not isinstance(url, str):
            raise TransmitterUnavailable(
                f"The transmitter has no {endpoint}", reason="ssf_no_endpoint"
            )
        headers = {"Accept": "application/json"}
        if self.credentials is not None:
            headers["Authorization"] = "Bearer " + await self.credentials.token()
        try:
            answer = await request_json(
                self.http_client,
                method,
                url,
                max_bytes=_MAX_BYTES,
                read_statuses=(ok,) if ok != 204 else (),
                headers=headers,
                **kwargs,
            )
        except FetchError as exc:
            raise TransmitterUnavailable(reason=f"ssf_{exc}") from None
        if answer.status != ok:
            raise TransmitterUnavailable(
                f"The transmitter answered {answer.status}",
                status=answer.status,
                reason=f"ssf_http_{answer.status}",
            )
        return answer.body or {}
