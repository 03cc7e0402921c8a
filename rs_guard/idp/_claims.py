"""The OIDC Core §5.5 `claims` request parameter: parsing and what it asks of a flow."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .._json import JSONError, no_duplicates
from ._errors import OAuthError

MAX_CLAIMS_LENGTH = 8192


@dataclass(frozen=True)
class ClaimSpec:
    """One requested claim: null (voluntary) or {essential, value, values}."""

    essential: bool = False
    value: Any = None
    has_value: bool = False
    values: tuple[Any, ...] | None = None


@dataclass
class ClaimsRequest:
    """Parsed `claims` parameter: claims wanted in userinfo and in the ID token."""

    userinfo: dict[str, ClaimSpec] = field(default_factory=dict)
    id_token: dict[str, ClaimSpec] = field(default_factory=dict)

    def spec(self, name: str) -> ClaimSpec | None:
        """The request for `name` from the ID token member, else the userinfo member."""
        return self.id_token.get(name) or self.userinfo.get(name)

    def requested(self, name: str) -> bool:
        """True when `name` is requested anywhere."""
        return name in self.id_token or name in self.userinfo

    def acr_values(self) -> tuple[list[str], bool]:
        """(acceptable acr values, essential) requested through the `acr` claim."""
        spec = self.spec("acr")
        if spec is None:
            return [], False
        values: list[str] = []
        if spec.has_value and isinstance(spec.value, str):
            values.append(spec.value)
        if spec.values:
            values.extend(v for v in spec.values if isinstance(v, str))
        return values, spec.essential

    def wants_verified_phone(self) -> bool:
        """True when `phone_number_verified` is requested with value true."""
        spec = self.spec("phone_number_verified")
        return bool(spec and spec.has_value and spec.value is True)

    def to_json(self) -> dict[str, Any]:
        """Back to the wire shape (for logging or echoing)."""

        def member(specs: dict[str, ClaimSpec]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name, s in specs.items():
                if not (s.essential or s.has_value or s.values is not None):
                    out[name] = None
                    continue
                d: dict[str, Any] = {}
                if s.essential:
                    d["essential"] = True
                if s.has_value:
                    d["value"] = s.value
                if s.values is not None:
                    d["values"] = list(s.values)
                out[name] = d
            return out

        return {"userinfo": member(self.userinfo), "id_token": member(self.id_token)}


def _parse_member(raw: Any, where: str) -> dict[str, ClaimSpec]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise OAuthError("invalid_request", f"claims.{where} must be a JSON object")
    out: dict[str, ClaimSpec] = {}
    for name, spec in raw.items():
        if spec is None:
            out[name] = ClaimSpec()
            continue
        if not isinstance(spec, dict):
            raise OAuthError("invalid_request", f"claims.{where}.{name} must be null or an object")
        essential = spec.get("essential", False)
        if not isinstance(essential, bool):
            raise OAuthError("invalid_request", f"claims.{where}.{name}.essential must be boolean")
        values = spec.get("values")
        if values is not None and not isinstance(values, list):
            raise OAuthError("invalid_request", f"claims.{where}.{name}.values must be an array")
        out[name] = ClaimSpec(
            essential=essential,
            value=spec.get("value"),
            has_value="value" in spec,
            values=tuple(values) if values is not None else None,
        )
    return out


def parse_claims(raw: str | None) -> ClaimsRequest:
    """Parse the `claims` parameter; malformed input raises invalid_request."""
    if raw is None:
        return ClaimsRequest()
    if len(raw) > MAX_CLAIMS_LENGTH:
        raise OAuthError("invalid_request", "claims parameter too long")
    try:
        doc = json.loads(raw, object_pairs_hook=no_duplicates)
    except JSONError:
        # Which of two same-named members counts would depend on the parser.
        raise OAuthError("invalid_request", "claims parameter has a member twice") from None
    except (ValueError, RecursionError):
        raise OAuthError("invalid_request", "claims parameter is not valid JSON") from None
    if not isinstance(doc, dict):
        raise OAuthError("invalid_request", "claims parameter must be a JSON object")
    return ClaimsRequest(
        userinfo=_parse_member(doc.get("userinfo"), "userinfo"),
        id_token=_parse_member(doc.get("id_token"), "id_token"),
    )
