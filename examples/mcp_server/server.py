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
from collections.abc import Sequence
from typing import Any

import httpx
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from rs_guard import ProtectedResourceMetadata, Requirement
from rs_guard.mcp import ToolRequirements
from rs_guard.mcp.sdk import guard_app

SCOPES = {"notes:read": "Read your notes", "notes:write": "Add and delete your notes"}
HIERARCHY = {"notes:write": ["notes:read"]}
ENDPOINT = Requirement(scopes=("notes:read",))


def subject() -> str:
    """The caller's subject, from the SDK's own accessor (rs_guard's bridge fills it)."""
    token = get_access_token()
    if token is None or token.subject is None:  # cannot happen behind the guard
        raise PermissionError("not authenticated")
    return token.subject


def build_mcp() -> tuple[MCPServer, ToolRequirements]:
    """The MCP server and its per-tool requirements: notes kept per user, in memory."""
    mcp: MCPServer = MCPServer(
        "notes", instructions="Keeps short notes for the signed-in user.", log_level="WARNING"
    )
    tools = ToolRequirements()
    notes: dict[str, list[str]] = {}

    @mcp.tool()
    async def list_notes() -> list[str]:
        """List your notes."""
        return list(notes.get(subject(), []))

    @mcp.tool()
    @tools.require("notes:write")
    async def add_note(text: str) -> str:
        """Add a note (needs notes:write)."""
        mine = notes.setdefault(subject(), [])
        mine.append(text)
        return f"{len(mine)} note(s)"

    @mcp.tool()
    @tools.require(
        "notes:write", acr_values="mf", description="Deleting notes needs a multi-factor login"
    )
    async def delete_notes() -> str:
        """Delete all your notes (needs notes:write and a multi-factor login)."""
        token = get_access_token()
        acr = (token.claims or {}).get("acr") if token is not None else None
        removed = len(notes.pop(subject(), []))
        return f"deleted {removed} note(s) (acr={acr})"

    @mcp.tool()
    @tools.require(
        claims={"phone_number_verified": True},
        description="Texting notes needs a verified phone number",
    )
    async def text_notes() -> str:
        """Text your notes to your phone (needs a verified phone number)."""
        return f"texted {len(notes.get(subject(), []))} note(s)"

    return mcp, tools


def build_app(
    *,
    resource: str,
    issuer: str,
    http_client: httpx.AsyncClient | None = None,
    authorization_servers: list[str] | None = None,
    scopes_supported: Sequence[str] = tuple(SCOPES),
    **guard: Any,
) -> Starlette:
    """The Starlette app serving the MCP endpoint at `resource`'s path, behind ResourceGuard.

    `resource` is the MCP server URL clients are given (e.g. `https://notes.example/mcp`); it is
    the token audience and the `resource` of the metadata, byte for byte.
    """
    mcp, tools = build_mcp()

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    options: dict[str, Any] = {
        "issuer": issuer,
        "http_client": http_client,
        "scope_hierarchy": HIERARCHY,
        "metadata": ProtectedResourceMetadata(
            resource,
            authorization_servers or [issuer],
            scopes_supported=list(scopes_supported),
            resource_name="Notes (rs_guard MCP example)",
        ),
        "public_paths": ["/health"],
    }
    options.update(guard)
    return guard_app(
        mcp,
        resource=resource,
        tools=tools,
        endpoint=ENDPOINT,
        routes=[Route("/health", health)],
        # The SDK client's DCR registers again when it needs wider scopes (a new client id
        # mid-session; rs_guard #14), so sessions here are not bound to the client id.
        bind_sessions=False,
        **options,
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
