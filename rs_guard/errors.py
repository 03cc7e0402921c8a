"""Every error rs_guard raises to its users, in one hierarchy.

Request errors know their RFC 6750 / RFC 9470 error code, HTTP status and a stable log
`reason`; ResourceGuard turns them into the answer. The tree::

    Exception
    ├── RSGuardError                        a request is refused (reason, status_code, error)
    │   ├── MissingToken                    401, bare challenge (RFC 6750 §3.1)
    │   ├── InvalidRequest                  400 invalid_request
    │   ├── InvalidToken                    401 invalid_token
    │   │   └── InvalidDPoPProof            rs_guard.dpop: 401 invalid_dpop_proof (RFC 9449)
    │   │       └── UseDPoPNonce            rs_guard.dpop: 401 use_dpop_nonce, with the nonce
    │   ├── InsufficientScope               403 insufficient_scope
    │   ├── InsufficientUserAuthentication  401 insufficient_user_authentication (RFC 9470)
    │   ├── ServerError                     503 + Retry-After: cannot decide right now
    │   │   ├── KeysUnavailable             no usable JWKS
    │   │   ├── IntrospectionUnavailable    the introspection endpoint failed
    │   │   ├── PPIDUnavailable             rs_guard.ppid: the IdP cannot convert now
    │   │   ├── ConversionDenied            rs_guard.ppid: the IdP refuses this client pair
    │   │   ├── TokenServiceUnavailable     rs_guard.outbound: the token endpoint failed
    │   │   ├── TokenRequestRefused         rs_guard.outbound: the IdP refused our own request
    │   │   ├── EventInProgress             rs_guard.events: same event being processed now
    │   │   ├── ReplayStoreUnavailable      rs_guard.events: the replay store cannot answer
    │   │   └── TransmitterUnavailable      rs_guard.ssf: the SSF transmitter failed or refused
    │   └── EventError                      rs_guard.events: 400, an RFC 8935 error code
    ├── ConfigurationError                  raised at construction: cannot be secure or work
    ├── FetchError                          an IdP document could not be fetched (reason code)
    │   └── IdPStateError                   rs_guard.idp: the state directory cannot be used
    └── LookupError
        └── UnknownSubject                  rs_guard.ppid: subjects the IdP does not know

and, for `rs-guard clients` (rs_guard.clients re-exports them)::

    RSGuardError
    └── ClientsError                  anything `rs-guard clients` refuses or fails at
        ├── ClientsFileError          the clients file: unreadable, bad TOML, or invalid metadata
        │                             (`problems` holds every one found, each naming
        │                             file/client/field)
        ├── StateError                the state file: unreadable, of another issuer, or unsafe
        ├── SecretDeliveryError       an issued secret could not be handed to its sink
        ├── ApplyError                some clients of an apply failed (the others were done;
        │                             `result` tells which, and the state matches it)
        └── RegistrationError         the authorization server refused or could not be reached
            ├── DiscoveryError            no usable registration endpoint
            ├── InitialAccessTokenError   RFC 7591 §3: registration refused with 401/403
            ├── RegistrationRefused       RFC 7591 §3.2.2 / RFC 7592 error response (400 ...)
            └── AccessTokenRejected       RFC 7592: the registration access token was refused

No message, `repr` or attribute of the clients errors ever carries a registration access
token, an initial access token or a client secret: they are safe to print and to log.

Feature errors (PPID translation, security events, replay stores, outbound token clients,
clients as code, the IdP's state directory) are appended in their own section at the bottom.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .clients._apply import ApplyResult

__all__ = [
    "AccessTokenRejected",
    "ApplyError",
    "ClientsError",
    "ClientsFileError",
    "ConfigurationError",
    "ConversionDenied",
    "DiscoveryError",
    "EventError",
    "EventInProgress",
    "FetchError",
    "IdPStateError",
    "InitialAccessTokenError",
    "InsufficientScope",
    "InsufficientUserAuthentication",
    "IntrospectionUnavailable",
    "InvalidDPoPProof",
    "InvalidRequest",
    "InvalidToken",
    "KeysUnavailable",
    "MissingToken",
    "PPIDUnavailable",
    "RSGuardError",
    "RegistrationError",
    "RegistrationRefused",
    "ReplayStoreUnavailable",
    "SecretDeliveryError",
    "ServerError",
    "StateError",
    "TokenRequestRefused",
    "TokenServiceUnavailable",
    "TransmitterUnavailable",
    "UnknownSubject",
    "UseDPoPNonce",
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
        scopes: Sequence[str] = (),
        reason: str | None = None,
    ) -> None:
        self.acr_values = tuple(acr_values)
        # The scopes the operation needs, sent as `scope` beside the RFC 9470 parameters: a
        # client that re-authorizes asks for them in the same round (RFC 6750 §3 allows `scope`
        # with any error), and one that ignores RFC 9470 does not fall back to every scope.
        self.scopes = tuple(scopes)
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
# PPID translation, outbound tokens, events and replay. Defined here so that the whole
# hierarchy lives in one module; rs_guard.ppid, rs_guard.outbound and rs_guard.events re-export
# the ones their users catch.


class PPIDUnavailable(ServerError):
    """The IdP could not convert a subject right now (down, slow, garbage); the client may retry."""

    reason = "ppid_unavailable"


class ConversionDenied(ServerError):
    """The IdP does not let this resource convert subjects with that client.

    Inbound (a token from that client) this becomes a 401 `invalid_token`; outbound it is a
    configuration problem of this resource and, if the app lets it escape, a 503.
    """

    reason = "ppid_denied"


class UnknownSubject(LookupError):
    """Outbound conversion of PPIDs the IdP does not know (e.g. users deleted at the IdP)."""

    def __init__(self, subjects: Iterable[str]) -> None:
        self.subjects = tuple(subjects)
        super().__init__(f"{len(self.subjects)} subject(s) unknown to the IdP")


class TokenServiceUnavailable(ServerError):
    """The IdP's token endpoint is unreachable, too slow, or answered garbage."""

    reason = "token_service_unavailable"


class TokenRequestRefused(ServerError):
    """The IdP refused this service's own request (credentials, grant or target not allowed).

    That is a configuration problem of the service, not of the client's request, so the client
    gets a 503; `idp_error` holds the IdP's OAuth error code for the operator.
    """

    reason = "token_request_refused"

    def __init__(self, idp_error: str, *, reason: str | None = None) -> None:
        self.idp_error = idp_error
        super().__init__(reason=reason)


_EVENT_DESCRIPTIONS = {
    "invalid_request": "The request is not a valid security event token",
    "invalid_key": "The key that signed the event is not acceptable",
    "invalid_issuer": "The event was not issued by the expected issuer",
    "invalid_audience": "The event is not addressed to this receiver",
    "authentication_failed": "The event's signature could not be verified",
    "access_denied": "The publisher may not send events to this receiver",
}


class EventError(RSGuardError):
    """A refused event: `error` is an RFC 8935 §2.4 error code, answered with status 400.

    Codes: invalid_request, invalid_key, invalid_issuer, invalid_audience,
    authentication_failed, access_denied. A handler may raise it to refuse an event whose
    payload does not conform (the event is then not recorded as seen).
    """

    status_code = 400

    def __init__(
        self,
        error: str = "invalid_request",
        description: str | None = None,
        *,
        reason: str | None = None,
    ) -> None:
        self.error = error
        description = description or _EVENT_DESCRIPTIONS.get(error, "The event was refused")
        super().__init__(description, reason=reason or error)


class EventInProgress(ServerError):
    """Another delivery of the same event is being processed right now; retry later."""

    reason = "event_in_progress"
    default_description = "The event is being processed; retry later"


class ReplayStoreUnavailable(ServerError):
    """The replay store cannot answer (Redis down, memory store full): the sender should retry."""

    reason = "replay_store_unavailable"
    default_description = "The receiver cannot record events right now"


# -- the bundled IdP's state directory ----------------------------------------------------


class IdPStateError(ConfigurationError):
    """`IdP(state_dir=...)` / `--state-dir`: the directory is unsafe (group or others may
    read it), in use by another IdP, corrupt, or belongs to another issuer. Nothing in it is
    overwritten; the message names the file and the way out."""


# -- clients as code (rs_guard.clients re-exports these) ----------------------------------


class ClientsError(RSGuardError):
    """Base of every clients-as-code error; `str(error)` is the full, printable explanation."""

    reason = "clients_error"

    def __init_subclass__(cls, *, reason: str | None = None, **kwargs: object) -> None:
        # `class X(ClientsError, reason="..."):` sets the stable log/metric code of X.
        super().__init_subclass__(**kwargs)
        if reason is not None:
            cls.reason = reason

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ClientsFileError(ClientsError, reason="clients_file_invalid"):
    """The clients file cannot be used; `problems` lists each, as `FILE: client "x": field: why`."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        head = "" if count == 1 else f"{count} problems in the clients file:\n"
        super().__init__(head + "\n".join(self.problems))


class StateError(ClientsError, reason="clients_state_invalid"):
    """The state file is unreadable, malformed, of another server, or unsafe to use."""


class SecretDeliveryError(ClientsError, reason="clients_secret_undelivered"):
    """An issued client secret could not be delivered (the secret itself is never named)."""


class RegistrationError(ClientsError, reason="clients_server_error"):
    """The authorization server refused a request or could not be reached."""

    def __init__(self, message: str, *, client: str | None = None, status: int | None = None):
        super().__init__(message)
        self.client = client
        self.status = status


class DiscoveryError(RegistrationError, reason="clients_discovery_failed"):
    """Discovery failed, or the server has no registration endpoint."""


class InitialAccessTokenError(RegistrationError, reason="clients_initial_access_token"):
    """Registration needs an initial access token (RFC 7591 §3) that is missing or refused."""


class RegistrationRefused(RegistrationError, reason="clients_registration_refused"):
    """The server answered an RFC 7591 / RFC 7592 request with an error (e.g. 400)."""

    def __init__(
        self,
        message: str,
        *,
        client: str | None = None,
        status: int | None = None,
        error: str | None = None,
        error_description: str | None = None,
    ) -> None:
        super().__init__(message, client=client, status=status)
        self.error = error
        self.error_description = error_description


class AccessTokenRejected(RegistrationError, reason="clients_registration_access_token_rejected"):
    """RFC 7592 §2: the registration access token was refused (revoked, rotated elsewhere,
    or the client no longer exists: a server answers all three with 401)."""


class ApplyError(ClientsError, reason="clients_apply_failed"):
    """Some changes of an apply failed; every other change was made and saved in the state,
    so running apply again converges. `result` is the `ApplyResult` (done and failed)."""

    def __init__(self, message: str, result: ApplyResult) -> None:
        super().__init__(message)
        self.result = result


class TransmitterUnavailable(ServerError):
    """An SSF transmitter call (discovery, stream management, poll) failed or was refused.

    `status` is the transmitter's HTTP status when it answered (None: unreachable or garbage).
    """

    reason = "transmitter_unavailable"
    default_description = "The SSF transmitter cannot be reached"

    def __init__(
        self, description: str | None = None, *, status: int | None = None, reason: str
    ) -> None:
        self.status = status
        super().__init__(description, retry_after=5, reason=reason)


# -- DPoP (rs_guard.dpop re-exports these) -------------------------------------------------


class InvalidDPoPProof(InvalidToken):
    """The DPoP proof is missing or fails a check of RFC 9449 §4.3 (401 invalid_dpop_proof)."""

    error = "invalid_dpop_proof"
    reason = "dpop_invalid_proof"
    default_description = "The DPoP proof is invalid"


class UseDPoPNonce(InvalidDPoPProof):
    """The proof lacks the server's current nonce (RFC 9449 §9); `nonce` is the one to use."""

    error = "use_dpop_nonce"
    reason = "dpop_nonce_required"
    default_description = "Resource server requires nonce in DPoP proof"

    def __init__(self, nonce: str, description: str | None = None, *, reason: str | None = None):
        self.nonce = nonce
        super().__init__(description, reason=reason)
