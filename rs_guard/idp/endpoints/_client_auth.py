"""Client authentication at the IdP's endpoints: token, introspection and revocation (RFC 6749
§2.3, RFC 7523), and the callers of /ppid/convert and /events (Basic or a scoped Bearer token)."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

import jwt
from starlette.requests import Request

from ..._scopes import split_scope
from .._client_metadata import SECRET_METHODS
from .._errors import OAuthError
from .._scope_policy import refused_scopes
from ._wire import bearer, single

if TYPE_CHECKING:
    from .._clients import Client
    from ._context import ClientAuthContext

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_JWKS_BYTES = 64 * 1024
_REALM = "rs_guard-idp"


def _invalid_client(description: str, basic: bool) -> OAuthError:
    headers = {"WWW-Authenticate": 'Basic realm="rs_guard-idp"'} if basic else {}
    return OAuthError("invalid_client", description, 401, headers)


def _parse_basic(header: str) -> tuple[str, str]:
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _invalid_client("malformed Basic credentials", True) from None
    client_id, sep, secret = raw.partition(":")
    if not sep:
        raise _invalid_client("malformed Basic credentials", True)
    # RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
    return unquote_plus(client_id), unquote_plus(secret)


async def authenticate_client(
    ctx: ClientAuthContext, request: Request, form: dict[str, list[str]], *, allow_public: bool
) -> tuple[Client, bool]:
    """The authenticated (or, when allowed, identified public) client and whether Basic was used."""
    header = request.headers.get("authorization", "")
    basic = header[:6].lower() == "basic "
    post_id = single(form, "client_id")
    post_secret = single(form, "client_secret")
    assertion = single(form, "client_assertion")
    if sum((basic, post_secret is not None, assertion is not None)) > 1:
        raise OAuthError("invalid_request", "use exactly one client authentication method")
    if basic:
        client_id, secret = _parse_basic(header)
        if post_id is not None and post_id != client_id:
            raise OAuthError("invalid_request", "client_id does not match the credentials")
        return await _secret_client(ctx, client_id, secret, basic=True), True
    if post_secret is not None:
        if post_id is None:
            raise OAuthError("invalid_request", "client_secret without client_id")
        return await _secret_client(ctx, post_id, post_secret, basic=False), False
    if assertion is not None:
        return await _private_key_jwt(ctx, form, assertion, post_id), False
    if post_id is None:
        raise _invalid_client("client authentication required", False)
    client = await ctx.clients.resolve(post_id)
    if client is None:
        raise _invalid_client("unknown client", False)
    if not client.is_public:
        raise _invalid_client("this client must authenticate", False)
    if not allow_public:
        raise _invalid_client("public clients cannot use this endpoint", False)
    return client, False


async def _secret_client(
    ctx: ClientAuthContext, client_id: str, secret: str, *, basic: bool
) -> Client:
    """The client whose secret this is (client_secret_basic or client_secret_post)."""
    client = await ctx.clients.resolve(client_id)
    if client is None or client.token_endpoint_auth_method not in SECRET_METHODS:
        raise _invalid_client("unknown client or wrong authentication method", basic)
    if not client.check_secret(secret):
        raise _invalid_client("client authentication failed", basic)
    return client


async def client_keys(ctx: ClientAuthContext, client: Client) -> list[dict[str, Any]]:
    """The client's public JWKs (registered inline or fetched from jwks_uri); [] when unusable.

    The fetch is bounded like every other one the IdP makes on a client's say-so (at most
    MAX_JWKS_BYTES, no redirects, short timeout), and the address is checked again now:
    clients registered from Python or as metadata documents never passed registration's check.
    """
    if client.jwks is not None:
        keys = client.jwks.get("keys", [])
    elif client.jwks_uri is not None:
        try:
            ctx.fetcher.check(client.jwks_uri, "jwks_uri", "invalid_client", 401)
            doc, _ = await ctx.fetcher.get_json(
                client.jwks_uri,
                limit=MAX_JWKS_BYTES,
                what="jwks_uri",
                error="invalid_client",
                status=401,
            )
        except OAuthError:
            # The caller learns only that its assertion could not be verified, never what
            # the IdP's fetch ran into (that would make the IdP a port scanner).
            doc = {}
        keys = doc.get("keys", []) if isinstance(doc, dict) else []
    else:
        keys = []
    return [k for k in keys if isinstance(k, dict)] if isinstance(keys, list) else []


async def authenticate_caller(
    ctx: ClientAuthContext, request: Request, *, scope: str, endpoint: str
) -> Client:
    """The client calling an IdP service endpoint (`endpoint`, e.g. "events") for itself.

    HTTP Basic (client_secret_basic), where the client must not be registered without `scope`,
    or a Bearer access token from the client-credentials grant carrying `scope` and meant for
    this IdP (or the endpoint itself). 401 `invalid_client` otherwise, 403 for a missing scope.
    """
    header = request.headers.get("authorization", "")
    scheme = header.split(" ", 1)[0].lower()
    if scheme == "bearer":
        return _bearer_caller(ctx, header[7:].strip(), scope=scope, endpoint=endpoint)
    if scheme != "basic":
        raise OAuthError(
            "invalid_client",
            "client authentication required (HTTP Basic or a Bearer access token)",
            401,
            {"WWW-Authenticate": f'Basic realm="{_REALM}", {bearer(realm=_REALM)}'},
        )
    client, _ = await authenticate_client(ctx, request, {}, allow_public=False)
    if refused_scopes(ctx.settings, client, [scope]):
        raise OAuthError("access_denied", f"the client is not registered for scope {scope}", 403)
    return client


def _bearer_caller(ctx: ClientAuthContext, token: str, *, scope: str, endpoint: str) -> Client:
    def refuse(description: str) -> OAuthError:
        # The token is this client's credential here, hence invalid_client in the body (as
        # docs/contracts.md says) and the RFC 6750 challenge in the header.
        return OAuthError(
            "invalid_client",
            description,
            401,
            {"WWW-Authenticate": bearer(realm=_REALM, error="invalid_token")},
        )

    record = ctx.tokens.access_record(token) if token else None
    if record is None:
        raise refuse("the access token is invalid, expired or revoked")
    # Only a client acting for itself (client-credentials grant) may call: a user's token, or
    # a client token exchanged by someone else, names a different party.
    if record.user_id is not None or record.claims.get("sub") != record.client_id:
        raise refuse("the access token must come from the client-credentials grant")
    aud = record.claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if ctx.settings.issuer not in audiences and ctx.urls.url(endpoint) not in audiences:
        raise refuse("the access token is not meant for this server")
    if scope not in split_scope(str(record.claims.get("scope", ""))):
        raise OAuthError(
            "insufficient_scope",
            f"the access token lacks scope {scope}",
            403,
            {"WWW-Authenticate": bearer(realm=_REALM, error="insufficient_scope", scope=scope)},
        )
    client = ctx.clients.get(record.client_id)
    if client is None:
        raise refuse("the client no longer exists")
    return client


async def _private_key_jwt(
    ctx: ClientAuthContext, form: dict[str, list[str]], assertion: str, post_id: str | None
) -> Client:
    if single(form, "client_assertion_type") != ASSERTION_TYPE:
        raise OAuthError("invalid_request", "unsupported client_assertion_type")
    try:
        header = jwt.get_unverified_header(assertion)
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise _invalid_client("malformed client assertion", False) from None
    client_id = unverified.get("iss")
    if not isinstance(client_id, str) or (post_id is not None and post_id != client_id):
        raise _invalid_client("client assertion iss must be the client_id", False)
    client = await ctx.clients.resolve(client_id)
    if client is None or client.token_endpoint_auth_method != "private_key_jwt":
        raise _invalid_client("unknown client or wrong authentication method", False)
    alg = header.get("alg")
    if alg not in ("ES256", "RS256", "PS256", "EdDSA"):
        raise _invalid_client("unsupported assertion alg", False)
    audiences = [
        ctx.settings.issuer,
        ctx.urls.url("token"),
        ctx.urls.url("introspect"),
        ctx.urls.url("revoke"),
    ]
    for jwk in await client_keys(ctx, client):
        if header.get("kid") is not None and jwk.get("kid") not in (None, header.get("kid")):
            continue
        try:
            key = jwt.PyJWK(jwk, algorithm=alg).key
            claims = jwt.decode(
                assertion,
                key,
                algorithms=[alg],
                audience=audiences,
                options={"require": ["exp", "iss", "sub", "aud", "jti"]},
                leeway=30,
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            continue
        if claims.get("sub") != client_id:
            break
        jti = str(claims["jti"])
        key_id = f"{client_id}\x00{jti}"
        if not ctx.tokens.first_use_of_assertion(key_id, int(claims["exp"])):
            raise _invalid_client("client assertion replayed", False)
        return client
    raise _invalid_client("client assertion could not be verified", False)
