"""The IdP's configuration: one mutable object every service reads, so a test that changes
`idp.clock` or `idp.resource_allowlist` changes it for every endpoint at once."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ._client_metadata import GRANT_CLIENT_CREDENTIALS, GRANT_CODE, GRANT_REFRESH
from ._initial_tokens import InitialAccessTokens
from ._resources import validate_resources
from ._scope_policy import SENSITIVE_SCOPES


def check_issuer(issuer: str) -> str:
    """The issuer without a trailing slash; ValueError unless an http(s) URL without query."""
    parts = urlsplit(issuer)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or "#" in issuer:
        raise ValueError("issuer must be an http(s) URL without query or fragment")
    return issuer.rstrip("/")


@dataclass
class Settings:
    """What the operator chose when building the IdP (see `IdP.__init__`)."""

    issuer: str
    dev: bool = False
    clock: Callable[[], float] = time.time
    initial_access_token: str | None = None
    default_audience: str = ""
    resource_allowlist: list[str] | None = None
    code_lifetime: int = 60
    refresh_token_lifetime: int = 86_400
    access_token_lifetime: int = 300
    rotate_secrets_on_update: bool = False
    # RFC 7592 §2.2: the server may issue a new registration access token on an update.
    rotate_registration_access_token: bool = False
    # More initial access tokens (several, one-time, expiring, or a validator) than the one
    # string of `initial_access_token`; built by the IdP with its clock.
    initial_access_tokens: InitialAccessTokens | None = field(default=None, repr=False)
    dcr_scopes: list[str] | None = None
    """The scopes self-registered clients (DCR, metadata documents) may obtain; None: every
    scope except `sensitive_scopes` (see `_scope_policy`)."""
    sensitive_scopes: frozenset[str] = SENSITIVE_SCOPES
    """Scopes a self-registered client gets only when `dcr_scopes` lists them explicitly."""
    dcr_grant_types: list[str] = field(
        default_factory=lambda: [GRANT_CODE, GRANT_REFRESH, GRANT_CLIENT_CREDENTIALS]
    )
    """The grant types self-registered clients may hold: token exchange only when the operator
    adds it (see `_exchange_policy`)."""
    dcr_exchange_audiences: list[str] = field(default_factory=list)
    """The audiences a self-registered client may name in a token exchange (besides the
    subject token's own)."""
    logout_revokes_grants: bool = False
    """RP-Initiated Logout also revokes every grant the ended session issued (tokens die)."""
    fetch_deadline: float = 3.0
    """Seconds for one whole outbound document fetch (CIMD, sector_identifier_uri, jwks_uri)."""

    @property
    def path_prefix(self) -> str:
        """The issuer's path ("" for an issuer at the host's root)."""
        return urlsplit(self.issuer).path

    def time(self) -> float:
        """Current time from the injected clock (read at each call: tests replace it)."""
        return self.clock()

    def now(self) -> int:
        """Current time from the injected clock, in whole seconds."""
        return int(self.clock())

    def validate_resources(self, uris: Sequence[str]) -> list[str]:
        """RFC 8707 checks against the IdP's allow-list."""
        return validate_resources(uris, self.resource_allowlist)

    def registration_needs_token(self) -> bool:
        """RFC 7591 §3: whether /register demands an initial access token."""
        tokens = self.initial_access_tokens
        return self.initial_access_token is not None or (tokens is not None and tokens.required)

    def accept_initial_access_token(self, presented: str) -> bool:
        """True when `presented` is an initial access token /register accepts now."""
        if self.initial_access_token is not None and hmac.compare_digest(
            presented.encode(), self.initial_access_token.encode()
        ):
            return True
        tokens = self.initial_access_tokens
        return tokens is not None and bool(presented) and tokens.accept(presented)
