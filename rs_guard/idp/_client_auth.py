"""Client authentication at the token, introspection and revocation endpoints."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

import httpx
import jwt
from starlette.requests import Request

from ._clients import SECRET_METHODS, Client
from ._util import OAuthError, single

if TYPE_CHECKING:
    from .app import IdP

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


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
    idp: IdP, request: Request, form: dict[str, list[str]], *, allow_public: bool
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
        client = await idp.resolve_client(client_id)
        if client is None or client.token_endpoint_auth_method not in SECRET_METHODS:
            raise _invalid_client("unknown client or wrong authentication method", True)
        if not client.check_secret(secret):
            raise _invalid_client("client authentication failed", True)
        return client, True
    if post_secret is not None:
        if post_id is None:
            raise OAuthError("invalid_request", "client_secret without client_id")
        client = await idp.resolve_client(post_id)
        if client is None or client.token_endpoint_auth_method not in SECRET_METHODS:
            raise _invalid_client("unknown client or wrong authentication method", False)
        if not client.check_secret(post_secret):
            raise _invalid_client("client authentication failed", False)
        return client, False
    if assertion is not None:
        return await _private_key_jwt(idp, form, assertion, post_id), False
    if post_id is None:
        raise _invalid_client("client authentication required", False)
    client = await idp.resolve_client(post_id)
    if client is None:
        raise _invalid_client("unknown client", False)
    if not client.is_public:
        raise _invalid_client("this client must authenticate", False)
    if not allow_public:
        raise _invalid_client("public clients cannot use this endpoint", False)
    return client, False


async def client_keys(idp: IdP, client: Client) -> list[dict[str, Any]]:
    """The client's public JWKs (registered inline or fetched from jwks_uri)."""
    if client.jwks is not None:
        keys = client.jwks.get("keys", [])
    elif client.jwks_uri is not None:
        try:
            resp = await idp.outbound().get(client.jwks_uri)
            doc = resp.json() if resp.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            doc = {}
        keys = doc.get("keys", []) if isinstance(doc, dict) else []
    else:
        keys = []
    return [k for k in keys if isinstance(k, dict)]


async def _private_key_jwt(
    idp: IdP, form: dict[str, list[str]], assertion: str, post_id: str | None
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
    client = await idp.resolve_client(client_id)
    if client is None or client.token_endpoint_auth_method != "private_key_jwt":
        raise _invalid_client("unknown client or wrong authentication method", False)
    alg = header.get("alg")
    if alg not in ("ES256", "RS256", "PS256", "EdDSA"):
        raise _invalid_client("unsupported assertion alg", False)
    audiences = [
        idp.issuer,
        idp.endpoint("token"),
        idp.endpoint("introspect"),
        idp.endpoint("revoke"),
    ]
    for jwk in await client_keys(idp, client):
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
        if key_id in idp._assertion_jtis:
            raise _invalid_client("client assertion replayed", False)
        idp._assertion_jtis[key_id] = int(claims["exp"])
        return client
    raise _invalid_client("client assertion could not be verified", False)
