"""The user directory: users, their profile claims, and the authentication methods (acr/amr)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

# Authentication methods offered by the IdP, weakest first, with the RFC 8176 amr they produce.
ACR_AMR: dict[str, list[str]] = {
    "pwd": ["pwd"],
    "mf": ["pwd", "otp", "mfa"],
    "phr": ["hwk", "pin", "mfa"],
}
ACR_LABELS: dict[str, str] = {
    "pwd": "Password",
    "mf": "Password + one-time code (multi-factor)",
    "phr": "Security key (phishing-resistant)",
}

# OIDC Core §5.4: which standard claims each scope value releases.
SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "profile": (
        "name",
        "family_name",
        "given_name",
        "middle_name",
        "nickname",
        "preferred_username",
        "profile",
        "picture",
        "website",
        "gender",
        "birthdate",
        "zoneinfo",
        "locale",
        "updated_at",
    ),
    "email": ("email", "email_verified"),
    "address": ("address",),
    "phone": ("phone_number", "phone_number_verified"),
}
STANDARD_CLAIMS: tuple[str, ...] = tuple(c for cs in SCOPE_CLAIMS.values() for c in cs)


@dataclass
class User:
    """A resource owner known to the IdP; `claims` holds profile claims (OIDC Core §5.1)."""

    user_id: str
    claims: dict[str, Any] = field(default_factory=dict)
    # Outcome of an in-flow phone verification when a request demands a verified phone:
    # True = the user proves the number (phone_number_verified becomes true), False = fails.
    phone_verification: bool = False


class UserDirectory:
    """Every user the IdP knows (a test IdP accepts any user name, creating it on first use)."""

    def __init__(self) -> None:
        self._users: dict[str, User] = {}

    def add(self, user_id: str, *, phone_verification: bool = False, **claims: Any) -> User:
        """Create or update a user with OIDC profile claims (email, phone_number, ...)."""
        if not user_id:
            raise ValueError("user_id must not be empty")
        user = self._users.get(user_id)
        if user is None:
            user = self._users[user_id] = User(user_id)
        user.claims.update(claims)
        user.phone_verification = phone_verification or user.phone_verification
        return user

    def get(self, user_id: str) -> User | None:
        """The user, or None when unknown."""
        return self._users.get(user_id)

    def user(self, user_id: str) -> User:
        """The user, created empty when unknown."""
        return self._users.get(user_id) or self.add(user_id)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._users

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._users))

    def view(self) -> Mapping[str, User]:
        """A read-only view of user id -> User."""
        return MappingProxyType(self._users)
