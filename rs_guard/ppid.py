"""PPID translation for a resource server: the caller's pairwise subject <-> this resource's own.

Every client of a pairwise IdP sees its own pseudonym (PPID) for a user. A token's `sub` is the
PPID issued to the token's client; this resource works with the PPID issued to itself, and
answers each caller in the caller's PPID. `PPIDTranslator` asks the IdP's conversion endpoint
(`ppid_conversion_endpoint`) and keeps what it learns in a bounded TTL+LRU cache. Concurrent
lookups of one subject share one request (single-flight); concurrent lookups of different
subjects between the same two clients travel in one batch request (micro-batching).

Plug it into the middleware with `ResourceGuard(..., subject_translator=translator)`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, overload

import httpx
from cachetools import TTLCache

from ._http import FetchError, request_json
from .discovery import ServerEndpoint, ServerMetadata
from .errors import ConfigurationError, InvalidToken, ServerError
from .exchange import ClientCredentials
from .observe import Observer, emit

SCOPE = "ppid:convert"
MAX_BATCH = 100
_MAX_RESPONSE_BYTES = 256 * 1024
_MAX_SUBJECT_CHARS = 512

ClientTokens = Literal["reject", "keep"]
_Key = tuple[str, str, str]
"""(from_client, to_client, subject)."""
_Pair = tuple[str, str]


class PPIDUnavailable(ServerError):
    """The IdP could not convert a subject right now (down, slow, garbage); the client may retry."""

    reason = "ppid_unavailable"


class ConversionDenied(ServerError):
    """The IdP does not let this resource convert subjects with that client.

    Inbound (a token from that client) this becomes a 401 `invalid_token`; outbound it is a
    configuration problem of this resource and, if the app lets it escape, a 503.
    """

    reason = "ppid_denied"


class UnknownSubject(LookupError):
    """Outbound conversion of PPIDs the IdP does not know (e.g. users deleted at the IdP)."""

    def __init__(self, subjects: Iterable[str]) -> None:
        self.subjects = tuple(subjects)
        super().__init__(f"{len(self.subjects)} subject(s) unknown to the IdP")


class PPIDTranslator:
    """Converts subjects between the callers' namespaces and this resource's own, via the IdP.

    `client_id` / `client_secret` are this resource's own client registration at the IdP. It
    authenticates with a client-credentials token carrying scope `ppid:convert`, cached until
    shortly before it expires.

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
        issuer: str | None = None,
        metadata: ServerMetadata | None = None,
        http_client: httpx.AsyncClient | None = None,
        conversion_endpoint: str | None = None,
        token_endpoint: str | None = None,
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
        if metadata is None and issuer is not None:
            metadata = ServerMetadata(issuer, http_client=http_client, observer=observer)
        if conversion_endpoint is None and metadata is None:
            raise ConfigurationError("give the issuer, its metadata, or the conversion endpoint")
        if token_source is None:
            if client_secret is None:
                raise ConfigurationError("a client secret (or a token_source) is required")
            token_source = ClientCredentials(
                client_id=client_id,
                client_secret=client_secret,
                metadata=metadata if token_endpoint is None else None,
                token_endpoint=token_endpoint,
                http_client=http_client,
                scope=scope,
                timeout=timeout,
                observer=observer,
            )
        self.client_id = client_id
        self.scope = scope
        self.timeout = timeout
        self.batch_window = batch_window
        self.max_batch = max_batch
        self.retry_after = retry_after
        self.client_tokens = client_tokens
        self.cache_ttl = cache_ttl
        self.negative_ttl = negative_ttl
        self.tokens = token_source
        self.target = ServerEndpoint(
            "ppid_conversion_endpoint",
            url=conversion_endpoint,
            metadata=metadata,
            http_client=http_client,
            timeout=timeout,
        )
        self._observer = observer
        self._clock = clock
        # Values are (converted, fresh_until); entries live on `stale_for` past freshness so an
        # outage can be bridged with what was known (PPIDs are deterministic, rarely wrong).
        self._cache: TTLCache[_Key, tuple[str, float]] = TTLCache(
            cache_size, cache_ttl + stale_for, timer=clock
        )
        # A small front for the hottest entries: a plain dict, emptied whenever it fills up.
        # Entries keep their freshness deadline, so it never serves longer than the store.
        self._hot: dict[_Key, tuple[str, float]] = {}
        self._hot_size = max(1, min(cache_size, hot_size))
        self._negative: TTLCache[_Key, bool] = TTLCache(
            max(1, cache_size // 10), max(negative_ttl, 1e-9), timer=clock
        )
        self._denied: TTLCache[_Pair, bool] = TTLCache(1024, max(negative_ttl, 1e-9), timer=clock)
        self._inflight: dict[_Key, asyncio.Future[str | None]] = {}
        self._pending: dict[_Pair, list[str]] = {}
        self._timers: dict[_Pair, asyncio.Handle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

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
        entry = self._cache.get(key)
        if entry is not None:
            if entry[1] > now:
                self._remember_hot(key, entry)
            else:
                # Stale: answer with what we know and refresh behind the scenes. PPIDs are
                # deterministic, so this is almost always still right, and a slow or failing
                # IdP adds no latency for users it has already vouched for.
                self._revalidate(key)
            return entry[0]
        try:
            found = await self._lookup(client_id, self.client_id, (subject,))
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
        self._hot.clear()
        if subject is None:
            self._cache.clear()
            self._negative.clear()
            return
        for key, (value, _) in list(self._cache.items()):
            if subject in (key[2], value):
                self._cache.pop(key, None)
        for key in list(self._negative.keys()):
            if key[2] == subject:
                self._negative.pop(key, None)

    async def aclose(self) -> None:
        """Cancel pending batches and close the HTTP clients this translator created."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        await self.target.aclose()
        await self.tokens.aclose()

    # -- lookups, single-flight and batching ---------------------------------------------

    async def _lookup(
        self, from_client: str, to_client: str, subjects: Iterable[str]
    ) -> dict[str, str | None]:
        now = self._clock()
        out: dict[str, str | None] = {}
        waiting: dict[str, asyncio.Future[str | None]] = {}
        pair = (from_client, to_client)
        for subject in dict.fromkeys(subjects):
            key = (from_client, to_client, subject)
            entry = self._cache.get(key)
            if entry is not None:
                if entry[1] <= now:
                    self._revalidate(key)  # stale: served now, refreshed behind the scenes
                out[subject] = entry[0]
                continue
            if key in self._negative:
                out[subject] = None
                continue
            if not subject or len(subject) > _MAX_SUBJECT_CHARS:
                out[subject] = None  # the IdP would refuse the whole batch for it
                continue
            fut = self._inflight.get(key)
            if fut is None:
                if pair in self._denied:
                    raise ConversionDenied(reason="ppid_denied")
                fut = asyncio.get_running_loop().create_future()
                self._inflight[key] = fut
                self._enqueue(pair, subject)
            waiting[subject] = fut
        for subject, fut in waiting.items():
            try:
                # shield: a caller that goes away must not cancel the others' shared answer.
                out[subject] = await asyncio.shield(fut)
            except PPIDUnavailable as exc:
                # A fresh exception per caller: the shared one would collect tracebacks.
                raise PPIDUnavailable(
                    exc.description, retry_after=exc.retry_after, reason=exc.reason
                ) from None
            except ConversionDenied as exc:
                raise ConversionDenied(reason=exc.reason) from None
        return out

    def _revalidate(self, key: _Key) -> None:
        from_client, to_client, subject = key
        if key in self._inflight or (from_client, to_client) in self._denied:
            return
        emit(self._observer, "ppid_stale_served")
        self._inflight[key] = asyncio.get_running_loop().create_future()
        self._enqueue((from_client, to_client), subject)

    def _remember_hot(self, key: _Key, entry: tuple[str, float]) -> None:
        if len(self._hot) >= self._hot_size:
            self._hot.clear()
        self._hot[key] = entry

    def _enqueue(self, pair: _Pair, subject: str) -> None:
        batch = self._pending.get(pair)
        if batch is None:
            batch = self._pending[pair] = []
            loop = asyncio.get_running_loop()
            if self.batch_window > 0:
                self._timers[pair] = loop.call_later(self.batch_window, self._flush, pair)
            else:
                self._timers[pair] = loop.call_soon(self._flush, pair)
        batch.append(subject)
        if len(batch) >= self.max_batch:
            self._flush(pair)

    def _flush(self, pair: _Pair) -> None:
        handle = self._timers.pop(pair, None)
        if handle is not None:
            handle.cancel()
        batch = self._pending.pop(pair, None)
        if not batch:
            return
        task = asyncio.get_running_loop().create_task(self._run_batch(pair, batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_batch(self, pair: _Pair, batch: list[str]) -> None:
        from_client, to_client = pair
        error: Exception | None = None
        results: dict[str, str | None] = {}
        try:
            async with asyncio.timeout(self.timeout):
                results = await self._call(from_client, to_client, batch)
        except TimeoutError:
            error = PPIDUnavailable(retry_after=self.retry_after, reason="ppid_timeout")
        except (PPIDUnavailable, ConversionDenied) as exc:
            error = exc
        except ServerError as exc:  # the token source's own failures
            error = PPIDUnavailable(retry_after=self.retry_after, reason=exc.reason)
        except asyncio.CancelledError:
            error = PPIDUnavailable(retry_after=self.retry_after, reason="ppid_cancelled")
            raise
        except Exception:  # a bug here must not leave a thousand requests hanging
            emit(self._observer, "ppid_failed", reason="internal_error")
            error = PPIDUnavailable(retry_after=self.retry_after, reason="ppid_internal_error")
        finally:
            if error is not None and not isinstance(error, ConversionDenied):
                emit(self._observer, "ppid_failed", reason=getattr(error, "reason", "error"))
            self._settle(pair, batch, results, error)

    def _settle(
        self,
        pair: _Pair,
        batch: list[str],
        results: dict[str, str | None],
        error: Exception | None,
    ) -> None:
        from_client, to_client = pair
        if error is None:
            fresh_until = self._clock() + self.cache_ttl
            for subject, converted in results.items():
                if converted is None:
                    key = (from_client, to_client, subject)
                    # The IdP no longer knows it (e.g. the user was deleted): forget it.
                    self._cache.pop(key, None)
                    self._hot.pop(key, None)
                    if self.negative_ttl > 0:
                        self._negative[key] = True
                    continue
                self._cache[(from_client, to_client, subject)] = (converted, fresh_until)
                # The IdP's answer holds both ways: the reverse lookup is now free.
                self._cache[(to_client, from_client, converted)] = (subject, fresh_until)
        elif isinstance(error, ConversionDenied) and self.negative_ttl > 0:
            self._denied[pair] = True
        for subject in batch:
            fut = self._inflight.pop((from_client, to_client, subject), None)
            if fut is None or fut.done():
                continue
            if error is not None:
                fut.set_exception(error)
                fut.exception()  # retrieved by the waiters through shield; no "never retrieved"
            else:
                fut.set_result(results.get(subject))

    # -- the IdP call --------------------------------------------------------------------

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The client used for calls to the IdP."""
        return self.target.http_client

    async def _conversion_endpoint(self) -> str:
        try:
            return await self.target.url()
        except FetchError as exc:
            raise PPIDUnavailable(
                retry_after=self.retry_after, reason=f"ppid_discovery_{exc}"
            ) from None

    async def _call(
        self, from_client: str, to_client: str, batch: list[str]
    ) -> dict[str, str | None]:
        url = await self._conversion_endpoint()
        payload = {"from_client": from_client, "to_client": to_client, "subjects": batch}
        emit(self._observer, "ppid_batch", size=len(batch))
        for attempt in (1, 2):
            token = await self.tokens.token(scope=self.scope)
            status, body, retry_after = await self._post(url, token, payload)
            if status == 401 and attempt == 1:
                # Our cached token was revoked or the IdP restarted: one fresh token, no loop.
                self.tokens.invalidate(token)
                continue
            break
        if status == 200:
            return self._parse(from_client, to_client, batch, body)
        if status == 403:
            emit(self._observer, "ppid_denied", from_client=from_client, to_client=to_client)
            raise ConversionDenied(retry_after=self.retry_after)
        wait = retry_after if retry_after is not None else self.retry_after
        raise PPIDUnavailable(retry_after=wait, reason=f"ppid_http_{status}")

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
            raise PPIDUnavailable(retry_after=self.retry_after, reason=f"ppid_{exc}") from None
        retry_after = _retry_after(answer.headers.get("retry-after"))
        return answer.status, answer.body or {}, retry_after

    def _parse(
        self, from_client: str, to_client: str, batch: list[str], body: dict[str, Any]
    ) -> dict[str, str | None]:
        """Check the IdP's answer strictly: anything off means nothing of it is used."""

        def garbage() -> PPIDUnavailable:
            return PPIDUnavailable(retry_after=self.retry_after, reason="ppid_garbage")

        results = body.get("results")
        if (
            body.get("from_client") != from_client
            or body.get("to_client") != to_client
            or not isinstance(results, list)
            or len(results) != len(batch)
        ):
            raise garbage()
        out: dict[str, str | None] = {}
        for item in results:
            if not isinstance(item, dict):
                raise garbage()
            subject = item.get("subject")
            converted = item.get("converted")
            if not isinstance(subject, str) or subject in out:
                raise garbage()
            if converted is None:
                if not isinstance(item.get("error"), str):
                    raise garbage()
            elif (
                not isinstance(converted, str)
                or not converted
                or len(converted) > _MAX_SUBJECT_CHARS
                or "error" in item
            ):
                raise garbage()
            out[subject] = converted
        if set(out) != set(batch):
            raise garbage()
        return out


def _retry_after(value: str | None) -> int | None:
    # Only the delay-seconds form, bounded: an IdP must not park our clients for a day.
    if value is None or not value.strip().isdigit():
        return None
    return max(1, min(int(value.strip()), 300))
