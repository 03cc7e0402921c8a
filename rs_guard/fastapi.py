"""FastAPI integration: a `Security()` dependency with scopes, declared as OAuth2 in OpenAPI."""

import inspect
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import replace
from typing import Any

try:
    from fastapi import FastAPI, HTTPException, Request, Security
    from fastapi.routing import APIRoute
    from fastapi.security import OAuth2AuthorizationCodeBearer, SecurityScopes
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
    raise ModuleNotFoundError(
        "rs_guard.fastapi needs FastAPI: pip install 'rs_guard[fastapi]'", name=exc.name
    ) from exc

from ._responses import log_unguarded
from ._routing import PathPolicy
from .access_token import AccessToken
from .decorators import check
from .middleware import guard_of
from .policy import Requirement

__all__ = ["OAuth2Guard"]

Dependency = Callable[..., Coroutine[Any, Any, AccessToken]]


class OAuth2Guard:
    """Route-level requirements for FastAPI, on top of ResourceGuard's authentication.

    ```python
    oauth2 = OAuth2Guard(authorization_url=f"{IDP}/authorize", token_url=f"{IDP}/token",
                         scopes={"items:read": "Read items"})

    @app.get("/items")
    async def items(token: AccessToken = Security(oauth2, scopes=["items:read"])): ...

    @app.post("/payments")
    async def pay(token: AccessToken = Security(oauth2.requires(acr_values=["mf"]),
                                                scopes=["payments"])): ...
    ```

    The OpenAPI document declares the authorization-code flow, so Swagger UI's "Authorize"
    button works; enable PKCE there with
    `FastAPI(swagger_ui_init_oauth={"clientId": ..., "usePkceWithAuthorizationCodeGrant": True})`.
    """

    def __init__(
        self,
        *,
        authorization_url: str,
        token_url: str,
        scopes: Mapping[str, str] | None = None,
        refresh_url: str | None = None,
        scheme_name: str = "OAuth2",
        description: str | None = None,
    ) -> None:
        self.scheme = OAuth2AuthorizationCodeBearer(
            authorizationUrl=authorization_url,
            tokenUrl=token_url,
            refreshUrl=refresh_url,
            scopes=dict(scopes or {}),
            scheme_name=scheme_name,
            description=description,
            auto_error=False,  # ResourceGuard answers with the proper RFC 6750 challenge
        )
        self._default = self.requires()
        # FastAPI reads a dependency's parameters from its signature: expose the bound one's,
        # so the OAuth2 scheme (and so the OpenAPI security declaration) is part of it.
        self.__signature__ = inspect.signature(self._default)

    async def __call__(self, **kwargs: Any) -> AccessToken:
        return await self._default(**kwargs)

    def requires(
        self,
        *,
        acr_values: str | Sequence[str] = (),
        max_age: int | None = None,
        claims: Mapping[str, Any] | None = None,
        predicate: Callable[[AccessToken], bool] | None = None,
        description: str | None = None,
    ) -> Dependency:
        """A dependency that also demands an authentication level, recency or claim values.

        The scopes come from `Security(..., scopes=[...])` along the dependency chain.
        """
        scheme = self.scheme
        # Validated now (bad configuration fails at import time, not on the first request).
        base = Requirement(
            acr_values=tuple(acr_values.split() if isinstance(acr_values, str) else acr_values),
            max_age=max_age,
            claims=dict(claims or {}),
            predicate=predicate,
            description=description,
        )
        by_scopes: dict[tuple[str, ...], Requirement] = {}

        async def dependency(
            request: Request,
            security_scopes: SecurityScopes,
            _credentials: str | None = Security(scheme),
        ) -> AccessToken:
            key = tuple(security_scopes.scopes)
            requirement = by_scopes.get(key)
            if requirement is None:
                requirement = replace(base, scopes=key)
                if len(by_scopes) < 256:  # one entry per distinct route scope set
                    by_scopes[key] = requirement
            if guard_of(request.scope) is None:
                # FastAPI would answer an uncaught MissingToken with a bare 500 and a traceback.
                log_unguarded("OAuth2Guard")
                raise HTTPException(500, "The resource is not configured to check access tokens")
            return check(request, requirement, owner="OAuth2Guard")

        return dependency

    def secure_openapi(self, app: FastAPI, *, public_paths: Sequence[str] | None = None) -> None:
        """Make `app`'s OpenAPI document show what ResourceGuard enforces.

        Every operation the guard protects gets this scheme in its `security` (so Swagger UI
        shows the lock), with the scopes of the guard's `requirements` table for its path when
        the route declares none itself; `@public` routes and `public_paths` get none.
        `public_paths` and `requirements` are read from the `ResourceGuard` in
        `app.user_middleware`; pass `public_paths=` when the guard wraps the app from outside.
        """
        policy = _guard_policy(app, public_paths)
        name = self.scheme.scheme_name
        original = app.openapi

        def openapi() -> dict[str, Any]:
            if app.openapi_schema is not None:
                return app.openapi_schema
            doc = original()
            schemes = doc.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes.setdefault(name, self.scheme.model.model_dump(by_alias=True, exclude_none=True))
            endpoints = {
                (r.path_format, m.lower()): r.endpoint
                for r in app.routes
                if isinstance(r, APIRoute)
                for m in r.methods or ()
            }
            for path, operations in doc.get("paths", {}).items():
                for method, operation in operations.items():
                    endpoint = endpoints.get((path, method))
                    if policy.is_public(path) or getattr(endpoint, "__rs_guard_public__", False):
                        operation["security"] = []
                    elif not operation.get("security"):
                        req = policy.requirement_for(path)
                        operation["security"] = [{name: list(req.scopes) if req else []}]
            app.openapi_schema = doc
            return doc

        app.openapi = openapi  # type: ignore[method-assign]


def _guard_policy(app: FastAPI, public_paths: Sequence[str] | None) -> PathPolicy:
    """The path policy of the ResourceGuard added to `app` as middleware (if any)."""
    from .middleware import ResourceGuard

    options: dict[str, Any] = {}
    for middleware in app.user_middleware:
        if getattr(middleware, "cls", None) is ResourceGuard:
            options = dict(middleware.kwargs)
    paths = options.get("public_paths", ()) if public_paths is None else public_paths
    return PathPolicy(options.get("requirements"), paths)


# -- the route-policy adapter (see rs_guard._routing) ------------------------------------------


def declared_requirement(route: Any) -> Requirement | None:
    """The requirement a FastAPI route declares through `Security(..., scopes=[...])`."""
    scopes = _dependant_scopes(getattr(route, "dependant", None), set())
    return Requirement(scopes=tuple(dict.fromkeys(scopes))) if scopes else None


def _dependant_scopes(dependant: Any, seen: set[int]) -> list[str]:
    # FastAPI keeps Security(..., scopes=[...]) on its dependency tree.
    if dependant is None or id(dependant) in seen:
        return []
    seen.add(id(dependant))
    scopes = list(getattr(dependant, "own_oauth_scopes", None) or [])
    for child in getattr(dependant, "dependencies", None) or []:
        scopes += _dependant_scopes(child, seen)
    return scopes
