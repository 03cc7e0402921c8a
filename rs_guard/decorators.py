"""Per-route requirements for Starlette endpoints, and an exception handler for late step-up."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from ._responses import error_body, log_unguarded
from .access_token import AccessToken
from .errors import MissingToken, RSGuardError
from .middleware import guard_of
from .observe import emit
from .policy import Requirement

__all__ = ["check", "exception_handlers", "public", "require", "rs_guard_exception_handler"]

F = TypeVar("F", bound=Callable[..., Any])


def _connection(args: Sequence[Any], kwargs: Mapping[str, Any]) -> HTTPConnection:
    for value in (*args, *kwargs.values()):
        if isinstance(value, HTTPConnection):
            return value
    raise TypeError("@require needs an endpoint that takes a Request or WebSocket")


def check(
    connection: HTTPConnection, requirement: Requirement, *, owner: str = "check()"
) -> AccessToken:
    """The request's token if it meets `requirement`; raises the error to answer with otherwise.

    For decisions only a handler can make (the amount of a payment decides the level):
    `check(request, Requirement(acr_values=("mf",), max_age=300))`; ResourceGuard renders the
    raised error as the same challenge a route-level requirement gives.
    """
    token = connection.scope.get("auth")
    guard = guard_of(connection.scope)
    if not isinstance(token, AccessToken):
        if guard is None:
            # No guard authenticated this request: refused either way (a 401 where the app has
            # rs_guard's exception handlers, else a 500); the log line names the fix.
            log_unguarded(owner)
        raise MissingToken()
    if guard is None:
        requirement.check(token)
    else:
        requirement.check(
            token, hierarchy=guard.hierarchy, now=guard.clock(), leeway=guard.clock_leeway
        )
        if guard.revocations is not None and requirement.acr_values:
            guard.revocations.check(token, requirement)  # an assurance level lowered since (CAEP)
    return token


def require(
    scopes: str | Sequence[str] = (),
    *,
    acr_values: str | Sequence[str] = (),
    max_age: int | None = None,
    claims: Mapping[str, Any] | None = None,
    predicate: Callable[[AccessToken], bool] | None = None,
    description: str | None = None,
) -> Callable[[F], F]:
    """Decorate a Starlette endpoint with what its token must carry (see `Requirement`).

    `scopes` are all required (after the guard's scope hierarchy); `acr_values` any-of (most
    preferred first); `max_age` bounds the age of the authentication; `claims` maps claim names
    to required values; `predicate` is a custom check; `description` replaces the default
    `error_description`. Unmet requirements are answered by ResourceGuard with the RFC 6750 /
    RFC 9470 challenge, and a request without a token gets a bare 401 naming `scopes`.
    """
    requirement = Requirement(
        scopes=tuple(scopes.split()) if isinstance(scopes, str) else tuple(scopes),
        acr_values=tuple(acr_values.split()) if isinstance(acr_values, str) else tuple(acr_values),
        max_age=max_age,
        claims=dict(claims or {}),
        predicate=predicate,
        description=description,
    )

    def decorator(func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                check(_connection(args, kwargs), requirement, owner="@require")
                return await func(*args, **kwargs)

            wrapper: Any = async_wrapper
        else:

            @functools.wraps(func)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                check(_connection(args, kwargs), requirement, owner="@require")
                return func(*args, **kwargs)

            wrapper = sync_wrapper
        wrapper.__rs_guard_requirement__ = requirement
        return wrapper  # type: ignore[no-any-return]

    return decorator


async def rs_guard_exception_handler(request: Request, exc: Exception) -> Response:
    """Starlette exception handler rendering RSGuardError raised inside the app.

    Needed only when ResourceGuard wraps the app from outside (then Starlette's
    ServerErrorMiddleware sits between them); with `Middleware(ResourceGuard, ...)` the guard
    catches these errors itself.
    """
    assert isinstance(exc, RSGuardError)
    guard = guard_of(request.scope)
    headers: dict[str, str] = {"cache-control": "no-store"}
    if guard is None:
        # Raised where no guard ran (e.g. a public app's handler): still logged, like a guard's.
        emit(None, "token_rejected", reason=exc.reason, status=exc.status_code)
    else:
        # The guard never sees this error (Starlette answers it first): report it as it would.
        guard.refusals.report(exc)
        for name, value in guard.refusals.headers(exc):
            headers[name.decode()] = value.decode("latin-1")
    return Response(
        error_body(exc), status_code=exc.status_code, headers=headers, media_type="application/json"
    )


exception_handlers: dict[Any, Callable[[Request, Exception], Any]] = {
    RSGuardError: rs_guard_exception_handler
}
"""Pass to `Starlette(exception_handlers=...)` when the guard wraps the app from outside."""


def public(func: F) -> F:
    """Mark a Starlette / FastAPI endpoint as reachable without a token.

    A request that does carry a token is still authenticated (and refused if the token is bad),
    so the endpoint can tell anonymous and signed-in callers apart via `request.user`.
    """
    func.__rs_guard_public__ = True  # type: ignore[attr-defined]
    return func
