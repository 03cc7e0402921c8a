"""RFC 8693 token exchange: a token for a downstream resource, acting for the caller's user."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypedDict, Unpack

import httpx

from ..access_token import AccessToken
from ..errors import (
    ConfigurationError,
    InsufficientScope,
    InvalidToken,
    RSGuardError,
    TokenRequestRefused,
)
from ..observe import emit
from ._token_endpoint import IssuedToken, OAuthAnswer, TokenSource, as_tuple, scope_key

GRANT_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
TOKEN_TYPE_ACCESS = "urn:ietf:params:oauth:token-type:access_token"


class Downstream(TypedDict, total=False):
    """What an exchanged token is for (RFC 8693 §2.1): the downstream `resource` and/or
    `audience` (one or several), and the `scope` asked for (default: what the IdP grants)."""

    resource: str | Sequence[str] | None
    audience: str | Sequence[str] | None
    scope: str | Sequence[str] | None


class TokenExchanger(TokenSource):
    """RFC 8693 token exchange: a token for a downstream resource from the one this service got.

    The received token goes only to the IdP (as `subject_token`); the downstream service sees
    a new token whose `client_id` is this service and whose `sub` is this service's PPID for
    the user. Results are cached per (received token, audience, resource, scope) until shortly
    before either token expires. Constructor arguments as `ClientCredentials` (without `scope`
    and `resource`, which are per exchange), `cache_size` 10000 by default.
    """

    async def exchange(self, access: AccessToken, **downstream: Unpack[Downstream]) -> str:
        """A token for `resource` / `audience` (and `scope`) acting for the user of `access`.

        Raises InvalidToken when the IdP no longer accepts the received token (revoked),
        InsufficientScope when it does not cover `scope`, TokenRequestRefused when this
        service may not exchange, TokenServiceUnavailable when the IdP cannot answer.
        """
        return (await self.issued(access, **downstream)).access_token

    async def issued(
        self,
        access: AccessToken,
        *,
        resource: str | Sequence[str] | None = None,
        audience: str | Sequence[str] | None = None,
        scope: str | Sequence[str] | None = None,
    ) -> IssuedToken:
        """Like `exchange()`, with the expiry and granted scope."""
        subject_token = access.token
        if not subject_token:
            raise ConfigurationError("the AccessToken carries no raw token to exchange")
        resources = as_tuple(resource)
        audiences = as_tuple(audience)
        if not resources and not audiences:
            raise ConfigurationError("token exchange needs a resource or an audience")
        scopes = scope_key(scope)
        # Keyed by a hash: the cache never holds the received token itself.
        digest = hashlib.sha256(subject_token.encode("utf-8")).digest()
        subject_exp = access.expires_at

        async def fetch() -> IssuedToken:
            form: dict[str, str | Sequence[str]] = {
                "grant_type": GRANT_TOKEN_EXCHANGE,
                "subject_token": subject_token,
                "subject_token_type": TOKEN_TYPE_ACCESS,
                "requested_token_type": TOKEN_TYPE_ACCESS,
            }
            if resources:
                form["resource"] = list(resources)
            if audiences:
                form["audience"] = list(audiences)
            if scopes:
                form["scope"] = " ".join(scopes)
            try:
                issued = await self.endpoint.request(form)
            except OAuthAnswer as exc:
                raise _exchange_error(exc, scopes) from None
            if subject_exp is not None and subject_exp < issued.usable_until:
                # Nothing derived from the received token should outlive it in our cache.
                issued = IssuedToken(issued.access_token, subject_exp, issued.scope)
            emit(self._observer, "token_exchanged", client_id=self.endpoint.client_id)
            return issued

        return await self._cached((digest, resources, audiences, scopes), fetch)

    def auth(self, access: AccessToken, **downstream: Unpack[Downstream]) -> httpx.Auth:
        """An httpx `auth=` that sends the exchanged token for `access` (re-exchanged on 401)."""

        async def get() -> str:
            return await self.exchange(access, **downstream)

        return self._bearer(get)


def _exchange_error(exc: OAuthAnswer, scopes: tuple[str, ...]) -> RSGuardError:
    if exc.error in ("invalid_grant", "invalid_request"):
        # The IdP no longer accepts the token we received (revoked, expired, deleted client):
        # the caller must get a new one, exactly as if we had rejected it ourselves. RFC 8693
        # §2.2.2 names this invalid_request; many servers say invalid_grant. One reason code.
        return InvalidToken(reason="exchange_invalid_grant")
    if exc.error == "invalid_scope":
        return InsufficientScope(scopes, reason="exchange_invalid_scope")
    return TokenRequestRefused(exc.error, reason=f"exchange_{exc.error}")
