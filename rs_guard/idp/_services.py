"""The IdP's services, built once and handed to every endpoint (each sees a narrow view)."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from ._cimd import ClientDocuments
from ._clients import ClientRegistry
from ._dpop import DPoPAtIdP
from ._events import EventService
from ._fetch import Fetcher
from ._keys import KeyStore
from ._minting import TokenMinter
from ._routes import Urls
from ._sessions import Sessions
from ._settings import Settings
from ._ssf import SignalTransmitter
from ._store import TokenStore
from ._subjects import ConversionPolicy, SubjectMapper
from ._users import UserDirectory


class Services:
    """One owner per piece of state: keys, tokens, clients, users, sessions, subjects.

    Built once per IdP with no I/O (the outbound client is made on first use).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        signing_alg: str,
        signing_keys: dict[str, Any] | None,
        http_client: httpx.AsyncClient | None,
        pairwise_secret: bytes | None,
    ) -> None:
        self.settings = settings
        self.urls = Urls(settings.issuer)
        self.keys = KeyStore(signing_alg, signing_keys, clock=settings.time)
        self.tokens = TokenStore(settings.now, self.keys)
        self.fetcher = Fetcher(settings, http_client)
        self.documents = ClientDocuments(settings, self.fetcher)
        self.clients = ClientRegistry(self.tokens, self.documents, self.keys)
        self.users = UserDirectory()
        self.sessions = Sessions(self.users, settings.now)
        secret = pairwise_secret or secrets.token_bytes(32)
        self.subjects = SubjectMapper(secret, self.clients, self.users)
        self.minter = TokenMinter(
            settings, self.keys, self.tokens, self.subjects, self.users, self.clients
        )
        self.events = EventService(self.clients, self.minter, self.fetcher)
        self.ppid_policy = ConversionPolicy()
        self.dpop = DPoPAtIdP(settings.now, lambda: settings.refresh_token_lifetime)
        self.ssf = SignalTransmitter(
            settings, self.urls, self.keys, self.clients, self.subjects, self.events
        )
        self.tokens.revocation_listeners.append(self.ssf.token_revoked)
