"""A notes MCP server (official `mcp` SDK) mounted in Starlette and protected by ResourceGuard.

- `/.well-known/oauth-protected-resource/mcp` advertises the resource (RFC 9728), served by
  ResourceGuard from configuration only.
- `/mcp` needs `notes:read`; a request without a token gets
  `401 Bearer scope="notes:read", resource_metadata="..."`.
- `add_note` needs `notes:write` (which implies `notes:read`): 403 `insufficient_scope`.
- `delete_notes` also needs a multi-factor login (`acr` = `mf`): 401
  `insufficient_user_authentication` with `acr_values="mf"` (RFC 9470).
- `text_notes` needs a verified phone number: 401 with a `claims` parameter that the client turns
  into the OIDC claims request `{"id_token": {"phone_number_verified": {"value": true}}}`.

Run it on its own (needs the bundled IdP, e.g. `python -m rs_guard idp --port 9000 --dev`):

    python -m examples.mcp_server.server --issuer http://127.0.0.1:9000 --port 8000
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from rs_guard import AccessToken, ProtectedResourceMetadata, Requirement, ResourceGuard
from rs_guard.mcp import ToolGuard, ToolPolicy

SCOPES = {"notes:read": "Read your notes", "notes:write": "Add and delete your notes"}
HIERARCHY = {"notes:write": ["notes:read"]}
ENDPOINT = Requirement(scopes=("notes:read",))
TOOLS: Mapping[str, ToolPolicy] = {
    "add_note": Requirement(scopes=("notes:write",)),
    "delete_notes": Requirement(
        scopes=("notes:write",),
        acr_values=("mf",),
        description="Deleting notes needs a multi-factor login",
    ),
    "text_notes": Requirement(
        claims={"phone_number_verified": True},
        description="Texting notes needs a verified phone number",
    ),
}


def token_of(ctx: Context) -> AccessToken:
    """The caller's validated access token (put there by ResourceGuard)."""
    request = ctx.request_context.request
    auth = getattr(request, "auth", None) if request is not None else None
    if not isinstance(auth, AccessToken):  # cannot happen behind ResourceGuard
        raise PermissionError("not authenticated")
    return auth


def build_mcp() -> MCPServer:
    """The MCP server: notes kept per user (the token's subject), in memory."""
    mcp: MCPServer = MCPServer(
        "notes", instructions="Keeps short notes for the signed-in user.", log_level="WARNING"
    )
    notes: dict[str, list[str]] = {}

    @mcp.tool()
    async def list_notes(ctx: Context) -> list[str]:
        """List your notes."""
        return list(notes.get(token_of(ctx).subject, []))

    @mcp.tool()
    async def add_note(text: str, ctx: Context) -> str:
        """Add a note (needs notes:write)."""
        mine = notes.setdefault(token_of(ctx).subject, [])
        mine.append(text)
        return f"{len(mine)} note(s)"

    @mcp.tool()
    async def delete_notes(ctx: Context) -> str:
        """Delete all your notes (needs notes:write and a multi-factor login)."""
        token = token_of(ctx)
        removed = len(notes.pop(token.subject, []))
        return f"deleted {removed} note(s) (acr={token.acr})"

    @mcp.tool()
    async def text_notes(ctx: Context) -> str:
        """Text your notes to your phone (needs a verified phone number)."""
        count = len(notes.get(token_of(ctx).subject, []))
        return f"texted {count} note(s)"

    return mcp


def build_app(
    *,
    resource: str,
    issuer: str,
    http_client: httpx.AsyncClient | None = None,
    authorization_servers: list[str] | None = None,
    **guard: Any,
) -> Starlette:
    """The Starlette app serving the MCP endpoint at `resource`'s path, behind ResourceGuard.

    `resource` is the MCP server URL clients are given (e.g. `https://notes.example/mcp`); it is
    the token audience and the `resource` of the metadata, byte for byte.
    """
    parts = urlsplit(resource)
    path = parts.path or "/mcp"
    mcp = build_mcp()
    host = parts.hostname or "127.0.0.1"
    security = TransportSecuritySettings(
        # The SDK's DNS-rebinding protection, for the configured host only.
        enable_dns_rebinding_protection=True,
        allowed_hosts=[parts.netloc],
        allowed_origins=[f"{parts.scheme}://{parts.netloc}"],
    )
    mcp_app = mcp.streamable_http_app(
        streamable_http_path=path, transport_security=security, host=host
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # A mounted app's lifespan is not run by Starlette: run the SDK's session manager here.
        async with mcp.session_manager.run():
            yield

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    options: dict[str, Any] = {
        "issuer": issuer,
        "resource": resource,
        "http_client": http_client,
        "requirements": {path: ENDPOINT},
        "scope_hierarchy": HIERARCHY,
        "metadata": ProtectedResourceMetadata(
            resource,
            authorization_servers or [issuer],
            scopes_supported=list(SCOPES),
            resource_name="Notes (rs_guard MCP example)",
        ),
        "public_paths": ["/health"],
    }
    options.update(guard)
    return Starlette(
        routes=[Route("/health", health), Mount("/", app=ToolGuard(mcp_app, TOOLS))],
        middleware=[Middleware(ResourceGuard, **options)],
        lifespan=lifespan,
    )


def main() -> None:
    """Serve the example with uvicorn."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issuer", default="http://127.0.0.1:9000")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--resource", help="default http://HOST:PORT/mcp")
    args = parser.parse_args()
    resource = args.resource or f"http://{args.host}:{args.port}/mcp"
    uvicorn.run(build_app(resource=resource, issuer=args.issuer), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
