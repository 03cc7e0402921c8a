"""ResourceGuard: the pure ASGI middleware that authenticates every request of a resource."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import httpx
from starlette.authentication import AuthCredentials, UnauthenticatedUser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._asgi import has_header
from ._responses import Refusals
from ._routing import PathPolicy, declared
from .access_token import AccessToken, Limits, TokenValidator
from .credentials import BearerCredentials
from .dpop import DPoPVerifier, bound_as_bearer
from .errors import ConfigurationError, InvalidToken, MissingToken, RSGuardError
from .introspection import CompositeValidator, Introspection, IntrospectionValidator
from .jwt import DEFAULT_ALGORITHMS, DEFAULT_LEEWAY, JWTValidator
from .keys import JWKSCache
from .observe import Observer
from .policy import Requirement, ScopeHierarchy
from .resource_metadata import WELL_KNOWN, ProtectedResourceMetadata
from .server import AuthorizationServer, refuse_beside_server

__all__ = ["ResourceGuard", "SubjectTranslator", "UserResolver", "guard_of"]

_SCOPE_KEY = "rs_guard"


class SubjectTranslator(Protocol):
    """Maps a subject from the caller's namespace (its client id) to this resource's own."""

    async def to_local(self, client_id: str, subject: str) -> str: ...


UserResolver = Callable[[str], Awaitable[Any]]
"""Maps this resource's own subject (its PPID) to an internal user id."""


class ResourceGuard:
    """Authenticates every HTTP and WebSocket request with an OAuth 2.0 access token.

    Valid requests reach the app with `scope["auth"]` (an `AccessToken`) and `scope["user"]`
    (a `TokenUser`), as with Starlette's AuthenticationMiddleware; invalid ones get the RFC 6750
    / RFC 9470 status and challenge. Less common settings come as collaborators:
    `server=AuthorizationServer(...)` (discovery, JWKS cache, HTTP client), `validator=`,
    `limits=Limits(...)`, `introspection=Introspection(...)`, `metadata=`.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        resource: str,
        issuer: str | None = None,
        server: AuthorizationServer | None = None,
        audience: str | Sequence[str] | None = None,
        validator: TokenValidator | None = None,
        algorithms: Sequence[str] | None = None,
        leeway: float | None = None,
        limits: Limits | None = None,
        introspection: Introspection | None = None,
        http_client: httpx.AsyncClient | None = None,
        bearer_methods: Sequence[str] = ("header",),
        public_paths: Sequence[str] = (),
        requirements: Mapping[str, Requirement] | None = None,
        default_requirement: Requirement | None = None,
        scope_hierarchy: ScopeHierarchy | Mapping[str, Sequence[str]] | None = None,
        scopes_supported: Sequence[str] | None = None,
        realm: str | None = None,
        serve_metadata: bool = True,
        metadata: ProtectedResourceMetadata | None = None,
        subject_translator: SubjectTranslator | None = None,
        user_resolver: UserResolver | None = None,
        observer: Observer | None = None,
        retry_after: int = 5,
        dpop: DPoPVerifier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        _refuse_conflicts(locals())
        self.dpop = dpop  # RFC 9449; None: DPoP-bound tokens are refused (§7.2)
        self.app = app
        # The simple keyword path builds the issuer context.
        self.server = server or AuthorizationServer(
            issuer or "", http_client=http_client, observer=observer
        )
        self.issuer, self.resource, self.realm = self.server.issuer, resource, realm
        self.credentials = BearerCredentials(bearer_methods, dpop=dpop is not None)
        self.hierarchy = _hierarchy(scope_hierarchy)
        if validator is None:
            audiences = audience if audience is not None else resource
            validator = _default_validator(
                self.server, audiences, algorithms, leeway, limits, introspection, observer, clock
            )
        self.validator = validator
        self.subject_translator, self.user_resolver = subject_translator, user_resolver
        self.paths = PathPolicy(requirements, public_paths, default_requirement)
        self.default_requirement = default_requirement
        self.metadata = _metadata(
            resource,
            self.issuer,
            metadata,
            serve_metadata,
            scopes_supported,
            self.credentials,
            dpop,
        )
        self.resource_metadata_url = self.metadata.url if self.metadata is not None else None
        self.refusals = Refusals(
            realm=realm,
            resource_metadata_url=self.resource_metadata_url,
            retry_after=retry_after,
            observer=observer,
            dpop=dpop,
        )
        self.clock = clock
        # The hot path, prebuilt: with no scope expansion and no translation, a cache hit
        # (a plain function call, no await) is the whole answer.
        self._lookup = _cache_lookup(self.validator)
        plain = subject_translator is None and user_resolver is None and not self.hierarchy
        self._hot = self._lookup if plain else None
        self._exact_requirement = self.paths.exact.get
        self._search_paths = self.paths.needs_search
        self._find_token = self.credentials.find

    @property
    def keys(self) -> JWKSCache:
        """The JWK Set cache of the issuer (the server's)."""
        return self.server.keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if kind == "http" and path.startswith(WELL_KNOWN) and self._is_metadata_request(path):
            await self.metadata(scope, receive, send)  # type: ignore[misc]
            return
        if (
            kind == "http"
            and scope["method"] == "OPTIONS"
            and has_header(scope["headers"], b"access-control-request-method")
        ):
            # CORS preflight never carries credentials; the app's CORS handling answers it.
            # A handler that sees it anyway sees an anonymous user (not a 500 from a missing
            # `request.auth`, and never someone's credentials).
            scope["auth"], scope["user"] = AuthCredentials(), UnauthenticatedUser()
            await self.app(scope, receive, send)
            return
        requirement = self._exact_requirement(path)
        if requirement is None and self._search_paths:
            requirement = self.paths.requirement_for(path)
        try:
            # 1. extract (RFC 6750 §2)
            token = self._find_token(scope)
            if self.credentials.body:
                token, receive = await self.credentials.find_in_body(scope, receive, token)
            if token is None:
                # 2a. no credentials: only public routes go on, anonymously
                if not self.paths.is_public(path):
                    route = declared(self.app, scope)
                    if not route.public:
                        # Tell the client up front which scope the route needs (MCP).
                        if requirement is None:
                            requirement = route.requirement
                        raise MissingToken()
                scope["auth"], scope["user"] = AuthCredentials(), UnauthenticatedUser()
            else:
                # 2b. authenticate (a cache hit awaits nothing), 3. authorize
                hot = self._hot
                access = hot(token) if hot is not None else None
                if access is None:
                    access = await self.authenticate(token)
                if self.dpop is not None:  # RFC 9449: the proof, checked on every request
                    await self.dpop.check(scope, token, access)
                elif access.sender_constrained:
                    raise bound_as_bearer()
                if requirement is not None:
                    # max_age / auth_time are checked without the `exp` leeway for now (#13).
                    requirement.check(access, hierarchy=self.hierarchy, now=self.clock())
                scope["auth"] = access
                scope["user"] = access.user
        except RSGuardError as exc:
            await self.refusals.send(exc, scope, send, requirement)  # 4. reject
            return
        scope[_SCOPE_KEY] = self
        started = False
        # RFC 6750 §2.3: a success answer to a request whose token rode in the URI SHOULD be
        # `Cache-Control: private` (a token in the query only gets this far when allowed).
        private = (
            token is not None
            and self.credentials.query
            and b"access_token" in scope.get("query_string", b"")
        )

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] in ("http.response.start", "websocket.accept", "websocket.close"):
                started = True
                if private and message["type"] == "http.response.start":
                    message = _private(message)
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)  # 4. call
        except RSGuardError as exc:
            # A handler may decide late that it needs more (e.g. step-up for a large payment).
            if started:
                raise
            await self.refusals.send(exc, scope, send, requirement)

    def _is_metadata_request(self, path: str) -> bool:
        metadata = self.metadata
        return metadata is not None and (path == metadata.path or path == WELL_KNOWN)

    def requirement_for(self, path: str) -> Requirement | None:
        """The configured requirement for a path (exact match, then longest prefix)."""
        return self.paths.requirement_for(path)

    async def authenticate(self, token: str) -> AccessToken:
        """Validate a token and, when configured, translate its subject to this resource's own.

        Implied scopes and the translated subject are remembered on the validated token (a
        pairwise subject's translation never changes); a `user_resolver` runs every time.
        """
        lookup = self._lookup
        base = lookup(token) if lookup is not None else None
        base = base or await self.validator.validate(token)
        derived = base._derived
        if derived is not None and derived[0] is self and self.user_resolver is None:
            return derived[1]
        access = base
        if self.hierarchy and len(access.scopes) == len(access.granted_scopes):
            effective = self.hierarchy.effective(access.granted_scopes)
            if len(effective) != len(access.granted_scopes):
                access = access.replace(scopes=effective)
        if self.subject_translator is not None:
            client_id = access.client_id
            if client_id is None:
                raise InvalidToken(reason="missing_client_id")
            local = await self.subject_translator.to_local(client_id, access.subject)
            access = access.replace(local_subject=local)
        if access is not base:
            base._derived = (self, access)
        if self.user_resolver is not None and access.local_subject is not None:
            access = access.replace(user_id=await self.user_resolver(access.local_subject))
        return access


def guard_of(scope: Scope) -> ResourceGuard | None:
    """The ResourceGuard that authenticated this request, if any."""
    guard = scope.get(_SCOPE_KEY)
    return guard if isinstance(guard, ResourceGuard) else None


def _private(start: Message) -> Message:
    """A 2xx start message with `Cache-Control: private` added (unless the app set one)."""
    if not 200 <= start["status"] < 300:
        return start
    headers = list(start.get("headers", ()))
    if any(k.lower() == b"cache-control" for k, _ in headers):
        return start
    headers.append((b"cache-control", b"private"))
    return {**start, "headers": headers}


def _hierarchy(value: ScopeHierarchy | Mapping[str, Sequence[str]] | None) -> ScopeHierarchy:
    return value if isinstance(value, ScopeHierarchy) else ScopeHierarchy(value)


def _cache_lookup(validator: TokenValidator) -> Callable[[str], AccessToken | None] | None:
    """The validator's synchronous cache look-up, if it has one (the hot path calls it)."""
    if isinstance(validator, CompositeValidator) and validator.opaque is None:
        return validator.jwt.cached  # one call fewer on every request
    lookup = getattr(validator, "cached", None)
    return lookup if callable(lookup) else None


def _metadata(
    resource: str,
    issuer: str,
    given: ProtectedResourceMetadata | None,
    serve: bool,
    scopes_supported: Sequence[str] | None,
    credentials: BearerCredentials,
    dpop: DPoPVerifier | None = None,
) -> ProtectedResourceMetadata | None:
    """The RFC 9728 document to serve: the one given, or one built from the options."""
    if not serve or given is not None:
        return given if serve else None
    return ProtectedResourceMetadata(
        resource,
        [issuer],
        scopes_supported=scopes_supported,
        bearer_methods_supported=sorted(credentials.methods),
        extra=None if dpop is None else dpop.metadata(),
    )


def _refuse_conflicts(options: Mapping[str, Any]) -> None:
    """ConfigurationError, naming the options, for options that cannot apply together."""

    def given(*names: str) -> list[str]:
        return [f"{n}=" for n in names if options[n] is not None]

    def refuse(first: str, others: list[str], why: str) -> None:
        if others:
            raise ConfigurationError(f"{first} cannot be combined with {', '.join(others)}: {why}")

    server: AuthorizationServer | None = options["server"]
    metadata: ProtectedResourceMetadata | None = options["metadata"]
    if server is None and options["issuer"] is None:
        raise ConfigurationError("ResourceGuard needs issuer= or server=")
    if server is not None:
        refuse_beside_server(
            "ResourceGuard", server, options["issuer"], http_client=options["http_client"]
        )
    if options["validator"] is not None:
        refuse(
            "validator=",
            given("algorithms", "leeway", "limits", "introspection"),
            "they configure the validator ResourceGuard builds; configure yours instead",
        )
    if metadata is not None:
        if not options["serve_metadata"]:
            raise ConfigurationError("metadata= cannot be combined with serve_metadata=False")
        refuse("metadata=", given("scopes_supported"), "set them on the metadata document")
        if metadata.resource != options["resource"]:
            raise ConfigurationError("metadata= describes another resource than resource=")
        advertised = metadata.document.get("bearer_methods_supported")
        if advertised != sorted(set(options["bearer_methods"])):
            raise ConfigurationError(
                "metadata= advertises other bearer_methods_supported than bearer_methods="
            )


def _default_validator(
    server: AuthorizationServer,
    audiences: str | Sequence[str],
    algorithms: Sequence[str] | None,
    leeway: float | None,
    limits: Limits | None,
    introspection: Introspection | None,
    observer: Observer | None,
    clock: Callable[[], float],
) -> CompositeValidator:
    """JWT access tokens, plus introspection of opaque ones when it is configured."""
    limits = limits or Limits()
    jwt = JWTValidator(
        server=server,
        audience=audiences,
        algorithms=DEFAULT_ALGORITHMS if algorithms is None else algorithms,
        leeway=DEFAULT_LEEWAY if leeway is None else leeway,
        max_token_bytes=limits.max_token_bytes,
        cache_size=limits.cache_size,
        observer=observer,
        clock=clock,
    )
    opaque = None
    if introspection is not None:
        opaque = IntrospectionValidator(
            server=server,
            audience=audiences,
            client_id=introspection.client_id,
            client_secret=introspection.client_secret,
            introspection_endpoint=introspection.endpoint,
            cache_ttl=introspection.cache_ttl,
            cache_size=limits.cache_size,
            max_token_bytes=limits.max_token_bytes,
            observer=observer,
            clock=clock,
        )
    return CompositeValidator(jwt, opaque)
