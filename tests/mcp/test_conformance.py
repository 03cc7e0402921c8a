"""The MCP conformance suite (npm @modelcontextprotocol/conformance 0.1.16, Node 22) against MCP
servers behind ResourceGuard.

The suite's server mode has no option for credentials, so a tiny ASGI pass-through in front of
the guard (in the same uvicorn server, on loopback) adds `Authorization: Bearer <token>` to
requests that carry none; the token is a real RFC 9068 JWT from the bundled IdP (served over
loopback), validated by ResourceGuard as any other, and every MCP request then runs through
ResourceGuard, ToolGuard and the token bridge.

- The conformance server (tests/mcp/conformance_server.py: the official SDK's MCPServer with
  every fixture the scenarios call) passes every server scenario (`--suite all`), and answers
  each check exactly as the same server does without the guard (the guard is transparent).
- The example notes server (examples/mcp_server) passes the scenarios that apply to it;
  `NOT_APPLICABLE` pins the others with the reason.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from examples.mcp_server.server import build_app as build_example
from rs_guard.testing import TestIdP, loopback_socket, serve, socket_url
from tests.interop.nodejs import node_env, package_command

from .conformance_server import MemoryEventStore, build_app, build_mcp

pytestmark = [
    pytest.mark.anyio,
    # The fixtures use logging and sampling, deprecated by the 2026-07-28 revision.
    pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning"),
]

# Checks that warn (never fail) on the conformance server, with and without the guard alike.
PINNED_WARNINGS = {
    # The scenario sends `mcp-protocol-version: 2025-03-26` on its tools/call; the SDK sends SSE
    # priming events (and so resumes a closed stream) only to 2025-11-25+ clients, by design.
    "server-sse-polling": {"server-sse-priming-event", "server-sse-retry-field"},
}

# Scenarios that do not apply to the example notes server, and why.
FIXTURE = "calls a conformance fixture the notes server does not have"
NOT_APPLICABLE = {
    "logging-set-level": "the notes server declares no logging capability",
    "completion-complete": "the notes server has no prompts or templates to complete",
    "tools-call-image": f"{FIXTURE} (test_image_content)",
    "tools-call-audio": f"{FIXTURE} (test_audio_content)",
    "tools-call-embedded-resource": f"{FIXTURE} (test_embedded_resource)",
    "tools-call-mixed-content": f"{FIXTURE} (test_multiple_content_types)",
    "tools-call-with-logging": f"{FIXTURE} (test_tool_with_logging)",
    "tools-call-with-progress": f"{FIXTURE} (test_tool_with_progress)",
    "tools-call-sampling": f"{FIXTURE} (test_sampling)",
    "tools-call-elicitation": f"{FIXTURE} (test_elicitation)",
    "json-schema-2020-12": f"{FIXTURE} (json_schema_2020_12_tool)",
    "elicitation-sep1034-defaults": f"{FIXTURE} (test_elicitation_sep1034_defaults)",
    "elicitation-sep1330-enums": f"{FIXTURE} (test_elicitation_sep1330_enums)",
    "server-sse-polling": f"{FIXTURE} (test_reconnection) and keeps no event store",
    "resources-read-text": "the notes server has no resources",
    "resources-read-binary": "the notes server has no resources",
    "resources-templates-read": "the notes server has no resource templates",
    "resources-subscribe": "the notes server has no resources to subscribe to",
    "resources-unsubscribe": "the notes server has no resources to subscribe to",
    "prompts-get-simple": "the notes server has no prompts",
    "prompts-get-with-args": "the notes server has no prompts",
    "prompts-get-embedded-resource": "the notes server has no prompts",
    "prompts-get-with-image": "the notes server has no prompts",
}
# These pass on the notes server without testing much of it: the fixture tool is missing, and
# the SDK's "Unknown tool" answer is an isError text result, which is what the checks look at.
VACUOUS = {"tools-call-simple-text", "tools-call-error"}

RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$")


class AddToken:
    """The pass-through: requests without credentials get the suite's token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.header = (b"authorization", f"Bearer {token}".encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not any(k == b"authorization" for k, _ in scope["headers"]):
            scope = {**scope, "headers": [*scope["headers"], self.header]}
        await self.app(scope, receive, send)


async def run_suite(url: str, out: Path, *extra: str) -> dict[str, dict[str, str]]:
    """Run the suite's server mode; returns scenario -> check id -> status."""
    command = package_command("conformance")
    process = await asyncio.create_subprocess_exec(
        str(command),
        "server",
        "--url",
        url,
        "-o",
        str(out),
        *extra,
        env=node_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=300)
    results = read_results(out)
    assert results, output.decode(errors="replace")[-3000:]
    return results


def read_results(out: Path) -> dict[str, dict[str, str]]:
    results: dict[str, dict[str, str]] = {}
    for folder in sorted(out.iterdir()):
        match = RESULT_DIR.match(folder.name)
        if match is None:
            continue
        checks = json.loads((folder / "checks.json").read_text())
        results[match["scenario"]] = {c["id"]: c["status"] for c in checks}
    return results


async def server_scenarios() -> list[str]:
    process = await asyncio.create_subprocess_exec(
        str(package_command("conformance")),
        "list",
        "--server",
        env=node_env(),
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await process.communicate()
    return re.findall(r"^\s+- (\S+)", output.decode(), flags=re.MULTILINE)


def outcome(checks: dict[str, str]) -> str:
    statuses = set(checks.values())
    return "fail" if "FAILURE" in statuses else "warn" if "WARNING" in statuses else "pass"


@asynccontextmanager
async def guarded(build: Any) -> AsyncIterator[str]:
    """The URL of `build(resource=, issuer=)` behind the guard, with the pass-through."""
    idp_sock, mcp_sock = loopback_socket(), loopback_socket()
    resource = f"{socket_url(mcp_sock)}/mcp"
    idp = TestIdP(socket_url(idp_sock), resource=resource, in_process=False)
    scopes = "conformance:read conformance:sampling notes:read"
    token = idp.token("alice", scopes, lifetime=3600)
    app = build(resource=resource, issuer=idp.issuer)
    async with serve(idp.app, sock=idp_sock), serve(AddToken(app, token), sock=mcp_sock):
        yield resource


def unguarded_app() -> Starlette:
    mcp = build_mcp()
    inner = mcp.streamable_http_app(
        streamable_http_path="/mcp", event_store=MemoryEventStore(), retry_interval=100
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with mcp.session_manager.run():
            yield

    return Starlette(routes=[Mount("/", app=inner)], lifespan=lifespan)


async def test_every_server_scenario_passes_behind_the_guard(tmp_path: Path) -> None:
    scenarios = await server_scenarios()
    assert "server-initialize" in scenarios and "dns-rebinding-protection" in scenarios
    bare_sock = loopback_socket()
    async with guarded(build_app) as url, serve(unguarded_app(), sock=bare_sock):
        behind, bare = await asyncio.gather(
            run_suite(url, tmp_path / "guarded", "--suite", "all"),
            run_suite(f"{socket_url(bare_sock)}/mcp", tmp_path / "bare", "--suite", "all"),
        )
    assert sorted(behind) == sorted(scenarios)  # every scenario the suite has ran
    failed = {name: checks for name, checks in behind.items() if outcome(checks) == "fail"}
    assert failed == {}
    warned = {
        name: {check for check, status in checks.items() if status == "WARNING"}
        for name, checks in behind.items()
        if outcome(checks) == "warn"
    }
    assert warned == PINNED_WARNINGS
    # Transparent: each check answers the same with and without the guard in front.
    assert behind == bare


async def test_the_example_server_passes_the_scenarios_that_apply(tmp_path: Path) -> None:
    async with guarded(build_example) as url:
        results = await run_suite(url, tmp_path / "example", "--suite", "all")
    failing = {name for name, checks in results.items() if outcome(checks) != "pass"}
    assert failing == set(NOT_APPLICABLE)
    applicable = set(results) - set(NOT_APPLICABLE)
    assert applicable == {
        "server-initialize",
        "ping",
        "tools-list",
        "resources-list",
        "prompts-list",
        "server-sse-multiple-streams",
        "dns-rebinding-protection",
        *VACUOUS,
    }


async def test_without_a_token_the_suite_is_refused(tmp_path: Path) -> None:
    # The guard really is on the path: no pass-through, no session.
    idp_sock, mcp_sock = loopback_socket(), loopback_socket()
    resource = f"{socket_url(mcp_sock)}/mcp"
    idp = TestIdP(socket_url(idp_sock), resource=resource, in_process=False)
    app = build_app(resource=resource, issuer=idp.issuer)
    async with serve(idp.app, sock=idp_sock), serve(app, sock=mcp_sock):
        results = await run_suite(resource, tmp_path / "refused", "--scenario", "server-initialize")
    assert results == {"server-initialize": {"server-initialize": "FAILURE"}}
