"""The client-credentials grant (RFC 6749 §4.4): tokens for calls on the service's own behalf."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict, Unpack

import httpx

from ..errors import TokenRequestRefused
from ._token_endpoint import (
    EndpointOptions,
    IssuedToken,
    OAuthAnswer,
    TokenSource,
    as_tuple,
    scope_key,
)

GRANT_CLIENT_CREDENTIALS = "client_credentials"


class Request(TypedDict, total=False):
    """What a token is asked for: its `scope` and the `resource` (RFC 8707) it is meant for;
    each defaults to the `ClientCredentials`' own."""

    scope: str | Sequence[str] | None
    resource: str | Sequence[str] | None


class ClientCredentials(TokenSource):
    """Access tokens for calls made on the service's own behalf (client-credentials grant).

    Tokens are cached per (scope, resource) until shortly before they expire; concurrent
    callers share one request to the IdP. The keywords after `cache_size` say how to reach
    the token endpoint: `server=` (an `AuthorizationServer` shared with the guard), or
    `issuer=` / `metadata=` / `token_endpoint=` with `http_client=`; and `auth_method=`,
    `timeout=` (the whole request), `refresh_margin=`, `observer=`, `clock=` (see
    `EndpointOptions` for the defaults).
    """

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        scope: str | Sequence[str] | None = None,
        resource: str | Sequence[str] | None = None,
        cache_size: int = 64,
        **endpoint: Unpack[EndpointOptions],
    ) -> None:
        super().__init__(
            client_id=client_id, client_secret=client_secret, cache_size=cache_size, **endpoint
        )
        self.scope = scope
        self.resource = resource

    async def token(self, *, deadline: float | None = None, **request: Unpack[Request]) -> str:
        """A usable access token for `scope` / `resource` (defaults: the constructor's)."""
        return (await self.issued(deadline=deadline, **request)).access_token

    async def issued(
        self,
        *,
        scope: str | Sequence[str] | None = None,
        resource: str | Sequence[str] | None = None,
        deadline: float | None = None,
    ) -> IssuedToken:
        """Like `token()`, with the expiry and granted scope.

        `deadline` (an event-loop time) bounds a request to the IdP that this call starts, for
        a caller with a time budget of its own; by default it is `timeout` seconds from now.
        """
        resources = as_tuple(self.resource if resource is None else resource)
        scopes = scope_key(self.scope if scope is None else scope)

        async def fetch() -> IssuedToken:
            form: dict[str, str | Sequence[str]] = {"grant_type": GRANT_CLIENT_CREDENTIALS}
            if scopes:
                form["scope"] = " ".join(scopes)
            if resources:
                form["resource"] = list(resources)
            try:
                return await self.endpoint.request(form, deadline=deadline)
            except OAuthAnswer as exc:
                raise TokenRequestRefused(exc.error, reason=f"token_{exc.error}") from None

        return await self._cached((scopes, resources), fetch)

    def auth(self, **request: Unpack[Request]) -> httpx.Auth:
        """An httpx `auth=` that sends this service's own token (fresh one after a 401)."""

        async def get() -> str:
            return await self.token(**request)

        return self._bearer(get)
