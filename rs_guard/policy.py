"""Route requirements (scopes, acr, max_age, claims) and scope hierarchies."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .challenge import claims_value
from .errors import InsufficientScope, InsufficientUserAuthentication
from .tokens import AccessToken


class ScopeHierarchy:
    """Which scopes imply which: `files:write` implies `files:read`; `admin` may imply `admin:*`.

    Implications are transitive. A value ending in `*` implies every scope with that prefix.
    """

    def __init__(self, implies: Mapping[str, Iterable[str]] | None = None) -> None:
        self._implies = {k: tuple(v) for k, v in (implies or {}).items()}
        self._memo: dict[tuple[str, ...], tuple[tuple[str, ...], tuple[str, ...]]] = {}

    def __bool__(self) -> bool:
        return bool(self._implies)

    def expand(self, granted: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
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
                    prefixes.append(implied[:-1])
                elif implied not in closure:
                    closure[implied] = None
                    todo.append(implied)
        result = (tuple(closure), tuple(prefixes))
        if len(self._memo) < 4096:
            self._memo[key] = result
        return result

    def effective(self, granted: Sequence[str]) -> tuple[str, ...]:
        """Granted plus implied scopes (wildcard prefixes are not enumerable, so not listed)."""
        return self.expand(granted)[0]

    def satisfies(self, granted: Sequence[str], required: str) -> bool:
        """Whether the granted scopes include or imply `required`."""
        closure, prefixes = self.expand(granted)
        return required in closure or any(required.startswith(p) for p in prefixes)


_FLAT = ScopeHierarchy()


@dataclass(frozen=True)
class Requirement:
    """What a route needs from the token.

    - `scopes`: all of them (after the scope hierarchy); unmet -> 403 insufficient_scope naming
      every scope the route needs.
    - `acr_values`: any of them, most preferred first; unmet -> 401
      insufficient_user_authentication with `acr_values`.
    - `max_age`: seconds since `auth_time`; unmet or `auth_time` absent -> 401 with `max_age`.
    - `claims`: claim name -> required value, e.g. `{"phone_number_verified": True}`; unmet ->
      401 with a `claims` parameter the client can use as an OIDC claims request.
    - `predicate`: a custom check; False -> 403 insufficient_scope (scopes as above).
    """

    scopes: tuple[str, ...] = ()
    acr_values: tuple[str, ...] = ()
    max_age: int | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)
    predicate: Callable[[AccessToken], bool] | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        for name in ("scopes", "acr_values"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, tuple(value.split()))
            else:
                object.__setattr__(self, name, tuple(value))

    def check(
        self,
        token: AccessToken,
        *,
        hierarchy: ScopeHierarchy | None = None,
        now: float | None = None,
        leeway: float = 0.0,
    ) -> None:
        """Raise the error whose challenge tells the client what to do; return if satisfied."""
        h = hierarchy or _FLAT
        if self.scopes:
            granted = token.granted_scopes
            if not all(h.satisfies(granted, s) for s in self.scopes):
                raise InsufficientScope(self.scopes, self.description)
        step_up = self.step_up_error(token, now=now, leeway=leeway)
        if step_up is not None:
            raise step_up
        if self.predicate is not None and not self.predicate(token):
            raise InsufficientScope(
                self.scopes, self.description or "The access token does not permit this request"
            )

    def step_up_error(
        self, token: AccessToken, *, now: float | None = None, leeway: float = 0.0
    ) -> InsufficientUserAuthentication | None:
        """The RFC 9470 error for this token, or None when acr, max_age and claims are met."""
        acr_short = bool(self.acr_values) and token.acr not in self.acr_values
        age_short = False
        if self.max_age is not None:
            auth_time = token.auth_time
            current = time.time() if now is None else now
            age_short = auth_time is None or current - auth_time > self.max_age + leeway
        missing = {k: v for k, v in self.claims.items() if token.claims.get(k) != v}
        if not (acr_short or age_short or missing):
            return None
        claims_request = None
        if missing:
            claims_request = claims_value(
                {"id_token": {k: {"value": v} for k, v in missing.items()}}
            )
        description = self.description
        if description is None:
            if acr_short:
                description = "A different authentication level is required"
            elif age_short:
                description = "More recent authentication is required"
            else:
                description = "Additional verified user attributes are required"
        return InsufficientUserAuthentication(
            description,
            acr_values=self.acr_values if acr_short else (),
            max_age=self.max_age if age_short else None,
            claims=claims_request,
        )
