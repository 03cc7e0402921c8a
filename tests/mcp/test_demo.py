"""The MCP walk-through that `make demo` runs."""

from __future__ import annotations

import pytest

from examples.mcp_server import run

pytestmark = pytest.mark.anyio


async def test_demo_walks_through_discovery_scope_step_up_and_claims() -> None:
    lines: list[str] = []
    seen = await run(lines.append)
    assert seen["protocol_version"] == "2026-07-28"
    assert [status for status, _ in seen["challenges"]] == [401, 403, 401, 401]
    assert 'acr_values="mf"' in seen["challenges"][2][1]
    assert 'claims="' in seen["challenges"][3][1]
    assert seen["results"][2:] == [
        {"result": "deleted 1 note(s) (acr=mf)"},
        {"result": "texted 0 note(s)"},
    ]
    assert any("acr=mf" in line for line in lines)
    assert any("phone_number_verified=True" in line for line in lines)
    assert len(lines) == 11
