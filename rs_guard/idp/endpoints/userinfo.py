"""GET/POST /userinfo (OIDC Core §5.3), honouring scopes and the `claims` request.

The UserInfo endpoint is a protected resource of the IdP itself (OIDC Core §5.3), so it
takes only access tokens meant for it: a user's token with scope `openid` that was minted for
the IdP's default audience (no resource indicator named), or whose `aud` names the issuer or
this endpoint. A token a client asked for another resource (RFC 8707 `resource`, token
exchange) is that resource's alone and is refused as `invalid_token` (RFC 6750 §3.1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..._scopes import split_scope
from .._errors import NO_STORE
from .._resources import audiences, canonical
from .._users import SCOPE_CLAIMS
from ._wire import bearer

if TYPE_CHECKING:
    from .._records import AccessTokenRecord
    from ._context import UserinfoContext


def _challenge(error: str, description: str, status: int) -> Response:
    value = bearer(realm="userinfo", error=error, error_description=description)
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"WWW-Authenticate": value, **NO_STORE},
    )


def _for_userinfo(ctx: UserinfoContext, record: AccessTokenRecord) -> bool:
    """Whether an active access token's audience includes this endpoint (see the module)."""
    if not record.resource_bound:
        return True  # minted for the default audience: what a plain OIDC login receives
    # Compared as RFC 8707 resources (scheme and host case-insensitive), as `resource=` is
    # written into `aud`; a trailing slash names the same endpoint.
    mine = {canonical(u.rstrip("/")) for u in (ctx.settings.issuer, ctx.urls.url("userinfo"))}
    return any(canonical(n.rstrip("/")) in mine for n in audiences(record.claims.get("aud")))


async def userinfo(ctx: UserinfoContext, request: Request) -> Response:
    """Claims about the user behind a bearer access token carrying scope openid."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return JSONResponse(
            {"error": "invalid_request"},
            status_code=401,
            headers={"WWW-Authenticate": bearer(realm="userinfo"), **NO_STORE},
        )
    record = ctx.tokens.access_record(token.strip())
    if record is None or record.user_id is None:
        return _challenge("invalid_token", "The access token is not valid", 401)
    if not _for_userinfo(ctx, record):
        return _challenge("invalid_token", "The access token is not meant for userinfo", 401)
    scope = split_scope(str(record.claims.get("scope", "")))
    if "openid" not in scope:
        return _challenge("insufficient_scope", "The openid scope is required", 403)
    user = ctx.users.get(record.user_id)
    profile = user.claims if user is not None else {}
    body: dict[str, Any] = {"sub": record.claims.get("sub")}
    for s in scope:
        for name in SCOPE_CLAIMS.get(s, ()):
            if name in profile:
                body[name] = profile[name]
    grant = ctx.tokens.grant(record.grant_id)
    if grant is not None:
        for name in grant.claims_request.userinfo:
            if name in profile:
                body[name] = profile[name]
            elif name == "acr" and grant.acr is not None:
                body["acr"] = grant.acr
            elif name == "auth_time" and grant.auth_time is not None:
                body["auth_time"] = grant.auth_time
    return JSONResponse(body, headers=NO_STORE)
