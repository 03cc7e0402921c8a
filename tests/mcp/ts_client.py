"""Drive the TypeScript MCP SDK client (tests/interop/node/mcp_ts_client.mjs) from a test.

One Node process per client; commands and answers are JSON lines over its stdin/stdout, so the
test can script the user at the IdP (`idp.login_as`) between steps.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from examples.mcp_server.client import REDIRECT_URI
from tests.interop.nodejs import NODE_DIR, node_binary, node_env, node_package

SCRIPT = NODE_DIR / "mcp_ts_client.mjs"


class TSClient:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.events: list[dict[str, Any]] = []

    async def send(self, op: str, **fields: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write((json.dumps({"op": op, **fields}) + "\n").encode())
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout=60)
        if not line:
            stderr = await self.process.stderr.read() if self.process.stderr else b""
            raise AssertionError(f"the TypeScript client died: {stderr.decode(errors='replace')}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def call(self, name: str, **arguments: Any) -> dict[str, Any]:
        return await self.send("call", name=name, arguments=arguments)

    async def state(self) -> dict[str, Any]:
        answer = await self.send("state")
        self.events.extend(answer["events"])
        return answer


def text_of(answer: dict[str, Any]) -> Any:
    assert answer["ok"], answer
    result = answer["result"]
    assert not result.get("isError"), result
    structured = result.get("structuredContent")
    if isinstance(structured, dict) and "result" in structured:
        return structured["result"]
    return result["content"][0]["text"]


@asynccontextmanager
async def ts_client(
    server_url: str,
    *,
    client_metadata_url: str | None = None,
    grant_types: tuple[str, ...] = ("authorization_code",),
    step_up: bool = True,
) -> AsyncIterator[TSClient]:
    node = node_binary()
    node_package("@modelcontextprotocol/sdk")
    config = {
        "server_url": server_url,
        "redirect_uri": REDIRECT_URI,
        "client_name": "rs_guard TypeScript SDK test client",
        "grant_types": list(grant_types),
        "client_metadata_url": client_metadata_url,
        "step_up": step_up,
    }
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.json"
        path.write_text(json.dumps(config))
        process = await asyncio.create_subprocess_exec(
            str(node),
            str(SCRIPT),
            str(path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=node_env(),
            cwd=str(NODE_DIR),
        )
        client = TSClient(process)
        try:
            yield client
        finally:
            if process.returncode is None:
                with suppress(Exception, asyncio.TimeoutError):
                    await asyncio.wait_for(client.send("close"), timeout=10)
                if process.returncode is None:
                    process.kill()
                await process.wait()
