"""The wire protocol of the IdP's PPID conversion endpoint (`ppid_conversion_endpoint`).

One call converts one batch of subjects between two clients: a POST of
`{"from_client", "to_client", "subjects"}` with this resource's client-credentials token
(scope `ppid:convert`), answered by `{"from_client", "to_client", "results": [...]}` with one
`{"subject", "converted"}` or `{"subject", "converted": null, "error"}` per subject. Anything
off in the answer means none of it is used.
"""

from __future__ import annotations

import asyncio
from dataclasses import KW_ONLY, dataclass
from typing import Any

import httpx

from .._http import FetchError, parse_retry_after, request_json
from ..discovery import ServerEndpoint
from ..errors import ConversionDenied, PPIDUnavailable, ServerError
from ..observe import Observer, emit
from ..outbound import ClientCredentials

MAX_SUBJECT_CHARS = 512
_MAX_RESPONSE_BYTES = 256 * 1024


@dataclass(eq=False)
class ConversionClient:
    """Converts one batch at the IdP; raises only PPIDUnavailable or ConversionDenied.

    Every failure is reported to the observer as `ppid_failed` with its reason.

    `target` is the conversion endpoint (configured or discovered), `tokens` the source of this
    resource's own access token; a 401 gets one retry with a fresh token (the cached one was
    revoked, or the IdP restarted). `retry_after` is the delay suggested to clients when the
    IdP names none.
    """

    target: ServerEndpoint
    tokens: ClientCredentials
    _: KW_ONLY
    scope: str
    retry_after: int
    observer: Observer | None = None

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The client used for calls to the IdP."""
        return self.target.http_client

    async def aclose(self) -> None:
        """Close the HTTP clients made for the conversion and token endpoints, if any."""
        await self.target.aclose()
        await self.tokens.aclose()

    def unavailable(self, reason: str, retry_after: int | None = None) -> PPIDUnavailable:
        """The error for an IdP that cannot answer now (the client should retry later)."""
        wait = retry_after if retry_after is not None else self.retry_after
        return PPIDUnavailable(retry_after=wait, reason=reason)

    async def convert(
        self, from_client: str, to_client: str, batch: list[str], *, deadline: float
    ) -> dict[str, str | None]:
        """`batch` as issued to `from_client`, expressed for `to_client` (None when unknown).

        Everything (discovery, this resource's own token, the POST) ends by `deadline`, an
        event-loop time: one budget, not one per step.
        """
        try:
            async with asyncio.timeout_at(deadline):
                return await self._call(from_client, to_client, batch, deadline)
        except ConversionDenied:
            raise  # an answer, not a failure
        except PPIDUnavailable as exc:
            error = exc
        except TimeoutError:
            error = self.unavailable("ppid_timeout")
        except ServerError as exc:  # the token source's own failures
            error = self.unavailable(exc.reason)
        except asyncio.CancelledError:
            emit(self.observer, "ppid_failed", reason="ppid_cancelled")
            raise
        except Exception:  # a bug here must not reach a thousand callers as a 500
            emit(self.observer, "ppid_failed", reason="internal_error")  # the bug itself
            error = self.unavailable("ppid_internal_error")
        emit(self.observer, "ppid_failed", reason=error.reason)
        raise error from None

    async def _endpoint(self) -> str:
        try:
            return await self.target.url()
        except FetchError as exc:
            raise self.unavailable(reason=f"ppid_discovery_{exc}") from None

    async def _call(
        self, from_client: str, to_client: str, batch: list[str], deadline: float
    ) -> dict[str, str | None]:
        url = await self._endpoint()
        payload = {"from_client": from_client, "to_client": to_client, "subjects": batch}
        emit(self.observer, "ppid_batch", size=len(batch))
        for attempt in (1, 2):
            token = await self.tokens.token(scope=self.scope, deadline=deadline)
            status, body, retry_after = await self._post(url, token, payload)
            if status == 401 and attempt == 1:
                # Our cached token was revoked or the IdP restarted: one fresh token, no loop.
                self.tokens.invalidate(token)
                continue
            break
        if status == 200:
            return self._parse(from_client, to_client, batch, body)
        if status == 403:
            emit(self.observer, "ppid_denied", from_client=from_client, to_client=to_client)
            raise ConversionDenied(retry_after=self.retry_after)
        raise self.unavailable(reason=f"ppid_http_{status}", retry_after=retry_after)

    async def _post(
        self, url: str, token: str, payload: dict[str, Any]
    ) -> tuple[int, dict[str, Any], int | None]:
        try:
            answer = await request_json(
                self.http_client,
                "POST",
                url,
                max_bytes=_MAX_RESPONSE_BYTES,
                json=payload,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            )
        except FetchError as exc:
            raise self.unavailable(reason=f"ppid_{exc}") from None
        retry_after = parse_retry_after(answer.headers.get("retry-after"))
        return answer.status, answer.body or {}, retry_after

    def _parse(
        self, from_client: str, to_client: str, batch: list[str], body: dict[str, Any]
    ) -> dict[str, str | None]:
        """Check the IdP's answer strictly: anything off means nothing of it is used."""
        results = body.get("results")
        if (
            body.get("from_client") != from_client
            or body.get("to_client") != to_client
            or not isinstance(results, list)
            or len(results) != len(batch)
        ):
            raise self.unavailable("ppid_garbage")
        out: dict[str, str | None] = {}
        for item in results:
            if not isinstance(item, dict):
                raise self.unavailable("ppid_garbage")
            subject = item.get("subject")
            converted = item.get("converted")
            if not isinstance(subject, str) or subject in out or not _well_formed(item):
                raise self.unavailable("ppid_garbage")
            out[subject] = converted
        if set(out) != set(batch):
            raise self.unavailable("ppid_garbage")
        return out


def _well_formed(item: dict[str, Any]) -> bool:
    """One result: a converted subject and no error, or `converted: null` and an error text."""
    converted = item.get("converted")
    if converted is None:
        return isinstance(item.get("error"), str)
    return (
        isinstance(converted, str)
        and 0 < len(converted) <= MAX_SUBJECT_CHARS
        and "error" not in item
    )
