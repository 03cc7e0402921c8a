"""How ResourceGuard's options become its parts: conflicts refused, defaults built.

Kept apart from the middleware so `ResourceGuard` itself reads as the request path.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from starlette.types import Message

from .access_token import AccessToken, Limits, TokenValidator
from .credentials import BearerCredentials
from .dpop import DPoPVerifier
from .errors import ConfigurationError
from .introspection import CompositeValidator, Introspection, IntrospectionValidator
from .jwt import DEFAULT_ALGORITHMS, DEFAULT_LEEWAY, JWTValidator
from .observe import Observer
from .policy import ScopeHierarchy
from .profiles import TokenProfile
from .resource_metadata import WELL_KNOWN, ProtectedResourceMetadata
from .server import AuthorizationServer, refuse_beside_server

PREFETCH_MODES = ("off", "warn", "require")
F = TypeVar("F", bound=Callable[..., None])


def logged(init: F) -> F:
    """Log a ConfigurationError of the constructor at ERROR before raising it.

    Starlette builds `Middleware(ResourceGuard, ...)` on the first call, the lifespan one, and
    uvicorn's default `--lifespan auto` takes an error there for "lifespan unsupported" and
    starts anyway: the log line is what reaches the console (`--lifespan on` fails start-up).
    """

    @functools.wraps(init)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            init(*args, **kwargs)
        except ConfigurationError as exc:
            logging.getLogger("rs_guard").error("ResourceGuard configuration error: %s", exc)
            raise

    return wrapper  # type: ignore[return-value]


def private(start: Message) -> Message:
    """A 2xx start message with `Cache-Control: private` added (unless the app set one)."""
    if not 200 <= start["status"] < 300:
        return start
    headers = list(start.get("headers", ()))
    if any(k.lower() == b"cache-control" for k, _ in headers):
        return start
    headers.append((b"cache-control", b"private"))
    return {**start, "headers": headers}


def hierarchy(value: ScopeHierarchy | Mapping[str, Sequence[str]] | None) -> ScopeHierarchy:
    return value if isinstance(value, ScopeHierarchy) else ScopeHierarchy(value)


def cache_lookup(validator: TokenValidator) -> Callable[[str], AccessToken | None] | None:
    """The validator's synchronous cache look-up, if it has one (the hot path calls it)."""
    if isinstance(validator, CompositeValidator) and validator.opaque is None:
        return validator.jwt.cached  # one call fewer on every request
    lookup = getattr(validator, "cached", None)
    return lookup if callable(lookup) else None


def build_metadata(
    resource: str,
    issuers: Sequence[str],
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
        list(issuers),
        scopes_supported=scopes_supported,
        bearer_methods_supported=sorted(credentials.methods),
        extra=None if dpop is None else dpop.metadata(),
    )


def audiences(audience: str | Sequence[str] | None, resource: str) -> list[str]:
    """The accepted `aud` values: `audience=`, by default the resource identifier."""
    if audience is None:
        return [resource]
    return [audience] if isinstance(audience, str) else list(audience)


def metadata_paths(metadata: ProtectedResourceMetadata | None) -> frozenset[str]:
    """The request paths answered with the document: percent-decoded, as `scope["path"]` is
    (the document keeps its path encoded, RFC 9728 §3.1), and the bare well-known path."""
    if metadata is None:
        return frozenset()
    return frozenset((unquote(metadata.path), WELL_KNOWN))


def refuse_conflicts(options: Mapping[str, Any]) -> None:
    """ConfigurationError, naming the options, for options that cannot apply together."""

    def given(*names: str) -> list[str]:
        return [f"{n}=" for n in names if options[n] is not None]

    def refuse(first: str, others: list[str], why: str) -> None:
        if others:
            raise ConfigurationError(f"{first} cannot be combined with {', '.join(others)}: {why}")

    server: AuthorizationServer | None = options["server"]
    metadata: ProtectedResourceMetadata | None = options["metadata"]
    if options["issuers"] is not None:
        refuse(
            "issuers=",
            given("issuer", "server", "audience", "validator", "profile", "introspection"),
            "each Issuer(...) names its own issuer, audience and profile",
        )
    elif options["validator"] is not None and options["profile"] is not None:
        raise ConfigurationError("validator= cannot be combined with profile=: set it on yours")
    elif server is None and options["issuer"] is None:
        raise ConfigurationError("ResourceGuard needs issuer= or server= (or issuers=)")
    _refuse_bad_values(options)
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


def _refuse_bad_values(options: Mapping[str, Any]) -> None:
    """ConfigurationError now for values that would otherwise fail on the first request."""
    issuer = options["issuer"]
    if issuer is not None:
        parts = urlsplit(issuer) if isinstance(issuer, str) else None
        if parts is None or parts.scheme not in ("https", "http") or not parts.netloc:
            raise ConfigurationError(f"issuer= must be the IdP's issuer URL, got {issuer!r}")
        if parts.query or parts.fragment:
            raise ConfigurationError("issuer= must not have a query or fragment (RFC 8414 §2)")
    if not isinstance(options["resource"], str):
        raise ConfigurationError("resource= must be the URL of this resource (a string)")
    if options["prefetch"] not in PREFETCH_MODES:
        raise ConfigurationError(f"prefetch= must be one of {', '.join(PREFETCH_MODES)}")
    retry_after = options["retry_after"]
    if not isinstance(retry_after, int) or isinstance(retry_after, bool) or retry_after < 1:
        raise ConfigurationError("retry_after= must be a whole number of seconds, at least 1")
    leeway = options["leeway"]
    if leeway is not None and (not isinstance(leeway, int | float) or not 0 <= leeway <= 300):
        raise ConfigurationError("leeway= must be between 0 and 300 seconds")
    for name in ("user_resolver", "observer", "clock"):
        if options[name] is not None and not callable(options[name]):
            raise ConfigurationError(f"{name}= must be callable")
    translator = options["subject_translator"]
    if translator is not None and not callable(getattr(translator, "to_local", None)):
        raise ConfigurationError("subject_translator= needs an async to_local(client_id, subject)")
    validator = options["validator"]
    if validator is not None and not callable(getattr(validator, "validate", None)):
        raise ConfigurationError("validator= needs an async validate(token) method")


def leeway_of(validator: TokenValidator) -> float:
    """The clock leeway the validator grants `exp`: requirements use it for `max_age` too."""
    inner = validator.jwt if isinstance(validator, CompositeValidator) else validator
    leeway = getattr(inner, "leeway", DEFAULT_LEEWAY)
    return float(leeway) if isinstance(leeway, int | float) else DEFAULT_LEEWAY


def default_validator(
    server: AuthorizationServer,
    audiences: str | Sequence[str],
    algorithms: Sequence[str] | None,
    leeway: float | None,
    limits: Limits | None,
    introspection: Introspection | None,
    observer: Observer | None,
    clock: Callable[[], float],
    profile: str | TokenProfile | Mapping[str, Any] = "rfc9068",
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
        profile=profile,
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
