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

# Feature names still re-exported here until they move to their own namespaces (#11).
from .events import EventError, EventReceiver, EventVerifier, SecurityEvent
from .exchange import ClientCredentials, TokenExchanger
from .introspection import IntrospectionValidator
from .jwt import JWTValidator
from .middleware import ResourceGuard
from .observe import Counters, Observer
from .policy import Requirement, ScopeHierarchy
from .ppid import PPIDTranslator, PPIDUnavailable
from .replay import MemoryReplayStore, RedisReplayStore, ReplayStore, ReplayStoreUnavailable
from .resource_metadata import ProtectedResourceMetadata
from .server import AuthorizationServer

__all__ = [
    "AccessToken",
    "AuthorizationServer",
    "ClientCredentials",
    "ConfigurationError",
    "Counters",
    "EventError",
    "EventReceiver",
    "EventVerifier",
    "InsufficientScope",
    "InsufficientUserAuthentication",
    "IntrospectionUnavailable",
    "IntrospectionValidator",
    "InvalidRequest",
    "InvalidToken",
    "JWTValidator",
    "KeysUnavailable",
    "MemoryReplayStore",
    "MissingToken",
    "Observer",
    "PPIDTranslator",
    "PPIDUnavailable",
    "ProtectedResourceMetadata",
    "RSGuardError",
    "RedisReplayStore",
    "ReplayStore",
    "ReplayStoreUnavailable",
    "Requirement",
    "ResourceGuard",
    "ScopeHierarchy",
    "SecurityEvent",
    "ServerError",
    "TokenExchanger",
    "TokenUser",
    "TokenValidator",
    "__version__",
    "public",
    "require",
]
