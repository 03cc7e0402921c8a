"""Route policy: which requirement a path has, and what the routed endpoint declares.

Two sources, in this order: the guard's own table (`requirements`, `public_paths`, matched on
the request path), and what the endpoint that will serve the request declares (`@public`,
`@require`, FastAPI `Security(..., scopes=)`). The second needs the framework's router; it is
asked only for requests without credentials (to honour `@public` and to name the route's scope
in the challenge), so authenticated requests never pay for a second route match.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from starlette.types import Scope

from .policy import Requirement

_MAX_DEPTH = 4  # nested mounts followed when looking for the serving route


class PathPolicy:
    """The per-path requirement table and public paths; a trailing `*` makes a prefix entry."""

    __slots__ = ("default", "exact", "prefixes", "public_exact", "public_prefixes")

    def __init__(
        self,
        requirements: Mapping[str, Requirement] | None = None,
        public_paths: Sequence[str] = (),
        default: Requirement | None = None,
    ) -> None:
        self.default = default
        self.exact: dict[str, Requirement] = {}
        prefixes: list[tuple[str, Requirement]] = []
        for path, req in (requirements or {}).items():
            if path.endswith("*"):
                prefixes.append((path[:-1], req))
            else:
                self.exact[path] = req
        prefixes.sort(key=lambda item: -len(item[0]))  # longest prefix wins
        self.prefixes = tuple(prefixes)
        self.public_exact = frozenset(p for p in public_paths if not p.endswith("*"))
        self.public_prefixes = tuple(p[:-1] for p in public_paths if p.endswith("*"))

    @property
    def needs_search(self) -> bool:
        """Whether a path missing from `exact` can still have a requirement."""
        return bool(self.prefixes) or self.default is not None

    def requirement_for(self, path: str) -> Requirement | None:
        """The configured requirement for a path (exact match, then longest prefix)."""
        req = self.exact.get(path)
        if req is not None:
            return req
        for prefix, req in self.prefixes:
            if path.startswith(prefix):
                return req
        return self.default

    def is_public(self, path: str) -> bool:
        """Whether the path is listed in `public_paths`."""
        return path in self.public_exact or path.startswith(self.public_prefixes)


class Declared(NamedTuple):
    """What the endpoint serving a request declares about itself."""

    public: bool
    requirement: Requirement | None


_NOTHING = Declared(False, None)


def declared(app: Any, scope: Scope) -> Declared:
    """What the route that will serve this request declares (nothing when none matches)."""
    route = _serving_route(app, scope, 0)
    if route is None:
        return _NOTHING
    endpoint = getattr(route, "endpoint", None)
    if getattr(endpoint, "__rs_guard_public__", False):
        return Declared(True, None)
    req = getattr(endpoint, "__rs_guard_requirement__", None)
    if isinstance(req, Requirement):
        return Declared(False, req)
    if getattr(route, "dependant", None) is not None:
        # A FastAPI route: its adapter reads the dependency tree (FastAPI is installed).
        from .fastapi import declared_requirement

        return Declared(False, declared_requirement(route))
    return _NOTHING


def _routes_below(app: Any) -> list[Any] | None:
    """The route list of the first router below `app` (through middleware `.app` links)."""
    for _ in range(32):
        routes = getattr(app, "routes", None)
        if isinstance(routes, list):
            return routes
        nxt = getattr(app, "router", None) or getattr(app, "app", None)
        if nxt is None:
            return None
        app = nxt
    return None


def _serving_route(app: Any, scope: Scope, depth: int) -> Any:
    """The Starlette route that will serve this request (descending into mounts), or None."""
    from starlette.routing import Match

    routes = _routes_below(app)
    if routes is None or depth > _MAX_DEPTH:
        return None
    try:
        for route in routes:
            match, child = route.matches(scope)
            if match != Match.FULL:
                continue
            endpoint = getattr(route, "endpoint", None)
            inner = getattr(route, "app", None)
            if endpoint is None and inner is not None and _routes_below(inner) is not None:
                return _serving_route(inner, {**scope, **child}, depth + 1)
            return route
    except Exception:  # a route's matcher failing must not turn a 401 into a 500
        return None
    return None
