"""WWW-Authenticate for Bearer challenges (RFC 6750, RFC 9470, RFC 9728): render and read back.

The `claims` parameter is an rs_guard extension (no RFC defines one for Bearer): its value is an
OIDC Core §5.5 claims request, serialised as compact JSON and encoded with standard base64 (RFC
4648 §4, padded), the same encoding Microsoft Entra uses for its `claims` challenges. A client
decodes it and sends the JSON as the `claims` parameter of its next authorization request, so one
request both steps up and collects the missing attribute (`authorization_params` does this).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import (
    InsufficientScope,
    InsufficientUserAuthentication,
    RSGuardError,
    ServerError,
)

__all__ = ["authorization_params", "bearer_challenge", "parse_bearer_challenge", "parse_challenges"]

# RFC 6750 §3: error, error_description and scope values are limited to these characters,
# which also keeps quotes and backslashes (and CR/LF header injection) out of every value.
_NOT_ALLOWED = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")

# Never ask a client to re-authorize for a refresh token (MCP 2026-07-28 authorization).
NEVER_CHALLENGED = frozenset({"offline_access"})

# RFC 9110 §11: auth-param = token BWS "=" BWS ( token / quoted-string ).
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))\s*(?:,|$)', re.DOTALL)
_SCHEME = re.compile(rf"\s*,?\s*({_TOKEN})(?:\s+|(?=,)|$)")
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_TOKEN68 = re.compile(r"([A-Za-z0-9\-._~+/]+=*)\s*(?:,|$)")


def _clean(value: str) -> str:
    return _NOT_ALLOWED.sub("", value)


def _scope_value(scopes: Iterable[str]) -> str:
    """A `scope` parameter value: unique scopes in order, without offline_access."""
    seen: dict[str, None] = {}
    for scope in scopes:
        for part in scope.split(" "):
            # A scope outside RFC 6749's charset cannot be requested anyway: drop it whole
            # rather than send a mangled name the client would ask for.
            if part and part not in NEVER_CHALLENGED and SCOPE_TOKEN.fullmatch(part):
                seen.setdefault(part)
    return " ".join(seen)


def claims_value(claims: Mapping[str, Any]) -> str:
    """The `claims` challenge parameter: an OIDC claims request as base64 of compact JSON."""
    raw = json.dumps(claims, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return base64.b64encode(raw.encode("utf-8")).decode("ascii")


def decode_claims(value: str) -> dict[str, Any]:
    """The claims request carried by a `claims` challenge parameter (base64 or base64url JSON).

    Raises ValueError when the value is not one.
    """
    padded = value.strip() + "=" * (-len(value.strip()) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        doc = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise ValueError("the claims parameter is not base64-encoded JSON") from exc
    if not isinstance(doc, dict):
        raise ValueError("the claims parameter is not a JSON object")
    return doc


def bearer_challenge(
    *,
    realm: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
    scope: Sequence[str] | str | None = None,
    acr_values: Sequence[str] = (),
    max_age: int | None = None,
    claims: str | None = None,
    resource_metadata: str | None = None,
) -> str:
    """Render one `Bearer` challenge, every value quoted and within RFC 6750's charset.

    The order reproduces RFC 6750 §3 and RFC 9470 §3 byte for byte: realm, error,
    error_description, scope, acr_values, max_age, claims, resource_metadata.
    """
    params: list[tuple[str, str]] = []
    if realm is not None:
        params.append(("realm", _clean(realm)))
    if error is not None:
        params.append(("error", _clean(error)))
    if error_description:
        params.append(("error_description", _clean(error_description)))
    if scope is not None:
        value = _scope_value([scope] if isinstance(scope, str) else scope)
        if value:
            params.append(("scope", value))
    if acr_values:
        acr = " ".join(dict.fromkeys(a for a in acr_values if SCOPE_TOKEN.fullmatch(a)))
        if acr:
            params.append(("acr_values", acr))
    if max_age is not None:
        params.append(("max_age", str(int(max_age))))
    if claims:
        params.append(("claims", _clean(claims)))
    if resource_metadata is not None:
        params.append(("resource_metadata", _clean(resource_metadata)))
    if not params:
        return "Bearer"
    return "Bearer " + ", ".join(f'{name}="{value}"' for name, value in params)


def challenge_for(
    exc: RSGuardError,
    *,
    realm: str | None = None,
    resource_metadata: str | None = None,
    scope: Sequence[str] | None = None,
) -> str:
    """The challenge for an error; `scope` is what the route needs, sent with a bare 401."""
    if isinstance(exc, ServerError):
        return bearer_challenge(realm=realm, resource_metadata=resource_metadata)
    # What each refusal adds to the common parameters (RFC 6750 §3, RFC 9470 §3).
    extra: dict[str, Any] = {}
    if isinstance(exc, InsufficientScope):
        extra["scope"] = exc.scopes
    elif isinstance(exc, InsufficientUserAuthentication):
        extra.update(
            scope=exc.scopes or None,
            acr_values=exc.acr_values,
            max_age=exc.max_age,
            claims=exc.claims,
        )
    elif exc.error is None:
        extra["scope"] = scope  # a bare 401 names what the route needs
    return bearer_challenge(
        realm=realm,
        error=exc.error,
        error_description=exc.description if exc.error else None,
        resource_metadata=resource_metadata,
        **extra,
    )


# -- reading challenges back (for clients, and for tests) -------------------------------------


def parse_challenges(header: str) -> list[tuple[str, dict[str, str]]]:
    """Every challenge in a WWW-Authenticate value as (scheme lower-cased, params).

    Parameter names are lower-cased, quoted values unescaped; a token68 is kept under "".
    Malformed input yields what could be read before it, never an exception.
    """
    out: list[tuple[str, dict[str, str]]] = []
    pos = 0
    while pos < len(header):
        scheme = _SCHEME.match(header, pos)
        if scheme is None:
            break
        params: dict[str, str] = {}
        pos = scheme.end()
        token68 = _TOKEN68.match(header, pos)
        if token68 is not None and not _PARAM.match(header, pos):
            params[""] = token68.group(1)
            pos = token68.end()
        while pos < len(header):
            param = _PARAM.match(header, pos)
            if param is None:
                break
            name, quoted, bare = param.groups()
            value = _QUOTED_PAIR.sub(r"\1", quoted) if quoted is not None else bare
            params.setdefault(name.lower(), value)
            pos = param.end()
        out.append((scheme.group(1).lower(), params))
        if pos < len(header) and not _SCHEME.match(header, pos):
            break
    return out


def parse_bearer_challenge(header: str) -> dict[str, str] | None:
    """The parameters of the first `Bearer` challenge in a WWW-Authenticate value, or None."""
    for scheme, params in parse_challenges(header):
        if scheme == "bearer":
            return params
    return None


def authorization_params(challenge: str | Mapping[str, str]) -> dict[str, str]:
    """What a client adds to its next authorization request to answer a challenge.

    `scope` (insufficient_scope or a bare 401), `acr_values` and `max_age` (RFC 9470), and
    `claims` as the JSON of an OIDC claims request (decoded from the `claims` parameter).
    Values that cannot be used are left out.
    """
    params = parse_bearer_challenge(challenge) if isinstance(challenge, str) else challenge
    if not params:
        return {}
    out: dict[str, str] = {}
    if params.get("scope"):
        out["scope"] = params["scope"]
    if params.get("acr_values"):
        out["acr_values"] = params["acr_values"]
    max_age = params.get("max_age", "")
    if max_age.isdigit():
        out["max_age"] = max_age
    if params.get("claims"):
        with contextlib.suppress(ValueError):
            out["claims"] = json.dumps(decode_claims(params["claims"]), separators=(",", ":"))
    return out
