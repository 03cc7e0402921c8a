"""The validated access token (RFC 9068 §2 claims, RFC 7662 answers) and the validator protocol."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NoReturn, Protocol, SupportsIndex

from starlette.authentication import AuthCredentials, BaseUser

from ._jws import is_numeric_date
from .errors import ConfigurationError, InvalidToken

__all__ = ["AccessToken", "Limits", "TokenUser", "TokenValidator"]

DEFAULT_MAX_TOKEN_BYTES = 8192


# `scope` claim -> its scopes, for the scope strings of verified tokens: most tokens of an
# issuer carry one of a few scope strings, so the cached tokens share one tuple (and its
# strings) per scope string instead of keeping their own. Filled only from verified tokens
# (`AccessToken.verified`), bounded in entries and length; read by every parse.
_SCOPES: dict[str, tuple[str, ...]] = {}
_SCOPES_MAX = 1024
_SCOPE_MAX_LEN = 512


def scopes_of(value: Any) -> tuple[str, ...]:
    """The scopes of a `scope` claim (RFC 8693 §4.2: space-delimited string)."""
    if value is None:
        return ()
    if not isinstance(value, str):
        raise InvalidToken(reason="bad_claim_type")
    known = _SCOPES.get(value)
    if known is not None:
        return known
    # Not `_scopes.split_scope`: this runs twice per new token, and a repeated scope in a
    # token is harmless, so the de-duplicating pass is not worth its cost here.
    return tuple(s for s in value.split(" ") if s)


def _shared_scopes(value: Any) -> tuple[str, ...]:
    """`scopes_of` for a verified token, remembering its scope string's tuple."""
    if type(value) is str:
        known = _SCOPES.get(value)
        if known is not None:
            return known
    scopes = scopes_of(value)
    if type(value) is str and len(_SCOPES) < _SCOPES_MAX and len(value) <= _SCOPE_MAX_LEN:
        _SCOPES[value] = scopes
    return scopes


class _Scopes(list[str]):
    """`request.auth.scopes`: a list (Starlette's `AuthCredentials` type), but read-only.

    A validated token is cached and the same object serves every request that presents it, so
    an app appending to `request.auth.scopes` would grant that scope to every later request
    with the token (Starlette's `@requires` reads this list). Changing it raises instead; copy
    it (`list(request.auth.scopes)`) to get a list of one's own.
    """

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError(
            "request.auth.scopes is shared by every request with this token; copy it "
            "(list(request.auth.scopes)) to change it"
        )

    append = extend = insert = remove = pop = clear = sort = reverse = _refuse
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        # copy / pickle give a plain list (their default rebuilds by `extend`, refused here).
        return (list, (list(self),))


@dataclass(frozen=True, slots=True)
class Limits:
    """How much a validator keeps and reads (like httpx's `Limits`).

    `cache_size` validated tokens are remembered (LRU; 0 turns the cache off) and a token
    longer than `max_token_bytes` is refused before any parsing.
    """

    cache_size: int = 10_000
    max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES

    def __post_init__(self) -> None:
        if self.cache_size < 0 or self.max_token_bytes <= 0:
            raise ConfigurationError("Limits: cache_size >= 0 and max_token_bytes > 0")


class AccessToken(AuthCredentials):
    """The validated access token: an immutable view of its claims.

    It is Starlette's `AuthCredentials`, so `request.auth.scopes` and `@requires(...)` work
    unchanged. `scopes` includes scopes implied by a configured hierarchy; `granted_scopes`
    is exactly what the token says.
    """

    __slots__ = (
        "_client_id",
        "_derived",
        "_raw",
        "claims",
        "granted_scopes",
        "local_subject",
        "roles",
        "scopes",
        "user_id",
    )

    def __init__(
        self,
        claims: Mapping[str, Any],
        *,
        raw: str = "",
        scopes: Iterable[str] | None = None,
        local_subject: str | None = None,
        user_id: Any = None,
        granted: tuple[str, ...] | None = None,
        client_id: str | None = None,
        roles: tuple[str, ...] = (),
    ) -> None:
        # `granted`, `client_id` and `roles`: read by a token profile from the claims its
        # provider uses (`scp`, `azp`, `realm_access.roles`...); by default RFC 9068's own.
        # Field by field, not through AuthCredentials.__init__ (it would copy the list again).
        if granted is None:
            granted = scopes_of(claims.get("scope"))
        self.scopes: list[str] = _Scopes(scopes if scopes is not None else granted)
        # A copy: the caller's mapping may change after this; the token must not.
        self.claims: Mapping[str, Any] = MappingProxyType(dict(claims))
        self.granted_scopes: tuple[str, ...] = granted
        self.local_subject = local_subject
        self.user_id = user_id
        self._client_id = client_id
        self.roles: tuple[str, ...] = roles
        """Roles, groups or permissions, from the claims the token profile names."""
        self._raw = raw
        # What a guard derived from this validated token (implied scopes, own PPID), kept on
        # the cached object so that a reused token pays for the derivation once.
        self._derived: tuple[object, AccessToken | None] | None = None

    @classmethod
    def verified(
        cls,
        claims: dict[str, Any],
        raw: str,
        *,
        granted: tuple[str, ...] | None = None,
        client_id: str | None = None,
        roles: tuple[str, ...] = (),
    ) -> AccessToken:
        """The token of freshly parsed, verified claims, which it takes over.

        For validators: `claims` must be a dict nobody else holds (the parse result), so it is
        wrapped rather than copied, and the token is built field by field. Otherwise it reads
        as `AccessToken(claims, raw=raw, granted=..., client_id=..., roles=...)`.
        """
        if granted is None:
            granted = _shared_scopes(claims.get("scope"))
        token = cls.__new__(cls)
        token.scopes, token.granted_scopes = _Scopes(granted), granted
        token.claims = MappingProxyType(claims)
        token.local_subject = token.user_id = token._derived = None
        token._client_id, token.roles, token._raw = client_id, roles, raw
        return token

    def __repr__(self) -> str:
        # Never the token itself: reprs end up in logs and tracebacks.
        return (
            f"AccessToken(sub={self.subject!r}, client_id={self.client_id!r}, "
            f"scopes={self.scopes!r})"
        )

    @property
    def subject(self) -> str:
        """`sub` as received: for pairwise clients, the caller's PPID."""
        return str(self.claims.get("sub", ""))

    @property
    def client_id(self) -> str | None:
        """The OAuth client the token was issued to (`client_id`, or the profile's claim)."""
        if self._client_id is not None:
            return self._client_id
        value = self.claims.get("client_id")
        return value if isinstance(value, str) else None

    @property
    def issuer(self) -> str:
        """`iss` of the token."""
        return str(self.claims.get("iss", ""))

    @property
    def audience(self) -> tuple[str, ...]:
        """`aud` as a tuple."""
        aud = self.claims.get("aud")
        if isinstance(aud, str):
            return (aud,)
        return tuple(a for a in aud if isinstance(a, str)) if isinstance(aud, list) else ()

    @property
    def acr(self) -> str | None:
        """Authentication context class reference, when it is a string."""
        value = self.claims.get("acr")
        return value if isinstance(value, str) else None

    @property
    def amr(self) -> tuple[str, ...]:
        """Authentication methods references."""
        value = self.claims.get("amr")
        return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()

    @property
    def auth_time(self) -> int | None:
        """When the user authenticated (seconds since the epoch), when it is a number."""
        value = self.claims.get("auth_time")
        return int(value) if is_numeric_date(value) else None

    @property
    def expires_at(self) -> float | None:
        """`exp` of the token."""
        value = self.claims.get("exp")
        return float(value) if is_numeric_date(value) else None

    @property
    def jti(self) -> str | None:
        """The token's unique identifier."""
        value = self.claims.get("jti")
        return value if isinstance(value, str) else None

    @property
    def jkt(self) -> str | None:
        """The RFC 7638 thumbprint of the DPoP key the token is bound to (`cnf.jkt`, RFC 9449)."""
        cnf = self.claims.get("cnf")
        jkt = cnf.get("jkt") if isinstance(cnf, Mapping) else None
        return jkt if isinstance(jkt, str) else None

    @property
    def sender_constrained(self) -> bool:
        """Whether the token is DPoP-bound (so this request came with its key's proof)."""
        return self.jkt is not None

    @property
    def token(self) -> str:
        """The raw token; for RFC 8693 exchange only. Never forward it to another service."""
        return self._raw

    def replace(self, **changes: Any) -> AccessToken:
        """A copy with `scopes`, `local_subject` or `user_id` changed (claims are shared)."""
        # Built field by field: re-reading the claims costs more than the whole cache hit.
        new = AccessToken.__new__(AccessToken)
        new.scopes = _Scopes(changes.get("scopes", self.scopes))
        new.claims = self.claims
        new.granted_scopes = self.granted_scopes
        new._client_id = self._client_id
        new.roles = self.roles
        new.local_subject = changes.get("local_subject", self.local_subject)
        new.user_id = changes.get("user_id", self.user_id)
        new._raw = self._raw
        new._derived = None
        return new

    @property
    def user(self) -> TokenUser:
        """The `request.user` for this token: a new one on each read.

        Not remembered on the token: the user refers to the token, so a token referring back
        to its user is a reference cycle, and every cached token the LRU evicts would be
        garbage that only a full (gen-2) collection frees. One small object per request is
        cheaper than those pauses (about 0.1 µs on a cache hit, measured against the cached
        user; a weak reference either way would let `request.user.token` vanish).
        """
        return TokenUser(self)


class TokenUser(BaseUser):
    """`request.user` for a request carrying a valid token."""

    __slots__ = ("token",)

    def __init__(self, token: AccessToken) -> None:
        self.token = token

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.token.local_subject or self.token.subject

    @property
    def identity(self) -> str:
        return self.token.local_subject or self.token.subject

    def __repr__(self) -> str:
        return f"TokenUser({self.identity!r})"


class TokenValidator(Protocol):
    """Anything that turns a token string into an AccessToken or raises an RSGuardError."""

    async def validate(self, token: str) -> AccessToken: ...
