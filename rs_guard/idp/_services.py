"""The IdP's services, built once and handed to every endpoint (each sees a narrow view)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from ._cimd import ClientDocuments
from ._clients import ClientRegistry
from ._events import EventService
from ._fetch import Fetcher
from ._keys import KeyStore
from ._minting import TokenMinter
from ._routes import Urls
from ._sessions import Sessions
from ._settings import Settings
from ._store import TokenStore
from ._subjects import ConversionPolicy, SubjectMapper
from ._users import UserDirectory


@dataclass
class Services:
    """One owner per piece of state: keys, tokens, clients, users, sessions, subjects."""

    settings: Settings
    urls: Urls
    keys: KeyStore
    tokens: TokenStore
    fetcher: Fetcher
    documents: ClientDocuments
    clients: ClientRegistry
    users: UserDirectory
    sessions: Sessions
    subjects: SubjectMapper
    minter: TokenMinter
    events: EventService
    ppid_policy: ConversionPolicy

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        signing_alg: str,
        signing_keys: dict[str, Any] | None,
        http_client: httpx.AsyncClient | None,
        pairwise_secret: bytes | None,
    ) -> Services:
        """Wire the services together (no I/O: the outbound client is made on first use)."""
        keys = KeyStore(signing_alg, signing_keys, clock=settings.time)
        tokens = TokenStore(settings.now, keys)
        fetcher = Fetcher(settings, http_client)
        documents = ClientDocuments(settings, fetcher)
        clients = ClientRegistry(tokens, documents)
        users = UserDirectory()
        subjects = SubjectMapper(pairwise_secret or secrets.token_bytes(32), clients, users)
        minter = TokenMinter(settings, keys, tokens, subjects, users, clients)
        return cls(
            settings=settings,
            urls=Urls(settings.issuer),
            keys=keys,
            tokens=tokens,
            fetcher=fetcher,
            documents=documents,
            clients=clients,
            users=users,
            sessions=Sessions(users, settings.now),
            subjects=subjects,
            minter=minter,
            events=EventService(clients, minter, fetcher),
            ppid_policy=ConversionPolicy(),
        )
