"""rs_guard: OAuth 2.0 resource-server middleware for ASGI, with a bundled test IdP.

Names are imported lazily (PEP 562), so that `import rs_guard` (done by pytest for every
project that has rs_guard installed, through its plugin entry point) costs next to nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .challenge import bearer_challenge
    from .decorators import exception_handlers, public, require
    from .discovery import ServerMetadata
    from .errors import (
        ConfigurationError,
        InsufficientScope,
        InsufficientUserAuthentication,
        IntrospectionUnavailable,
        InvalidRequest,
        InvalidToken,
        KeysUnavailable,
        MissingToken,
        RSGuardError,
        ServerError,
    )
    from .keys import JWKSCache, VerificationKey
    from .mcp import ToolGuard
    from .metadata import ProtectedResourceMetadata, metadata_routes, metadata_url
    from .middleware import ResourceGuard, SubjectTranslator, guard_of
    from .observe import Counters, Observer
    from .policy import Requirement, ScopeHierarchy
    from .server import AuthorizationServer
    from .tokens import (
        AccessToken,
        IntrospectionValidator,
        JWTValidator,
        TokenUser,
        TokenValidator,
    )

_EXPORTS: dict[str, str] = {
    "AccessToken": "tokens",
    "AuthorizationServer": "server",
    "ConfigurationError": "errors",
    "Counters": "observe",
    "InsufficientScope": "errors",
    "InsufficientUserAuthentication": "errors",
    "IntrospectionUnavailable": "errors",
    "IntrospectionValidator": "tokens",
    "InvalidRequest": "errors",
    "InvalidToken": "errors",
    "JWKSCache": "keys",
    "JWTValidator": "tokens",
    "KeysUnavailable": "errors",
    "MissingToken": "errors",
    "Observer": "observe",
    "ProtectedResourceMetadata": "metadata",
    "RSGuardError": "errors",
    "Requirement": "policy",
    "ResourceGuard": "middleware",
    "ScopeHierarchy": "policy",
    "ServerError": "errors",
    "ServerMetadata": "discovery",
    "SubjectTranslator": "middleware",
    "TokenUser": "tokens",
    "TokenValidator": "tokens",
    "ToolGuard": "mcp",
    "VerificationKey": "keys",
    "bearer_challenge": "challenge",
    "exception_handlers": "decorators",
    "guard_of": "middleware",
    "metadata_routes": "metadata",
    "metadata_url": "metadata",
    "public": "decorators",
    "require": "decorators",
}

__version__ = "0.1.0"

__all__ = [
    "AccessToken",
    "AuthorizationServer",
    "ConfigurationError",
    "Counters",
    "InsufficientScope",
    "InsufficientUserAuthentication",
    "IntrospectionUnavailable",
    "IntrospectionValidator",
    "InvalidRequest",
    "InvalidToken",
    "JWKSCache",
    "JWTValidator",
    "KeysUnavailable",
    "MissingToken",
    "Observer",
    "ProtectedResourceMetadata",
    "RSGuardError",
    "Requirement",
    "ResourceGuard",
    "ScopeHierarchy",
    "ServerError",
    "ServerMetadata",
    "SubjectTranslator",
    "TokenUser",
    "TokenValidator",
    "ToolGuard",
    "VerificationKey",
    "__version__",
    "bearer_challenge",
    "exception_handlers",
    "guard_of",
    "metadata_routes",
    "metadata_url",
    "public",
    "require",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rs_guard' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
