"""Route policy: which requirement a path has, and what the routed endpoint declares.

Two sources, in this order: the guard's own table (`requirements`, `public_paths`, matched on
the path the router dispatches on: `scope["path"]` minus `root_path`, as Starlette's own routing
does, so a guarded app under `Mount("/notes", ...)` or `uvicorn --root-path /api` is matched on
its own route paths), and what the endpoint that will serve the request declares (`@public`,
`@require`, FastAPI `Security(..., scopes=)`). The second needs the framework's router; it is
asked only for requests without credentials (to honour `@public` and to name the route's scope
in the challenge), so authenticated requests never pay for a second route match.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from starlette.types import Scope

from .errors import ConfigurationError
from .policy import Requirement

_MAX_DEPTH = 4  # nested mounts followed when looking for the serving route


def route_path(scope: Scope) -> str:
    """The path the router dispatches on: `scope["path"]` without the `root_path` prefix.

    Servers and Starlette's `Mount` keep the full path in `scope["path"]` and say in
    `root_path` how much of it is the mount point (ASGI spec, "root_path"). Matching a table
    keyed by the app's own route paths against the full path would never match under a mount.
    """
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        rest = path[len(root) :]
        if not rest or rest[0] == "/":
            return rest
    return path


def under(path: str, prefix: str) -> bool:
    """Whether `path` is `prefix` or below it, on a segment boundary.

    `/docs` covers `/docs` and `/docs/...`, never `/docs-internal`; a prefix that ends in "/"
    (`/static/`) covers what starts with it.
    """
    if not path.startswith(prefix):
        return False
    return len(path) == len(prefix) or prefix.endswith("/") or path[len(prefix)] == "/"


def _check_path(option: str, path: object) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigurationError(f"{option}: {path!r} is not a path starting with '/'")
    if "*" in path[:-1]:
        raise ConfigurationError(f"{option}: {path!r}: '*' is allowed only at the end (a prefix)")
    return path


class PathPolicy:
    """The per-path requirement table and public paths.

    An entry is an exact route path (`/items`) or, with a trailing `*`, a prefix matched on
    segment boundaries (`/docs*` covers `/docs` and `/docs/...`, not `/docs-internal`).
    """

    __slots__ = ("default", "exact", "prefixes", "public_exact", "public_prefixes")

    def __init__(
        self,
        requirements: Mapping[str, Requirement] | None = None,
        public_paths: Sequence[str] = (),
        default: Requirement | None = None,
    ) -> None:
        if isinstance(public_paths, str | bytes):
            # A bare string would be taken letter by letter ("/" among them: all public).
            raise ConfigurationError("public_paths= must be a list of paths, not one string")
        if default is not None and not isinstance(default, Requirement):
            raise ConfigurationError("default_requirement= must be a Requirement")
        self.default = default
        self.exact: dict[str, Requirement] = {}
        prefixes: list[tuple[str, Requirement]] = []
        for path, req in (requirements or {}).items():
            _check_path("requirements=", path)
            if not isinstance(req, Requirement):
                raise ConfigurationError(f"requirements=: {path!r} maps to a non-Requirement")
            if path.endswith("*"):
                prefixes.append((path[:-1], req))
            else:
                self.exact[path] = req
        prefixes.sort(key=lambda item: -len(item[0]))  # longest prefix wins
        self.prefixes = tuple(prefixes)
        paths = [_check_path("public_paths=", p) for p in public_paths]
        self.public_exact = frozenset(p for p in paths if not p.endswith("*"))
        self.public_prefixes = tuple(p[:-1] for p in paths if p.endswith("*"))

    @property
    def needs_search(self) -> bool:
        """Whether a path missing from `exact` can still have a requirement."""
        return bool(self.prefixes) or self.default is not None

    def requirement_for(self, path: str) -> Requirement | None:
        """The configured requirement for a route path (exact match, then longest prefix)."""
        req = self.exact.get(path)
        if req is not None:
            return req
        for prefix, req in self.prefixes:
            if under(path, prefix):
                return req
        return self.default

    def is_public(self, path: str) -> bool:
        """Whether the route path is listed in `public_paths`."""
        return path in self.public_exact or any(under(path, p) for p in self.public_prefixes)


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
