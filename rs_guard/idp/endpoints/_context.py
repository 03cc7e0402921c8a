"""What each endpoint may use: narrow views of the IdP's services.

The IdP hands every endpoint one object holding its services (`Services`); an endpoint's
signature names the Protocol below that lists the services it needs, so mypy keeps each
endpoint to those, and none of them sees the IdP itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .._clients import ClientRegistry
    from .._dpop import DPoPAtIdP
    from .._events import EventService
    from .._fetch import Fetcher
    from .._keys import KeyStore
    from .._minting import TokenMinter
    from .._routes import Urls
    from .._sessions import Sessions
    from .._settings import Settings
    from .._ssf import SignalTransmitter
    from .._store import TokenStore
    from .._subjects import ConversionPolicy, SubjectMapper
    from .._users import UserDirectory


class Discovery(Protocol):
    """Discovery documents and the JWKS."""

    settings: Settings
    urls: Urls
    keys: KeyStore


class ClientAuthContext(Protocol):
    """Authenticating a client (secrets, private_key_jwt, client-credentials bearer tokens)."""

    settings: Settings
    urls: Urls
    clients: ClientRegistry
    tokens: TokenStore
    fetcher: Fetcher


class AuthorizeContext(Protocol):
    """The authorization endpoint and its login form."""

    settings: Settings
    clients: ClientRegistry
    users: UserDirectory
    sessions: Sessions
    tokens: TokenStore
    dpop: DPoPAtIdP


class LogoutContext(Protocol):
    """RP-Initiated Logout: ends browser sessions, may revoke their grants."""

    settings: Settings
    clients: ClientRegistry
    sessions: Sessions
    tokens: TokenStore
    keys: KeyStore


class TokenContext(ClientAuthContext, Protocol):
    """The token endpoint."""

    minter: TokenMinter
    dpop: DPoPAtIdP


class IntrospectionContext(ClientAuthContext, Protocol):
    """Introspection (RFC 7662) and revocation (RFC 7009)."""

    subjects: SubjectMapper


class RegistrationContext(Protocol):
    """Dynamic client registration and management (RFC 7591, RFC 7592)."""

    settings: Settings
    urls: Urls
    clients: ClientRegistry
    fetcher: Fetcher


class UserinfoContext(Protocol):
    """The userinfo endpoint."""

    settings: Settings
    urls: Urls
    tokens: TokenStore
    users: UserDirectory


class PPIDContext(ClientAuthContext, Protocol):
    """Subject conversion between clients' namespaces."""

    subjects: SubjectMapper
    ppid_policy: ConversionPolicy


class EventsContext(ClientAuthContext, Protocol):
    """Event signing and delivery for publishers."""

    subjects: SubjectMapper
    minter: TokenMinter
    events: EventService


class SSFContext(ClientAuthContext, Protocol):
    """The SSF transmitter endpoints: the receiver authenticates, the transmitter answers."""

    ssf: SignalTransmitter
