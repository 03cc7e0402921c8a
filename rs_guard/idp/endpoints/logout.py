"""GET/POST /logout: OpenID Connect RP-Initiated Logout 1.0 (the `end_session_endpoint`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .._errors import OAuthError
from .._sessions import SESSION_COOKIE
from ._pages import error_page, page
from ._wire import parse_params, read_form, single
from .authorize import set_session_cookie

if TYPE_CHECKING:
    from .._clients import Client
    from ._context import LogoutContext


async def end_session(ctx: LogoutContext, request: Request) -> Response:
    """End the browser's session and, when the RP named a registered
    `post_logout_redirect_uri`, send the browser back there with `state` (§2, §3)."""
    if request.method == "POST":
        params = await read_form(request)
    else:
        params = parse_params(request.query_params.multi_items())
    try:
        client = _client(ctx, params)
        target = single(params, "post_logout_redirect_uri")
        if target is not None:
            # §3: only a URI registered (post_logout_redirect_uris) for the identified client.
            registered = client.metadata.get("post_logout_redirect_uris") if client else None
            if not isinstance(registered, list) or target not in registered:
                raise OAuthError(
                    "invalid_request", "post_logout_redirect_uri is not registered for the client"
                )
    except OAuthError as exc:
        return error_page(exc.description)
    session = ctx.sessions.end(request.cookies.get(SESSION_COOKIE))
    if session is not None and ctx.settings.logout_revokes_grants:
        for grant_id in session.grants:
            ctx.tokens.revoke_grant(grant_id)
    if target is not None:
        state = single(params, "state")
        query = urlencode({"state": state}) if state is not None else ""
        location = target + ("&" if "?" in target else "?") + query if query else target
        response: Response = RedirectResponse(
            location, status_code=303 if request.method == "POST" else 302
        )
    else:
        response = page("Signed out", "<p>You are signed out.</p>")
    set_session_cookie(ctx.settings, response, None)
    response.headers["Cache-Control"] = "no-store"
    return response


def _client(ctx: LogoutContext, params: dict[str, list[str]]) -> Client | None:
    """The RP: from `id_token_hint` (an ID token this IdP signed; expired is fine, §2) and/or
    `client_id`, which must agree."""
    client_id = single(params, "client_id")
    hint = single(params, "id_token_hint")
    if hint is not None:
        claims: dict[str, Any] | None = ctx.keys.verify(hint)
        aud = claims.get("aud") if claims else None
        if claims is None or claims.get("iss") != ctx.settings.issuer or not aud:
            raise OAuthError("invalid_request", "id_token_hint is not an ID token of this issuer")
        audiences = [aud] if isinstance(aud, str) else aud
        if client_id is None:
            client_id = claims.get("azp") or (audiences[0] if len(audiences) == 1 else None)
        if client_id not in audiences:
            raise OAuthError("invalid_request", "client_id does not match id_token_hint")
    if client_id is None:
        return None
    client = ctx.clients.get(client_id)
    if client is None:
        raise OAuthError("invalid_request", "the client is not known")
    return client
