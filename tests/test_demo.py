"""`make demo` keeps working: the whole walk-through runs on loopback and reports success."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


async def test_make_demo_walks_every_flow(capsys: pytest.CaptureFixture[str]) -> None:
    from examples import demo

    assert await demo.main() == 0
    out = capsys.readouterr().out
    for marker in (
        "401 Unauthorized",
        "insufficient_scope",
        "invalid_token",
        "new kid",
        "Client ID Metadata Document",
        "insufficient_user_authentication",
        '"acr":"phr"',
        "Pairwise subjects",
        "Webhook events",
        "MCP server",
        "All steps behaved as expected",
    ):
        assert marker in out, marker
