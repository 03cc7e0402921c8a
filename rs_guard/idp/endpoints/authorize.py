"""GET/POST /authorize: authorization code flow with PKCE, login form and scripted login."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..._scopes import split_scope
from .._claims import ClaimsRequest, parse_claims
from .._dpop import dpop_jkt_param
from .._errors import OAuthError
from .._records import AuthorizationCode
from .._scope_policy import refused_scopes
from .._sessions import SESSION_COOKIE
from .._users import ACR_AMR
from .._util import random_token
from ._pages import error_page, login_page
from ._wire import parse_params, read_form, single

if TYPE_CHECKING:
    from .._clients import Client
    from .._sessions import Session
    from .._settings import Settings
    from ._context import AuthorizeContext

_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")


class PageError(Exception):
    """An authorization error that must not be redirected (bad client_id / redirect_uri)."""


@dataclass
class AuthRequest:
    """A validated authorization request."""

    client: Client
    redirect_uri: str
    redirect_uri_sent: bool
    state: str | None
    scope: list[str]
    nonce: str | None
    code_challenge: str | None
    resources: list[str]
    claims: ClaimsRequest
    acr_values: list[str]
    acr_essential: bool
    max_age: int | None
    prompt: set[str]
    login_hint: str | None
    dpop_jkt: str | None = None  # RFC 9449 §10


def _redirect(uri: str, params: dict[str, str], status: int) -> RedirectResponse:
    sep = "&" if "?" in uri else "?"
    return RedirectResponse(
        uri + sep + urlencode(params), status_code=status, headers={"Cache-Control": "no-store"}
    )


async def authorize(ctx: AuthorizeContext, request: Request) -> Response:
    """The authorization endpoint (RFC 6749 §4.1, OIDC Core §3.1.2, RFC 9207)."""
    status = 303 if request.method == "POST" else 302
    try:
        if request.method == "POST":
            params = await read_form(request)
            if "form_id" in params:
                return await _login_submit(ctx, params)
        else:
            params = parse_params(request.query_params.multi_items())
        client, redirect_uri, sent = await _front(ctx, params)
    except (OAuthError, PageError) as exc:
        text = exc.description if isinstance(exc, OAuthError) else str(exc)
        return error_page(text)
    state = single(params, "state")
    try:
        req = _validate(ctx, client, redirect_uri, sent, params)
        return await _continue(ctx, req, params, status, request.cookies.get(SESSION_COOKIE))
    except OAuthError as exc:
        return _error_redirect(ctx, redirect_uri, state, exc, status)


def set_session_cookie(settings: Settings, response: Response, handle: str | None) -> None:
    """The browser's session cookie: HttpOnly (no script reads it), SameSite=Lax (sent on the
    top-level navigation an RP starts, not on cross-site subrequests), host-only and under the
    issuer's path (bound to this issuer), Secure on an https issuer. None deletes it."""
    issuer = settings.issuer
    path = settings.path_prefix + "/"
    secure = issuer.startswith("https://")
    if handle is None:
        response.delete_cookie(
            SESSION_COOKIE, path=path, secure=secure, httponly=True, samesite="lax"
        )
        return
    response.set_cookie(
        SESSION_COOKIE, handle, path=path, secure=secure, httponly=True, samesite="lax"
    )


def _error_redirect(
    ctx: AuthorizeContext, redirect_uri: str, state: str | None, exc: OAuthError, status: int
) -> RedirectResponse:
    out = {"error": exc.error}
    if exc.description:
        out["error_description"] = exc.description
    if state is not None:
        out["state"] = state
    out["iss"] = ctx.settings.issuer
    return _redirect(redirect_uri, out, status)


async def _front(ctx: AuthorizeContext, params: dict[str, list[str]]) -> tuple[Client, str, bool]:
    client_id = single(params, "client_id")
    if client_id is None:
        raise PageError("The request has no client_id.")
    client = await ctx.clients.resolve(client_id)
    if client is None:
        raise PageError("The client_id is not known to this authorization server.")
    redirect_uri = single(params, "redirect_uri")
    if redirect_uri is None:
        if len(client.redirect_uris) != 1:
            raise PageError("redirect_uri is required for this client.")
        return client, client.redirect_uris[0], False
    if not client.redirect_uri_matches(redirect_uri):
        raise PageError("The redirect_uri is not registered for this client.")
    return client, redirect_uri, True


def _validate(
    ctx: AuthorizeContext,
    client: Client,
    redirect_uri: str,
    sent: bool,
    params: dict[str, list[str]],
) -> AuthRequest:
    if "request" in params:
        raise OAuthError("request_not_supported", "request objects are not supported")
    if "request_uri" in params:
        raise OAuthError("request_uri_not_supported", "request_uri is not supported")
    response_type = single(params, "response_type")
    if response_type is None:
        raise OAuthError("invalid_request", "response_type is required")
    if response_type != "code":
        raise OAuthError("unsupported_response_type", "only response_type=code is supported")
    if "code" not in client.response_types:
        raise OAuthError("unauthorized_client", "client is not registered for response_type code")
    if single(params, "response_mode") not in (None, "query"):
        raise OAuthError("invalid_request", "only response_mode=query is supported")

    allowed = client.allowed_scopes()
    raw_scope = single(params, "scope")
    # The registered scope is what a request without `scope` gets; what a request may name is
    # the scope policy's (`_scope_policy`): a cage for operator clients, a ceiling for DCR.
    scope = list(split_scope(raw_scope)) if raw_scope is not None else sorted(allowed or ())
    extra = refused_scopes(ctx.settings, client, scope)
    if extra:
        raise OAuthError("invalid_scope", f"scope not allowed for this client: {' '.join(extra)}")

    challenge = single(params, "code_challenge")
    method = single(params, "code_challenge_method")
    if method is not None and method != "S256":
        raise OAuthError("invalid_request", "code_challenge_method must be S256")
    if challenge is not None:
        if method is None:
            # RFC 7636 §4.3: no method means "plain", which this server refuses.
            raise OAuthError("invalid_request", "code_challenge_method must be S256")
        if not _CHALLENGE.fullmatch(challenge):
            raise OAuthError("invalid_request", "code_challenge is malformed")
    elif client.is_public:
        raise OAuthError("invalid_request", "PKCE (code_challenge, S256) is required")

    resources = ctx.settings.validate_resources(params.get("resource", []))
    claims = parse_claims(single(params, "claims"))

    acr_values = list(split_scope(single(params, "acr_values")))
    claim_acr, essential = claims.acr_values()
    for value in claim_acr:
        if value not in acr_values:
            acr_values.append(value)
    if not acr_values and client.default_acr_values:
        acr_values = list(client.default_acr_values)

    raw_max_age = single(params, "max_age")
    max_age = client.default_max_age
    if raw_max_age is not None:
        # ASCII digits only: isdigit() also accepts "²", which int() then refuses.
        if not (raw_max_age.isascii() and raw_max_age.isdigit()) or len(raw_max_age) > 10:
            raise OAuthError("invalid_request", "max_age must be a non-negative integer")
        max_age = int(raw_max_age)

    prompt = set(split_scope(single(params, "prompt")))
    unknown = prompt - {"none", "login", "consent", "select_account"}
    if unknown:
        raise OAuthError("invalid_request", f"unsupported prompt value {sorted(unknown)[0]!r}")
    if "none" in prompt and len(prompt) > 1:
        raise OAuthError("invalid_request", "prompt=none cannot be combined with other values")

    return AuthRequest(
        client=client,
        redirect_uri=redirect_uri,
        redirect_uri_sent=sent,
        state=single(params, "state"),
        scope=scope,
        nonce=single(params, "nonce"),
        code_challenge=challenge,
        resources=resources,
        claims=claims,
        acr_values=acr_values,
        acr_essential=essential,
        max_age=max_age,
        prompt=prompt,
        login_hint=single(params, "login_hint"),
        dpop_jkt=dpop_jkt_param(single(params, "dpop_jkt")),
    )


async def _continue(
    ctx: AuthorizeContext,
    req: AuthRequest,
    params: dict[str, list[str]],
    status: int,
    handle: str | None,
) -> Response:
    now = ctx.settings.now()
    sessions = ctx.sessions
    session, script = sessions.current(handle), sessions.login_script
    need_login = "login" in req.prompt or session is None
    if session is not None and req.max_age is not None and now - session.auth_time > req.max_age:
        need_login = True
    if session is not None and req.acr_values and session.acr not in req.acr_values:
        # Step up only when the scripted method (or, without a script, the user) can do better.
        need_login = need_login or script is None or script.acr in req.acr_values
    if script is None and session is not None and req.login_hint not in (None, session.user_id):
        need_login = True
    if script is None and "consent" in req.prompt:
        need_login = True
    if need_login:
        if "none" in req.prompt:
            raise OAuthError("login_required", "the user must authenticate")
        if script is None:
            return _login_form(ctx, req, params, session=session)
        session = sessions.sign_in(script.user_id, script.acr, script.amr)
    assert session is not None
    if script is None and not sessions.approved(session.user_id, req.client.client_id):
        if "none" in req.prompt:
            raise OAuthError("consent_required", "the user has not approved this client")
        return _login_form(ctx, req, params, session=session)
    if script is not None and not script.consent:
        if "none" in req.prompt:
            raise OAuthError("consent_required", "the user has not approved this client")
        raise OAuthError("access_denied", "the user refused the authorization request")
    return _finish(ctx, req, session, status)


def _finish(ctx: AuthorizeContext, req: AuthRequest, session: Session, status: int) -> Response:
    none = "none" in req.prompt
    if req.acr_essential and req.acr_values and session.acr not in req.acr_values:
        if none:
            raise OAuthError("interaction_required", "a stronger authentication is required")
        raise OAuthError(
            "unmet_authentication_requirements",
            f"the user did not authenticate with {' or '.join(req.acr_values)}",
        )
    if req.claims.wants_verified_phone():
        user = ctx.users.user(session.user_id)
        if user.claims.get("phone_number_verified") is not True:
            if none:
                raise OAuthError("interaction_required", "phone verification is required")
            if not (user.phone_verification and user.claims.get("phone_number")):
                raise OAuthError("access_denied", "the user could not verify a phone number")
            user.claims["phone_number_verified"] = True
    code = random_token(32)
    expires_at = ctx.settings.now() + ctx.settings.code_lifetime
    ctx.dpop.bind_code(code, req.dpop_jkt, expires_at)  # first: it may refuse
    grant = ctx.tokens.new_grant(
        req.client.client_id,
        session.user_id,
        req.scope,
        req.resources,
        acr=session.acr,
        amr=list(session.amr),
        auth_time=session.auth_time,
        nonce=req.nonce,
        claims_request=req.claims,
    )
    session.grants.append(grant.grant_id)
    ctx.tokens.store_code(
        code,
        AuthorizationCode(
            grant=grant,
            redirect_uri=req.redirect_uri if req.redirect_uri_sent else None,
            code_challenge=req.code_challenge,
            expires_at=expires_at,
        ),
    )
    out = {"code": code}
    if req.state is not None:
        out["state"] = req.state
    out["iss"] = ctx.settings.issuer
    return _redirect(req.redirect_uri, out, status)


def _login_form(
    ctx: AuthorizeContext,
    req: AuthRequest,
    params: dict[str, list[str]],
    error: str | None = None,
    *,
    session: Session | None = None,
) -> HTMLResponse:
    # The original request stays server-side; the form only carries an opaque handle.
    form_id = ctx.sessions.park(params)
    return login_page(
        action=f"{ctx.settings.path_prefix}/authorize",
        form_id=form_id,
        client_name=req.client.client_name or req.client.client_id,
        scopes=req.scope,
        user=req.login_hint or (session.user_id if session else ""),
        acr=req.acr_values[0] if req.acr_values else "pwd",
        phone=req.claims.wants_verified_phone(),
        error=error,
    )


async def _login_submit(ctx: AuthorizeContext, form: dict[str, list[str]]) -> Response:
    params = ctx.sessions.claim(single(form, "form_id") or "")
    if params is None:
        return error_page("The sign-in form has expired; start again from the application.")
    try:
        client, redirect_uri, sent = await _front(ctx, params)
    except (OAuthError, PageError) as exc:
        return error_page(exc.description if isinstance(exc, OAuthError) else str(exc))
    state = single(params, "state")
    try:
        req = _validate(ctx, client, redirect_uri, sent, params)
        if single(form, "decision") != "approve":
            raise OAuthError("access_denied", "the user denied the request")
        user_id = (single(form, "login_user") or "").strip()
        acr = single(form, "login_acr") or "pwd"
        if not user_id or acr not in ACR_AMR or len(user_id) > 200:
            return _login_form(ctx, req, params, "Enter a user name and pick a method.")
        user = ctx.users.user(user_id)
        phone = (single(form, "phone_number") or "").strip()
        if phone:
            user.claims["phone_number"] = phone
        if single(form, "phone_ok") == "1" and user.claims.get("phone_number"):
            user.claims["phone_number_verified"] = True
        handle, session = ctx.sessions.sign_in_browser(user_id, acr, ACR_AMR[acr])
        ctx.sessions.approve(user_id, client.client_id)
        response = _finish(ctx, req, session, 303)
        set_session_cookie(ctx.settings, response, handle)
        return response
    except OAuthError as exc:
        return _error_redirect(ctx, redirect_uri, state, exc, 303)
