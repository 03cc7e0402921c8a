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
from .events import EventError, EventReceiver, EventVerifier, SecurityEvent
from .exchange import ClientCredentials, TokenExchanger
from .keys import JWKSCache, VerificationKey
from .mcp import ToolGuard
from .metadata import ProtectedResourceMetadata, metadata_routes, metadata_url
from .middleware import ResourceGuard, SubjectTranslator, guard_of
from .observe import Counters, Observer
from .policy import Requirement, ScopeHierarchy
from .ppid import PPIDTranslator, PPIDUnavailable
from .replay import MemoryReplayStore, RedisReplayStore, ReplayStore, ReplayStoreUnavailable
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
    "JWKSCache",
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
    "ServerMetadata",
    "SubjectTranslator",
    "TokenExchanger",
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
