"""Every ```python block of README.md runs, so the documentation cannot rot.

The convention (also stated at the top of README.md), set by the HTML comment on the line
right before a block's opening fence:

- no comment: the block is executed in a fresh namespace; top-level `await` is allowed (the
  block then runs in an asyncio event loop). `assert` statements are the block's checks.
- `<!-- not-run -->`: the block is only compiled (a fragment, or something that needs a
  production service).
- `<!-- file: NAME.py -->`: the block is written to NAME.py in a scratch directory that later
  blocks import from (e.g. a service, or a `conftest.py`); it is compiled, not executed.
- `<!-- pytest -->`: the block is a test module; it is run by pytest
  in that scratch directory, and all its tests must pass.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parents[1] / "README.md"
TOP_LEVEL_AWAIT = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
_FENCE = re.compile(r"^```python\s*$")
_DIRECTIVE = re.compile(r"^<!--\s*(not-run|pytest|file:\s*([\w./-]+\.py))\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One ```python block of the README."""

    line: int  # 1-based line of the opening fence
    section: str
    kind: str  # "run", "not-run", "file" or "pytest"
    filename: str | None
    source: str

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-")[:40]
        return f"L{self.line}-{slug or 'top'}"


def readme_blocks(text: str) -> list[Block]:
    """The python blocks of a Markdown text, with their directive and section heading."""
    lines = text.splitlines()
    blocks: list[Block] = []
    section = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        elif line.strip().startswith("```") and not _FENCE.match(line.strip()):
            # Another language's block: its `#` lines are comments, not headings.
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                i += 1
        elif _FENCE.match(line.strip()):
            start = i
            body: list[str] = []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            previous = lines[start - 1].strip() if start > 0 else ""
            match = _DIRECTIVE.match(previous)
            kind, filename = "run", None
            if match is not None:
                if match.group(2):
                    kind, filename = "file", match.group(2)
                else:
                    kind = match.group(1)
            indent = len(line) - len(line.lstrip())
            source = "\n".join(b[indent:] if b[:indent].isspace() else b for b in body)
            blocks.append(Block(start + 1, section, kind, filename, source + "\n"))
        i += 1
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def write_files(directory: Path, upto: Block) -> None:
    """Write every `file:` block that comes before `upto` into `directory`."""
    for block in BLOCKS:
        if block.line >= upto.line:
            break
        if block.kind == "file" and block.filename is not None:
            target = directory / block.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.source, encoding="utf-8")


def execute(block: Block) -> None:
    """Run a block in a fresh namespace; a block with top-level await runs in an event loop."""
    code = compile(block.source, f"README.md:{block.line}", "exec", flags=TOP_LEVEL_AWAIT)
    namespace: dict[str, object] = {"__name__": f"readme_block_{block.line}"}
    if code.co_flags & inspect.CO_COROUTINE:
        asyncio.run(eval(code, namespace))
    else:
        exec(code, namespace)


def test_the_readme_has_python_blocks() -> None:
    assert any(b.kind == "run" for b in BLOCKS)
    assert any(b.kind == "pytest" for b in BLOCKS)


def test_the_convention_is_documented_at_the_top() -> None:
    head = README.read_text(encoding="utf-8")[:3000]
    assert "tests/test_readme.py" in head
    assert all(word in head for word in ('"not-run"', '"pytest"', '"file: NAME.py"'))


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_readme_block(
    block: Block,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    if block.kind in ("not-run", "file"):
        compile(
            block.source, f"README.md:{block.line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        )
        return
    if block.kind == "pytest":
        # pytester drops the modules first imported during its run when it ends: import what
        # the inner run loads now, so later tests never see a second copy of a class.
        import uvicorn  # noqa: F401

        import rs_guard.idp  # noqa: F401

        pytester: pytest.Pytester = request.getfixturevalue("pytester")
        write_files(pytester.path, block)
        pytester.makepyfile(**{f"test_readme_l{block.line}": block.source})
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-q")
        outcomes = result.parseoutcomes()
        assert result.ret == 0, "\n".join(result.outlines[-40:])
        assert outcomes.get("passed", 0) > 0
        return
    write_files(tmp_path, block)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    # Modules the README writes (e.g. myservice.py) must be fresh for every block.
    for name in [b.filename[:-3] for b in BLOCKS if b.kind == "file" and b.filename]:
        monkeypatch.delitem(sys.modules, name.replace("/", "."), raising=False)
    execute(block)


def test_parser_reads_directives_and_sections() -> None:
    text = "\n".join(
        [
            "# Title",
            "```python",
            "x = 1",
            "```",
            "## Part",
            "<!-- not-run -->",
            "```python",
            "import nowhere",
            "```",
            "<!-- file: app/svc.py -->",
            "```python",
            "A = 2",
            "```",
            "<!-- pytest -->",
            "```python",
            "def test_x(): pass",
            "```",
            "```sh",
            "# not a heading",
            "```",
        ]
    )
    blocks = readme_blocks(text)
    assert [(b.kind, b.filename, b.section) for b in blocks] == [
        ("run", None, "Title"),
        ("not-run", None, "Part"),
        ("file", "app/svc.py", "Part"),
        ("pytest", None, "Part"),
    ]
    assert len(readme_blocks(text + "\n```python\nz = 3\n```")) == 5
    assert readme_blocks(text + "\n```python\nz = 3\n```")[-1].section == "Part"
    assert blocks[0].source == "x = 1\n"
