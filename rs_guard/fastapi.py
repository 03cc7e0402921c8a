"""FastAPI integration: a `Security()` dependency with scopes, declared as OAuth2 in OpenAPI."""

import inspect
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import replace
from typing import Any

try:
    from fastapi import Request, Security
    from fastapi.security import OAuth2AuthorizationCodeBearer, SecurityScopes
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
    raise ModuleNotFoundError(
        "rs_guard.fastapi needs FastAPI: pip install 'rs_guard[fastapi]'", name=exc.name
    ) from exc

from .access_token import AccessToken
from .decorators import check
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
            return check(request, requirement)

        return dependency


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
