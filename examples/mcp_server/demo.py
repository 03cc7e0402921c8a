"""Walk an MCP client (official SDK) through discovery, scope escalation, step-up and claims.

`await run(print_step)` starts, on free loopback ports, the bundled IdP, the notes MCP server
behind ResourceGuard and a small https site serving the client's metadata document, then drives
the SDK client and reports each step by calling `print_step(text)` (a plain or async callable).

    python -m examples.mcp_server.demo
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio
import httpx
import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rs_guard.idp import IdP
from rs_guard.testing import loopback_socket, loopback_tls, serve, socket_url

from .client import MemoryStorage, client_metadata, connect
from .server import build_app


def _token_summary(token: str) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    return f"aud={claims.get('aud')} scope={claims.get('scope')!r} acr={claims.get('acr')}"


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


async def run(print_step: Callable[[str], Any] = print) -> dict[str, Any]:
    """Run the walk-through; returns what happened (protocol version, challenges, tokens)."""

    async def say(text: str) -> None:
        result = print_step(text)
        if inspect.isawaitable(result):
            await result

    with loopback_tls() as tls:
        idp_sock, mcp_sock, site_sock = loopback_socket(), loopback_socket(), loopback_socket()
        issuer = socket_url(idp_sock)
        resource = f"{socket_url(mcp_sock)}/mcp"
        cimd_url = f"{socket_url(site_sock, tls=True)}/clients/notes.json"
        document = {
            **client_metadata().model_dump(mode="json", exclude_none=True),
            "client_id": cimd_url,
        }

        async def metadata_document(request: Request) -> JSONResponse:
            return JSONResponse(document)

        site = Starlette(routes=[Route("/clients/notes.json", metadata_document)])
        outbound = httpx.AsyncClient(verify=tls.client_context(), timeout=3.0, trust_env=False)
        idp = IdP(issuer, dev=True, http_client=outbound)
        idp.login_as("alice", acr="pwd")
        idp.add_user("alice", phone_number="+15555550100", phone_number_verified=False)
        idp.script_phone_verification("alice", succeeds=True)  # she can receive the SMS code
        storage = MemoryStorage()
        out: dict[str, Any] = {}
        async with (
            serve(site, sock=site_sock, tls=tls),
            serve(idp.app, sock=idp_sock),
            serve(build_app(resource=resource, issuer=issuer), sock=mcp_sock),
        ):
            try:
                await say(f"IdP {issuer}; MCP server {resource}; client_id {cimd_url}")
                async with httpx.AsyncClient(trust_env=False) as http:
                    bare = await http.post(resource, json={})
                await say(
                    f"No token -> {bare.status_code} WWW-Authenticate: "
                    f"{bare.headers['www-authenticate']}"
                )
                async with connect(resource, storage=storage, client_metadata_url=cimd_url) as (
                    client,
                    browser,
                    step_up,
                ):
                    first = _query(browser.authorization_urls[0])
                    await say(
                        "SDK: protected resource metadata -> authorization server metadata -> "
                        "client ID metadata document -> authorization code + PKCE "
                        f"(resource={first['resource']}, scope={first['scope']!r}); "
                        f"MCP protocol {client.protocol_version}"
                    )
                    assert storage.tokens is not None
                    await say(f"Token: {_token_summary(storage.tokens.access_token)}")
                    listed = await client.call_tool("list_notes", {})
                    await say(f"list_notes -> {listed.structured_content}")

                    added = await client.call_tool("add_note", {"text": "buy milk"})
                    status, challenge = step_up.challenges[-1]
                    await say(f"add_note -> {status} WWW-Authenticate: {challenge}")
                    await say(
                        "SDK re-authorized with scope "
                        f"{_query(browser.authorization_urls[-1])['scope']!r}; new token: "
                        f"{_token_summary(storage.tokens.access_token)}; add_note -> "
                        f"{added.structured_content}"
                    )

                    idp.login_as("alice", acr="mf")  # the user completes a second factor
                    deleted = await client.call_tool("delete_notes", {})
                    status, challenge = step_up.challenges[-1]
                    await say(f"delete_notes -> {status} WWW-Authenticate: {challenge}")
                    last = _query(browser.authorization_urls[-1])
                    await say(
                        f"Client re-authorized with acr_values={last.get('acr_values')!r}; "
                        f"new token: {_token_summary(storage.tokens.access_token)}; "
                        f"delete_notes -> {deleted.structured_content}"
                    )

                    texted = await client.call_tool("text_notes", {})
                    status, challenge = step_up.challenges[-1]
                    await say(f"text_notes -> {status} WWW-Authenticate: {challenge}")
                    last = _query(browser.authorization_urls[-1])
                    phone = jwt.decode(
                        storage.tokens.access_token, options={"verify_signature": False}
                    ).get("phone_number_verified")
                    await say(
                        f"Client re-authorized with claims={last.get('claims')}; the IdP verified "
                        f"the phone; new token: phone_number_verified={phone}; text_notes -> "
                        f"{texted.structured_content}"
                    )
                    out = {
                        "protocol_version": client.protocol_version,
                        "challenges": list(step_up.challenges),
                        "authorization_urls": list(browser.authorization_urls),
                        "results": [
                            listed.structured_content,
                            added.structured_content,
                            deleted.structured_content,
                            texted.structured_content,
                        ],
                    }
            finally:
                await outbound.aclose()
    return out


if __name__ == "__main__":
    anyio.run(run, print)
