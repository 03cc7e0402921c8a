"""The PPID chain example (client -> A -> token exchange -> B) runs and keeps its promises."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


async def test_ppid_chain_walkthrough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    example = importlib.import_module("examples.ppid_chain")
    lines: list[str] = []
    result = await example.run(lines.append)
    # The client is answered in its own PPID, and each party has its own, unlinkable one.
    assert result["answer"]["user"] == result["web_sub"]
    assert len({result["web_sub"], result["a_sub"], result["b_sub"]}) == 3
    assert list(result["b_users"]) == [result["b_sub"]]
    assert result["answer"]["b_users"] == 1  # the client-credentials call made no account
    assert "the web app recognises its user: yes" in lines
    assert not any("bug" in line for line in lines)
