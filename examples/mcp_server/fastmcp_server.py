"""The notes MCP server again, built with FastMCP, behind ResourceGuard (`rs_guard.mcp.fastmcp`).

The same tools and requirements as `server.py` (the official SDK version); inside the tools the
caller comes from FastMCP's own `get_access_token()`, which rs_guard fills in from the token it
validated. Run it on its own (needs the bundled IdP, e.g. `python -m rs_guard idp --port 9000
--dev`):

    python -m examples.mcp_server.fastmcp_server --issuer http://127.0.0.1:9000 --port 8000
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import httpx
from fastmcp import FastMCP
from fastmcp.server.dependencies import get_access_token
from starlette.applications import Starlette

from rs_guard import ProtectedResourceMetadata
from rs_guard.mcp import ToolRequirements
from rs_guard.mcp.fastmcp import guard_app

from .server import ENDPOINT, HIERARCHY, SCOPES


def subject() -> str:
    """The caller's subject, from FastMCP's own accessor."""
    token = get_access_token()
    if token is None or token.subject is None:  # cannot happen behind the guard
        raise PermissionError("not authenticated")
    return token.subject


def build_mcp() -> tuple[FastMCP[Any], ToolRequirements]:
    """The FastMCP server and its per-tool requirements."""
    mcp: FastMCP[Any] = FastMCP("notes", instructions="Keeps short notes for the signed-in user.")
    tools = ToolRequirements()
    notes: dict[str, list[str]] = {}

    @mcp.tool
    async def list_notes() -> list[str]:
        """List your notes."""
        return list(notes.get(subject(), []))

    @mcp.tool
    @tools.require("notes:write")
    async def add_note(text: str) -> str:
        """Add a note (needs notes:write)."""
        mine = notes.setdefault(subject(), [])
        mine.append(text)
        return f"{len(mine)} note(s)"

    @mcp.tool
    @tools.require(
        "notes:write", acr_values="mf", description="Deleting notes needs a multi-factor login"
    )
    async def delete_notes() -> str:
        """Delete all your notes (needs notes:write and a multi-factor login)."""
        token = get_access_token()
        acr = token.claims.get("acr") if token is not None else None
        removed = len(notes.pop(subject(), []))
        return f"deleted {removed} note(s) (acr={acr})"

    @mcp.tool
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
    """The app serving the FastMCP server at `resource`'s path, behind ResourceGuard."""
    mcp, tools = build_mcp()
    options: dict[str, Any] = {
        "issuer": issuer,
        "http_client": http_client,
        "scope_hierarchy": HIERARCHY,
        "metadata": ProtectedResourceMetadata(
            resource,
            authorization_servers or [issuer],
            scopes_supported=list(scopes_supported),
            resource_name="Notes (rs_guard FastMCP example)",
        ),
    }
    options.update(guard)
    return guard_app(mcp, resource=resource, tools=tools, endpoint=ENDPOINT, **options)


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
