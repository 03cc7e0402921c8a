"""Every ```python block of the MCP guides (docs/guides/mcp-*.md) runs or compiles.

The README's conventions (tests/test_readme.py): no comment before the fence = executed (top-level
`await` allowed); `<!-- not-run -->` = compiled only; `<!-- file: NAME.py -->` = written to a
scratch directory that later blocks of the same guide import.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import sys
from pathlib import Path

import pytest

from tests.test_readme import Block, readme_blocks

GUIDES = sorted((Path(__file__).resolve().parents[2] / "docs" / "guides").glob("mcp-*.md"))
BLOCKS = [
    (guide, block) for guide in GUIDES for block in readme_blocks(guide.read_text(encoding="utf-8"))
]
pytestmark = pytest.mark.filterwarnings("ignore:Using in-memory token storage")


def test_both_guides_have_running_blocks() -> None:
    assert {g.name for g in GUIDES} == {"mcp-fastmcp.md", "mcp-sdk.md"}
    for guide in GUIDES:
        assert any(b.kind == "run" for g, b in BLOCKS if g == guide), guide.name


@pytest.mark.parametrize(("guide", "block"), BLOCKS, ids=[f"{g.stem}-{b.id}" for g, b in BLOCKS])
def test_guide_block(
    guide: Path, block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"{guide.name}:{block.line}"
    code = compile(block.source, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if block.kind in ("not-run", "file"):
        return
    files = [b for g, b in BLOCKS if g == guide and b.kind == "file" and b.line < block.line]
    for earlier in files:
        assert earlier.filename is not None
        (tmp_path / earlier.filename).write_text(earlier.source, encoding="utf-8")
        monkeypatch.delitem(sys.modules, earlier.filename[:-3], raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace: dict[str, object] = {"__name__": f"guide_block_{block.line}"}
    if code.co_flags & inspect.CO_COROUTINE:
        asyncio.run(eval(code, namespace))
    else:
        exec(code, namespace)
