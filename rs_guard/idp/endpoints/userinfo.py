"""GET/POST /userinfo (OIDC Core §5.3), honouring scopes and the `claims` request."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..._scopes import split_scope
from .._errors import NO_STORE
from .._users import SCOPE_CLAIMS
from ._wire import bearer

if TYPE_CHECKING:
    from ._context import UserinfoContext


def _challenge(error: str, description: str, status: int) -> Response:
    value = bearer(realm="userinfo", error=error, error_description=description)
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"WWW-Authenticate": value, **NO_STORE},
    )


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
