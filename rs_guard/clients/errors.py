"""Errors of clients-as-code: defined in `rs_guard.errors` (one hierarchy, tree in its
docstring) and re-exported here and from `rs_guard.clients`."""

from __future__ import annotations

from ..errors import (
    AccessTokenRejected,
    ApplyError,
    ClientsError,
    ClientsFileError,
    DiscoveryError,
    InitialAccessTokenError,
    RegistrationError,
    RegistrationRefused,
    SecretDeliveryError,
    StateError,
)

__all__ = [
    "AccessTokenRejected",
    "ApplyError",
    "ClientsError",
    "ClientsFileError",
    "DiscoveryError",
    "InitialAccessTokenError",
    "RegistrationError",
    "RegistrationRefused",
    "SecretDeliveryError",
    "StateError",
]
