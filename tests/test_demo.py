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


def test_the_demo_is_a_checkout_command_not_part_of_the_package() -> None:
    # `make demo` runs examples/demo.py; the installed package has no demo module or subcommand
    # (it could only have worked from a checkout).
    import importlib.util

    from rs_guard.__main__ import build_parser

    assert importlib.util.find_spec("rs_guard.demo") is None
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["demo"])
    assert exit_.value.code == 2
