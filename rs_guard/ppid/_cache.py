"""What a PPIDTranslator has learnt from the IdP: conversions, unknown subjects, denied pairs."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from cachetools import TTLCache

Key = tuple[str, str, str]
"""(from_client, to_client, subject)."""
Pair = tuple[str, str]
"""(from_client, to_client)."""
Entry = tuple[str, float]
"""(converted subject, fresh until)."""


class ConversionCache:
    """Two tiers of conversions, plus short-lived negative answers.

    The store is a bounded TTL+LRU cache whose entries live `stale_for` seconds past their
    freshness, so an outage can be bridged with what was known (PPIDs are deterministic and
    rarely wrong). In front of it, `hot` is a plain dict of the hottest fresh entries, emptied
    whenever it fills up: a dict read costs a fraction of a cachetools read (~1 us of Python
    calls), and entries keep their freshness deadline, so it never serves longer than the
    store. "Unknown subject" and "pair denied" answers are kept for `negative_ttl` seconds.
    """

    def __init__(
        self,
        size: int,
        ttl: float,
        stale_for: float,
        negative_ttl: float,
        *,
        hot_size: int,
        clock: Callable[[], float],
    ) -> None:
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self._clock = clock
        self._store: TTLCache[Key, Entry] = TTLCache(size, ttl + stale_for, timer=clock)
        self.hot: dict[Key, Entry] = {}
        """Read directly by the translator's hot path; cleared, never replaced."""
        self._hot_size = max(1, min(size, hot_size))
        self._unknown: TTLCache[Key, bool] = TTLCache(
            max(1, size // 10), max(negative_ttl, 1e-9), timer=clock
        )
        self._denied: TTLCache[Pair, bool] = TTLCache(1024, max(negative_ttl, 1e-9), timer=clock)

    def lookup(self, key: Key, now: float, *, promote: bool = True) -> tuple[str, bool] | None:
        """The stored conversion and whether it is still fresh (fresh ones move to `hot`)."""
        entry = self._store.get(key)
        if entry is None:
            return None
        fresh = entry[1] > now
        if fresh and promote:
            if len(self.hot) >= self._hot_size:
                self.hot.clear()
            self.hot[key] = entry
        return entry[0], fresh

    def is_unknown(self, key: Key) -> bool:
        """Whether the IdP said recently that it does not know this subject."""
        return key in self._unknown

    def is_denied(self, pair: Pair) -> bool:
        """Whether the IdP refused recently to convert between these two clients."""
        return pair in self._denied

    def learn(self, pair: Pair, results: Mapping[str, str | None]) -> None:
        """Keep the IdP's answers for one batch (None: the subject is unknown)."""
        from_client, to_client = pair
        fresh_until = self._clock() + self.ttl
        for subject, converted in results.items():
            key = (from_client, to_client, subject)
            if converted is None:
                # The IdP no longer knows it (e.g. the user was deleted): forget it.
                self._store.pop(key, None)
                self.hot.pop(key, None)
                if self.negative_ttl > 0:
                    self._unknown[key] = True
                continue
            self._store[key] = (converted, fresh_until)
            # The IdP's answer holds both ways: the reverse lookup is now free.
            self._store[(to_client, from_client, converted)] = (subject, fresh_until)

    def deny(self, pair: Pair) -> None:
        """Remember for `negative_ttl` that the IdP refuses conversions between the pair, and
        drop every conversion cached for it (both ways) at once: what the IdP now denies must
        not go on being served fresh or stale."""
        if self.negative_ttl > 0:
            self._denied[pair] = True
        pairs = (pair, (pair[1], pair[0]))
        for key in [k for k in self._store if (k[0], k[1]) in pairs]:
            self._store.pop(key, None)
        for key in [k for k in self.hot if (k[0], k[1]) in pairs]:
            del self.hot[key]

    def forget(self, subject: str | None = None) -> None:
        """Drop cached conversions (all, or those mentioning `subject`)."""
        self.hot.clear()
        if subject is None:
            self._store.clear()
            self._unknown.clear()
            return
        for key, (value, _) in list(self._store.items()):
            if subject in (key[2], value):
                self._store.pop(key, None)
        for key in list(self._unknown.keys()):
            if key[2] == subject:
                self._unknown.pop(key, None)
