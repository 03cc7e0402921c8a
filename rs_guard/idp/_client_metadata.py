"""Client metadata: validation (RFC 7591 §2, OIDC Registration §2) and building a Client."""

from __future__ import annotations

from typing import Any

from .._jws import MalformedJWS, split_compact
from .._net import is_loopback_host
from .._scopes import join_scope, split_scope
from ._clients import Client
from ._errors import OAuthError
from ._keys import SUPPORTED_ALGS
from ._resources import validate_resources
from ._util import random_token, safe_split

GRANT_CODE = "authorization_code"
GRANT_REFRESH = "refresh_token"
GRANT_CLIENT_CREDENTIALS = "client_credentials"
GRANT_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
SUPPORTED_GRANTS = (GRANT_CODE, GRANT_REFRESH, GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE)
AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post", "private_key_jwt")
SECRET_METHODS = ("client_secret_basic", "client_secret_post")


# Only the operator sets these (Python, clients file): a client naming the resources it serves
# would make itself entitled to every token addressed to them (introspection, exchange).
OPERATOR_ONLY = ("served_resources", "introspects_any", "exchange_audiences")


class RegistrationError(OAuthError):
    """Client metadata refused (RFC 7591 §3.2.2)."""

    def __init__(self, description: str, error: str = "invalid_client_metadata") -> None:
        super().__init__(error, description, 400)


def _str_list(meta: dict[str, Any], name: str) -> list[str] | None:
    value = meta.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RegistrationError(f"{name} must be an array of non-empty strings")
    return list(value)


def _opt_str(meta: dict[str, Any], name: str) -> str | None:
    value = meta.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise RegistrationError(f"{name} must be a non-empty string")
    return value


def _https_uri(value: str, name: str, *, dev: bool, loopback_http: bool = False) -> None:
    parts = safe_split(value)
    if parts is None or not parts[1] or "#" in value:
        raise RegistrationError(f"{name} must be an absolute URI without fragment")
    if parts[0] == "https":
        return
    if parts[0] == "http" and (dev or (loopback_http and is_loopback_host(parts[1]))):
        return
    raise RegistrationError(f"{name} must use https")


def _check_redirect_uri(uri: str, application_type: str, *, strict: bool) -> None:
    parts = safe_split(uri)
    if parts is None or "#" in uri or any(c.isspace() for c in uri):
        raise RegistrationError(f"redirect URI {uri!r} is malformed", "invalid_redirect_uri")
    scheme, host = parts[0], parts[1]
    if not scheme:
        raise RegistrationError(f"redirect URI {uri!r} is not absolute", "invalid_redirect_uri")
    if scheme in ("http", "https") and not host:
        raise RegistrationError(f"redirect URI {uri!r} has no host", "invalid_redirect_uri")
    if scheme in ("javascript", "data", "vbscript", "file"):
        raise RegistrationError(f"redirect URI scheme {scheme!r} refused", "invalid_redirect_uri")
    if application_type == "web":
        if not strict:
            return
        if scheme == "https" or (scheme == "http" and is_loopback_host(host)):
            return
        raise RegistrationError(
            f"web clients need https redirect URIs (http only on localhost): {uri!r}",
            "invalid_redirect_uri",
        )
    # native (RFC 8252 §7): private-use scheme, claimed https, or http on loopback.
    if scheme == "http" and not is_loopback_host(host):
        raise RegistrationError(
            f"native clients may use http only on loopback: {uri!r}", "invalid_redirect_uri"
        )


def _check_software_statement(statement: Any) -> None:
    """RFC 7591 §2.3: a software statement is a JWS (signed or MACed) with an `iss` claim."""
    try:
        if not isinstance(statement, str):
            raise MalformedJWS("malformed")
        header, claims, _, _ = split_compact(statement)
    except MalformedJWS:
        raise RegistrationError(
            "software_statement must be a signed JWT", "invalid_software_statement"
        ) from None
    alg, iss = header.get("alg"), claims.get("iss")
    if not isinstance(alg, str) or alg.lower() == "none" or not isinstance(iss, str) or not iss:
        raise RegistrationError(
            "software_statement must be signed and carry an iss claim",
            "invalid_software_statement",
        )


def validate_metadata(
    meta: dict[str, Any], *, dev: bool, strict_redirects: bool = True
) -> dict[str, Any]:
    """Validate client metadata; returns it with defaults filled in (RFC 7591 §2)."""
    if not isinstance(meta, dict):
        raise RegistrationError("client metadata must be a JSON object")
    out = dict(meta)
    # What introspection answers a client about is the operator's to say (`Client`): these
    # members in a client's own metadata are ignored, hence not registered nor echoed back.
    for name in OPERATOR_ONLY:
        out.pop(name, None)
    statement = out.pop("software_statement", None)
    if statement is not None:
        # A malformed statement is refused; a well-formed one cannot be verified here (no
        # trusted statement issuers), so it is ignored as RFC 7591 §3.1.1 allows: not used,
        # hence neither stored nor echoed back as registered.
        _check_software_statement(statement)
    application_type = out.get("application_type", "web")
    if application_type not in ("web", "native"):
        raise RegistrationError("application_type must be 'web' or 'native'")
    out["application_type"] = application_type

    redirect_uris = _str_list(out, "redirect_uris") or []
    for uri in redirect_uris:
        _check_redirect_uri(uri, application_type, strict=strict_redirects)
    out["redirect_uris"] = redirect_uris

    method = out.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in AUTH_METHODS:
        raise RegistrationError(
            f"token_endpoint_auth_method must be one of {', '.join(AUTH_METHODS)}"
        )
    out["token_endpoint_auth_method"] = method
    jwks, jwks_uri = out.get("jwks"), _opt_str(out, "jwks_uri")
    if jwks is not None and jwks_uri is not None:
        raise RegistrationError("jwks and jwks_uri are mutually exclusive")
    if jwks is not None and (not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list)):
        raise RegistrationError("jwks must be a JWK Set object with a 'keys' array")
    if jwks_uri is not None:
        _https_uri(jwks_uri, "jwks_uri", dev=dev)
    if method == "private_key_jwt" and jwks is None and jwks_uri is None:
        raise RegistrationError("private_key_jwt needs jwks or jwks_uri")

    grant_types = _str_list(out, "grant_types") or [GRANT_CODE]
    response_types = _str_list(out, "response_types")
    if response_types is None:
        response_types = ["code"] if GRANT_CODE in grant_types else []
    for g in grant_types:
        if g not in SUPPORTED_GRANTS:
            raise RegistrationError(f"grant type {g!r} is not supported")
    for r in response_types:
        if r != "code":
            raise RegistrationError(f"response type {r!r} is not supported (only 'code')")
    if ("code" in response_types) != (GRANT_CODE in grant_types):
        raise RegistrationError(
            "response_types 'code' and grant_types 'authorization_code' go together"
        )
    if GRANT_CODE in grant_types and not redirect_uris:
        raise RegistrationError(
            "the authorization_code grant needs redirect_uris", "invalid_redirect_uri"
        )
    if method == "none" and GRANT_CLIENT_CREDENTIALS in grant_types:
        raise RegistrationError("public clients (auth method none) cannot use client_credentials")
    out["grant_types"], out["response_types"] = grant_types, response_types

    subject_type = out.get("subject_type", "public")
    if subject_type not in ("public", "pairwise"):
        raise RegistrationError("subject_type must be 'public' or 'pairwise'")
    out["subject_type"] = subject_type
    sector_uri = _opt_str(out, "sector_identifier_uri")
    if sector_uri is not None:
        _https_uri(sector_uri, "sector_identifier_uri", dev=dev)
    if subject_type == "pairwise" and sector_uri is None:
        hosts = {(safe_split(u) or ("", "", None, "", "", ""))[1] for u in redirect_uris}
        if len(hosts) > 1:
            raise RegistrationError(
                "pairwise clients with redirect URIs on several hosts need sector_identifier_uri"
            )

    alg = out.get("id_token_signed_response_alg")
    if alg is not None and alg not in SUPPORTED_ALGS:
        raise RegistrationError(
            f"id_token_signed_response_alg must be one of {', '.join(SUPPORTED_ALGS)}"
        )
    max_age = out.get("default_max_age")
    if max_age is not None and (
        not isinstance(max_age, int) or isinstance(max_age, bool) or max_age < 0
    ):
        raise RegistrationError("default_max_age must be a non-negative integer")
    if not isinstance(out.get("require_auth_time", False), bool):
        raise RegistrationError("require_auth_time must be a boolean")
    _str_list(out, "default_acr_values")
    _str_list(out, "contacts")
    scope = out.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise RegistrationError("scope must be a space-separated string")
    for name in ("client_name", "client_uri", "logo_uri", "policy_uri", "tos_uri"):
        _opt_str(out, name)
    for name in ("post_logout_redirect_uris",):
        for uri in _str_list(out, name) or []:
            _https_uri(uri, name, dev=dev, loopback_http=True)
    for name in ("frontchannel_logout_uri", "backchannel_logout_uri", "event_delivery_uri"):
        value = _opt_str(out, name)
        if value is not None:
            _https_uri(value, name, dev=dev, loopback_http=True)
    return out


def sector_of(meta: dict[str, Any], client_id: str) -> str:
    """OIDC Core §8.1 sector: host of sector_identifier_uri, else of the redirect URIs."""
    sector_uri = meta.get("sector_identifier_uri")
    if isinstance(sector_uri, str):
        parts = safe_split(sector_uri)
        if parts:
            return parts[1]
    hosts = sorted(
        {(safe_split(u) or ("", "", None, "", "", ""))[1] for u in meta["redirect_uris"]}
    )
    return hosts[0] if len(hosts) == 1 and hosts[0] else client_id


def build_client(
    client_id: str,
    client_secret: str | None,
    meta: dict[str, Any],
    *,
    issued_at: int,
    from_metadata_document: bool = False,
) -> Client:
    """A Client from validated metadata."""
    stored = {k: v for k, v in meta.items() if k not in ("client_id", "client_secret")}
    return Client(
        client_id=client_id,
        client_secret=client_secret,
        redirect_uris=list(meta["redirect_uris"]),
        grant_types=list(meta["grant_types"]),
        response_types=list(meta["response_types"]),
        scope=meta.get("scope"),
        token_endpoint_auth_method=meta["token_endpoint_auth_method"],
        subject_type=meta["subject_type"],
        sector_identifier_uri=meta.get("sector_identifier_uri"),
        application_type=meta["application_type"],
        id_token_signed_response_alg=meta.get("id_token_signed_response_alg"),
        event_delivery_uri=meta.get("event_delivery_uri"),
        jwks=meta.get("jwks"),
        jwks_uri=meta.get("jwks_uri"),
        default_max_age=meta.get("default_max_age"),
        require_auth_time=bool(meta.get("require_auth_time", False)),
        default_acr_values=meta.get("default_acr_values"),
        client_name=meta.get("client_name"),
        metadata=stored,
        client_id_issued_at=issued_at,
        from_metadata_document=from_metadata_document,
        sector=sector_of(meta, client_id),
    )


def python_client(
    client_id: str | None,
    client_secret: str | None,
    options: dict[str, Any],
    *,
    issued_at: int,
) -> Client:
    """A Client registered from Python (see `IdP.register_client` for the defaults)."""
    # Operator-only settings: kept out of the metadata, which a client may set for itself.
    served, introspects_any = operator_introspection(options)
    exchange_audiences = operator_exchange(options)
    method = options.pop("token_endpoint_auth_method", None)
    if method is None:
        if options.get("jwks") is not None or options.get("jwks_uri") is not None:
            method = "private_key_jwt"
        else:
            method = "client_secret_basic"
    public = method == "none"
    grant_types = options.pop("grant_types", None)
    redirect_uris = list(options.pop("redirect_uris", ()))
    if grant_types is None:
        grant_types = [GRANT_REFRESH, GRANT_TOKEN_EXCHANGE]
        if redirect_uris:
            grant_types.insert(0, GRANT_CODE)
        if not public:
            grant_types.append(GRANT_CLIENT_CREDENTIALS)
    scope, response_types = options.pop("scope", None), options.pop("response_types", None)
    meta: dict[str, Any] = dict(options.pop("metadata", {}))
    meta.update(
        redirect_uris=redirect_uris,
        grant_types=list(grant_types),
        token_endpoint_auth_method=method,
        subject_type=options.pop("subject_type", "public"),
        application_type=options.pop("application_type", "web"),
    )
    optional = {
        "response_types": list(response_types) if response_types is not None else None,
        "scope": join_scope(split_scope(scope)) if scope is not None else None,
        **options,
    }
    meta.update({k: v for k, v in optional.items() if v is not None})
    meta = validate_metadata(meta, dev=True, strict_redirects=False)
    client_id = client_id or random_token(16)
    if not public and method != "private_key_jwt":
        client_secret = client_secret or random_token(32)
    elif public:
        client_secret = None
    client = build_client(client_id, client_secret, meta, issued_at=issued_at)
    client.served_resources, client.introspects_any = served, introspects_any
    client.exchange_audiences = exchange_audiences
    return client


def operator_introspection(options: dict[str, Any]) -> tuple[list[str], bool]:
    """Take the operator's `served_resources` (RFC 8707 resource identifiers, canonical form)
    and `introspects_any` out of `options` (see `Client`)."""
    value = options.pop("served_resources", ())
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise RegistrationError("served_resources must be a sequence of resource URIs")
    try:
        served = validate_resources(value, None)
    except OAuthError as exc:
        raise RegistrationError(f"served_resources: {exc.description}") from None
    introspects_any = options.pop("introspects_any", False)
    if not isinstance(introspects_any, bool):
        raise RegistrationError("introspects_any must be a boolean")
    return served, introspects_any


def operator_exchange(options: dict[str, Any]) -> list[str] | None:
    """Take the operator's `exchange_audiences` (what a token exchange may name; None: any the
    resource allow-list admits) out of `options` (see `_exchange_policy`)."""
    value = options.pop("exchange_audiences", None)
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise RegistrationError("exchange_audiences must be a sequence of audiences")
    return list(value)
