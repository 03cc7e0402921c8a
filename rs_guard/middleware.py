"""ResourceGuard: the pure ASGI middleware that authenticates every request of a resource."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import parse_qsl

import httpx
from starlette.authentication import AuthCredentials, UnauthenticatedUser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .challenge import challenge_for
from .discovery import ServerMetadata
from .errors import (
    ConfigurationError,
    InvalidRequest,
    InvalidToken,
    MissingToken,
    RSGuardError,
    ServerError,
)
from .keys import JWKSCache
from .metadata import WELL_KNOWN, ProtectedResourceMetadata
from .observe import Observer, emit
from .policy import Requirement, ScopeHierarchy
from .tokens import (
    DEFAULT_ALGORITHMS,
    DEFAULT_MAX_TOKEN_BYTES,
    AccessToken,
    CompositeValidator,
    IntrospectionValidator,
    JWTValidator,
    TokenValidator,
)

# RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token; the scheme is case-insensitive.
# RFC 6750 §2.1 b64token characters; "=" only as trailing padding.
_B64TOKEN_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/"
_BEARER_PREFIXES = frozenset({b"Bearer ", b"bearer ", b"BEARER "})
_MAX_FORM_BYTES = 64 * 1024
_SCOPE_KEY = "rs_guard"


class SubjectTranslator(Protocol):
    """Maps a subject from the caller's namespace (its client id) to this resource's own."""

    async def to_local(self, client_id: str, subject: str) -> str: ...


UserResolver = Callable[[str], Awaitable[Any]]
"""Maps this resource's own subject (its PPID) to an internal user id."""


class ResourceGuard:
    """Authenticates every HTTP and WebSocket request with an OAuth 2.0 access token.

    Valid requests reach the app with `scope["auth"]` (an `AccessToken`) and `scope["user"]`
    (a `TokenUser`), the way Starlette's AuthenticationMiddleware does. Invalid ones are
    answered here with the RFC 6750 / RFC 9470 status and `WWW-Authenticate` challenge.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        issuer: str,
        resource: str,
        audience: str | Sequence[str] | None = None,
        authorization_servers: Sequence[str] | None = None,
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        leeway: float = 30.0,
        jwks_uri: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        bearer_methods: Sequence[str] = ("header",),
        public_paths: Sequence[str] = (),
        requirements: Mapping[str, Requirement] | None = None,
        default_requirement: Requirement | None = None,
        scope_hierarchy: ScopeHierarchy | Mapping[str, Sequence[str]] | None = None,
        scopes_supported: Sequence[str] | None = None,
        resource_documentation: str | None = None,
        resource_name: str | None = None,
        realm: str | None = None,
        serve_metadata: bool = True,
        metadata_signing_key: Any = None,
        metadata_signing_alg: str | None = None,
        metadata_signing_kid: str | None = None,
        introspection_client_id: str | None = None,
        introspection_client_secret: str | None = None,
        validator: TokenValidator | None = None,
        subject_translator: SubjectTranslator | None = None,
        user_resolver: UserResolver | None = None,
        observer: Observer | None = None,
        jwks_max_age: float = 300.0,
        jwks_cooldown: float = 30.0,
        jwks_stale_for: float = 3600.0,
        cache_size: int = 10_000,
        max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
        retry_after: int = 5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        unknown = set(bearer_methods) - {"header", "body", "query"}
        if unknown or not bearer_methods:
            raise ConfigurationError(f"unknown bearer methods: {sorted(unknown)}")
        self.issuer = issuer
        self.resource = resource
        self.realm = realm
        self.leeway = leeway
        self.retry_after = retry_after
        self._clock = clock
        self._observer = observer
        self.bearer_methods = frozenset(bearer_methods)
        self._body_method = "body" in self.bearer_methods
        self._query_method = "query" in self.bearer_methods
        self.hierarchy = (
            scope_hierarchy
            if isinstance(scope_hierarchy, ScopeHierarchy)
            else ScopeHierarchy(scope_hierarchy)
        )
        self.server_metadata = ServerMetadata(issuer, http_client=http_client, observer=observer)
        self.keys = JWKSCache(
            jwks_uri,
            metadata=self.server_metadata,
            http_client=http_client,
            max_age=jwks_max_age,
            cooldown=jwks_cooldown,
            stale_for=jwks_stale_for,
            observer=observer,
        )
        audiences = audience if audience is not None else resource
        if validator is None:
            jwt_validator = JWTValidator(
                issuer=issuer,
                audience=audiences,
                keys=self.keys,
                algorithms=algorithms,
                leeway=leeway,
                max_token_bytes=max_token_bytes,
                cache_size=cache_size,
                observer=observer,
                clock=clock,
            )
            opaque = None
            if introspection_client_id is not None:
                if introspection_client_secret is None:
                    raise ConfigurationError("introspection needs a client secret")
                opaque = IntrospectionValidator(
                    issuer=issuer,
                    audience=audiences,
                    client_id=introspection_client_id,
                    client_secret=introspection_client_secret,
                    metadata=self.server_metadata,
                    http_client=http_client,
                    cache_size=cache_size,
                    max_token_bytes=max_token_bytes,
                    observer=observer,
                    clock=clock,
                )
            validator = CompositeValidator(jwt_validator, opaque)
        self.validator = validator
        lookup = getattr(validator, "cached", None)
        if isinstance(validator, CompositeValidator) and validator.opaque is None:
            lookup = validator.jwt.cached  # one call fewer on every request
        self._lookup: Callable[[str], AccessToken | None] | None = (
            lookup if callable(lookup) else None
        )
        self.subject_translator = subject_translator
        self.user_resolver = user_resolver
        # With no scope expansion and no translation, a cache hit is the whole answer.
        self._plain = subject_translator is None and user_resolver is None and not self.hierarchy
        self.default_requirement = default_requirement
        self._exact: dict[str, Requirement] = {}
        self._prefixes: list[tuple[str, Requirement]] = []
        for path, req in (requirements or {}).items():
            if path.endswith("*"):
                self._prefixes.append((path[:-1], req))
            else:
                self._exact[path] = req
        self._prefixes.sort(key=lambda item: -len(item[0]))
        self._public_exact = frozenset(p for p in public_paths if not p.endswith("*"))
        self._public_prefixes = tuple(p[:-1] for p in public_paths if p.endswith("*"))
        self.metadata: ProtectedResourceMetadata | None = None
        if serve_metadata:
            self.metadata = ProtectedResourceMetadata(
                resource,
                authorization_servers or [issuer],
                scopes_supported=scopes_supported,
                bearer_methods_supported=sorted(self.bearer_methods),
                resource_documentation=resource_documentation,
                resource_name=resource_name,
                signing_key=metadata_signing_key,
                signing_alg=metadata_signing_alg,
                signing_kid=metadata_signing_kid,
            )
        self.resource_metadata_url = self.metadata.url if self.metadata is not None else None

    # -- request handling ------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if (
            kind == "http"
            and self.metadata is not None
            and path.startswith(WELL_KNOWN)
            and (path == self.metadata.path or path == WELL_KNOWN)
        ):
            await self.metadata(scope, receive, send)
            return
        if (
            kind == "http"
            and scope["method"] == "OPTIONS"
            and _has_header(scope, b"access-control-request-method")
        ):
            # CORS preflight never carries credentials; the app's CORS handling answers it.
            # A handler that sees it anyway sees an anonymous user (not a 500 from a missing
            # `request.auth`, and never someone's credentials).
            scope["auth"] = AuthCredentials()
            scope["user"] = UnauthenticatedUser()
            await self.app(scope, receive, send)
            return
        requirement = self._exact.get(path)
        if requirement is None and (self._prefixes or self.default_requirement is not None):
            requirement = self.requirement_for(path)
        try:
            token = self._header_or_query_token(scope)
            if self._body_method:
                token, receive = await self._body_token(scope, receive, token)
            if token is None:
                if not (path in self._public_exact or path.startswith(self._public_prefixes)):
                    route = matched_route(self.app, scope)
                    if not route_is_public(route):
                        if requirement is None:
                            # Tell the client up front which scope the route needs (MCP).
                            requirement = route_requirement(route)
                        raise MissingToken()
                scope["auth"] = AuthCredentials()
                scope["user"] = UnauthenticatedUser()
            else:
                access = self._cached(token) if self._plain else None
                if access is None:
                    access = await self.authenticate(token)
                if requirement is not None:
                    requirement.check(access, hierarchy=self.hierarchy, now=self._clock())
                scope["auth"] = access
                scope["user"] = access.user
        except RSGuardError as exc:
            await self.reject(exc, scope, send, requirement)
            return
        scope[_SCOPE_KEY] = self
        started = False
        # RFC 6750 §2.3: a success answer to a request whose token rode in the URI SHOULD be
        # `Cache-Control: private` (a token in the query only gets this far when allowed).
        private = (
            token is not None
            and self._query_method
            and b"access_token" in scope.get("query_string", b"")
        )

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] in ("http.response.start", "websocket.accept", "websocket.close"):
                started = True
                if (
                    private
                    and message["type"] == "http.response.start"
                    and 200 <= message["status"] < 300
                ):
                    headers = list(message.get("headers", ()))
                    if not any(k.lower() == b"cache-control" for k, _ in headers):
                        headers.append((b"cache-control", b"private"))
                        message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except RSGuardError as exc:
            # A handler may decide late that it needs more (e.g. step-up for a large payment).
            if started:
                raise
            await self.reject(exc, scope, send, requirement)

    def _cached(self, token: str) -> AccessToken | None:
        """A still-valid cached result for `token`, without awaiting anything (the hot path)."""
        cached = self._lookup
        return cached(token) if cached is not None else None

    def requirement_for(self, path: str) -> Requirement | None:
        """The configured requirement for a path (exact match, then longest prefix)."""
        req = self._exact.get(path)
        if req is not None:
            return req
        for prefix, req in self._prefixes:
            if path.startswith(prefix):
                return req
        return self.default_requirement

    async def authenticate(self, token: str) -> AccessToken:
        """Validate a token and, when configured, translate its subject to this resource's own.

        Implied scopes and the translated subject are remembered on the validated token (a
        pairwise subject's translation never changes); a `user_resolver` runs every time.
        """
        base = self._cached(token) or await self.validator.validate(token)
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

    def _header_or_query_token(self, scope: Scope) -> str | None:
        """The token from the Authorization header or (when enabled) the query string."""
        value: bytes | None = None
        for k, v in scope["headers"]:
            if k == b"authorization":
                if value is not None:
                    raise InvalidRequest(
                        "More than one Authorization header", reason="multiple_credentials"
                    )
                value = v
        token = bearer_token(value) if value is not None else None
        qs: bytes = scope.get("query_string", b"")
        if qs and b"access_token" in qs:
            query_tokens = _query_tokens(qs)
            if query_tokens:
                if "query" not in self.bearer_methods:
                    raise InvalidRequest(
                        "Access tokens are not accepted in the query string",
                        reason="token_in_query",
                    )
                if token is not None or len(query_tokens) > 1:
                    raise _several()
                token = query_tokens[0]
        return token

    async def _body_token(
        self, scope: Scope, receive: Receive, token: str | None
    ) -> tuple[str | None, Receive]:
        """Add a form-body token (RFC 6750 §2.2) to the one found so far, if any."""
        if _is_form_post(scope):
            body_tokens, receive = await _form_tokens(receive)
            if body_tokens:
                if token is not None or len(body_tokens) > 1:
                    raise _several()
                token = body_tokens[0]
        return token, receive

    # -- responses -------------------------------------------------------------------------

    def challenge_headers(
        self, exc: RSGuardError, requirement: Requirement | None = None
    ) -> list[tuple[bytes, bytes]]:
        """The response headers for an error: the challenge, or Retry-After for a 503."""
        if isinstance(exc, ServerError):
            return [(b"retry-after", str(exc.retry_after or self.retry_after).encode())]
        value = challenge_for(
            exc,
            realm=self.realm,
            resource_metadata=self.resource_metadata_url,
            scope=requirement.scopes if requirement is not None else None,
        )
        return [(b"www-authenticate", value.encode("latin-1"))]

    def report(self, exc: RSGuardError) -> None:
        """Log a refused request and tell the observer (`token_rejected`, `reason`, `status`)."""
        emit(self._observer, "token_rejected", reason=exc.reason, status=exc.status_code)

    async def reject(
        self, exc: RSGuardError, scope: Scope, send: Send, requirement: Requirement | None = None
    ) -> None:
        """Answer a failed request: HTTP status + challenge, or a WebSocket close."""
        self.report(exc)
        headers = self.challenge_headers(exc, requirement)
        body = error_body(exc)
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        if scope["type"] == "websocket":
            if "websocket.http.response" in scope.get("extensions", {}):
                await send(
                    {
                        "type": "websocket.http.response.start",
                        "status": exc.status_code,
                        "headers": headers,
                    }
                )
                await send({"type": "websocket.http.response.body", "body": body})
            else:
                code = 1013 if isinstance(exc, ServerError) else 1008
                await send({"type": "websocket.close", "code": code, "reason": ""})
            return
        await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def error_body(exc: RSGuardError) -> bytes:
    """A small JSON body mirroring the challenge; never a parser message or token material."""
    if isinstance(exc, ServerError):
        return json.dumps(
            {"error": "temporarily_unavailable", "error_description": exc.description}
        ).encode()
    if exc.error is None:
        return b'{"error":"unauthorized","error_description":"An access token is required"}'
    return json.dumps({"error": exc.error, "error_description": exc.description}).encode()


def guard_of(scope: Scope) -> ResourceGuard | None:
    """The ResourceGuard that authenticated this request, if any."""
    guard = scope.get(_SCOPE_KEY)
    return guard if isinstance(guard, ResourceGuard) else None


def _find_routes(app: Any) -> list[Any] | None:
    """The route list of the first router below `app` (through middleware `.app` links)."""
    for _ in range(32):
        routes = getattr(app, "routes", None)
        if isinstance(routes, list):
            return routes
        nxt = getattr(app, "router", None) or getattr(app, "app", None)
        if nxt is None:
            return None
        app = nxt
    return None


def _dependant_scopes(dependant: Any, seen: set[int] | None = None) -> list[str]:
    # FastAPI keeps Security(..., scopes=[...]) on its dependency tree.
    seen = seen if seen is not None else set()
    if dependant is None or id(dependant) in seen:
        return []
    seen.add(id(dependant))
    scopes = list(getattr(dependant, "own_oauth_scopes", None) or [])
    for child in getattr(dependant, "dependencies", None) or []:
        scopes += _dependant_scopes(child, seen)
    return scopes


def matched_route(app: Any, scope: Scope, _depth: int = 0) -> Any:
    """The route that will serve this request (descending into mounts), or None.

    Used only for requests without credentials, to honour `@public` and to name the route's
    `scope` in the challenge: authenticated requests never pay for this second route match.
    """
    from starlette.routing import Match

    routes = _find_routes(app)
    if routes is None or _depth > 4:
        return None
    try:
        for route in routes:
            match, child = route.matches(scope)
            if match != Match.FULL:
                continue
            endpoint = getattr(route, "endpoint", None)
            inner = getattr(route, "app", None)
            if endpoint is None and inner is not None and _find_routes(inner) is not None:
                return matched_route(inner, {**scope, **child}, _depth + 1)
            return route
    except Exception:  # a route's matcher failing must not turn a 401 into a 500
        return None
    return None


def route_requirement(route: Any) -> Requirement | None:
    """The requirement a route declares: `@require(...)` or FastAPI `Security(..., scopes=)`."""
    if route is None:
        return None
    req = getattr(getattr(route, "endpoint", None), "__rs_guard_requirement__", None)
    if isinstance(req, Requirement):
        return req
    scopes = _dependant_scopes(getattr(route, "dependant", None))
    return Requirement(scopes=tuple(dict.fromkeys(scopes))) if scopes else None


def route_is_public(route: Any) -> bool:
    """Whether the route's endpoint was marked with `@public`."""
    return bool(getattr(getattr(route, "endpoint", None), "__rs_guard_public__", False))


def _has_header(scope: Scope, name: bytes) -> bool:
    return any(k == name for k, _ in scope["headers"])


def bearer_token(value: bytes) -> str | None:
    """The token of an `Authorization: Bearer <b64token>` value (RFC 6750 §2.1).

    None for another scheme; InvalidRequest for a Bearer value that is not well formed.
    """
    if value[:7] in _BEARER_PREFIXES:
        # The usual shape, "Bearer <token>": one slice and one translate.
        token = value[7:]
        if token and token[:1] != b" " and token[-1:] != b" " and token[-1:] != b"=":
            if token.translate(None, _B64TOKEN_CHARS):
                raise InvalidRequest(
                    "The Authorization header is malformed", reason="malformed_header"
                )
            return token.decode("ascii")
    if value[:6].lower() != b"bearer":
        return None
    rest = value[6:]
    if rest and rest[:1] != b" " and not rest[:1].isspace():
        return None  # a different scheme that merely starts with "bearer"
    token = rest.strip(b" ")
    if (
        not rest.startswith(b" ")
        or not token.rstrip(b"=")  # b64token needs one character before any "="
        or token.rstrip(b"=").translate(None, _B64TOKEN_CHARS)
    ):
        raise InvalidRequest("The Authorization header is malformed", reason="malformed_header")
    return token.decode("ascii")


def _several() -> InvalidRequest:
    return InvalidRequest(
        "More than one access token in the request", reason="multiple_credentials"
    )


def _query_tokens(qs: bytes) -> list[str]:
    return [
        v for k, v in parse_qsl(qs.decode("latin-1"), keep_blank_values=True) if k == "access_token"
    ]


def _is_form_post(scope: Scope) -> bool:
    if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
        return False
    for k, v in scope["headers"]:
        if k == b"content-type":
            media_type: bytes = v.split(b";")[0].strip().lower()
            return media_type == b"application/x-www-form-urlencoded"
    return False


async def _form_tokens(receive: Receive) -> tuple[list[str], Receive]:
    """Read a form body for `access_token` (RFC 6750 §2.2) and replay it to the app."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_FORM_BYTES:
            raise InvalidRequest("The request body is too large", reason="body_too_large")
        chunks.append(chunk)
        more = message.get("more_body", False)
    body = b"".join(chunks)
    tokens = [
        v
        for k, v in parse_qsl(body.decode("latin-1"), keep_blank_values=True)
        if k == "access_token"
    ]
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return tokens, replay
