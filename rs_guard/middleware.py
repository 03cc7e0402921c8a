"""ResourceGuard: the pure ASGI middleware that authenticates every request of a resource."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

import httpx
from starlette.authentication import AuthCredentials, UnauthenticatedUser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import _guard_setup as setup
from ._asgi import has_header
from ._responses import Refusals
from ._routing import PathPolicy, declared, route_path
from .access_token import AccessToken, Limits, TokenValidator
from .credentials import BearerCredentials
from .dpop import DPoPVerifier, bound_as_bearer
from .errors import InvalidToken, MissingToken, RSGuardError
from .health import run_lifespan
from .introspection import Introspection
from .issuers import Issuer, MultiIssuerValidator
from .keys import JWKSCache
from .observe import Observer, emit, emit_hot
from .policy import Requirement, ScopeHierarchy
from .profiles import TokenProfile
from .resource_metadata import WELL_KNOWN, ProtectedResourceMetadata
from .server import AuthorizationServer

if TYPE_CHECKING:
    from .ssf.revocations import Revocations

__all__ = ["ResourceGuard", "SubjectTranslator", "UserResolver", "endpoint_requirement", "guard_of"]

_SCOPE_KEY = "rs_guard"
# The messages after which an answer has started: a late refusal can no longer be sent.
_STARTS = frozenset({"http.response.start", "websocket.accept", "websocket.close"})
_REQUIREMENT_KEY = "rs_guard.requirement"


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
    `limits=Limits(...)`, `introspection=Introspection(...)`, `metadata=`. Paths are matched on
    the route path (`scope["path"]` minus `root_path`), so the table works under a `Mount`.
    `prefetch="warn"` / `"require"` fetches discovery and keys at lifespan start-up.
    """

    @setup.logged
    def __init__(
        self,
        app: ASGIApp,
        *,
        resource: str,
        issuer: str | None = None,
        server: AuthorizationServer | None = None,
        audience: str | Sequence[str] | None = None,
        validator: TokenValidator | None = None,
        profile: str | TokenProfile | Mapping[str, Any] | None = None,
        issuers: Sequence[Issuer] | None = None,
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
        revocations: Revocations | None = None,
        observer: Observer | None = None,
        retry_after: int = 5,
        prefetch: Literal["off", "warn", "require"] = "off",
        dpop: DPoPVerifier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        setup.refuse_conflicts(locals())
        self.dpop = dpop  # RFC 9449; None: DPoP-bound tokens are refused (§7.2)
        self.app, self.resource, self.realm, self.clock = app, resource, realm, clock
        authorization_servers: list[str] | None = None
        if issuers is not None:
            # Several issuers (rs_guard.issuers): routed by exact `iss`, each with its own
            # discovery, keys, audience and profile; the first one is `self.server`.
            limits = limits or Limits()
            validator = MultiIssuerValidator(
                issuers,
                resource=resource,
                http_client=http_client,
                algorithms=algorithms,
                leeway=leeway,
                max_token_bytes=limits.max_token_bytes,
                cache_size=limits.cache_size,
                observer=observer,
                clock=clock,
            )
            server, authorization_servers = validator.servers[0], validator.issuers
        # The simple keyword path builds the issuer context.
        self.server = server or AuthorizationServer(
            issuer or "", http_client=http_client, observer=observer
        )
        self.issuer, self.credentials = (
            self.server.issuer,
            BearerCredentials(bearer_methods, dpop=dpop is not None),
        )
        self.hierarchy = setup.hierarchy(scope_hierarchy)
        audiences = setup.audiences(audience, resource)
        if validator is None:
            validator = setup.default_validator(
                self.server,
                audiences,
                algorithms,
                leeway,
                limits,
                introspection,
                observer,
                clock,
                profile="rfc9068" if profile is None else profile,
            )
        self.validator, self.clock_leeway = validator, setup.leeway_of(validator)
        self.subject_translator, self.user_resolver = subject_translator, user_resolver
        self.paths = PathPolicy(requirements, public_paths, default_requirement)
        self.default_requirement, self.prefetch = default_requirement, prefetch
        self.observer = observer
        self.metadata = setup.build_metadata(
            resource,
            authorization_servers or [self.issuer],
            metadata,
            serve_metadata,
            scopes_supported,
            self.credentials,
            dpop,
        )
        self.resource_metadata_url = self.metadata.url if self.metadata is not None else None
        self._metadata_paths = setup.metadata_paths(self.metadata)
        self.refusals = Refusals(
            realm=realm,
            resource_metadata_url=self.resource_metadata_url,
            retry_after=retry_after,
            observer=observer,
            issuer=self.issuer,
            audiences=audiences,
            dpop=dpop,
        )
        # Continuous access evaluation (rs_guard.ssf): consulted after every authentication.
        self.revocations = revocations
        if revocations is not None:
            revocations.attach(self.validator)
        # The hot path, prebuilt: with no scope expansion and no translation, a cache hit
        # (a plain function call, no await) is the whole answer.
        self._lookup = setup.cache_lookup(self.validator)
        plain = subject_translator is None and user_resolver is None and not self.hierarchy
        self._hot = self._lookup if plain else None
        self._exact_requirement = self.paths.exact.get
        self._search_paths = self.paths.needs_search
        self._find_token = self.credentials.find
        self._query = self.credentials.query

    @property
    def keys(self) -> JWKSCache:
        """The JWK Set cache of the issuer (the server's)."""
        return self.server.keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await run_lifespan(self, scope, receive, send)  # lifespan (prefetch), or passed on
            return
        # The path the router dispatches on (uvicorn --root-path, Starlette Mount).
        path: str = route_path(scope) if scope.get("root_path") else scope["path"]
        if (
            kind == "http"
            and (path.startswith(WELL_KNOWN) or scope["method"] == "OPTIONS")
            and await served_without_token(self, scope, receive, send, path)
        ):
            return  # the metadata document, or a CORS preflight (no await on the hot path)
        requirement = self._exact_requirement(path)
        if requirement is None and self._search_paths:
            requirement = self.paths.requirement_for(path)
        token: str | None = None
        try:
            # 1. extract (RFC 6750 §2)
            token = self._find_token(scope)
            if self.credentials.body:
                token, receive = await self.credentials.find_in_body(scope, receive, token)
            if token is None:
                # 2a. no credentials: only public routes go on, anonymously
                public, requirement = anonymous(self, scope, path, requirement)
                if not public:
                    raise MissingToken()
                scope["auth"], scope["user"] = AuthCredentials(), UnauthenticatedUser()
            else:
                # 2b. authenticate (a cache hit awaits nothing), 3. authorize
                hot = self._hot
                if hot is not None:
                    access = hot(token)
                    if access is None:
                        access = await self._validate(token)
                else:
                    # A hierarchy or a translator: the derived view is remembered on the
                    # cached token, so a warm request awaits nothing either.
                    lookup = self._lookup
                    base = lookup(token) if lookup is not None else None
                    if base is None:
                        access = await self._validate(token)
                    else:
                        known = remembered(self, base)
                        access = known if known is not None else await derive(self, base)
                dpop = self.dpop
                if dpop is not None:  # RFC 9449: the proof, checked on every request
                    if not dpop.settle_bearer(scope, access):
                        await dpop.check(scope, token, access)
                elif "cnf" in access.claims and access.sender_constrained:
                    raise bound_as_bearer()  # §7.2 (the `in` keeps the hot path one lookup)
                if self.revocations is not None:
                    self.revocations.check(access, requirement)
                if requirement is not None:
                    # max_age gets the same clock leeway as `exp`.
                    requirement.check(
                        access, hierarchy=self.hierarchy, now=self.clock(), leeway=self.clock_leeway
                    )
                scope["auth"] = access
                scope["user"] = access.user
        except RSGuardError as exc:
            await self.refusals.send(exc, scope, send, requirement, token)  # 4. reject
            return
        scope[_SCOPE_KEY] = self
        scope[_REQUIREMENT_KEY] = requirement
        if self.observer is not None and token is not None:
            emit_hot(self.observer, "request_accepted")  # counters only (e.g. OpenTelemetry)
        # 4. call the app (inlined: one coroutine fewer per request). A handler may still
        # refuse late (`check()` for a step-up only it can decide): rendered as a refusal
        # unless its answer has started, which `tracking_send` records.
        started = False
        # RFC 6750 §2.3: a success answer to a request whose token rode in the URI SHOULD be
        # `Cache-Control: private` (a token in the query only gets this far when allowed).
        private = (
            self._query and token is not None and b"access_token" in scope.get("query_string", b"")
        )

        def tracking_send(message: Message) -> Awaitable[None]:
            # A plain function handing back send's awaitable: no coroutine of its own per
            # message; after the start nothing is looked at any more.
            nonlocal started
            if not started and message["type"] in _STARTS:
                started = True
                if private and message["type"] == "http.response.start":
                    message = setup.private(message)
            return send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except RSGuardError as exc:
            if started:
                raise
            await self.refusals.send(exc, scope, send, requirement)

    def requirement_for(self, path: str) -> Requirement | None:
        """The configured requirement for a route path (exact match, then longest prefix)."""
        return self.paths.requirement_for(path)

    async def authenticate(self, token: str) -> AccessToken:
        """Validate a token and, when configured, translate its subject to this resource's own.

        Implied scopes and the translated subject are remembered on the validated token (a
        pairwise subject's translation never changes); a `user_resolver` runs every time.
        """
        lookup = self._lookup
        base = lookup(token) if lookup is not None else None
        if base is None:
            return await self._validate(token)
        return await derive(self, base)

    async def _validate(self, token: str) -> AccessToken:
        """Full validation of a token the cache did not answer (no second cache look-up)."""
        started = time.perf_counter()
        base = await self.validator.validate(token)
        emit(self.observer, "token_validated", seconds=time.perf_counter() - started)
        return await derive(self, base)


async def served_without_token(
    guard: ResourceGuard, scope: Scope, receive: Receive, send: Send, path: str
) -> bool:
    """Answer the metadata document (RFC 9728) and pass CORS preflights on, untouched."""
    if path.startswith(WELL_KNOWN) and path in guard._metadata_paths:
        await guard.metadata(scope, receive, send)  # type: ignore[misc]
        return True
    if scope["method"] == "OPTIONS" and has_header(
        scope["headers"], b"access-control-request-method"
    ):
        # CORS preflight never carries credentials; the app's CORS handling answers it.
        # A handler that sees it anyway sees an anonymous user (not a 500 from a missing
        # `request.auth`, and never someone's credentials).
        scope["auth"], scope["user"] = AuthCredentials(), UnauthenticatedUser()
        await guard.app(scope, receive, send)
        return True
    return False


def anonymous(
    guard: ResourceGuard, scope: Scope, path: str, requirement: Requirement | None
) -> tuple[bool, Requirement | None]:
    """Whether a request without credentials may go on, and the requirement to name."""
    if guard.paths.is_public(path):
        return True, requirement
    route = declared(guard.app, scope)
    # Tell the client up front which scope the route needs (MCP).
    return route.public, requirement if requirement is not None else route.requirement


def remembered(guard: ResourceGuard, base: AccessToken) -> AccessToken | None:
    """The guard's view of a cached token as `derive` left it on the token, if it did; a
    user resolver runs on every request, so with one there is nothing to reuse."""
    derived = base._derived
    if derived is None or derived[0] is not guard or guard.user_resolver is not None:
        return None
    return base if derived[1] is None else derived[1]


async def derive(guard: ResourceGuard, base: AccessToken) -> AccessToken:
    """The guard's view of a validated token: implied scopes, translated subject, user id."""
    known = remembered(guard, base)
    if known is not None:
        return known
    access = base
    if guard.hierarchy and len(access.scopes) == len(access.granted_scopes):
        effective = guard.hierarchy.effective(access.granted_scopes)
        if len(effective) != len(access.granted_scopes):
            access = access.replace(scopes=effective)
    if guard.subject_translator is not None:
        client_id = access.client_id
        if client_id is None:
            raise InvalidToken(reason="missing_client_id")
        local = await guard.subject_translator.to_local(client_id, access.subject)
        access = access.replace(local_subject=local)
    # Remembered also when nothing changed (None: the token itself), so that a token whose
    # scopes imply nothing more is not derived again on every request.
    base._derived = (guard, None if access is base else access)
    if guard.user_resolver is not None and access.local_subject is not None:
        access = access.replace(user_id=await guard.user_resolver(access.local_subject))
    return access


def guard_of(scope: Scope) -> ResourceGuard | None:
    """The ResourceGuard that authenticated this request, if any."""
    guard = scope.get(_SCOPE_KEY)
    return guard if isinstance(guard, ResourceGuard) else None


def endpoint_requirement(scope: Scope) -> Requirement | None:
    """The requirement the guard's own table gave this request (on the guard's route path)."""
    req = scope.get(_REQUIREMENT_KEY)
    return req if isinstance(req, Requirement) else None
