"""Errors of clients-as-code, all under `rs_guard.errors.RSGuardError`.

```
RSGuardError
└── ClientsError                  anything `rs-guard clients` refuses or fails at
    ├── ClientsFileError          the clients file: unreadable, bad TOML, or invalid metadata
    │                             (`problems` holds every one found, each naming file/client/field)
    ├── StateError                the state file: unreadable, of another issuer, or unsafe
    ├── SecretDeliveryError       an issued secret could not be handed to its sink
    ├── ApplyError                some clients of an apply failed (the others were done;
    │                             `result` tells which, and the state matches it)
    └── RegistrationError         the authorization server refused or could not be reached
        ├── DiscoveryError            no usable registration endpoint
        ├── InitialAccessTokenError   RFC 7591 §3: registration refused with 401/403
        ├── RegistrationRefused       RFC 7591 §3.2.2 / RFC 7592 error response (400 ...)
        └── AccessTokenRejected       RFC 7592: the registration access token was refused (401)
```

No message, `repr` or attribute of these errors ever carries a registration access token, an
initial access token or a client secret: they are safe to print and to log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import RSGuardError

if TYPE_CHECKING:
    from ._apply import ApplyResult


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
