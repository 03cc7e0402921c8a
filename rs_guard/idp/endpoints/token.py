"""POST /token: authorization_code, refresh_token, client_credentials and RFC 8693 exchange."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from ..._scopes import split_scope
from .._client_metadata import (
    GRANT_CLIENT_CREDENTIALS,
    GRANT_CODE,
    GRANT_REFRESH,
    GRANT_TOKEN_EXCHANGE,
)
from .._dpop import binding
from .._errors import OAuthError
from .._exchange_policy import (
    audiences_of,
    entitled,
    may_use,
    names_party,
    refused_targets,
)
from .._resources import allowed_spelling, canonical
from .._scope_policy import refused_scopes
from ._client_auth import authenticate_client
from ._wire import json_ok, read_form, single

if TYPE_CHECKING:
    from .._clients import Client
    from ._context import TokenContext

TT_ACCESS = "urn:ietf:params:oauth:token-type:access_token"
TT_JWT = "urn:ietf:params:oauth:token-type:jwt"
Form = dict[str, list[str]]
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


async def token(ctx: TokenContext, request: Request) -> Response:
    """Dispatch on grant_type after authenticating the client."""
    form = await read_form(request)
    grant_type = single(form, "grant_type")
    if grant_type is None:
        raise OAuthError("invalid_request", "grant_type is required")
    handlers = {
        GRANT_CODE: _authorization_code,
        GRANT_REFRESH: _refresh_token,
        GRANT_CLIENT_CREDENTIALS: _client_credentials,
        GRANT_TOKEN_EXCHANGE: _token_exchange,
    }
    handler = handlers.get(grant_type)
    if handler is None:
        raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
    client, _basic = await authenticate_client(
        ctx, request, form, allow_public=grant_type in (GRANT_CODE, GRANT_REFRESH)
    )
    if not may_use(ctx.settings, client, grant_type):
        # RFC 6749 §5.2; a self-registered client is also held to the operator's grant types.
        raise OAuthError("unauthorized_client", f"client may not use grant_type {grant_type}")
    jkt = await ctx.dpop.bind_request(request, form, grant_type)  # RFC 9449 §5, §10
    with binding(jkt):
        body = await handler(ctx, client, form)
    ctx.dpop.finish_response(client.is_public, body, jkt)
    return json_ok(body)


def _exchange_audiences(values: list[str], allowlist: Sequence[str] | None) -> list[str]:
    """RFC 8693 `audience` values as the token's `aud` will carry them: a URI written as an
    RFC 8707 resource is (scheme and host lower-cased), a logical name as sent; with an
    allow-list, every value must be on it (every way of naming a target, §2.1)."""
    out: list[str] = []
    for value in values:
        aud = canonical(value) if allowlist is None else allowed_spelling(value, allowlist)
        if aud not in out:
            out.append(aud)
    return out


def _required(form: Form, name: str) -> str:
    value = single(form, name)
    if value is None:
        raise OAuthError("invalid_request", f"{name} is required")
    return value


def _requested_scope(form: Form, allowed: set[str] | None) -> list[str] | None:
    raw = single(form, "scope")
    if raw is None:
        return None
    scope = list(split_scope(raw))
    if allowed is not None and not set(scope) <= allowed:
        raise OAuthError("invalid_scope", "requested scope exceeds what was granted")
    return scope


async def _client_credentials(ctx: TokenContext, client: Client, form: Form) -> dict[str, Any]:
    allowed = client.allowed_scopes()
    raw = single(form, "scope")
    scope = list(split_scope(raw)) if raw is not None else sorted(allowed or ())
    if refused_scopes(ctx.settings, client, scope):
        raise OAuthError("invalid_scope", "requested scope exceeds what the client may obtain")
    resources = ctx.settings.validate_resources(form.get("resource", []))
    access = ctx.minter.access_token(
        None, client_id=client.client_id, audience=resources or None, scope=scope
    )
    return {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ctx.settings.access_token_lifetime,
        "scope": " ".join(scope),
    }


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


async def _authorization_code(ctx: TokenContext, client: Client, form: Form) -> dict[str, Any]:
    record = ctx.tokens.find_code(_required(form, "code"))
    if record is None or record.grant.client_id != client.client_id:
        raise OAuthError("invalid_grant", "unknown authorization code")
    if record.used:
        # RFC 6749 §4.1.2: a replayed code revokes what was issued from it.
        ctx.tokens.revoke_grant(record.grant.grant_id)
        raise OAuthError("invalid_grant", "authorization code already used")
    record.used = True
    if record.expires_at <= ctx.settings.now():
        raise OAuthError("invalid_grant", "authorization code expired")
    redirect_uri = single(form, "redirect_uri")
    if record.redirect_uri is not None and redirect_uri != record.redirect_uri:
        raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
    verifier = single(form, "code_verifier")
    if record.code_challenge is not None:
        # fullmatch: `$` in a `match` would also accept a trailing newline (RFC 7636 §4.1).
        if verifier is None or not _VERIFIER.fullmatch(verifier):
            raise OAuthError("invalid_grant", "code_verifier missing or malformed")
        if not hmac.compare_digest(_s256(verifier), record.code_challenge):
            raise OAuthError("invalid_grant", "code_verifier does not match code_challenge")
    elif verifier is not None:
        raise OAuthError("invalid_grant", "code_verifier sent but no code_challenge was used")
    grant = record.grant
    resources = ctx.settings.validate_resources(form.get("resource", []))
    if grant.resources and not set(resources) <= set(grant.resources):
        raise OAuthError("invalid_target", "resource was not part of the authorization request")
    return ctx.minter.for_grant(
        grant,
        client,
        grant.scope,
        resources or grant.resources,
        id_token="openid" in grant.scope,
        refresh=GRANT_REFRESH in client.grant_types,
    )


async def _refresh_token(ctx: TokenContext, client: Client, form: Form) -> dict[str, Any]:
    record = ctx.tokens.refresh_record(_required(form, "refresh_token"))
    if record is None or record.grant.client_id != client.client_id:
        raise OAuthError("invalid_grant", "unknown refresh token")
    grant = record.grant
    if record.used:
        # Reuse of a rotated refresh token: assume theft, revoke the whole family.
        ctx.tokens.revoke_grant(grant.grant_id)
        raise OAuthError("invalid_grant", "refresh token already used")
    if record.revoked or grant.revoked or record.expires_at <= ctx.settings.now():
        raise OAuthError("invalid_grant", "refresh token revoked or expired")
    scope = _requested_scope(form, set(grant.scope))
    if scope is None:
        scope = list(record.scope)
    resources = ctx.settings.validate_resources(form.get("resource", []))
    if grant.resources and not set(resources) <= set(grant.resources):
        raise OAuthError("invalid_target", "resource was not part of the original grant")
    record.used = True
    return ctx.minter.for_grant(
        grant,
        client,
        scope,
        resources or grant.resources,
        id_token=False,
        refresh=True,
    )


async def _token_exchange(ctx: TokenContext, client: Client, form: Form) -> dict[str, Any]:
    subject_token = single(form, "subject_token")
    subject_type = single(form, "subject_token_type")
    if subject_token is None or subject_type is None:
        raise OAuthError("invalid_request", "subject_token and subject_token_type are required")
    if subject_type not in (TT_ACCESS, TT_JWT):
        raise OAuthError("invalid_request", "unsupported subject_token_type")
    requested_type = single(form, "requested_token_type")
    if requested_type not in (None, TT_ACCESS, TT_JWT):
        raise OAuthError("invalid_request", "unsupported requested_token_type")
    subject = ctx.tokens.access_record(subject_token)
    if subject is None:
        # RFC 8693 §2.2.2: an invalid or unacceptable subject/actor token is invalid_request.
        raise OAuthError("invalid_request", "subject_token is invalid, expired or revoked")

    act = _actor(ctx, client, form)
    # RFC 8693 §4.4: only the party named in may_act may act for the subject.
    named = names_party(
        subject.claims.get("may_act"),
        act or {"sub": client.client_id, "client_id": client.client_id},
    )
    if named is False:
        raise OAuthError("invalid_request", "may_act does not authorize this actor")
    if not named and not entitled(client, subject):
        # Holding a token is not enough: the caller must have received it (be one of its
        # audiences), be its client, or be named by may_act (docs: "Token exchange policy").
        raise OAuthError("invalid_request", "this client may not exchange the subject_token")

    subject_scope = list(split_scope(str(subject.claims.get("scope", ""))))
    scope = _requested_scope(form, set(subject_scope))
    if scope is None:
        scope = subject_scope
    audiences = _exchange_audiences(form.get("audience", []), ctx.settings.resource_allowlist)
    audiences += ctx.settings.validate_resources(form.get("resource", []))
    if refused_targets(ctx.settings, client, audiences, subject):
        raise OAuthError("invalid_target", "this client may not exchange for that audience")
    if not audiences and subject.resource_bound:
        # No target: the subject token's own audiences. A token minted for the default
        # audience stays one (so /userinfo still takes it, OIDC Core §5.3).
        audiences = audiences_of(subject)
    claims: dict[str, Any] = {}
    if act is not None:
        claims["act"] = act
    if subject.user_id is None:
        # A client's own token: keep its subject (the original client id).
        claims["sub"] = subject.claims.get("sub")
    # Never beyond the subject token: an exchange is no way to renew a token indefinitely.
    exp = subject.claims.get("exp")
    remaining = int(exp) - ctx.settings.now() if isinstance(exp, int) else 0
    lifetime = max(0, min(ctx.settings.access_token_lifetime, remaining))
    if lifetime <= 0:
        raise OAuthError("invalid_request", "subject_token is invalid, expired or revoked")
    access = ctx.minter.access_token(
        subject.user_id,
        client_id=client.client_id,
        audience=audiences or None,
        lifetime=lifetime,
        scope=scope,
        acr=subject.claims.get("acr"),
        auth_time=subject.claims.get("auth_time"),
        amr=subject.claims.get("amr"),
        claims=claims or None,
        grant_id=subject.grant_id,
    )
    return {
        "access_token": access,
        # The token is a JWT access token: either identifier describes it, so name the one the
        # client asked for (RFC 8693 §2.2.1).
        "issued_token_type": requested_type or TT_ACCESS,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "scope": " ".join(scope),
    }


def _actor(ctx: TokenContext, client: Client, form: Form) -> dict[str, Any] | None:
    """The `act` claim of an exchange with an actor token (RFC 8693 §4.1), or None."""
    actor_token = single(form, "actor_token")
    actor_type = single(form, "actor_token_type")
    if actor_token is None:
        if actor_type is not None:
            raise OAuthError("invalid_request", "actor_token_type without actor_token")
        return None
    if actor_type not in (TT_ACCESS, TT_JWT):
        raise OAuthError("invalid_request", "actor_token_type missing or unsupported")
    actor = ctx.tokens.access_record(actor_token)
    if actor is None:
        raise OAuthError("invalid_request", "actor_token is invalid, expired or revoked")
    if actor.client_id != client.client_id:
        # Another party's token would let the caller pass for whoever may_act names.
        raise OAuthError("invalid_request", "actor_token was not issued to this client")
    act: dict[str, Any] = {"sub": actor.claims.get("sub"), "client_id": actor.client_id}
    if isinstance(actor.claims.get("act"), dict):
        act["act"] = actor.claims["act"]
    return act
