"""Start-up prefetch and a readiness endpoint: is the guard able to validate tokens right now?

- `ResourceGuard(..., prefetch="warn" | "require")` fetches the issuer's discovery document and
  JWK Set when the app's lifespan starts. "warn" logs a WARNING and serves anyway (requests
  retry, answering 503 until the IdP answers); "require" fails the start-up, so a deployment
  with a wrong issuer or an unreachable IdP never goes live.
- `Readiness(guard, ...)` is an ASGI endpoint for Kubernetes-style readiness probes: 200 when
  every issuer has usable keys, 503 otherwise, with a JSON body saying how fresh the keys are
  and whether the IdP answered. It never fetches more often than the key cache's own rules
  allow (`jwks_max_age`, `jwks_cooldown`), so frequent probes do not load the IdP.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from starlette.types import Message, Receive, Scope, Send

from ._asgi import send_response
from ._json import dumps
from .discovery import metadata_urls
from .errors import FetchError, ServerError
from .server import AuthorizationServer

if TYPE_CHECKING:
    from .middleware import ResourceGuard

__all__ = ["Readiness", "prefetch"]

logger = logging.getLogger("rs_guard")


async def prefetch(server: AuthorizationServer) -> str | None:
    """Fetch discovery and keys of `server` now; None when usable keys are held, else why not."""
    try:
        await server.metadata.get()
    except FetchError as exc:
        tried = ", ".join(metadata_urls(server.issuer))
        return f"issuer {server.issuer}: discovery failed ({exc}; tried {tried})"
    try:
        await server.keys.ensure()
    except ServerError as exc:
        return f"issuer {server.issuer}: no usable keys ({exc.reason})"
    return None


async def run_lifespan(guard: ResourceGuard, scope: Scope, receive: Receive, send: Send) -> None:
    """Run the app's lifespan; with `prefetch` on, fetch keys once the app has started.

    Other scope types are passed on untouched. The lifespan scope is marked with the guard,
    so what runs inside can tell at start-up that a guard is in front of it.
    """
    if scope["type"] != "lifespan":
        await guard.app(scope, receive, send)
        return
    scope["rs_guard"] = guard
    if guard.prefetch == "off":
        await guard.app(scope, receive, send)
        return

    async def send_after_prefetch(message: Message) -> None:
        if message["type"] == "lifespan.startup.complete":
            problem = await prefetch(guard.server)
            if problem is not None and guard.prefetch == "require":
                text = f"rs_guard start-up prefetch failed ({problem}); refusing to start"
                logger.error("%s (prefetch='require')", text)
                message = {"type": "lifespan.startup.failed", "message": text}
            elif problem is not None:
                logger.warning(
                    "rs_guard start-up prefetch failed (%s); serving anyway, requests answer 503 "
                    "until the IdP answers (prefetch='warn')",
                    problem,
                )
        await send(message)

    await guard.app(scope, receive, send_after_prefetch)


async def refuse_unguarded_lifespan(
    app: Any, scope: Scope, receive: Receive, send: Send, owner: str
) -> None:
    """Run `app`'s lifespan, failing its start-up when no ResourceGuard is in front of `owner`.

    A lifespan that reaches `owner` without passing a guard (which marks the scope) means the
    guard is missing or inside `owner`: every checked request would be refused.
    """
    if scope.get("rs_guard") is not None:
        await app(scope, receive, send)
        return
    text = (
        f"{owner} needs a ResourceGuard in front of it (none ran before this lifespan): wrap "
        f"it, e.g. app = ResourceGuard({owner}(...), issuer=..., resource=...)"
    )
    logger.error("%s", text)
    message = await receive()
    if message["type"] == "lifespan.startup":
        await send({"type": "lifespan.startup.failed", "message": text})


class Readiness:
    """ASGI readiness endpoint: `Route("/ready", Readiness(guard))`, listed in `public_paths`.

    `servers` are ResourceGuards or AuthorizationServers. Ready (200) when each has usable keys;
    with `require_fresh=True` also only while the keys are within `jwks_max_age` (by default
    keys kept past it during an IdP outage, within `jwks_stale_for`, still count as ready).
    Each check is bounded by `timeout` seconds (probes have short timeouts of their own).
    """

    def __init__(
        self,
        *servers: ResourceGuard | AuthorizationServer,
        require_fresh: bool = False,
        timeout: float = 2.0,
    ) -> None:
        if not servers:
            raise ValueError("Readiness needs at least one ResourceGuard or AuthorizationServer")
        self.servers = tuple(_server_of(s) for s in servers)
        self.require_fresh = require_fresh
        self.timeout = timeout

    async def status(self) -> dict[str, Any]:
        """The readiness document: `ready` and, per issuer, the state of its keys."""
        issuers = [await self._check(server) for server in self.servers]
        ready = all(i["usable"] and (i["fresh"] or not self.require_fresh) for i in issuers)
        return {"ready": ready, "issuers": issuers}

    async def _check(self, server: AuthorizationServer) -> dict[str, Any]:
        problem: str | None
        try:
            # Shielded: a probe giving up must not cancel the fetch other requests share.
            problem = await asyncio.wait_for(asyncio.shield(prefetch(server)), self.timeout)
        except TimeoutError:
            problem = f"issuer {server.issuer}: no answer within {self.timeout:g} s"
        keys = server.keys
        age = keys.age
        fresh = age is not None and age < keys.max_age and bool(keys.keys)
        return {
            "issuer": server.issuer,
            "usable": bool(keys.keys),
            "keys": len(keys.keys),
            "keys_age_seconds": None if age is None else round(age, 1),
            "fresh": fresh,
            # A refresh that failed leaves the keys past max_age: the IdP did not answer.
            "idp_reachable": problem is None and fresh,
            "problem": problem,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method", "GET") not in ("GET", "HEAD"):
            await send_response(send, 405, b"", [(b"allow", b"GET, HEAD")])
            return
        doc = await self.status()
        body = dumps(doc)
        headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
        status = 200 if doc["ready"] else 503
        head = scope.get("method") == "HEAD"
        await send_response(send, status, b"" if head else body, headers, content_length=len(body))


def _server_of(item: Any) -> AuthorizationServer:
    server = getattr(item, "server", item)
    if not isinstance(server, AuthorizationServer):
        raise TypeError(f"not a ResourceGuard or AuthorizationServer: {item!r}")
    return server
