"""Service A: a dashboard API that calls service B for the user, via RFC 8693 token exchange.

A never forwards the token it received: it exchanges it at the IdP for a token addressed to B
(client_id = A, sub = A's PPID for the user). For its own calls (no user) it uses client
credentials.
"""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rs_guard import Requirement, ResourceGuard
from rs_guard.decorators import exception_handlers
from rs_guard.exchange import ClientCredentials, TokenExchanger
from rs_guard.ppid import PPIDTranslator

from . import service_b

CLIENT_ID = "svc-a"
CLIENT_SECRET = "svc-a-secret"
RESOURCE = "https://a.example/api"


def build(
    issuer: str, idp_http: httpx.AsyncClient, b_http: httpx.AsyncClient, seen: list[str]
) -> ResourceGuard:
    """Service A as an ASGI app; `b_http` is its HTTP client for service B.

    `seen` collects the (own) PPIDs A served, the demo's window into A's logs.
    """
    translator = PPIDTranslator(
        issuer=issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, http_client=idp_http
    )
    exchanger = TokenExchanger(
        issuer=issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, http_client=idp_http
    )
    own = ClientCredentials(
        issuer=issuer,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        http_client=idp_http,
        resource=service_b.RESOURCE,
        scope="b:stats",
    )

    async def dashboard(request: Request) -> JSONResponse:
        auth = request.auth
        seen.append(auth.local_subject)
        # For the user: a token for B obtained by exchange, never the one we received.
        b_auth = exchanger.auth(auth, resource=service_b.RESOURCE, scope="b:read")
        resp = await b_http.get("/favourites", auth=b_auth)
        resp.raise_for_status()
        from_b = resp.json()
        # B spoke in A's PPID, so it must be the subject A itself sees for this user.
        if from_b.get("user") != auth.local_subject:
            return JSONResponse({"error": "B answered for another user"}, status_code=502)
        # On A's own behalf: client credentials.
        stats = (await b_http.get("/stats", auth=own.auth())).json()
        return JSONResponse(
            {
                # And A answers the end client in the client's own PPID.
                "user": await translator.to_client(auth.client_id, auth.local_subject),
                "favourites": from_b["favourites"],
                "b_users": stats["users"],
            }
        )

    # exception_handlers: rs_guard errors raised in a handler (503, 401, 403) get their
    # proper answer instead of a 500.
    app = Starlette(exception_handlers=exception_handlers, routes=[Route("/dashboard", dashboard)])
    return ResourceGuard(
        app,
        issuer=issuer,
        resource=RESOURCE,
        http_client=idp_http,
        requirements={"/dashboard": Requirement(scopes=("a:read",))},
        subject_translator=translator,
    )
