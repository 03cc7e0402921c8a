"""The verified-token cache: exact token string -> validation result, LRU-bounded."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from .access_token import AccessToken
from .keys import VerificationKey
from .observe import Observer, emit_hot


@dataclass(slots=True, eq=False)
class Entry:
    """One remembered validation result (`generation`: the key set's, at validation)."""

    access: AccessToken
    not_before: float
    expires: float
    key: VerificationKey | None = None
    generation: int = 0


class VerifiedCache:
    """Exact token string -> validation result, LRU-bounded; time claims re-checked on use."""

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._data: OrderedDict[str, Entry] = OrderedDict()

    def get(self, token: str) -> Entry | None:
        entry = self._data.get(token)
        if entry is not None:
            self._data.move_to_end(token)
        return entry

    def put(self, token: str, entry: Entry) -> None:
        if self._maxsize <= 0:
            return
        data = self._data
        # One look-up: a new key lands at the most recent end by itself. A key already there
        # (two requests validated the same new token concurrently) keeps its place, which
        # was taken moments ago; its value is the same validation result.
        data[token] = entry
        if len(data) > self._maxsize:
            data.popitem(last=False)  # one in, at most one out

    def discard_where(self, predicate: Callable[[AccessToken], bool]) -> int:
        """Drop every entry whose result matches (O(n): for rare events, not per request)."""
        doomed = [token for token, entry in self._data.items() if predicate(entry.access)]
        for token in doomed:
            del self._data[token]
        return len(doomed)

    def discard(self, token: str) -> None:
        self._data.pop(token, None)

    def __len__(self) -> int:
        return len(self._data)


class CachingValidator:
    """What the JWT and introspection validators share: a verified-token cache in front of
    the slow check, with the same miss accounting and the same way to drop results."""

    _cache: VerifiedCache
    _observer: Observer | None

    def cached(self, token: str) -> AccessToken | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def forget_where(self, predicate: Callable[[AccessToken], bool]) -> int:
        """Drop cached results matching `predicate` (continuous access evaluation)."""
        return self._cache.discard_where(predicate)

    def _cached_or_miss(self, token: str) -> AccessToken | None:
        """The cached result, or None after counting a miss (the caller validates)."""
        access = self.cached(token)
        if access is None and self._observer is not None:
            emit_hot(self._observer, "token_cache_miss")
        return access
