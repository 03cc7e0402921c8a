"""An example FastAPI service protected by rs_guard, whose Swagger UI signs in through the IdP.

- `ResourceGuard` authenticates every request (bearer token, RFC 6750 challenges) except the
  documentation pages, which stay public.
- `OAuth2Guard` declares per-route needs: scopes, an authentication level (acr) and the age of
  the sign-in (max_age). The OpenAPI document carries the OAuth2 authorization-code flow, so
  Swagger UI's "Authorize" button runs it (with PKCE) against the IdP.
- Swagger UI's files are served from this service (the `fastapi-offline` package ships them):
  the page loads nothing from the internet.
"""

# No `from __future__ import annotations`: FastAPI reads the route annotations at runtime, and
# they name `oauth2`, a local of create_app().
from importlib.resources import files
from typing import Annotated, Any

import httpx
from fastapi import FastAPI, HTTPException, Security
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from rs_guard import AccessToken, ProtectedResourceMetadata, ResourceGuard
from rs_guard.fastapi import OAuth2Guard

SWAGGER_CLIENT_ID = "swagger-ui"
SCOPES = {
    "items:read": "Read items",
    "items:write": "Create and delete items",
    "payments:write": "Make payments (needs multi-factor sign-in)",
}
PUBLIC_PATHS = ["/docs", "/docs/oauth2-redirect", "/openapi.json", "/health", "/static/*"]


class Item(BaseModel):
    """An item of the example store."""

    name: str


class Payment(BaseModel):
    """A payment request."""

    amount: int
    to: str


def create_app(
    *,
    issuer: str,
    resource: str,
    http_client: httpx.AsyncClient | None = None,
    swagger_client_id: str = SWAGGER_CLIENT_ID,
) -> FastAPI:
    """The service: `issuer` is the IdP, `resource` this service's URL (the tokens' audience).

    `http_client` is how the guard reaches the IdP (default: a client of its own); tests pass
    one bound to an in-process IdP.
    """
    app = FastAPI(
        title="Example items API",
        description="Protected by rs_guard. Click **Authorize** to sign in at the IdP.",
        docs_url=None,  # served below with local assets and the OAuth2 settings
        redoc_url=None,
        swagger_ui_oauth2_redirect_url="/docs/oauth2-redirect",
        swagger_ui_init_oauth={
            "clientId": swagger_client_id,
            "usePkceWithAuthorizationCodeGrant": True,
            "scopes": " ".join(SCOPES),
            # RFC 8707: ask for a token whose audience is this service.
            "additionalQueryStringParams": {"resource": resource},
        },
        # No badge from the public validator service: the page stays offline.
        swagger_ui_parameters={"validatorUrl": None, "tryItOutEnabled": True},
    )
    app.add_middleware(
        ResourceGuard,
        issuer=issuer,
        resource=resource,
        http_client=http_client,
        public_paths=PUBLIC_PATHS,
        metadata=ProtectedResourceMetadata(
            resource,
            [issuer],
            scopes_supported=list(SCOPES),
            resource_name="Example items API",
        ),
    )
    oauth2 = OAuth2Guard(
        authorization_url=f"{issuer}/authorize",
        token_url=f"{issuer}/token",
        scopes=SCOPES,
        description="Sign in at the rs_guard test IdP",
    )
    assets = files("fastapi_offline") / "static"
    app.mount("/static", StaticFiles(directory=str(assets)), name="static")
    items: dict[int, Item] = {1: Item(name="teapot")}

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - Swagger UI",
            swagger_js_url="/static/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger-ui.css",
            swagger_favicon_url="/static/favicon.png",
            oauth2_redirect_url=app.swagger_ui_oauth2_redirect_url,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness probe: public."""
        return {"status": "ok"}

    @app.get("/me")
    async def me(token: Annotated[AccessToken, Security(oauth2)]) -> dict[str, Any]:
        """Who is calling: any valid token."""
        return {
            "sub": token.subject,
            "client_id": token.client_id,
            "scopes": list(token.scopes),
            "acr": token.claims.get("acr"),
            "auth_time": token.claims.get("auth_time"),
        }

    @app.get("/items")
    async def list_items(
        token: Annotated[AccessToken, Security(oauth2, scopes=["items:read"])],
    ) -> dict[int, Item]:
        """All items: needs `items:read`."""
        return items

    @app.post("/items", status_code=201)
    async def add_item(
        item: Item, token: Annotated[AccessToken, Security(oauth2, scopes=["items:write"])]
    ) -> dict[str, int]:
        """Add an item: needs `items:write`."""
        item_id = max(items, default=0) + 1
        items[item_id] = item
        return {"id": item_id}

    @app.delete("/items/{item_id}", status_code=204)
    async def delete_item(
        item_id: int,
        token: Annotated[
            AccessToken, Security(oauth2.requires(max_age=300), scopes=["items:write"])
        ],
    ) -> None:
        """Delete an item: needs `items:write` and a sign-in less than 5 minutes old."""
        if items.pop(item_id, None) is None:
            raise HTTPException(404, "no such item")

    @app.post("/payments")
    async def pay(
        payment: Payment,
        token: Annotated[
            AccessToken,
            Security(oauth2.requires(acr_values=["mf", "phr"]), scopes=["payments:write"]),
        ],
    ) -> dict[str, Any]:
        """Make a payment: needs `payments:write` and a multi-factor sign-in (step-up)."""
        return {"paid": payment.amount, "to": payment.to, "by": token.subject}

    return app
