"""The IdP object: state, Python API for tests, and the Starlette app serving the endpoints."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import (
    _authorize,
    _cimd,
    _events,
    _introspection,
    _metadata,
    _ppid,
    _registration,
    _token_endpoint,
    _userinfo,
)
from ._claims import ClaimsRequest
from ._clients import (
    GRANT_CLIENT_CREDENTIALS,
    GRANT_CODE,
    GRANT_REFRESH,
    GRANT_TOKEN_EXCHANGE,
    Client,
    build_client,
    validate_metadata,
)
from ._cors import BrowserCORS, cors_paths
from ._faults import Faults
from ._keys import KeyStore
from ._records import AccessTokenRecord, AuthorizationCode, Grant, RefreshTokenRecord
from ._resources import validate_resources
from ._users import ACR_AMR, LoginScript, Session, User
from ._util import (
    OAuthError,
    b64url,
    garbage_response,
    random_token,
    split_scope,
    token_hash,
)

log = logging.getLogger("rs_guard.idp")

Endpoint = Callable[["IdP", Request], Awaitable[Response]]
_PRUNE_AT = 10_000


class IdP:
    """A complete OpenID Provider for tests and local development (see docs/contracts.md)."""

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
        initial_access_token: str | None = None,
        pairwise_secret: bytes | None = None,
        default_audience: str | None = None,
        code_lifetime: int = 60,
        refresh_token_lifetime: int = 86_400,
        access_token_lifetime: int = 300,
    ) -> None:
        parts = urlsplit(issuer)
        if (
            parts.scheme not in ("https", "http")
            or not parts.netloc
            or parts.query
            or "#" in issuer
        ):
            raise ValueError("issuer must be an http(s) URL without query or fragment")
        self.issuer = issuer.rstrip("/")
        self.path_prefix = urlsplit(self.issuer).path
        self.keys = KeyStore(signing_alg, signing_keys)
        self.resource_allowlist = list(resource_allowlist) if resource_allowlist else None
        self.dev = dev
        self.clock = clock
        self.initial_access_token = initial_access_token
        self.default_audience = default_audience or self.issuer
        self.code_lifetime = code_lifetime
        self.refresh_token_lifetime = refresh_token_lifetime
        self.access_token_lifetime = access_token_lifetime
        self.faults = Faults()
        self.rotate_secrets_on_update = False
        self._http_client = http_client
        self._own_http_client: httpx.AsyncClient | None = None
        self._pairwise_secret = pairwise_secret or secrets.token_bytes(32)

        self.clients: dict[str, Client] = {}
        self.users: dict[str, User] = {}
        self.session: Session | None = None
        self.login_script: LoginScript | None = None
        self.consents: set[tuple[str, str]] = set()
        self._deleted_clients: set[str] = set()
        self._codes: dict[str, AuthorizationCode] = {}
        self._access: dict[str, AccessTokenRecord] = {}
        self._refresh: dict[str, RefreshTokenRecord] = {}
        self._grants: dict[str, Grant] = {}
        self._pairwise_reverse: dict[tuple[str, str], str] = {}
        self._pending: dict[str, tuple[float, dict[str, list[str]]]] = {}
        self._assertion_jtis: dict[str, int] = {}
        self._cimd_cache: dict[str, tuple[float, Client]] = {}
        self._prune_at = _PRUNE_AT
        # Browser clients (Swagger UI, SPAs) call /token, /jwks and discovery cross-origin.
        cors = Middleware(BrowserCORS, paths=cors_paths(self.path_prefix))
        self.app = Starlette(routes=self._routes(), middleware=[cors])
        # POST /ppid/convert (issue #5); `ppid_policy` decides which clients may convert.
        self.ppid_policy = _ppid.install(self)
        # POST /events (issue #6); `events` signs, delivers and decides who may publish to whom.
        self.events = _events.install(self)

    # ----- wiring ---------------------------------------------------------------------------

    def _handler(self, endpoint: Endpoint, fault: str | None = None) -> Callable[..., Any]:
        async def handle(request: Request) -> Response:
            if fault is not None:
                mode = self.faults.mode(fault)
                if mode == "down":
                    return JSONResponse(
                        {"error": "temporarily_unavailable"},
                        status_code=503,
                        headers={"Retry-After": "1", "Cache-Control": "no-store"},
                    )
                if mode == "garbage":
                    return garbage_response()
                if mode == "slow":
                    await anyio.sleep(self.faults.delay)
            try:
                return await endpoint(self, request)
            except OAuthError as exc:
                return exc.response()

        return handle

    def _routes(self) -> list[Route]:
        p = self.path_prefix
        oidc = _metadata.openid_configuration
        oauth = _metadata.oauth_metadata
        routes = [
            Route(f"{p}/.well-known/openid-configuration", self._handler(oidc)),
            Route(f"{p}/.well-known/oauth-authorization-server", self._handler(oauth)),
            Route(f"{p}/jwks", self._handler(_metadata.jwks_endpoint, "jwks")),
            Route(f"{p}/authorize", self._handler(_authorize.authorize), methods=["GET", "POST"]),
            Route(f"{p}/token", self._handler(_token_endpoint.token, "token"), methods=["POST"]),
            Route(f"{p}/userinfo", self._handler(_userinfo.userinfo), methods=["GET", "POST"]),
            Route(
                f"{p}/introspect",
                self._handler(_introspection.introspect, "introspection"),
                methods=["POST"],
            ),
            Route(f"{p}/revoke", self._handler(_introspection.revoke), methods=["POST"]),
            Route(f"{p}/register", self._handler(_registration.register), methods=["POST"]),
            Route(
                f"{p}/register/{{client_id:path}}",
                self._handler(_registration.manage),
                methods=["GET", "PUT", "DELETE"],
            ),
        ]
        if p:
            # RFC 8414 §3.1 path insertion, and the same form for OIDC (used by MCP clients).
            routes.append(
                Route(f"/.well-known/oauth-authorization-server{p}", self._handler(oauth))
            )
            routes.append(Route(f"/.well-known/openid-configuration{p}", self._handler(oidc)))
        return routes

    def add_route(
        self,
        path: str,
        endpoint: Endpoint,
        *,
        methods: Sequence[str] = ("POST",),
        fault: str | None = None,
    ) -> None:
        """Mount an extra endpoint under the issuer path, with error and fault wrapping."""
        route = Route(
            f"{self.path_prefix}{path}", self._handler(endpoint, fault), methods=list(methods)
        )
        self.app.router.routes.append(route)

    def transport(self) -> httpx.ASGITransport:
        """An httpx transport that calls the IdP in-process (no network)."""
        return httpx.ASGITransport(app=self.app)

    def http_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An httpx client bound to the IdP in-process, with base_url = issuer."""
        return httpx.AsyncClient(transport=self.transport(), base_url=self.issuer, **kwargs)

    def outbound(self) -> httpx.AsyncClient:
        """The client used for the IdP's own fetches (created lazily: no I/O at start-up)."""
        if self._http_client is not None:
            return self._http_client
        if self._own_http_client is None:
            self._own_http_client = httpx.AsyncClient(timeout=3.0, follow_redirects=False)
        return self._own_http_client

    async def aclose(self) -> None:
        """Close the outbound client the IdP created for itself, if any."""
        if self._own_http_client is not None:
            await self._own_http_client.aclose()
            self._own_http_client = None

    def now(self) -> int:
        """Current time from the injected clock, in whole seconds."""
        return int(self.clock())

    def endpoint(self, name: str) -> str:
        """Absolute URL of one of the IdP's endpoints, e.g. endpoint("token")."""
        return f"{self.issuer}/{name}"

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

    # ----- users and login scripting --------------------------------------------------------

    def add_user(self, user_id: str, *, phone_verification: bool = False, **claims: Any) -> User:
        """Create or update a user with OIDC profile claims (email, phone_number, ...)."""
        if not user_id:
            raise ValueError("user_id must not be empty")
        user = self.users.get(user_id)
        if user is None:
            user = self.users[user_id] = User(user_id)
        user.claims.update(claims)
        user.phone_verification = phone_verification or user.phone_verification
        return user

    def user(self, user_id: str) -> User:
        """The user, created empty when unknown (a test IdP accepts any user name)."""
        return self.users.get(user_id) or self.add_user(user_id)

    def login_as(
        self,
        user_id: str,
        acr: str = "pwd",
        amr: Sequence[str] | None = None,
        *,
        consent: bool = True,
        auth_time: int | None = None,
    ) -> Session:
        """Sign `user_id` in now with method `acr`; later re-authentications use the same method.

        With `consent=False` the user refuses every authorization request.
        """
        if acr not in ACR_AMR:
            raise ValueError(f"acr must be one of {sorted(ACR_AMR)}")
        self.user(user_id)
        methods = list(amr) if amr is not None else list(ACR_AMR[acr])
        self.login_script = LoginScript(user_id, acr, methods, consent)
        self.session = Session(
            user_id, acr, methods, auth_time if auth_time is not None else self.now()
        )
        return self.session

    def logout(self) -> None:
        """End the session and the login script: the next authorization shows the login form."""
        self.session = None
        self.login_script = None

    def script_phone_verification(self, user_id: str, succeeds: bool = True) -> None:
        """Decide whether `user_id` passes an in-flow phone verification when one is demanded.

        A request with `"phone_number_verified": {"value": true}` for a user whose phone is not
        verified triggers it: success marks the phone verified, failure ends in access_denied.
        """
        self.user(user_id).phone_verification = succeeds

    # ----- clients --------------------------------------------------------------------------

    def register_client(
        self,
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        redirect_uris: Sequence[str] = (),
        grant_types: Sequence[str] | None = None,
        response_types: Sequence[str] | None = None,
        scope: str | Sequence[str] | None = None,
        token_endpoint_auth_method: str | None = None,
        subject_type: str = "public",
        sector_identifier_uri: str | None = None,
        application_type: str = "web",
        id_token_signed_response_alg: str | None = None,
        event_delivery_uri: str | None = None,
        jwks: dict[str, Any] | None = None,
        jwks_uri: str | None = None,
        **metadata: Any,
    ) -> Client:
        """Register a client from Python (no fetches: sector_identifier_uri is trusted as given).

        Defaults: a confidential client (generated secret) allowed every grant type the IdP
        supports; `token_endpoint_auth_method="none"` makes a public client.
        """
        if token_endpoint_auth_method is None:
            if jwks is not None or jwks_uri is not None:
                token_endpoint_auth_method = "private_key_jwt"
            else:
                token_endpoint_auth_method = "client_secret_basic"
        public = token_endpoint_auth_method == "none"
        if grant_types is None:
            grant_types = [GRANT_REFRESH, GRANT_TOKEN_EXCHANGE]
            if redirect_uris:
                grant_types.insert(0, GRANT_CODE)
            if not public:
                grant_types.append(GRANT_CLIENT_CREDENTIALS)
        meta: dict[str, Any] = dict(metadata)
        meta.update(
            redirect_uris=list(redirect_uris),
            grant_types=list(grant_types),
            token_endpoint_auth_method=token_endpoint_auth_method,
            subject_type=subject_type,
            application_type=application_type,
        )
        optional = {
            "response_types": list(response_types) if response_types is not None else None,
            "scope": " ".join(split_scope(scope)) if scope is not None else None,
            "sector_identifier_uri": sector_identifier_uri,
            "id_token_signed_response_alg": id_token_signed_response_alg,
            "event_delivery_uri": event_delivery_uri,
            "jwks": jwks,
            "jwks_uri": jwks_uri,
        }
        meta.update({k: v for k, v in optional.items() if v is not None})
        meta = validate_metadata(meta, dev=True, strict_redirects=False)
        client_id = client_id or random_token(16)
        if not public and token_endpoint_auth_method != "private_key_jwt":
            client_secret = client_secret or random_token(32)
        elif public:
            client_secret = None
        client = build_client(client_id, client_secret, meta, issued_at=self.now())
        self._store_client(client)
        return client

    def _store_client(self, client: Client) -> None:
        self.clients[client.client_id] = client
        self._deleted_clients.discard(client.client_id)

    def get_client(self, client_id: str) -> Client | None:
        """A registered (or cached metadata-document) client."""
        client = self.clients.get(client_id)
        if client is None:
            cached = self._cimd_cache.get(client_id)
            client = cached[1] if cached else None
        return client

    async def resolve_client(self, client_id: str) -> Client | None:
        """A registered client, or one described by a Client ID Metadata Document URL."""
        client = self.clients.get(client_id)
        if client is not None:
            return client
        if _cimd.looks_like_document_url(client_id):
            return await _cimd.resolve(self, client_id)
        return None

    def delete_client(self, client_id: str) -> None:
        """Forget a client; every token issued to it stops being active."""
        self.clients.pop(client_id, None)
        self._cimd_cache.pop(client_id, None)
        self._deleted_clients.add(client_id)
        for grant in self._grants.values():
            if grant.client_id == client_id:
                grant.revoked = True
        for rec in self._access.values():
            if rec.client_id == client_id:
                rec.revoked = True
        for refresh in self._refresh.values():
            if refresh.grant.client_id == client_id:
                refresh.revoked = True

    # ----- subjects (OIDC Core §8) ----------------------------------------------------------

    def _pairwise(self, sector: str, user_id: str) -> str:
        msg = b""
        for part in (sector, user_id):
            raw = part.encode("utf-8")
            msg += len(raw).to_bytes(4, "big") + raw
        sub = b64url(hmac.new(self._pairwise_secret, msg, hashlib.sha256).digest())
        self._pairwise_reverse[(sector, sub)] = user_id
        return sub

    def subject_for(self, user_id: str, client_id: str) -> str:
        """The `sub` that `client_id` receives for `user_id` (pairwise or public)."""
        client = self.get_client(client_id)
        if client is None or client.subject_type != "pairwise":
            return user_id
        return self._pairwise(client.sector, user_id)

    def user_for_subject(self, sub: str, client_id: str) -> str | None:
        """The user id behind a `sub` as seen by `client_id`, or None when unknown."""
        client = self.get_client(client_id)
        if client is None or client.subject_type != "pairwise":
            return sub if sub in self.users else None
        user_id = self._pairwise_reverse.get((client.sector, sub))
        if user_id is None:
            # Subjects computed before a restart or never handed out: derive them again.
            for uid in self.users:
                if self._pairwise(client.sector, uid) == sub:
                    return uid
        return user_id

    # ----- tokens ---------------------------------------------------------------------------

    def issue_access_token(
        self,
        user_id: str | None,
        *,
        client_id: str,
        audience: str | Sequence[str] | None = None,
        scope: str | Sequence[str] = "",
        acr: str | None = None,
        auth_time: int | None = None,
        amr: Sequence[str] | None = None,
        lifetime: int | None = None,
        claims: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        alg: str | None = None,
        grant_id: str | None = None,
    ) -> str:
        """Mint an RFC 9068 access token (typ at+jwt), recorded for introspection/revocation.

        `user_id=None` means a client acting for itself (sub = client_id).
        """
        if user_id is not None and user_id not in self.users:
            # A user a test mints tokens for exists, so every endpoint (PPID conversion,
            # userinfo, events) knows the subject the token carries.
            self.add_user(user_id)
        now = self.now()
        lifetime = self.access_token_lifetime if lifetime is None else lifetime
        if audience is None:
            aud: str | list[str] = self.default_audience
        elif isinstance(audience, str):
            aud = audience
        else:
            auds = list(audience)
            aud = auds[0] if len(auds) == 1 else auds
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": self.subject_for(user_id, client_id) if user_id is not None else client_id,
            "aud": aud,
            "exp": now + lifetime,
            "iat": now,
            "nbf": now,
            "jti": random_token(16),
            "client_id": client_id,
            "scope": " ".join(split_scope(scope)),
        }
        _add_authentication(payload, acr, auth_time, amr)
        if claims:
            payload.update(claims)
        token = self.keys.sign(payload, typ="at+jwt", alg=alg, headers=headers)
        exp = payload.get("exp")
        self._prune()
        self._access[token_hash(token)] = AccessTokenRecord(
            jti=str(payload.get("jti")),
            claims=payload,
            client_id=client_id,
            user_id=user_id,
            expires_at=exp if isinstance(exp, int) else now + lifetime,
            grant_id=grant_id,
        )
        return token

    def issue_id_token(
        self,
        user_id: str,
        *,
        client_id: str,
        nonce: str | None = None,
        acr: str | None = None,
        auth_time: int | None = None,
        amr: Sequence[str] | None = None,
        lifetime: int | None = None,
        claims: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        alg: str | None = None,
        access_token: str | None = None,
    ) -> str:
        """Mint an OIDC ID token (typ JWT, aud = azp = client_id), signed with the client's alg."""
        if user_id not in self.users:
            self.add_user(user_id)
        now = self.now()
        client = self.get_client(client_id)
        if alg is None and client is not None:
            alg = client.id_token_signed_response_alg
        alg = alg or self.keys.default_alg
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": self.subject_for(user_id, client_id),
            "aud": client_id,
            "azp": client_id,
            "exp": now + (self.access_token_lifetime if lifetime is None else lifetime),
            "iat": now,
        }
        if nonce is not None:
            payload["nonce"] = nonce
        _add_authentication(payload, acr, auth_time, amr)
        if access_token is not None:
            payload["at_hash"] = _half_hash(access_token, alg)
        if claims:
            payload.update(claims)
        return self.keys.sign(payload, typ="JWT", alg=alg, headers=headers)

    def _prune(self) -> None:
        # Long-running CLI instances would otherwise grow without bound.
        # Amortised: the next prune waits until the live set has doubled again, so minting
        # many long-lived tokens stays O(1) per token.
        if len(self._access) + len(self._codes) + len(self._refresh) < self._prune_at:
            return
        now = self.now()
        self._access = {k: v for k, v in self._access.items() if v.expires_at > now}
        self._codes = {k: v for k, v in self._codes.items() if v.expires_at > now}
        self._refresh = {k: v for k, v in self._refresh.items() if v.expires_at > now}
        self._assertion_jtis = {k: v for k, v in self._assertion_jtis.items() if v > now}
        live = len(self._access) + len(self._codes) + len(self._refresh)
        self._prune_at = max(_PRUNE_AT, 2 * live)

    def access_token_record(self, token: str) -> AccessTokenRecord | None:
        """The record of an access token that is active now (issued here, valid, unrevoked)."""
        rec = self._access.get(token_hash(token))
        if rec is None or rec.revoked or rec.expires_at <= self.now():
            return None
        if rec.client_id in self._deleted_clients:
            return None
        if rec.grant_id is not None:
            grant = self._grants.get(rec.grant_id)
            if grant is not None and grant.revoked:
                return None
        # The signature must still verify against a published key (retired keys => inactive).
        if self.keys.verify(token) is None:
            return None
        return rec

    def refresh_token_record(self, token: str) -> RefreshTokenRecord | None:
        """The record of a refresh token, whatever its state (None when never issued)."""
        return self._refresh.get(token_hash(token))

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662 introspection from Python (what /introspect answers)."""
        rec = self.access_token_record(token)
        if rec is not None:
            return {"active": True, "token_type": "Bearer", **rec.claims}
        refresh = self._refresh.get(token_hash(token))
        now = self.now()
        if (
            refresh is not None
            and not refresh.used
            and not refresh.revoked
            and not refresh.grant.revoked
            and refresh.expires_at > now
        ):
            grant = refresh.grant
            out: dict[str, Any] = {
                "active": True,
                "token_type": "refresh_token",
                "client_id": grant.client_id,
                "scope": " ".join(refresh.scope),
                "iss": self.issuer,
                "iat": refresh.issued_at,
                "exp": refresh.expires_at,
            }
            if grant.user_id is not None:
                out["sub"] = self.subject_for(grant.user_id, grant.client_id)
            return out
        return {"active": False}

    def revoke(self, token: str) -> None:
        """Revoke a token from Python (a refresh token takes its whole grant with it)."""
        key = token_hash(token)
        rec = self._access.get(key)
        if rec is not None:
            rec.revoked = True
        refresh = self._refresh.get(key)
        if refresh is not None:
            self.revoke_grant(refresh.grant.grant_id)

    # ----- grants (used by the endpoints) ---------------------------------------------------

    def new_grant(
        self,
        client_id: str,
        user_id: str | None,
        scope: list[str],
        resources: list[str],
        **kwargs: Any,
    ) -> Grant:
        """Record an authorization from which tokens descend."""
        grant = Grant(random_token(12), client_id, user_id, scope, resources, **kwargs)
        self._grants[grant.grant_id] = grant
        return grant

    def revoke_grant(self, grant_id: str) -> None:
        """Revoke a grant: every access and refresh token issued from it becomes inactive."""
        grant = self._grants.get(grant_id)
        if grant is not None:
            grant.revoked = True
        for rec in self._access.values():
            if rec.grant_id == grant_id:
                rec.revoked = True
        for refresh in self._refresh.values():
            if refresh.grant.grant_id == grant_id:
                refresh.revoked = True

    def issue_refresh_token(self, grant: Grant, scope: list[str]) -> str:
        """A new opaque refresh token for `grant`."""
        token = random_token(32)
        now = self.now()
        self._refresh[token_hash(token)] = RefreshTokenRecord(
            grant, scope, now, now + self.refresh_token_lifetime
        )
        return token

    def store_code(self, code: str, record: AuthorizationCode) -> None:
        """Remember an authorization code by its hash."""
        self._prune()
        self._codes[token_hash(code)] = record

    def find_code(self, code: str) -> AuthorizationCode | None:
        """The authorization code record, used or not."""
        return self._codes.get(token_hash(code))

    def validate_resources(self, uris: Sequence[str]) -> list[str]:
        """RFC 8707 checks against the IdP's allow-list."""
        return validate_resources(uris, self.resource_allowlist)

    def tokens_for_grant(
        self,
        grant: Grant,
        client: Client,
        scope: list[str],
        resources: list[str],
        *,
        id_token: bool,
        refresh: bool,
    ) -> dict[str, Any]:
        """The token response for a user grant: access token, ID token, refresh token."""
        claims_request: ClaimsRequest = grant.claims_request
        extra: dict[str, Any] = {}
        user = self.users.get(grant.user_id or "")
        if user is not None:
            # Claims requested for the ID token also go into the access token (issue #3).
            for name in claims_request.id_token:
                if name in user.claims:
                    extra[name] = user.claims[name]
        access = self.issue_access_token(
            grant.user_id,
            client_id=client.client_id,
            audience=resources or None,
            scope=scope,
            acr=grant.acr,
            auth_time=grant.auth_time,
            amr=grant.amr,
            claims=extra or None,
            grant_id=grant.grant_id,
        )
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_token_lifetime,
            "scope": " ".join(scope),
        }
        if id_token and grant.user_id is not None:
            id_claims: dict[str, Any] = {}
            if user is not None:
                for name in claims_request.id_token:
                    if name in user.claims:
                        id_claims[name] = user.claims[name]
            body["id_token"] = self.issue_id_token(
                grant.user_id,
                client_id=client.client_id,
                nonce=grant.nonce,
                acr=grant.acr,
                auth_time=grant.auth_time,
                amr=grant.amr,
                claims=id_claims or None,
                access_token=access,
            )
        if refresh:
            body["refresh_token"] = self.issue_refresh_token(grant, grant.scope)
        return body


def _half_hash(token: str, alg: str) -> str:
    """OIDC at_hash: left half of the hash matching the signing algorithm."""
    digest = hashlib.sha512 if alg == "EdDSA" else hashlib.sha256
    raw = digest(token.encode("ascii")).digest()
    return b64url(raw[: len(raw) // 2])


def _add_authentication(
    payload: dict[str, Any], acr: str | None, auth_time: int | None, amr: Sequence[str] | None
) -> None:
    """Add the authentication event's members that were given (RFC 9068 §2.2.1, OIDC §2)."""
    if acr is not None:
        payload["acr"] = acr
    if auth_time is not None:
        payload["auth_time"] = int(auth_time)
    if amr is not None:
        payload["amr"] = list(amr)
