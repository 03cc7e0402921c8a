"""rs_guard: OAuth 2.0 resource-server middleware for ASGI, with a bundled test IdP."""

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
from .metadata import ProtectedResourceMetadata, metadata_routes, metadata_url
from .middleware import ResourceGuard, SubjectTranslator, guard_of
from .observe import Observer
from .policy import Requirement, ScopeHierarchy
from .tokens import (
    AccessToken,
    IntrospectionValidator,
    JWTValidator,
    TokenUser,
    TokenValidator,
)

__version__ = "0.1.0"

__all__ = [
    "AccessToken",
    "ConfigurationError",
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
