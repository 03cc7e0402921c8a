"""Subjects (OIDC Core §8): public and pairwise `sub` values, their reverse, and the policy of
which client may convert subjects from or into which other client's namespace."""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Literal

from ._util import b64url

if TYPE_CHECKING:
    from ._clients import ClientRegistry
    from ._users import UserDirectory

Direction = Literal["from", "to", "both"]
ANY = "*"


class SubjectMapper:
    """The `sub` each client receives for each user, and back (pairwise by HMAC of sector)."""

    def __init__(self, secret: bytes, clients: ClientRegistry, users: UserDirectory) -> None:
        self._secret = secret
        self._clients = clients
        self._users = users
        self._reverse: dict[tuple[str, str], str] = {}

    def pairwise(self, sector: str, user_id: str) -> str:
        """The pairwise subject of `user_id` in `sector` (remembered for the reverse look-up)."""
        msg = b""
        for part in (sector, user_id):
            raw = part.encode("utf-8")
            msg += len(raw).to_bytes(4, "big") + raw
        sub = b64url(hmac.new(self._secret, msg, hashlib.sha256).digest())
        self._reverse[(sector, sub)] = user_id
        return sub

    def subject_for(self, user_id: str, client_id: str) -> str:
        """The `sub` that `client_id` receives for `user_id` (pairwise or public)."""
        client = self._clients.get(client_id)
        if client is None or client.subject_type != "pairwise":
            return user_id
        return self.pairwise(client.sector, user_id)

    def user_for_subject(self, sub: str, client_id: str) -> str | None:
        """The user id behind a `sub` as seen by `client_id`, or None when unknown."""
        client = self._clients.get(client_id)
        if client is None or client.subject_type != "pairwise":
            return sub if sub in self._users else None
        user_id = self._reverse.get((client.sector, sub))
        if user_id is None:
            # Subjects computed before a restart or never handed out: derive them again.
            for uid in self._users:
                if self.pairwise(client.sector, uid) == sub:
                    return uid
        return user_id


class ConversionPolicy:
    """Which client may convert subjects from (into its own) or to (from its own) which other.

    Rules are looked up most specific first: (caller, other), (caller, "*"), ("*", other),
    ("*", "*"); the first rule found decides, and without any rule the answer is no.
    A client may always "convert" between its own namespace and itself.
    """

    def __init__(self) -> None:
        self._rules: dict[tuple[str, str, str], bool] = {}

    def allow(self, caller: str, other: str = ANY, *, direction: Direction = "both") -> None:
        """Let `caller` convert from `other`'s namespace ("from"), into it ("to"), or both."""
        self._set(caller, other, direction, True)

    def deny(self, caller: str, other: str = ANY, *, direction: Direction = "both") -> None:
        """Forbid what `allow` permits; a specific deny overrides a wildcard allow."""
        self._set(caller, other, direction, False)

    def clear(self) -> None:
        """Forget every rule (back to deny-all)."""
        self._rules.clear()

    def permits(self, caller: str, other: str, direction: Literal["from", "to"]) -> bool:
        """True when `caller` may convert in `direction` with `other`."""
        if caller == other:
            return True
        for key in (
            (caller, other, direction),
            (caller, ANY, direction),
            (ANY, other, direction),
            (ANY, ANY, direction),
        ):
            decision = self._rules.get(key)
            if decision is not None:
                return decision
        return False

    def _set(self, caller: str, other: str, direction: Direction, value: bool) -> None:
        if direction not in ("from", "to", "both"):
            raise ValueError("direction must be 'from', 'to' or 'both'")
        if not caller or not other:
            raise ValueError("client ids must not be empty")
        for d in ("from", "to") if direction == "both" else (direction,):
            self._rules[(caller, other, d)] = value
