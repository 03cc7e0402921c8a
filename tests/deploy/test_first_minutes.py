"""The first minutes: `make` says what its long quiet steps do and how long they take, and the
demo names, for each step, the guide that explains it and its terms in one line each."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_announces_each_long_step_with_a_duration() -> None:
    # -n: print the recipes, run nothing; -B: as on a fresh checkout (every step due).
    out = subprocess.run(
        ["make", "-n", "-B", "test", "demo"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    for step in (
        "install: pip install",
        "system-deps: apt-get",
        "lint:",
        "typecheck:",
        "docs:",
        "pytest:",
        "demo:",
        "node-deps: npm ci",
    ):
        lines = [line for line in out.splitlines() if step in line and "echo" in line]
        assert lines, step
        assert re.search(r"~?\d+(-\d+)? (s|min)\b|several minutes", lines[0]), lines[0]


@pytest.mark.anyio
async def test_demo_names_the_guides_and_explains_its_terms(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from examples import demo

    assert await demo.main() == 0
    out = capsys.readouterr().out
    guides = re.findall(r"explained in docs/(\S+\.md)(?: and docs/(\S+\.md))?", out)
    named = {g for pair in guides for g in pair if g}
    assert {"tutorial.md", "guides/step-up.md", "guides/ppid.md", "guides/mcp.md"} <= named
    for guide in named:
        assert (ROOT / "docs" / guide).is_file(), guide
    for term in ("PPID", "resource indicator", "client metadata document", "acr values"):
        (line,) = [line for line in out.splitlines() if line.strip().startswith(f"({term}:")]
        assert len(line) < 220  # one line
