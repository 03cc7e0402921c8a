"""POST /introspect (RFC 7662): token state for an authenticated client entitled to it.

RFC 7662 §4 leaves to the server which callers may learn about which tokens, and lets it
answer `{"active": false}` to the others so that the endpoint cannot be used to scan for
tokens. The rule here (docs/explanation/choices.md): a caller learns about an access token
when it is the client the token was issued to, when the token's `aud` names it (its client_id
or a resource the operator registered it to serve), or when the operator made it an
introspector of every token; about a refresh token only when it is the client holding it.
Every other caller gets the answer an unknown token gets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from .._errors import OAuthError
from ._client_auth import authenticate_client
from ._wire import json_ok, read_form, single

if TYPE_CHECKING:
    from .._clients import Client
    from .._records import AccessTokenRecord
    from ._context import IntrospectionContext

INACTIVE: dict[str, Any] = {"active": False}


def _may_learn(caller: Client, record: AccessTokenRecord) -> bool:
    """RFC 7662 §4: whether `caller` is entitled to what an access token says."""
    return (
        caller.introspects_any
        or record.client_id == caller.client_id
        or caller.is_audience(record.claims.get("aud"))
    )


def introspection(
    ctx: IntrospectionContext, token: str, caller: Client | None = None
) -> dict[str, Any]:
    """What /introspect answers `caller` about `token`; `caller=None` is the operator's view
    from Python (`IdP.introspect`), which sees every token."""
    rec = ctx.tokens.access_record(token)
    if rec is not None:
        if caller is not None and not _may_learn(caller, rec):
            return dict(INACTIVE)
        return {"active": True, "token_type": "Bearer", **rec.claims}
    refresh = ctx.tokens.active_refresh(token)
    if refresh is None:
        return dict(INACTIVE)
    grant = refresh.grant
    # A refresh token is only ever sent to the authorization server by the client holding
    # it (RFC 6749 §1.5): no resource server or introspector has a reason to ask about it.
    if caller is not None and caller.client_id != grant.client_id:
        return dict(INACTIVE)
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
    """Token state for an authenticated (confidential) client entitled to it; unknown tokens
    and tokens the caller may not learn about are inactive alike."""
    form = await read_form(request)
    caller, _ = await authenticate_client(ctx, request, form, allow_public=False)
    token = single(form, "token")
    if token is None:
        raise OAuthError("invalid_request", "token is required")
    return json_ok(introspection(ctx, token, caller))
