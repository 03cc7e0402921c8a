"""Service B: a "favourites" API that knows users only by its own PPIDs.

Every caller reaches B with a token whose `sub` is the caller's PPID; B's guard translates it to
B's own PPID before the handler runs, and B answers in the caller's PPID again.
"""

from __future__ import annotations

import itertools

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rs_guard import Requirement, ResourceGuard
from rs_guard.decorators import exception_handlers
from rs_guard.ppid import PPIDTranslator

CLIENT_ID = "svc-b"
CLIENT_SECRET = "svc-b-secret"
RESOURCE = "https://b.example/api"


class Store:
    """B's own user table: B's PPID -> B's internal user number, plus some per-user data."""

    def __init__(self) -> None:
        self.users: dict[str, int] = {}
        self.favourites: dict[int, list[str]] = {}
        self._ids = itertools.count(1001)

    def user_for(self, ppid: str) -> int:
        """B's internal user id for one of its own PPIDs (a new account on first sight)."""
        if ppid not in self.users:
            self.users[ppid] = next(self._ids)
        return self.users[ppid]


def build(issuer: str, idp_http: httpx.AsyncClient, store: Store) -> ResourceGuard:
    """Service B as an ASGI app: its routes behind a ResourceGuard that translates subjects."""
    translator = PPIDTranslator(
        issuer=issuer,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        http_client=idp_http,
        # B also serves calls that services make on their own behalf (no user behind them).
        client_tokens="keep",
    )

    async def resolve(local_subject: str) -> int | None:
        # Service tokens pass through unchanged: they never become a user account.
        return store.users.get(local_subject)

    async def favourites(request: Request) -> JSONResponse:
        auth = request.auth
        user_id = auth.user_id if auth.user_id is not None else store.user_for(auth.local_subject)
        items = store.favourites.setdefault(user_id, ["green tea", "long walks"])
        # Speak in the caller's PPID: the caller (service A) knows the user only by its own.
        caller_ppid = await translator.to_client(auth.client_id, auth.local_subject)
        return JSONResponse({"user": caller_ppid, "favourites": items, "b_internal_user": user_id})

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse({"users": len(store.users), "caller": request.auth.client_id})

    # exception_handlers: rs_guard errors raised in a handler (503, 401, 403) get their
    # proper answer instead of a 500.
    app = Starlette(
        exception_handlers=exception_handlers,
        routes=[Route("/favourites", favourites), Route("/stats", stats)],
    )
    return ResourceGuard(
        app,
        issuer=issuer,
        resource=RESOURCE,
        http_client=idp_http,
        requirements={
            "/favourites": Requirement(scopes=("b:read",)),
            "/stats": Requirement(scopes=("b:stats",)),
        },
        subject_translator=translator,
        user_resolver=resolve,
    )
