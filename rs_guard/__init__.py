"""rs_guard: OAuth 2.0 resource-server middleware for ASGI, with a bundled test IdP.

The core names are here; features keep their own namespaces (`rs_guard.mcp`,
`rs_guard.fastapi`, `rs_guard.idp`, ...).
"""

from ._version import __version__
from .access_token import AccessToken, TokenUser, TokenValidator
from .decorators import public, require
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
from .introspection import IntrospectionValidator
from .issuers import Issuer
from .jwt import JWTValidator
from .middleware import ResourceGuard
from .observe import Counters, Observer
from .policy import Requirement, ScopeHierarchy
from .profiles import TokenProfile
from .resource_metadata import ProtectedResourceMetadata
from .server import AuthorizationServer

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
    "Issuer",
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
    "TokenProfile",
    "TokenUser",
    "TokenValidator",
    "__version__",
    "public",
    "require",
]
