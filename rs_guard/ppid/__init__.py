"""PPID translation for a resource server: the caller's pairwise subject <-> this resource's own.

Every client of a pairwise IdP sees its own pseudonym (PPID) for a user. A token's `sub` is the
PPID issued to the token's client; this resource works with the PPID issued to itself, and
answers each caller in the caller's PPID. `PPIDTranslator` asks the IdP's conversion endpoint
(`ppid_conversion_endpoint`) and keeps what it learns in a bounded TTL+LRU cache. Concurrent
lookups of one subject share one request (single-flight); concurrent lookups of different
subjects between the same two clients travel in one batch request (micro-batching).

Plug it into the middleware with `ResourceGuard(..., subject_translator=translator)`.

The translator is the policy (what is refused, what is served stale, what an error becomes);
`_cache.py` holds what it has learnt (two tiers and negative answers), `_client.py` speaks the
IdP's wire protocol, and rs_guard._async supplies the single flight and the micro-batching.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Literal, Unpack, overload

import httpx

from .._async import MicroBatcher, SingleFlight
from ..errors import (
    ConfigurationError,
    ConversionDenied,
    InvalidToken,
    PPIDUnavailable,
    UnknownSubject,
)
from ..observe import Observer, emit
from ..outbound import ClientCredentials
from ..server import IssuerOptions, locate_endpoint
from ._cache import ConversionCache, Key, Pair
from ._client import MAX_SUBJECT_CHARS, ConversionClient

__all__ = [
    "MAX_BATCH",
    "SCOPE",
    "ClientTokens",
    "ConversionDenied",
    "PPIDTranslator",
    "PPIDUnavailable",
    "UnknownSubject",
]

SCOPE = "ppid:convert"
MAX_BATCH = 100

ClientTokens = Literal["reject", "keep"]


class PPIDEndpoints(IssuerOptions, total=False):
    """Where a PPIDTranslator finds the IdP: the issuer (`IssuerOptions`), whose metadata names
    both endpoints, or the `conversion_endpoint` and `token_endpoint` given outright."""

    conversion_endpoint: str | None
    token_endpoint: str | None


class PPIDTranslator:
    """Converts subjects between the callers' namespaces and this resource's own, via the IdP.

    `client_id` / `client_secret` are this resource's own client registration at the IdP. It
    authenticates with a client-credentials token carrying scope `ppid:convert`, cached until
    shortly before it expires. The IdP is `server=` (an `AuthorizationServer` shared with the
    guard and the other features), or `issuer=` / `metadata=` with `http_client=`, or the two
    endpoints given outright. `timeout` bounds each conversion batch as a whole, this
    resource's own token request included.

    Inbound (`to_local`, used by ResourceGuard): a subject the IdP does not know raises
    `InvalidToken(reason="unknown_subject")` (401), a client this resource may not convert from
    raises `InvalidToken(reason="conversion_denied")`, and an IdP that is down, slow or answers
    garbage raises `PPIDUnavailable` (503 + Retry-After); nothing half-translated reaches the
    app. Conversions are fresh for `cache_ttl` seconds; after that, for `stale_for` more, the
    known answer is served at once while a refresh runs behind the scenes, so an IdP outage
    never hurts users it has already vouched for. Failures are never cached; "unknown" and
    "denied" answers are, for `negative_ttl` seconds. Use one translator per event loop.

    A token whose `sub` equals its `client_id` was issued to a client acting for itself
    (client-credentials grant) and has no user: refused unless `client_tokens="keep"`, which
    passes the subject through unchanged.
    """

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str | None = None,
        token_source: ClientCredentials | None = None,
        scope: str = SCOPE,
        cache_size: int = 100_000,
        cache_ttl: float = 3600.0,
        stale_for: float = 86_400.0,
        negative_ttl: float = 30.0,
        timeout: float = 3.0,
        batch_window: float = 0.002,
        max_batch: int = MAX_BATCH,
        hot_size: int = 4096,
        retry_after: int = 5,
        client_tokens: ClientTokens = "reject",
        observer: Observer | None = None,
        clock: Callable[[], float] = time.monotonic,
        **where: Unpack[PPIDEndpoints],
    ) -> None:
        if not client_id:
            raise ConfigurationError("client_id is this resource's own client id at the IdP")
        if not 1 <= max_batch <= MAX_BATCH:
            raise ConfigurationError(f"max_batch must be between 1 and {MAX_BATCH}")
        if client_tokens not in ("reject", "keep"):
            raise ConfigurationError("client_tokens must be 'reject' or 'keep'")
        if cache_size < 1 or cache_ttl <= 0 or timeout <= 0:
            raise ConfigurationError("cache_size, cache_ttl and timeout must be positive")
        if stale_for < 0 or negative_ttl < 0 or batch_window < 0:
            raise ConfigurationError("stale_for, negative_ttl and batch_window must be >= 0")
        self.target = locate_endpoint(
            "PPIDTranslator",
            "ppid_conversion_endpoint",
            where,
            url=where.get("conversion_endpoint"),
            timeout=timeout,
            observer=observer,
        )
        if token_source is None:
            if client_secret is None:
                raise ConfigurationError("a client secret (or a token_source) is required")
            # The same issuer context for both endpoints: the server's, else the one document
            # the conversion endpoint reads (discovered once), else what was given.
            server = where.get("server")
            shared = self.target.metadata if server is None else None
            token_source = ClientCredentials(
                client_id=client_id,
                client_secret=client_secret,
                server=server,
                issuer=where.get("issuer") if server is None and shared is None else None,
                metadata=shared,
                token_endpoint=where.get("token_endpoint"),
                http_client=where.get("http_client"),
                scope=scope,
                timeout=timeout,
                observer=observer,
            )
        self.client_id = client_id
        self.client_tokens = client_tokens
        self.timeout = timeout
        self.tokens = token_source
        self._client = ConversionClient(
            self.target, token_source, scope=scope, retry_after=retry_after, observer=observer
        )
        self._observer = observer
        self._clock = clock
        self._cache = ConversionCache(
            cache_size, cache_ttl, stale_for, negative_ttl, hot_size=hot_size, clock=clock
        )
        self._hot = self._cache.hot  # the hot path reads it without a method call
        # One lookup per subject however many callers ask, and one IdP call per batch of them.
        self._flight: SingleFlight[Key, str | None] = SingleFlight()
        self._batcher: MicroBatcher[Pair, str, str | None] = MicroBatcher(
            self._convert_batch,
            window=batch_window,
            max_size=max_batch,
            cancelled=lambda: self._client.unavailable("ppid_cancelled"),
        )
        self._refreshing: set[Key] = set()

    def __repr__(self) -> str:
        return f"PPIDTranslator(client_id={self.client_id!r})"

    # -- public API ----------------------------------------------------------------------

    async def to_local(self, client_id: str, subject: str) -> str:
        """This resource's own PPID for `subject`, a PPID issued to `client_id`."""
        if subject == client_id:
            # RFC 9068 §2.2: a client acting for itself (client credentials) has sub = client_id.
            if self.client_tokens == "keep":
                return subject
            raise InvalidToken(
                "This resource needs a token issued for a user", reason="client_token"
            )
        if client_id == self.client_id:
            return subject  # a token issued to this resource itself: already our namespace
        key = (client_id, self.client_id, subject)
        now = self._clock()
        # The hot path: a plain dict read (a cachetools read costs ~1 us of Python calls).
        entry = self._hot.get(key)
        if entry is not None and entry[1] > now:
            return entry[0]
        known = self._cache.lookup(key, now)
        if known is not None:
            if not known[1]:
                # Stale: answer with what we know and refresh behind the scenes. PPIDs are
                # deterministic, so this is almost always still right, and a slow or failing
                # IdP adds no latency for users it has already vouched for.
                self._refresh(key)
            return known[0]
        try:
            # The store was just read: the lookup goes straight to the negative answers.
            found = await self._lookup(client_id, self.client_id, (subject,), stored=False)
        except ConversionDenied:
            raise InvalidToken(
                "Tokens of this client are not accepted here", reason="conversion_denied"
            ) from None
        local = found.get(subject)
        if local is None:
            raise InvalidToken("The token's subject is not known", reason="unknown_subject")
        return local

    @overload
    async def to_client(self, client_id: str, subjects: str) -> str: ...  # type: ignore[overload-overlap]

    @overload
    async def to_client(self, client_id: str, subjects: Sequence[str]) -> list[str]: ...

    async def to_client(self, client_id: str, subjects: str | Sequence[str]) -> str | list[str]:
        """One or many of this resource's own PPIDs, expressed as `client_id` knows them.

        A single subject gives a string, a sequence gives a list in the same order. Raises
        UnknownSubject (listing all of them) when the IdP knows some of them not,
        ConversionDenied or PPIDUnavailable (both 503 if they reach the middleware).
        """
        many = [subjects] if isinstance(subjects, str) else list(subjects)
        if client_id == self.client_id:
            return subjects if isinstance(subjects, str) else many
        found = await self.convert(self.client_id, client_id, many)
        known = {s: v for s, v in found.items() if v is not None}
        unknown = [s for s in dict.fromkeys(many) if s not in known]
        if unknown:
            raise UnknownSubject(unknown)
        out = [known[s] for s in many]
        return out[0] if isinstance(subjects, str) else out

    async def convert(
        self, from_client: str, to_client: str, subjects: Sequence[str]
    ) -> dict[str, str | None]:
        """Subjects as issued to `from_client`, expressed for `to_client` (None when unknown).

        One side must be this resource (the IdP refuses anything else). Never partial on
        failure: either every subject has an answer or an error is raised.
        """
        if self.client_id not in (from_client, to_client):
            raise ConfigurationError("one side of a conversion must be this resource")
        if from_client == to_client:
            return {s: s for s in subjects}
        return await self._lookup(from_client, to_client, subjects)

    def forget(self, subject: str | None = None) -> None:
        """Drop cached conversions (all, or those mentioning `subject`): e.g. a deleted user."""
        self._cache.forget(subject)

    async def aclose(self) -> None:
        """Fail pending batches and close the HTTP clients this translator created."""
        await self._batcher.aclose()
        await self._client.aclose()

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The client used for calls to the IdP."""
        return self._client.http_client

    # -- lookups: cache, then one shared lookup per subject, batched per client pair ------

    async def _lookup(
        self, from_client: str, to_client: str, subjects: Iterable[str], *, stored: bool = True
    ) -> dict[str, str | None]:
        now = self._clock()
        pair = (from_client, to_client)
        out: dict[str, str | None] = {}
        missing: list[str] = []
        for subject in dict.fromkeys(subjects):
            key = (from_client, to_client, subject)
            known = self._cache.lookup(key, now, promote=False) if stored else None
            if known is not None:
                if not known[1]:
                    self._refresh(key)  # stale: served now, refreshed behind the scenes
                out[subject] = known[0]
            elif self._cache.is_unknown(key):
                out[subject] = None
            elif not subject or len(subject) > MAX_SUBJECT_CHARS:
                out[subject] = None  # the IdP would refuse the whole batch for it
            elif not self._flight.running(key) and self._cache.is_denied(pair):
                raise ConversionDenied(reason="ppid_denied")
            else:
                missing.append(subject)
        if not missing:
            return out
        flight, submit = self._flight, self._batcher.submit
        try:
            if len(missing) == 1:
                subject = missing[0]
                out[subject] = await flight.run((*pair, subject), lambda: submit(pair, subject))
            else:
                # All submitted before any is awaited, so that they travel in the same batches.
                found = await asyncio.gather(
                    *(flight.run((*pair, s), partial(submit, pair, s)) for s in missing)
                )
                out.update(zip(missing, found, strict=True))
        except PPIDUnavailable as exc:
            # A fresh exception per caller: the shared one would collect tracebacks.
            raise PPIDUnavailable(
                exc.description, retry_after=exc.retry_after, reason=exc.reason
            ) from None
        except ConversionDenied as exc:
            raise ConversionDenied(reason=exc.reason) from None
        return out

    def _refresh(self, key: Key) -> None:
        """Ask the IdP again for a stale entry, without anyone waiting for the answer."""
        pair = (key[0], key[1])
        if key in self._refreshing or self._flight.running(key) or self._cache.is_denied(pair):
            return
        emit(self._observer, "ppid_stale_served")
        self._refreshing.add(key)
        self._batcher.submit(pair, key[2]).add_done_callback(
            lambda _: self._refreshing.discard(key)
        )

    async def _convert_batch(self, pair: Pair, batch: list[str]) -> dict[str, str | None]:
        """One IdP call for a batch; what it learns is cached before any waiter wakes up."""
        deadline = asyncio.get_running_loop().time() + self.timeout
        try:
            results = await self._client.convert(pair[0], pair[1], batch, deadline=deadline)
        except ConversionDenied:
            self._cache.deny(pair)
            raise
        self._cache.learn(pair, results)
        return results
