"""What the IdP remembers about what it issued: codes, access and refresh tokens, grants."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._claims import ClaimsRequest


@dataclass
class Grant:
    """A user's (or a client's) authorization from which tokens descend; revoked as a whole."""

    grant_id: str
    client_id: str
    user_id: str | None
    scope: list[str]
    resources: list[str]
    acr: str | None = None
    amr: list[str] | None = None
    auth_time: int | None = None
    nonce: str | None = None
    claims_request: ClaimsRequest = field(default_factory=ClaimsRequest)
    revoked: bool = False


@dataclass
class AuthorizationCode:
    """An authorization code (stored by hash) waiting for the token request."""

    grant: Grant
    redirect_uri: str | None
    code_challenge: str | None
    expires_at: int
    used: bool = False


@dataclass
class AccessTokenRecord:
    """An issued access token (stored by hash) for introspection and revocation."""

    jti: str
    claims: dict[str, Any]
    client_id: str
    user_id: str | None
    expires_at: int
    grant_id: str | None = None
    revoked: bool = False
    resource_bound: bool = False
    """Minted for audiences somebody named (RFC 8707 `resource`, token exchange, a test's
    `audience=`), not the IdP's default audience: such a token is for those resources only,
    and /userinfo refuses it unless one of them is the IdP itself."""


@dataclass
class RefreshTokenRecord:
    """A refresh token (stored by hash); rotation marks it used, reuse revokes the family."""

    grant: Grant
    scope: list[str]
    issued_at: int
    expires_at: int
    used: bool = False
    revoked: bool = False
