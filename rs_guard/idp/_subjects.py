"""Subjects (OIDC Core §8): public and pairwise `sub` values, their reverse, and the policy of
which client may convert subjects from or into which other client's namespace."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import TYPE_CHECKING, Any, Literal

from ._util import b64url

if TYPE_CHECKING:
    from ._clients import ClientRegistry
    from ._users import UserDirectory

Direction = Literal["from", "to", "both"]
ANY = "*"
_PAD = 32
_MAX_SUB_CHARS = 1024
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


class SubjectMapper:
    """The `sub` each client receives for each user, and back.

    A pairwise subject is the user id encrypted (AES-SIV: deterministic, authenticated) with
    the sector as associated data: the same user gets the same value in one sector, values of
    two sectors cannot be linked without the key, and the reverse look-up is one decryption —
    no table that grows with users times sectors, no scan of every user for an unknown value,
    and values handed out before a restart (same `pairwise_secret`) still read back. The user
    id is padded to a multiple of 32 bytes so the value does not tell its length.
    """

    def __init__(self, secret: bytes, clients: ClientRegistry, users: UserDirectory) -> None:
        # Imported here: the IdP's import stays light for tests that only mint tokens.
        from cryptography.hazmat.primitives.ciphers.aead import AESSIV

        self._secret = secret
        self._siv = AESSIV(hashlib.sha512(b"rs_guard pairwise subject\x00" + secret).digest())
        self._clients = clients
        self._users = users

    def pairwise(self, sector: str, user_id: str) -> str:
        """The pairwise subject of `user_id` in `sector`."""
        raw = user_id.encode("utf-8")
        padded = len(raw).to_bytes(4, "big") + raw
        padded += b"\x00" * (-len(padded) % _PAD)
        return b64url(self._siv.encrypt(padded, [sector.encode("utf-8")]))

    def _reverse(self, sector: str, sub: str) -> str | None:
        if len(sub) > _MAX_SUB_CHARS or not _B64URL.fullmatch(sub):
            return None
        from cryptography.exceptions import InvalidTag

        try:
            blob = base64.urlsafe_b64decode(sub + "=" * (-len(sub) % 4))
            padded = self._siv.decrypt(blob, [sector.encode("utf-8")])
        except (InvalidTag, ValueError):
            return None
        size = int.from_bytes(padded[:4], "big")
        try:
            return padded[4 : 4 + size].decode("utf-8")
        except UnicodeDecodeError:
            return None

    def subject_for(self, user_id: str, client_id: str) -> str:
        """The `sub` that `client_id` receives for `user_id` (pairwise or public)."""
        client = self._clients.get(client_id)
        if client is None or client.subject_type != "pairwise":
            return user_id
        return self.pairwise(client.sector, user_id)

    def user_for_subject(self, sub: str, client_id: str) -> str | None:
        """The user id behind a `sub` as seen by `client_id`, or None when unknown (O(1))."""
        client = self._clients.get(client_id)
        if client is None or client.subject_type != "pairwise":
            return sub if sub in self._users else None
        # Authenticated: a value that decrypts was made by this IdP for this sector.
        return self._reverse(client.sector, sub)

    # ----- persistence (see _persistence.py) ------------------------------------------------

    def snapshot(self) -> dict[str, str]:
        """The pairwise secret: without it every pairwise `sub` changes at a restart."""
        return {"pairwise_secret": b64url(self._secret)}

    def restore(self, doc: dict[str, Any]) -> None:
        """Take the pairwise secret of a snapshot (ValueError when it is not one)."""
        raw = doc.get("pairwise_secret")
        if not isinstance(raw, str):
            raise ValueError("subjects: pairwise_secret missing")
        try:
            secret = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        except ValueError:
            raise ValueError("subjects: pairwise_secret is not base64url") from None
        if len(secret) < 16:
            raise ValueError("subjects: pairwise_secret is too short")
        from cryptography.hazmat.primitives.ciphers.aead import AESSIV

        self._secret = secret
        self._siv = AESSIV(hashlib.sha512(b"rs_guard pairwise subject\x00" + secret).digest())


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
