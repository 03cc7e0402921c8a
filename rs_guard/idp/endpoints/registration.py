"""Dynamic Client Registration (RFC 7591, OIDC Registration) and management (RFC 7592)."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .._client_metadata import (
    SECRET_METHODS,
    RegistrationError,
    build_client,
    sector_of,
    validate_metadata,
)
from .._errors import NO_STORE, OAuthError
from .._exchange_policy import refused_to_self_registered
from .._util import random_token, token_hash
from ._wire import bearer, read_json_object

if TYPE_CHECKING:
    from .._clients import Client
    from ._context import RegistrationContext

MAX_METADATA_BYTES = 64 * 1024
MAX_SECTOR_BYTES = 64 * 1024


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _unauthorized(description: str, presented: bool = True) -> OAuthError:
    # RFC 6750 §3.1: a request without any credentials gets a challenge without an error code.
    challenge = bearer(error="invalid_token") if presented else bearer(realm="rs_guard-idp")
    return OAuthError("invalid_token", description, 401, {"WWW-Authenticate": challenge})


async def _read_metadata(request: Request) -> dict[str, Any]:
    # Strict JSON: with duplicate members, which one counts would depend on the parser.
    return await read_json_object(
        request, MAX_METADATA_BYTES, error="invalid_client_metadata", media_type=False
    )


def check_outbound_uris(ctx: RegistrationContext, meta: dict[str, Any]) -> None:
    """URIs the IdP will later GET (jwks_uri) or POST to (event_delivery_uri) by itself:
    a registering stranger must not aim them at the IdP's own network (SSRF)."""
    for name in ("jwks_uri", "event_delivery_uri"):
        uri = meta.get(name)
        if isinstance(uri, str):
            ctx.fetcher.check(uri, name, "invalid_client_metadata")


async def check_sector_identifier(ctx: RegistrationContext, meta: dict[str, Any]) -> None:
    """OIDC Registration §5: sector_identifier_uri must list every redirect URI."""
    uri = meta.get("sector_identifier_uri")
    if not isinstance(uri, str):
        return
    ctx.fetcher.check(uri, "sector_identifier_uri", "invalid_client_metadata")
    doc, _ = await ctx.fetcher.get_json(
        uri,
        limit=MAX_SECTOR_BYTES,
        what="sector_identifier_uri",
        error="invalid_client_metadata",
    )
    if not isinstance(doc, list) or not all(isinstance(u, str) for u in doc):
        raise RegistrationError("sector_identifier_uri must serve a JSON array of URIs")
    missing = [u for u in meta["redirect_uris"] if u not in doc]
    if missing:
        raise RegistrationError(
            f"sector_identifier_uri does not list the redirect URI(s) {', '.join(missing)}"
        )


def check_policy(ctx: RegistrationContext, meta: dict[str, Any], client_id: str) -> None:
    """The operator's limits on what a client may register for itself."""
    refused = refused_to_self_registered(ctx.settings, meta["grant_types"])
    if refused:
        raise RegistrationError(
            f"grant type(s) {', '.join(refused)} are not open to dynamic registration here"
        )
    if meta["subject_type"] != "pairwise" or "sector_identifier_uri" in meta:
        return
    # OIDC Core §8.1: without sector_identifier_uri the redirect URI host is the sector, but
    # naming a host proves nothing (a code only reaches it, and a token exchange needs no
    # redirect): a host another client already has is no sector to join unproven.
    if ctx.clients.sector_held(sector_of(meta, client_id), besides=client_id):
        raise RegistrationError(
            "another client already uses the pairwise sector of these redirect URIs; "
            "register a sector_identifier_uri on that host listing them"
        )


def _response(ctx: RegistrationContext, client: Client, rat: str | None, status: int) -> Response:
    body = client.registration_response(ctx.settings.issuer)
    if rat is not None:
        body["registration_access_token"] = rat
    return JSONResponse(body, status_code=status, headers=NO_STORE)


async def register(ctx: RegistrationContext, request: Request) -> Response:
    """POST /register: create a client from its metadata."""
    if ctx.settings.registration_needs_token():
        presented = _bearer(request) or ""
        if not ctx.settings.accept_initial_access_token(presented):
            raise _unauthorized(
                "a valid initial access token is required", _bearer(request) is not None
            )
    meta = validate_metadata(await _read_metadata(request), dev=ctx.settings.dev)
    # OIDC Registration §2: a client that names no ID token alg gets RS256 ID tokens.
    meta.setdefault("id_token_signed_response_alg", "RS256")
    client_id = random_token(16)
    check_policy(ctx, meta, client_id)
    check_outbound_uris(ctx, meta)
    await check_sector_identifier(ctx, meta)
    secret = random_token(32) if meta["token_endpoint_auth_method"] in SECRET_METHODS else None
    client = build_client(client_id, secret, meta, issued_at=ctx.settings.now())
    rat = random_token(32)
    client.registration_access_token_hash = token_hash(rat)
    client.dynamic = True
    ctx.clients.add(client)
    return _response(ctx, client, rat, 201)


def _managed_client(ctx: RegistrationContext, request: Request) -> Client:
    client_id = request.path_params.get("client_id", "")
    presented = _bearer(request)
    client = ctx.clients.registered(client_id)
    if (
        presented is not None
        and client is not None
        and client.registration_access_token_hash is None
    ):
        # Registered from the IdP's clients file or its Python API: no registration access
        # token exists for it, so none is valid (RFC 7592 §2: 401 invalid_token).
        raise _unauthorized(
            "this client is not managed through RFC 7592: it comes from the IdP's clients "
            "file or its Python API; change it there"
        )
    if (
        presented is None
        or client is None
        or client.registration_access_token_hash is None
        or not hmac.compare_digest(token_hash(presented), client.registration_access_token_hash)
    ):
        # Same answer for unknown clients and wrong tokens (RFC 7592 §2.1): nothing leaks.
        raise _unauthorized("invalid registration access token", presented is not None)
    return client


async def manage(ctx: RegistrationContext, request: Request) -> Response:
    """GET / PUT / DELETE /register/{client_id} with the registration access token."""
    client = _managed_client(ctx, request)
    if request.method == "GET":
        return _response(ctx, client, None, 200)
    if request.method == "DELETE":
        ctx.clients.delete(client.client_id)
        return Response(status_code=204, headers=NO_STORE)
    doc = await _read_metadata(request)
    if doc.get("client_id") != client.client_id:
        raise RegistrationError("client_id in the body must match the client being updated")
    if "client_secret" in doc and doc["client_secret"] != client.client_secret:
        raise RegistrationError("client_secret in the body does not match")
    for name in (
        "registration_access_token",
        "registration_client_uri",
        "client_id_issued_at",
        "client_secret_expires_at",
    ):
        doc.pop(name, None)
    meta = validate_metadata(doc, dev=ctx.settings.dev)
    meta.setdefault("id_token_signed_response_alg", "RS256")  # as at registration
    if client.dynamic:
        check_policy(ctx, meta, client.client_id)
    check_outbound_uris(ctx, meta)
    await check_sector_identifier(ctx, meta)
    secret: str | None = None
    if meta["token_endpoint_auth_method"] in SECRET_METHODS:
        rotate = ctx.settings.rotate_secrets_on_update or client.client_secret is None
        secret = random_token(32) if rotate else client.client_secret
    updated = build_client(client.client_id, secret, meta, issued_at=client.client_id_issued_at)
    updated.registration_access_token_hash = client.registration_access_token_hash
    rat: str | None = None
    if ctx.settings.rotate_registration_access_token:
        # RFC 7592 §2.2: a new token in the response; the old one stops working at once.
        rat = random_token(32)
        updated.registration_access_token_hash = token_hash(rat)
    updated.dynamic = client.dynamic
    ctx.clients.add(updated)
    return _response(ctx, updated, rat, 200)
