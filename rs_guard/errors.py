"""Every error rs_guard raises to its users, in one hierarchy.

Request errors know their RFC 6750 / RFC 9470 error code, HTTP status and a stable log
`reason`; ResourceGuard turns them into the answer. The tree::

    Exception
    ├── RSGuardError                        a request is refused (reason, status_code, error)
    │   ├── MissingToken                    401, bare challenge (RFC 6750 §3.1)
    │   ├── InvalidRequest                  400 invalid_request
    │   ├── InvalidToken                    401 invalid_token
    │   ├── InsufficientScope               403 insufficient_scope
    │   ├── InsufficientUserAuthentication  401 insufficient_user_authentication (RFC 9470)
    │   └── ServerError                     503 + Retry-After: cannot decide right now
    │       ├── KeysUnavailable             no usable JWKS
    │       └── IntrospectionUnavailable    the introspection endpoint failed
    ├── ConfigurationError                  raised at construction: cannot be secure or work
    └── FetchError                          an IdP document could not be fetched (reason code)

Feature errors (PPID translation, security events, replay stores, outbound token clients)
are appended in their own section at the bottom.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ConfigurationError",
    "FetchError",
    "InsufficientScope",
    "InsufficientUserAuthentication",
    "IntrospectionUnavailable",
    "InvalidRequest",
    "InvalidToken",
    "KeysUnavailable",
    "MissingToken",
    "RSGuardError",
    "ServerError",
]


class RSGuardError(Exception):
    """Base of every error rs_guard raises on purpose.

    `error` is the RFC error code sent to the client (or None for a bare challenge),
    `description` is safe to show to the client, and `reason` is a stable code for logs and
    metrics that never contains token material.
    """

    error: str | None = None
    status_code: int = 401
    reason: str = "error"
    default_description: str | None = None

    def __init__(self, description: str | None = None, *, reason: str | None = None) -> None:
        self.description = description if description is not None else self.default_description
        if reason is not None:
            self.reason = reason
        super().__init__(self.description or self.reason)


class MissingToken(RSGuardError):
    """No credentials were presented (RFC 6750 §3.1: challenge without an error code)."""

    error = None
    status_code = 401
    reason = "missing_token"


class InvalidRequest(RSGuardError):
    """The request is malformed: several credentials, unsupported method (RFC 6750 §3.1)."""

    error = "invalid_request"
    status_code = 400
    reason = "invalid_request"
    default_description = "The request is malformed"


class InvalidToken(RSGuardError):
    """The access token is expired, revoked, malformed or otherwise invalid (RFC 6750 §3.1)."""

    error = "invalid_token"
    status_code = 401
    reason = "invalid_token"
    default_description = "The access token is invalid"


class InsufficientScope(RSGuardError):
    """The token lacks scopes the operation needs (RFC 6750 §3.1)."""

    error = "insufficient_scope"
    status_code = 403
    reason = "insufficient_scope"
    default_description = "The access token does not grant the required scope"

    def __init__(
        self,
        scopes: Sequence[str],
        description: str | None = None,
        *,
        reason: str | None = None,
    ) -> None:
        self.scopes = tuple(scopes)
        super().__init__(description, reason=reason)


class InsufficientUserAuthentication(RSGuardError):
    """The authentication event behind the token is too weak or too old (RFC 9470 §3)."""

    error = "insufficient_user_authentication"
    status_code = 401
    reason = "insufficient_user_authentication"
    default_description = "A different authentication level is required"

    def __init__(
        self,
        description: str | None = None,
        *,
        acr_values: Sequence[str] = (),
        max_age: int | None = None,
        claims: str | None = None,
        reason: str | None = None,
    ) -> None:
        self.acr_values = tuple(acr_values)
        self.max_age = max_age
        self.claims = claims
        if description is None and not self.acr_values and max_age is not None:
            description = "More recent authentication is required"
        super().__init__(description, reason=reason)


class ServerError(RSGuardError):
    """The resource server cannot decide right now (IdP unreachable); the client may retry."""

    error = None
    status_code = 503
    reason = "server_error"
    default_description = "The authorization server is temporarily unavailable"

    def __init__(
        self,
        description: str | None = None,
        *,
        retry_after: int | None = None,
        reason: str | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(description, reason=reason)


class KeysUnavailable(ServerError):
    """No usable verification keys: the JWKS cannot be fetched and no good copy is at hand."""

    reason = "keys_unavailable"


class IntrospectionUnavailable(ServerError):
    """The introspection endpoint cannot be reached or answered garbage."""

    reason = "introspection_unavailable"


class ConfigurationError(Exception):
    """rs_guard was configured in a way that cannot be secure or cannot work."""


class FetchError(Exception):
    """A document of the authorization server could not be fetched, or is not a JSON object.

    The message is a stable reason code (`timeout`, `unreachable`, `http_404`,
    `response_too_large`, `response_not_json`, `issuer_mismatch`, `missing_<endpoint>`).
    """


# -- feature errors ------------------------------------------------------------------------
