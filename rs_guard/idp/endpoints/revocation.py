"""POST /revoke (RFC 7009): a client revokes one of its tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from .._errors import NO_STORE, OAuthError
from ._client_auth import authenticate_client
from ._wire import read_form, single

if TYPE_CHECKING:
    from ._context import ClientAuthContext


async def revoke(ctx: ClientAuthContext, request: Request) -> Response:
    """Revoke a token of the calling client; 200 whatever the token (RFC 7009 §2.2)."""
    form = await read_form(request)
    client, _ = await authenticate_client(ctx, request, form, allow_public=True)
    token = single(form, "token")
    if token is None:
        raise OAuthError("invalid_request", "token is required")
    # Revoking a refresh token ends the grant and its access tokens (RFC 7009 §2.1).
    ctx.tokens.revoke(token, client_id=client.client_id)
    return Response(status_code=200, headers=NO_STORE)
