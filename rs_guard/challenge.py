"""WWW-Authenticate rendering for Bearer challenges (RFC 6750, RFC 9470, RFC 9728)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from .errors import (
    InsufficientScope,
    InsufficientUserAuthentication,
    RSGuardError,
    ServerError,
)

# RFC 6750 §3: error, error_description and scope values are limited to these characters,
# which also keeps quotes and backslashes (and CR/LF header injection) out of every value.
_NOT_ALLOWED = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")

# Never ask a client to re-authorize for a refresh token (MCP 2026-07-28 authorization).
_NEVER_CHALLENGED = frozenset({"offline_access"})


def _clean(value: str) -> str:
    return _NOT_ALLOWED.sub("", value)


def scope_value(scopes: Iterable[str]) -> str:
    """A `scope` parameter value: unique scopes in order, without offline_access."""
    seen: dict[str, None] = {}
    for scope in scopes:
        cleaned = _clean(scope).strip()
        for part in cleaned.split(" "):
            if part and part not in _NEVER_CHALLENGED:
                seen.setdefault(part)
    return " ".join(seen)


def claims_value(claims: Mapping[str, Any]) -> str:
    """The `claims` challenge parameter: an OIDC claims request, percent-encoded JSON.

    Percent-encoding keeps the value inside RFC 6750's charset (no quotes) and lets the client
    copy it verbatim into the authorization request's `claims` query parameter.
    """
    return quote(json.dumps(claims, separators=(",", ":"), sort_keys=True), safe="")


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
    """Render one `Bearer` challenge, every value quoted and within RFC 6750's charset."""
    params: list[tuple[str, str]] = []
    if realm is not None:
        params.append(("realm", _clean(realm)))
    if error is not None:
        params.append(("error", _clean(error)))
    if error_description:
        params.append(("error_description", _clean(error_description)))
    if scope is not None:
        value = scope_value([scope] if isinstance(scope, str) else scope)
        if value:
            params.append(("scope", value))
    if acr_values:
        params.append(("acr_values", scope_value(acr_values)))
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
    if isinstance(exc, InsufficientScope):
        return bearer_challenge(
            realm=realm,
            error=exc.error,
            error_description=exc.description,
            scope=exc.scopes,
            resource_metadata=resource_metadata,
        )
    if isinstance(exc, InsufficientUserAuthentication):
        return bearer_challenge(
            realm=realm,
            error=exc.error,
            error_description=exc.description,
            acr_values=exc.acr_values,
            max_age=exc.max_age,
            claims=exc.claims,
            resource_metadata=resource_metadata,
        )
    if isinstance(exc, ServerError):
        return bearer_challenge(realm=realm, resource_metadata=resource_metadata)
    return bearer_challenge(
        realm=realm,
        error=exc.error,
        error_description=exc.description if exc.error else None,
        scope=scope if exc.error is None else None,
        resource_metadata=resource_metadata,
    )
