"""Token profiles: how a JWT access token of one provider is typed and read.

RFC 9068 (`"rfc9068"`, the default) types access tokens `at+jwt` and names the client in
`client_id` and the scopes in `scope`. Most IdPs in use send `typ: JWT` or no `typ`, name the
client in `azp`, `cid` or `appid`, and put scopes in `scp` (a string or an array). A profile says
which, and how a token of that provider that is *not* an access token (an ID token, a logout or
refresh token) is told apart, since the header no longer does it:

- ID-token claims (`nonce`, `at_hash`, `c_hash`, `s_hash`) and `events` are refused under every
  profile;
- `claim_values` pins claims the provider sets on access tokens only (Keycloak `typ: Bearer`,
  Cognito `token_use: access`, Entra `ver`);
- `client_claims` must name the client: ID tokens of Okta (`cid`) and Entra (`appid` / `azp`)
  carry no such claim;
- `any_of_claims` requires one claim out of a set (Entra: `scp` or `roles`);
- the audience rule: an ID token's `aud` is the client's id, not the API's (`"aud"`), and Cognito
  access tokens carry no `aud` at all, while its ID tokens do (`"client"`).

Everything a profile decides is compiled once, at construction: validating a new token runs
plain set and dict look-ups, and a cached token is not re-read at all.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from .access_token import AccessToken
from .errors import ConfigurationError, InvalidToken

__all__ = ["PROFILES", "TokenProfile", "resolve_profile"]

ScopeShape = Literal["string", "array", "either"]
AudienceRule = Literal["aud", "client"]

# Claims only an ID token carries; their presence means type confusion (RFC 9068 §4).
ID_TOKEN_CLAIMS = frozenset({"nonce", "at_hash", "c_hash", "s_hash"})


@dataclass(frozen=True)
class TokenProfile:
    """How one provider's JWT access tokens are typed and read (see the module docstring).

    `types`: accepted header `typ` values (lower case, `application/` optional); `None` in it
    accepts a token without `typ`. `client_claims`: the claims naming the client, first present
    wins; one is required. `scope_claim` and `scope_shape`: where the scopes are and whether a
    space-separated string, a JSON array of strings, or either. `role_claims`: dotted paths
    (`realm_access.roles`) whose string arrays become `request.auth.roles`. `audience`:
    `"aud"` (the `aud` claim names the resource) or `"client"` (no `aud` allowed; the client
    claim must be one of the configured audiences: Cognito). `claim_values`: claims that must
    be present with exactly that value. `any_of_claims`: at least one of these must be
    present. `forbidden_jti_prefixes`: `jti` prefixes of other token kinds (Okta `ID.`).
    """

    name: str
    types: Collection[str | None]
    client_claims: Sequence[str]
    scope_claim: str | None = "scope"
    scope_shape: ScopeShape = "string"
    role_claims: Sequence[str] = ()
    audience: AudienceRule = "aud"
    required_claims: Sequence[str] = ("iss", "exp", "sub")
    claim_values: Mapping[str, Any] = field(default_factory=dict)
    any_of_claims: Sequence[str] = ()
    forbidden_jti_prefixes: Sequence[str] = ()
    stops_id_tokens: str = ""
    """One sentence for the docs: what refuses this provider's ID tokens."""

    def __post_init__(self) -> None:
        def refuse(option: str, why: str) -> None:
            raise ConfigurationError(f"profile {self.name!r}: {option} {why}")

        if not isinstance(self.name, str) or not self.name:
            raise ConfigurationError("profile: name must be a non-empty string")
        if isinstance(self.types, str) or not self.types:
            refuse("types=", "must list the accepted typ values (None for no typ)")
        if isinstance(self.client_claims, str) or not self.client_claims:
            refuse("client_claims=", "must name at least one claim naming the client")
        if self.scope_shape not in ("string", "array", "either"):
            refuse("scope_shape=", 'must be "string", "array" or "either"')
        if self.audience not in ("aud", "client"):
            refuse("audience=", 'must be "aud" or "client"')
        for name in ("role_claims", "required_claims", "any_of_claims", "forbidden_jti_prefixes"):
            if isinstance(getattr(self, name), str):
                refuse(f"{name}=", "must be a sequence of strings, not one string")

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> TokenProfile:
        """A profile from a plain mapping (a config file); ConfigurationError naming a missing
        or unknown field."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigurationError(f"profile: unknown fields {unknown}")
        missing = [n for n in ("name", "types", "client_claims") if n not in options]
        if missing:
            raise ConfigurationError(f"profile: missing required field(s) {missing}")
        return cls(**options)


def _entra(version: str, client: str) -> TokenProfile:
    """Entra ID's v1.0 or v2.0 access tokens: they differ in `ver` and in the client claim."""
    return TokenProfile(
        name=f"entra-v{version[0]}",
        types=("jwt",),
        client_claims=(client,),
        scope_claim="scp",
        role_claims=("roles",),
        required_claims=("iss", "exp", "aud", "sub", "tid"),
        claim_values={"ver": version},
        any_of_claims=("scp", "roles"),
        stops_id_tokens=f"`{client}` is required and `ver` must be `{version}` (ID tokens of "
        f"that version carry no `{client}`), `scp` or `roles` is required, the audience, "
        "`nonce` / `at_hash`",
    )


_STANDARD = TokenProfile(
    name="rfc9068",
    types=("at+jwt",),
    client_claims=("client_id",),
    required_claims=("iss", "exp", "aud", "sub", "client_id", "iat", "jti"),
    stops_id_tokens="the header `typ` must be `at+jwt` (ID tokens are `JWT`), and `nonce` / "
    "`at_hash` are refused",
)

PROFILES: Mapping[str, TokenProfile] = {
    p.name: p
    for p in (
        _STANDARD,
        TokenProfile(
            name="keycloak",
            types=("jwt", "at+jwt"),
            client_claims=("client_id", "azp"),
            role_claims=("realm_access.roles",),
            required_claims=("iss", "exp", "sub", "iat"),
            claim_values={"typ": "Bearer"},
            stops_id_tokens='the `typ` claim must be `"Bearer"` (ID tokens say `"ID"`, refresh '
            'tokens `"Refresh"`, logout tokens `"Logout"`), the audience, `nonce` / `at_hash`',
        ),
        TokenProfile(
            name="auth0",
            types=("jwt", "at+jwt"),
            client_claims=("client_id", "azp"),
            role_claims=("permissions",),
            required_claims=("iss", "exp", "aud", "sub", "iat"),
            stops_id_tokens="the audience (an Auth0 ID token's `aud` is the client id, not the "
            "API identifier), a client claim (`azp`), `nonce` / `at_hash`",
        ),
        _entra("1.0", "appid"),
        _entra("2.0", "azp"),
        TokenProfile(
            name="okta",
            types=(None, "jwt", "at+jwt"),
            client_claims=("cid",),
            scope_claim="scp",
            scope_shape="array",
            role_claims=("groups",),
            required_claims=("iss", "exp", "aud", "sub", "iat", "jti"),
            forbidden_jti_prefixes=("ID.",),
            stops_id_tokens="`cid` is required (Okta ID tokens carry none), a `jti` starting with "
            "`ID.` is refused, the audience, `nonce` / `at_hash`",
        ),
        TokenProfile(
            name="cognito",
            types=(None, "jwt"),
            client_claims=("client_id",),
            role_claims=("cognito:groups",),
            audience="client",
            required_claims=("iss", "exp", "sub", "iat", "jti"),
            claim_values={"token_use": "access"},
            stops_id_tokens="`token_use` must be `access` (ID tokens say `id`), and an `aud` "
            "claim (which only ID tokens carry) is refused; the app client id must be listed in "
            "`audience`",
        ),
    )
}
"""The presets, by name. `"entra"` is an alias of `"entra-v2"`."""


def resolve_profile(value: str | TokenProfile | Mapping[str, Any]) -> TokenProfile:
    """The profile a `profile=` option means; ConfigurationError naming it otherwise."""
    if isinstance(value, TokenProfile):
        return value
    if isinstance(value, str):
        profile = PROFILES.get("entra-v2" if value == "entra" else value)
        if profile is None:
            raise ConfigurationError(
                f"profile={value!r} is not a known profile; use one of {sorted(PROFILES)} "
                "(or 'entra'), or a TokenProfile"
            )
        return profile
    if isinstance(value, Mapping):
        return TokenProfile.from_mapping(value)
    raise ConfigurationError("profile= must be a profile name, a TokenProfile or a mapping")


def _path(dotted: str) -> tuple[str, ...]:
    return tuple(dotted.split("."))


class ProfileRules:
    """One profile compiled for one validator: the claim checks and the AccessToken builder.

    Reason codes: `missing_claim`, `bad_claim_type`, `id_token`, `not_access_token` (a
    pinned claim says another token kind), `bad_audience`.
    """

    __slots__ = (
        "_any_of",
        "_audiences",
        "_client_claims",
        "_client_rule",
        "_jti_prefixes",
        "_pinned",
        "_required",
        "_roles",
        "_scope_claim",
        "_scope_shape",
        "types",
    )

    def __init__(self, profile: TokenProfile, audiences: frozenset[str]) -> None:
        self.types = frozenset(
            None if t is None else t.lower().removeprefix("application/") for t in profile.types
        )
        self._required = tuple(profile.required_claims)
        self._pinned = tuple(profile.claim_values.items())
        self._any_of = frozenset(profile.any_of_claims)
        self._client_claims = tuple(profile.client_claims)
        self._client_rule = profile.audience == "client"
        self._audiences = audiences
        self._scope_claim = profile.scope_claim
        self._scope_shape = profile.scope_shape
        self._roles = tuple(_path(p) for p in profile.role_claims)
        self._jti_prefixes = tuple(profile.forbidden_jti_prefixes)

    def check(self, claims: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        """Refuse what is not this profile's access token; (client id, scopes) on success."""
        for name in self._required:
            if name not in claims:
                raise InvalidToken(reason="missing_claim")
        for name, value in self._pinned:
            if claims.get(name) != value:
                raise InvalidToken(reason="not_access_token")
        if self._any_of and self._any_of.isdisjoint(claims.keys()):
            raise InvalidToken(reason="not_access_token")
        jti = claims.get("jti")
        if jti is not None and not isinstance(jti, str):
            raise InvalidToken(reason="bad_claim_type")
        if jti is not None and self._jti_prefixes and jti.startswith(self._jti_prefixes):
            raise InvalidToken(reason="id_token")
        client = None
        for name in self._client_claims:
            if name in claims:
                client = claims[name]
                break
        if client is None:
            raise InvalidToken(reason="missing_claim")
        if not isinstance(client, str) or not client:
            raise InvalidToken(reason="bad_claim_type")
        # Cognito: access tokens have no `aud`; its ID tokens do (the app client id).
        if self._client_rule and ("aud" in claims or client not in self._audiences):
            raise InvalidToken(reason="bad_audience")
        return client, self.scopes(claims)

    def scopes(self, claims: Mapping[str, Any]) -> tuple[str, ...]:
        """The granted scopes, in the profile's claim and shape."""
        name = self._scope_claim
        value = claims.get(name) if name is not None else None
        if value is None:
            return ()
        shape = self._scope_shape
        if isinstance(value, str) and shape != "array":
            return tuple(s for s in value.split(" ") if s)
        if (
            isinstance(value, list)
            and shape != "string"
            and all(isinstance(s, str) and s and " " not in s for s in value)
        ):
            return tuple(value)
        raise InvalidToken(reason="bad_claim_type")

    def roles(self, claims: Mapping[str, Any]) -> tuple[str, ...]:
        """Roles, groups or permissions from the profile's role claims (strings only)."""
        found: list[str] = []
        for path in self._roles:
            value: Any = claims
            for part in path:
                value = value.get(part) if isinstance(value, dict) else None
            if isinstance(value, list):
                found.extend(v for v in value if isinstance(v, str))
        return tuple(found)

    def access(
        self, claims: dict[str, Any], raw: str, client: str, scopes: tuple[str, ...]
    ) -> AccessToken:
        """The AccessToken of a verified token, read the profile's way."""
        return AccessToken.verified(
            claims, raw, granted=scopes, client_id=client, roles=self.roles(claims)
        )
