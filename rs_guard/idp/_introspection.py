"""POST /introspect (RFC 7662) and POST /revoke (RFC 7009)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from ._client_auth import authenticate_client
from ._util import NO_STORE, OAuthError, json_ok, read_form, single, token_hash

if TYPE_CHECKING:
    from .app import IdP


async def introspect(idp: IdP, request: Request) -> Response:
    """Token state for an authenticated (confidential) client; unknown tokens are inactive."""
    form = await read_form(request)
    await authenticate_client(idp, request, form, allow_public=False)
    token = single(form, "token")
    if token is None:
        raise OAuthError("invalid_request", "token is required")
    return json_ok(idp.introspect(token))


async def revoke(idp: IdP, request: Request) -> Response:
    """Revoke a token of the calling client; 200 whatever the token (RFC 7009 §2.2)."""
    form = await read_form(request)
    client, _ = await authenticate_client(idp, request, form, allow_public=True)
    token = single(form, "token")
    if token is None:
        raise OAuthError("invalid_request", "token is required")
    key = token_hash(token)
    access = idp._access.get(key)
    if access is not None and access.client_id == client.client_id:
        access.revoked = True
    refresh = idp._refresh.get(key)
    if refresh is not None and refresh.grant.client_id == client.client_id:
        # Revoking a refresh token ends the grant and its access tokens (RFC 7009 §2.1).
        idp.revoke_grant(refresh.grant.grant_id)
    return Response(status_code=200, headers=NO_STORE)
