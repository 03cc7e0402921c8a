"""RFC 7591 §3 initial access tokens: several at once, each reusable, one-time or expiring, or
a validator callable deciding (for an IdP fronted by another token service)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._util import random_token, token_hash

if TYPE_CHECKING:
    from ._persistence import StateDir


@dataclass
class _Entry:
    one_time: bool
    expires_at: float | None


class InitialAccessTokens:
    """The tokens `/register` accepts (kept by hash); none configured = open registration."""

    def __init__(
        self,
        tokens: Iterable[str] = (),
        *,
        validator: Callable[[str], bool] | None = None,
        clock: Callable[[], float],
    ) -> None:
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self.validator = validator
        for token in tokens:
            self.add(token)

    @property
    def required(self) -> bool:
        """True when registration needs a token (some token or a validator is configured)."""
        return bool(self._entries) or self.validator is not None

    def add(self, token: str, *, one_time: bool = False, lifetime: float | None = None) -> None:
        """Accept `token` from now on (once when `one_time`; until `lifetime` seconds pass)."""
        if not token or len(token) < 16:
            raise ValueError("an initial access token must have at least 16 characters")
        expires = self._clock() + lifetime if lifetime is not None else None
        self._entries[token_hash(token)] = _Entry(one_time, expires)

    def issue(self, *, one_time: bool = True, lifetime: float | None = 3600) -> str:
        """A new random token (one-time and valid an hour by default); returned once."""
        token = random_token(32)
        self.add(token, one_time=one_time, lifetime=lifetime)
        return token

    def revoke(self, token: str) -> None:
        """Stop accepting `token`."""
        self._entries.pop(token_hash(token), None)

    def accept(self, presented: str) -> bool:
        """True when `presented` may register a client now (a one-time token is used up)."""
        key = token_hash(presented)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                if entry.expires_at is not None and entry.expires_at <= self._clock():
                    del self._entries[key]
                elif entry.one_time:
                    del self._entries[key]
                    return True
                else:
                    return True
        return self.validator is not None and bool(presented) and self.validator(presented)


def start_state(
    idp: Any,
    initial_access_token: str | Iterable[str] | Callable[[str], bool] | None,
    state_dir: str | os.PathLike[str] | None,
    clients_file: str | os.PathLike[str] | None,
    client_secrets_dir: str | os.PathLike[str] | None,
) -> StateDir | None:
    """What `IdP.__init__` does after building the services: the initial access tokens, the
    state directory (restored when it exists), then the clients file; saved once at the end."""
    from ._persistence import open_state  # here: _persistence imports the clients package

    tokens = InitialAccessTokens(clock=idp.settings.time)
    if callable(initial_access_token):
        tokens.validator = initial_access_token
    elif initial_access_token is not None and not isinstance(initial_access_token, str):
        for token in initial_access_token:
            tokens.add(token)
    idp.settings.initial_access_tokens = tokens
    state = None
    if state_dir is not None:
        state = open_state(idp.services, idp.clients_file, state_dir, idp.issuer)
        if client_secrets_dir is None:
            client_secrets_dir = os.path.join(state_dir, "client-secrets")
    try:
        if clients_file is not None:
            idp.clients_file.load(clients_file, now=idp.now(), secrets_dir=client_secrets_dir)
        if state is not None:
            state.save()
    except BaseException:
        if state is not None:
            state.close()
        raise
    return state
