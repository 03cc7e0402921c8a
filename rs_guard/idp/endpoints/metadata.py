"""Discovery documents (OIDC Discovery 1.0, RFC 8414) and the JWKS endpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...dpop import DEFAULT_DPOP_ALGORITHMS
from .._keys import SUPPORTED_ALGS
from .._users import ACR_AMR, STANDARD_CLAIMS

if TYPE_CHECKING:
    from ._context import Discovery

JWKS_MAX_AGE = 300
SCOPES_SUPPORTED = ["openid", "profile", "email", "phone", "address", "offline_access"]


def metadata(ctx: Discovery) -> dict[str, Any]:
    """The authorization server metadata shared by both discovery documents."""
    return {
        "issuer": ctx.settings.issuer,
        # Every endpoint's URL member comes from the route table, in its order.
        **ctx.urls.metadata_members(),
        "scopes_supported": SCOPES_SUPPORTED,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ],
        "code_challenge_methods_supported": ["S256"],
        "dpop_signing_alg_values_supported": list(DEFAULT_DPOP_ALGORITHMS),  # RFC 9449 §5.1
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none",
        ],
        "token_endpoint_auth_signing_alg_values_supported": list(SUPPORTED_ALGS),
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ],
        # RFC 8414 §2: required wherever private_key_jwt is listed.
        "introspection_endpoint_auth_signing_alg_values_supported": list(SUPPORTED_ALGS),
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none",
        ],
        "revocation_endpoint_auth_signing_alg_values_supported": list(SUPPORTED_ALGS),
        "id_token_signing_alg_values_supported": list(SUPPORTED_ALGS),
        "acr_values_supported": list(ACR_AMR),
        "claims_parameter_supported": True,
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "acr",
            "amr",
            *list(STANDARD_CLAIMS),
        ],
        "subject_types_supported": ["public", "pairwise"],
        "prompt_values_supported": ["none", "login", "consent"],
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
        "client_id_metadata_document_supported": True,
        "resource_parameter_supported": True,
        "resource_indicators_supported": True,
    }


async def openid_configuration(ctx: Discovery, request: Request) -> Response:
    """GET /.well-known/openid-configuration."""
    return JSONResponse(metadata(ctx), headers={"Cache-Control": "public, max-age=60"})


async def oauth_metadata(ctx: Discovery, request: Request) -> Response:
    """GET /.well-known/oauth-authorization-server (RFC 8414)."""
    return JSONResponse(metadata(ctx), headers={"Cache-Control": "public, max-age=60"})


async def jwks(ctx: Discovery, request: Request) -> Response:
    """GET /jwks: the public signing keys."""
    return JSONResponse(
        ctx.keys.jwks(),
        headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"},
        media_type="application/jwk-set+json",
    )
