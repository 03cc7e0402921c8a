"""POST /introspect (RFC 7662): token state for an authenticated client."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from .._errors import OAuthError
from ._client_auth import authenticate_client
from ._wire import json_ok, read_form, single

if TYPE_CHECKING:
    from ._context import IntrospectionContext


def introspection(ctx: IntrospectionContext, token: str) -> dict[str, Any]:
    """What /introspect answers about `token` (also `IdP.introspect` from Python)."""
    rec = ctx.tokens.access_record(token)
    if rec is not None:
        return {"active": True, "token_type": "Bearer", **rec.claims}
    refresh = ctx.tokens.active_refresh(token)
    if refresh is None:
        return {"active": False}
    grant = refresh.grant
    out: dict[str, Any] = {
        "active": True,
        "token_type": "refresh_token",
        "client_id": grant.client_id,
        "scope": " ".join(refresh.scope),
        "iss": ctx.settings.issuer,
        "iat": refresh.issued_at,
        "exp": refresh.expires_at,
    }
    if grant.user_id is not None:
        out["sub"] = ctx.subjects.subject_for(grant.user_id, grant.client_id)
    return out


async def introspect(ctx: IntrospectionContext, request: Request) -> Response:
    """Token state for an authenticated (confidential) client; unknown tokens are inactive."""
    form = await read_form(request)
    await authenticate_client(ctx, request, form, allow_public=False)
    token = single(form, "token")
    if token is None:
        raise OAuthError("invalid_request", "token is required")
    return json_ok(introspection(ctx, token))
