"""Route requirements (scopes, acr, max_age, claims) and scope hierarchies."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ._scopes import join_scope
from .access_token import AccessToken
from .challenge import NEVER_CHALLENGED, SCOPE_TOKEN, claims_value
from .errors import ConfigurationError, InsufficientScope, InsufficientUserAuthentication

__all__ = ["Requirement", "ScopeHierarchy"]

_MEMO_SIZE = 4096
_FUTURE_SKEW = 60  # seconds an IdP clock may run ahead before auth_time is not believed


def _tokens(value: str | Iterable[str], what: str) -> tuple[str, ...]:
    """Split/check configured scope-like values: RFC 6749 scope-tokens, order kept, no repeats."""
    items = value.split() if isinstance(value, str) else list(value)
    for item in items:
        if not isinstance(item, str) or not SCOPE_TOKEN.fullmatch(item):
            raise ConfigurationError(f"invalid {what} value {item!r} (RFC 6749 scope-token)")
    return tuple(dict.fromkeys(items))


class ScopeHierarchy:
    """Which scopes imply which: `files:write` implies `files:read`; `admin` may imply `admin:*`.

    Implications are transitive. A value ending in `*` implies every scope with that prefix
    (`"admin": ["admin:*"]`). Used when deciding whether a token's scopes suffice; challenges
    still name the scopes the route asks for.
    """

    def __init__(self, implies: Mapping[str, Iterable[str]] | None = None) -> None:
        table: dict[str, tuple[str, ...]] = {}
        for broad, narrower in (implies or {}).items():
            (key,) = _tokens([broad], "scope hierarchy")
            values = [narrower] if isinstance(narrower, str) else list(narrower)
            for value in values:
                if not isinstance(value, str) or not SCOPE_TOKEN.fullmatch(value):
                    raise ConfigurationError(f"invalid implied scope {value!r} for {broad!r}")
                if "*" in value[:-1]:
                    raise ConfigurationError(f"'*' may only end an implied scope: {value!r}")
            table[key] = tuple(values)
        self._implies = table
        self._memo: dict[tuple[str, ...], tuple[frozenset[str], tuple[str, ...]]] = {}
        self._effective: dict[tuple[str, ...], tuple[str, ...]] = {}

    def __bool__(self) -> bool:
        return bool(self._implies)

    def __repr__(self) -> str:
        return f"ScopeHierarchy({dict(self._implies)!r})"

    def expand(self, granted: Sequence[str]) -> tuple[frozenset[str], tuple[str, ...]]:
        """(every scope granted or implied, prefixes implied by wildcards)."""
        key = tuple(granted)
        memo = self._memo.get(key)
        if memo is not None:
            return memo
        closure: dict[str, None] = dict.fromkeys(granted)
        prefixes: list[str] = []
        todo = list(granted)
        while todo:
            for implied in self._implies.get(todo.pop(), ()):
                if implied.endswith("*"):
                    if implied[:-1] not in prefixes:
                        prefixes.append(implied[:-1])
                elif implied not in closure:
                    closure[implied] = None
                    todo.append(implied)
        result = (frozenset(closure), tuple(prefixes))
        if len(self._memo) < _MEMO_SIZE:
            self._memo[key] = result
        return result

    def effective(self, granted: Sequence[str]) -> tuple[str, ...]:
        """Granted plus implied scopes (wildcard prefixes are not enumerable, so not listed)."""
        key = tuple(granted)
        result = self._effective.get(key)
        if result is None:
            closure, _ = self.expand(key)
            result = (*dict.fromkeys(key), *sorted(closure.difference(key)))
            if len(self._effective) < _MEMO_SIZE:
                self._effective[key] = result
        return result

    def satisfies(self, granted: Sequence[str], required: str) -> bool:
        """Whether the granted scopes include or imply `required`."""
        closure, prefixes = self.expand(granted)
        return required in closure or any(required.startswith(p) for p in prefixes)

    def missing(self, granted: Sequence[str], required: Iterable[str]) -> tuple[str, ...]:
        """The required scopes that the granted ones neither include nor imply."""
        return tuple(s for s in required if not self.satisfies(granted, s))


_FLAT = ScopeHierarchy()


def _same_json(actual: Any, wanted: Any) -> bool:
    """JSON equality: `true` is not `1`, `1` equals `1.0`, objects and arrays compared deeply."""
    if isinstance(wanted, bool) or isinstance(actual, bool):
        return actual is wanted
    if isinstance(wanted, int | float) and isinstance(actual, int | float):
        return actual == wanted
    if isinstance(wanted, Mapping):
        return (
            isinstance(actual, Mapping)
            and actual.keys() == wanted.keys()
            and all(_same_json(actual[k], wanted[k]) for k in wanted)
        )
    if isinstance(wanted, list | tuple):
        return (
            isinstance(actual, list | tuple)
            and len(actual) == len(wanted)
            and all(_same_json(a, w) for a, w in zip(actual, wanted, strict=True))
        )
    return type(actual) is type(wanted) and actual == wanted


@dataclass(frozen=True)
class Requirement:
    """What an operation needs from the token.

    - `scopes`: all of them (after the scope hierarchy); unmet -> 403 insufficient_scope naming
      every scope the operation needs, in one challenge.
    - `acr_values`: any of them, most preferred first; unmet (or `acr` absent / not a string)
      -> 401 insufficient_user_authentication with `acr_values` (RFC 9470 §3).
    - `max_age`: seconds since `auth_time`; unmet, or `auth_time` absent / not a number -> 401
      with `max_age`.
    - `claims`: claim name -> required JSON value, e.g. `{"phone_number_verified": True}`;
      unmet -> 401 with a `claims` parameter holding the OIDC claims request
      `{"id_token": {"phone_number_verified": {"value": true}}}` (see `rs_guard.challenge`).
    - `predicate`: a custom check; False -> 403 insufficient_scope (scopes as above).
    - `description`: the `error_description` sent instead of the default one.

    Every RFC 9470 answer also carries `scope` (the scopes the operation needs). When scopes
    and the authentication event both fall short, the answer is that one 401, naming both, so
    the client re-authorizes once; a predicate is checked last.
    """

    scopes: tuple[str, ...] = ()
    acr_values: tuple[str, ...] = ()
    max_age: int | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)
    predicate: Callable[[AccessToken], bool] | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        scopes = _tokens(self.scopes, "scope")
        if NEVER_CHALLENGED.intersection(scopes):
            # A route cannot demand a refresh-token grant, and clients are never asked for one.
            raise ConfigurationError("offline_access cannot be required by a route")
        object.__setattr__(self, "scopes", scopes)
        object.__setattr__(self, "acr_values", _tokens(self.acr_values, "acr"))
        if self.max_age is not None and (
            not isinstance(self.max_age, int) or isinstance(self.max_age, bool) or self.max_age < 0
        ):
            raise ConfigurationError("max_age must be a non-negative whole number of seconds")
        claims = dict(self.claims)
        for name in claims:
            if not isinstance(name, str) or not name:
                raise ConfigurationError("claim names must be non-empty strings")
        object.__setattr__(self, "claims", MappingProxyType(claims))
        # Decided once (not a field: equality and repr stay the declared ones): a requirement
        # of scopes alone is checked on every request with a membership test per scope.
        simple = not (
            self.acr_values or self.max_age is not None or claims or self.predicate is not None
        )
        object.__setattr__(self, "_scopes_only", simple)

    @property
    def steps_up(self) -> bool:
        """Whether this requirement concerns the authentication event (acr, max_age, claims)."""
        return bool(self.acr_values or self.max_age is not None or self.claims)

    def check(
        self,
        token: AccessToken,
        *,
        hierarchy: ScopeHierarchy | None = None,
        now: float | None = None,
        leeway: float = 0.0,
    ) -> None:
        """Raise the error whose challenge tells the client what to do; return if satisfied.

        When both the scopes and the authentication event fall short, one 401
        `insufficient_user_authentication` carries the scopes too, so one re-authorization
        (scope + acr_values / max_age / claims) suffices, and its description names both.
        """
        if self._scopes_only and not hierarchy:  # type: ignore[attr-defined]
            granted = token.granted_scopes
            for required in self.scopes:
                if required not in granted:
                    raise InsufficientScope(self.scopes, self.description)
            return
        scope_short = False
        if self.scopes:
            granted = token.granted_scopes
            h = hierarchy or _FLAT
            scope_short = not all(h.satisfies(granted, s) for s in self.scopes)
        if self.steps_up:
            step_up = self.step_up_error(token, now=now, leeway=leeway, scope_short=scope_short)
            if step_up is not None:
                raise step_up
        if scope_short:
            raise InsufficientScope(self.scopes, self.description)
        if self.predicate is not None and not self.predicate(token):
            raise InsufficientScope(
                self.scopes, self.description or "The access token does not permit this request"
            )

    def step_up_error(
        self,
        token: AccessToken,
        *,
        now: float | None = None,
        leeway: float = 0.0,
        scope_short: bool = False,
    ) -> InsufficientUserAuthentication | None:
        """The RFC 9470 error for this token, or None when acr, max_age and claims are met.

        `scope_short`: the token also lacks a scope of this requirement; the error then says so
        and gets its own reason code.
        """
        acr_short = bool(self.acr_values) and token.acr not in self.acr_values
        age_short = False
        if self.max_age is not None:
            auth_time = token.auth_time
            current = time.time() if now is None else now
            age = None if auth_time is None else current - auth_time
            # An authentication "in the future" is an inconsistent token, never a fresh one.
            age_short = age is None or age > self.max_age + leeway or age < -_FUTURE_SKEW
        missing: dict[str, Any] = {}
        if self.claims:
            have = token.claims
            missing = {
                k: v for k, v in self.claims.items() if k not in have or not _same_json(have[k], v)
            }
        if not (acr_short or age_short or missing):
            return None
        claims_request = None
        if missing:
            claims_request = claims_value(
                {"id_token": {k: {"value": v} for k, v in missing.items()}}
            )
        if acr_short:
            what = "A different authentication level is required"
        elif age_short:
            what = "More recent authentication is required"
        else:
            what = "Additional verified user attributes are required"
        if scope_short:
            # The operator's description speaks of one need; both failed, so say both.
            description = f"{what}, and scope {join_scope(self.scopes)}"
        else:
            description = self.description or what
        return InsufficientUserAuthentication(
            description,
            acr_values=self.acr_values if acr_short else (),
            max_age=self.max_age if age_short else None,
            claims=claims_request,
            scopes=self.scopes,
            reason="insufficient_scope_and_authentication" if scope_short else None,
        )
