"""Users, their profile claims, authentication methods (acr/amr) and the scripted login."""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass
class Session:
    """The browser session: who is signed in, how, and when (auth_time)."""

    user_id: str
    acr: str
    amr: list[str]
    auth_time: int


@dataclass
class LoginScript:
    """How the next (re-)authentication goes, set by `IdP.login_as` or `--auto-login`."""

    user_id: str
    acr: str
    amr: list[str]
    consent: bool = True
