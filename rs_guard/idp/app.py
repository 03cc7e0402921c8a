"""The IdP facade: builds the services and the Starlette app, and offers the Python API tests
use. State lives in the services (`_store`, `_clients`, `_users`, `_sessions`, `_subjects`,
`_keys`); the endpoints (`endpoints/`) are mounted from the one route table (`_routes`)."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._accounts import AccountsAPI
from ._client_metadata import python_client
from ._clients import Client
from ._clients_file import ClientsFileLoader
from ._dpop import DPoPAtIdP
from ._events import EventService
from ._faults import Faults, FaultyTransport
from ._initial_tokens import InitialAccessTokens, start_state
from ._keys import KeyStore
from ._minting import TokenMinter
from ._persistence import SaveOnResponse, StateDir
from ._routes import FAULT_SWITCHES, build_app, handler
from ._services import Services
from ._settings import Settings, check_issuer
from ._ssf import SignalTransmitter
from ._store import TokenStore
from ._subjects import ConversionPolicy, SubjectMapper

T = TypeVar("T")


class _Setting(Generic[T]):
    """An IdP attribute that reads and writes the shared `Settings` (so every service sees a
    test's `idp.clock = ...` at once)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, idp: IdP, owner: type | None = None) -> T:
        value: T = getattr(idp.settings, self.name)
        return value

    def __set__(self, idp: IdP, value: T) -> None:
        setattr(idp.settings, self.name, value)


class IdP(AccountsAPI):
    """A complete OpenID Provider for tests and local development (see docs/contracts.md)."""

    clock = _Setting[Callable[[], float]]()
    dev = _Setting[bool]()
    initial_access_token = _Setting[str | None]()
    default_audience = _Setting[str]()
    resource_allowlist = _Setting[list[str] | None]()
    code_lifetime = _Setting[int]()
    refresh_token_lifetime = _Setting[int]()
    access_token_lifetime = _Setting[int]()
    rotate_secrets_on_update = _Setting[bool]()
    rotate_registration_access_token = _Setting[bool]()
    fetch_deadline = _Setting[float]()
    logout_revokes_grants = _Setting[bool]()
    dcr_scopes = _Setting[list[str] | None]()
    sensitive_scopes = _Setting[frozenset[str]]()
    dcr_grant_types = _Setting[list[str]]()
    dcr_exchange_audiences = _Setting[list[str]]()

    def __init__(
        self,
        issuer: str,
        *,
        signing_alg: str = "ES256",
        signing_keys: dict[str, Any] | None = None,
        resource_allowlist: Sequence[str] | None = None,
        dev: bool = False,
        http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        initial_access_token: str | Sequence[str] | Callable[[str], bool] | None = None,
        pairwise_secret: bytes | None = None,
        default_audience: str | None = None,
        code_lifetime: int = 60,
        refresh_token_lifetime: int = 86_400,
        access_token_lifetime: int = 300,
        state_dir: str | os.PathLike[str] | None = None,
        clients_file: str | os.PathLike[str] | None = None,
        client_secrets_dir: str | os.PathLike[str] | None = None,
        rotate_registration_access_token: bool = False,
    ) -> None:
        issuer = check_issuer(issuer)
        self.settings = Settings(
            issuer,
            dev=dev,
            clock=clock,
            initial_access_token=initial_access_token
            if isinstance(initial_access_token, str)
            else None,
            default_audience=default_audience or issuer,
            resource_allowlist=list(resource_allowlist) if resource_allowlist else None,
            code_lifetime=code_lifetime,
            refresh_token_lifetime=refresh_token_lifetime,
            access_token_lifetime=access_token_lifetime,
        )
        self.services = s = Services(
            self.settings,
            signing_alg=signing_alg,
            signing_keys=signing_keys,
            http_client=http_client,
            pairwise_secret=pairwise_secret,
        )
        self.issuer = issuer
        self.path_prefix = self.settings.path_prefix
        self.keys: KeyStore = s.keys
        self.tokens: TokenStore = s.tokens
        self.minter: TokenMinter = s.minter
        self.subjects: SubjectMapper = s.subjects
        # POST /events: signs, delivers and decides who may publish to whom.
        self.events: EventService = s.events
        # POST /ppid/convert: decides which clients may convert subjects.
        self.ppid_policy: ConversionPolicy = s.ppid_policy
        # SSF transmitter: streams, verification, CAEP/RISC events (rs_guard.ssf receives).
        self.ssf: SignalTransmitter = s.ssf
        self.faults = Faults(FAULT_SWITCHES)
        self.clients_file = ClientsFileLoader(self.services.clients, issuer)
        self._state: StateDir | None = start_state(
            self, initial_access_token, state_dir, clients_file, client_secrets_dir
        )
        self.settings.rotate_registration_access_token = rotate_registration_access_token

    # ----- state directory (see _persistence.py) ---------------------------------------------

    @property
    def initial_access_tokens(self) -> InitialAccessTokens:
        """The RFC 7591 §3 initial access tokens /register accepts (add, issue, revoke)."""
        tokens = self.settings.initial_access_tokens
        assert tokens is not None
        return tokens

    def save_state(self) -> None:
        """Write what changed to the state directory now (no-op without one). HTTP requests
        save by themselves before answering; call this after changes made from Python."""
        if self._state is not None:
            self._state.save()

    def close_state(self) -> None:
        """Save and release the state directory (another IdP may then use it)."""
        if self._state is not None:
            self._state.save()
            self._state.close()
            self._state = None

    @functools.cached_property
    def app(self) -> Starlette:
        """The Starlette app serving every endpoint of the route table.

        Built on first use: most tests only mint tokens from Python, and the routes are the
        largest part of an IdP's start-up.
        """
        app = build_app(self.path_prefix, self.services, self.faults)
        if self._state is not None:
            app.add_middleware(SaveOnResponse, save=self.save_state)
        return app

    # ----- wiring ---------------------------------------------------------------------------

    def add_route(
        self,
        path: str,
        endpoint: Callable[[IdP, Request], Awaitable[Response]],
        *,
        methods: Sequence[str] = ("POST",),
        fault: str | None = None,
    ) -> None:
        """Mount an extra endpoint under the issuer path, with error and fault wrapping."""
        handle = handler(endpoint, fault, context=self)
        route = Route(f"{self.path_prefix}{path}", handle, methods=list(methods))
        self.app.router.routes.append(route)

    def transport(self) -> httpx.ASGITransport:
        """An httpx transport that calls the IdP in-process (no network); it refuses to
        connect while `faults.whole == "unreachable"`."""
        return FaultyTransport(self.app, self.faults)

    def http_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An httpx client bound to the IdP in-process, with base_url = issuer."""
        return httpx.AsyncClient(transport=self.transport(), base_url=self.issuer, **kwargs)

    def outbound(self) -> httpx.AsyncClient:
        """The client used for the IdP's own fetches (created lazily: no I/O at start-up)."""
        return self.services.fetcher.client()

    async def aclose(self) -> None:
        """Close the outbound client the IdP created for itself, if any, and save and
        release the state directory."""
        self.close_state()
        await self.services.fetcher.aclose()

    def now(self) -> int:
        """Current time from the injected clock, in whole seconds."""
        return self.settings.now()

    def metadata(self) -> dict[str, Any]:
        """The discovery document (what both well-known locations serve)."""
        from .endpoints.metadata import metadata  # endpoints load with the app (see _routes)

        return metadata(self.services)

    def endpoint(self, name: str) -> str:
        """Absolute URL of one of the IdP's endpoints, e.g. endpoint("token")."""
        return self.services.urls.url(name)

    @property
    def dpop(self) -> DPoPAtIdP:
        """DPoP at this IdP (RFC 9449): `idp.dpop.nonces = DPoPNonces(secret)` makes the token
        endpoint demand server nonces (§8); the verifier and key bindings live there too."""
        return self.services.dpop

    # ----- keys -----------------------------------------------------------------------------

    def rotate(self, alg: str | None = None, *, activate: bool = True) -> str:
        """Make a new signing key (for `alg`, default the IdP's); returns its kid.

        With `activate=False` the key is only published; `activate(kid)` starts using it.
        """
        return self.keys.rotate(alg, activate=activate)

    def activate(self, kid: str) -> None:
        """Start signing with a key published earlier by `rotate(activate=False)`."""
        self.keys.activate(kid)

    def retire(self, kid: str) -> None:
        """Remove a key from the JWKS; tokens it signed no longer verify or introspect."""
        self.keys.retire(kid)

    def jwks(self) -> dict[str, Any]:
        """The public JWK Set served at /jwks."""
        return self.keys.jwks()

    def private_jwks(self) -> dict[str, Any]:
        """The private JWK Set (what `--signing-keys` reads and writes)."""
        return self.keys.private_jwks()

    # ----- clients --------------------------------------------------------------------------

    @property
    def clients(self) -> Mapping[str, Client]:
        """Every registered client by id (read-only; register or delete to change it)."""
        return self.services.clients.view()

    def register_client(
        self, client_id: str | None = None, client_secret: str | None = None, **options: Any
    ) -> Client:
        """Register a client from Python (no fetches: sector_identifier_uri is trusted as given).

        Keywords: redirect_uris, grant_types, response_types, scope (str or sequence),
        token_endpoint_auth_method, subject_type ("public"), sector_identifier_uri,
        application_type ("web"), id_token_signed_response_alg, event_delivery_uri, jwks,
        jwks_uri, and any other client metadata member; and two only the operator sets (never
        the client's own metadata, see docs/reference/idp.md): `served_resources` (the
        resources this client serves: introspection answers it about their tokens, and it may
        exchange them), `introspects_any` (introspection answers it about every access
        token) and `exchange_audiences` (what it may exchange tokens for; None: any). Defaults: a
        confidential client
        (generated secret) allowed every grant type the IdP supports;
        `token_endpoint_auth_method="none"` makes a public client.
        """
        client = python_client(client_id, client_secret, options, issued_at=self.now())
        self.services.clients.add(client)
        return client

    def get_client(self, client_id: str) -> Client | None:
        """A registered (or cached metadata-document) client."""
        return self.services.clients.get(client_id)

    async def resolve_client(self, client_id: str) -> Client | None:
        """A registered client, or one described by a Client ID Metadata Document URL."""
        return await self.services.clients.resolve(client_id)

    def delete_client(self, client_id: str) -> None:
        """Forget a client; every token issued to it stops being active."""
        self.services.clients.delete(client_id)

    # ----- subjects and tokens --------------------------------------------------------------

    def subject_for(self, user_id: str, client_id: str) -> str:
        """The `sub` that `client_id` receives for `user_id` (pairwise or public)."""
        return self.subjects.subject_for(user_id, client_id)

    def user_for_subject(self, sub: str, client_id: str) -> str | None:
        """The user id behind a `sub` as seen by `client_id`, or None when unknown."""
        return self.subjects.user_for_subject(sub, client_id)

    def issue_access_token(self, user_id: str | None, *, client_id: str, **options: Any) -> str:
        """Mint an RFC 9068 access token (typ at+jwt), recorded for introspection/revocation.

        `user_id=None` means a client acting for itself (sub = client_id). Keywords (see
        `TokenMinter.access_token`): audience, scope, acr, auth_time, amr, lifetime, claims,
        headers, alg, grant_id.
        """
        return self.minter.access_token(user_id, client_id=client_id, **options)

    def issue_id_token(self, user_id: str, *, client_id: str, **options: Any) -> str:
        """Mint an OIDC ID token (typ JWT, aud = azp = client_id), signed with the client's alg.

        Keywords (see `TokenMinter.id_token`): nonce, acr, auth_time, amr, lifetime, claims,
        headers, alg, access_token.
        """
        return self.minter.id_token(user_id, client_id=client_id, **options)

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662 introspection from Python: the operator's view, every token (/introspect
        answers a client only about tokens it is entitled to, RFC 7662 §4)."""
        from .endpoints.introspection import introspection  # loads with the app (_routes)

        return introspection(self.services, token)

    def revoke(self, token: str) -> None:
        """Revoke a token from Python (a refresh token takes its whole grant with it)."""
        self.tokens.revoke(token)
