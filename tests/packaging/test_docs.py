"""The documentation cannot rot: every ```python block of README.md and docs/ runs, the
reason-code registry matches the code, and every page is in the site's navigation.

The convention for code blocks (also stated at the top of README.md and docs/index.md), set by
the HTML comment on the line right before a block's opening fence:

- no comment: the block is executed in a fresh namespace; top-level `await` is allowed (the
  block then runs in an asyncio event loop). `assert` statements are the block's checks.
- `<!-- not-run -->`: the block is only compiled (a fragment, or something that needs a
  production service).
- `<!-- file: NAME.py -->`: the block is written to NAME.py in a scratch directory that later
  blocks of the same page import from (e.g. a service, or a `conftest.py`); it is compiled,
  not executed.
- `<!-- pytest -->`: the block is a test module; it is run by pytest in that scratch directory,
  and all its tests must pass. rs_guard's plugin is opt-in: the page's `conftest.py` block
  turns it on, as a user's would.

`make docs` builds the site itself (`mkdocs build --strict`); `make test` runs it.
"""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.parts)]
TOP_LEVEL_AWAIT = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
_FENCE = re.compile(r"^```python\s*$")
_DIRECTIVE = re.compile(r"^<!--\s*(not-run|pytest|file:\s*([\w./-]+\.py))\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One ```python block of a page."""

    page: str  # path relative to the repository root
    line: int  # 1-based line of the opening fence
    section: str
    kind: str  # "run", "not-run", "file" or "pytest"
    filename: str | None
    source: str

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-")[:40]
        return f"{self.page}:L{self.line}-{slug or 'top'}"


def markdown_blocks(text: str, page: str = "page.md") -> list[Block]:
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
            blocks.append(Block(page, start + 1, section, kind, filename, source + "\n"))
        i += 1
    return blocks


BLOCKS = [
    block
    for path in PAGES
    for block in markdown_blocks(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
]


def write_files(directory: Path, upto: Block) -> None:
    """Write every `file:` block of `upto`'s page that comes before it into `directory`."""
    for block in BLOCKS:
        if block.page != upto.page or block.line >= upto.line:
            continue
        if block.kind == "file" and block.filename is not None:
            target = directory / block.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.source, encoding="utf-8")


def execute(block: Block) -> None:
    """Run a block in a fresh namespace; a block with top-level await runs in an event loop."""
    code = compile(block.source, f"{block.page}:{block.line}", "exec", flags=TOP_LEVEL_AWAIT)
    namespace: dict[str, object] = {"__name__": f"docs_block_{block.line}"}
    if code.co_flags & inspect.CO_COROUTINE:
        asyncio.run(eval(code, namespace))
    else:
        exec(code, namespace)


def test_the_docs_have_python_blocks() -> None:
    assert any(b.kind == "run" for b in BLOCKS)
    assert any(b.kind == "pytest" for b in BLOCKS)
    assert any(b.kind == "run" and b.page == "README.md" for b in BLOCKS)


@pytest.mark.parametrize("path", [README, DOCS / "index.md"], ids=lambda p: p.name)
def test_the_convention_is_documented_at_the_top(path: Path) -> None:
    head = path.read_text(encoding="utf-8")[:3000]
    assert "tests/packaging/test_docs.py" in head
    assert all(word in head for word in ('"not-run"', '"pytest"', '"file: NAME.py"'))


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_docs_block(
    block: Block,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    if block.kind in ("not-run", "file"):
        compile(block.source, f"{block.page}:{block.line}", "exec", flags=TOP_LEVEL_AWAIT)
        return
    if block.kind == "pytest":
        # pytester drops the modules first imported during its run when it ends: import what
        # the inner run loads now, so later tests never see a second copy of a class.
        import uvicorn  # noqa: F401

        import rs_guard.idp  # noqa: F401
        import rs_guard.pytest_plugin  # noqa: F401

        pytester: pytest.Pytester = request.getfixturevalue("pytester")
        write_files(pytester.path, block)
        pytester.makepyfile(**{f"test_docs_l{block.line}": block.source})
        # The plugin is opt-in: the page's conftest.py turns it on. `-p no:rs_guard` keeps an
        # installed entry point (if any) from loading it first under another name.
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:rs_guard", "-q")
        outcomes = result.parseoutcomes()
        assert result.ret == 0, "\n".join(result.outlines[-40:])
        assert outcomes.get("passed", 0) > 0
        return
    write_files(tmp_path, block)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    # Modules a page writes (e.g. myservice.py) must be fresh for every block.
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
    blocks = markdown_blocks(text)
    assert [(b.kind, b.filename, b.section) for b in blocks] == [
        ("run", None, "Title"),
        ("not-run", None, "Part"),
        ("file", "app/svc.py", "Part"),
        ("pytest", None, "Part"),
    ]
    assert len(markdown_blocks(text + "\n```python\nz = 3\n```")) == 5
    assert markdown_blocks(text + "\n```python\nz = 3\n```")[-1].section == "Part"
    assert blocks[0].source == "x = 1\n"


# -- the site ---------------------------------------------------------------------------------


def test_every_page_is_in_the_navigation() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\s*-\s+(?:[^:\n]+:\s+)?([\w./-]+\.md)\s*$", config, re.M))
    pages = {str(p.relative_to(DOCS)) for p in PAGES if p != README}
    assert pages - listed == set(), "pages missing from mkdocs.yml's nav"
    assert listed - pages == set(), "nav entries without a page"


def test_make_test_builds_the_site_strictly() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^test:.*\bdocs\b", makefile, re.M), "make test must run make docs"
    recipe = re.search(r"^docs:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe is not None and "mkdocs build --strict" in recipe.group(1)
    assert re.search(r"^/?site/?$", (ROOT / ".gitignore").read_text(encoding="utf-8"), re.M)


def test_the_options_table_is_the_signature() -> None:
    """docs/reference/options.md lists every keyword of ResourceGuard, and nothing else."""
    from rs_guard import ResourceGuard

    keywords = {
        name
        for name, p in inspect.signature(ResourceGuard.__init__).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    page = (DOCS / "reference" / "options.md").read_text(encoding="utf-8")
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    documented = {name for row in rows for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    assert keywords - documented == set(), "keywords missing from options.md"
    assert documented - keywords == set(), "options.md rows that are no keyword"


def test_the_readme_stays_short() -> None:
    # The README is the pitch, the install, a quick start and links; the rest is the site.
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 200


# -- the reason-code registry -----------------------------------------------------------------


def _hook() -> Any:
    spec = importlib.util.spec_from_file_location(
        "reason_codes", DOCS / "hooks" / "reason_codes.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _emitted() -> tuple[set[str], set[str], set[str]]:
    """What the library's code says: literal reasons, reason prefixes, every string literal."""
    literal: set[str] = set()
    prefixes: set[str] = set()
    strings: set[str] = set()
    for path in (ROOT / "rs_guard").rglob("*.py"):
        if path.name == "_reasons.py":
            continue
        text = path.read_text(encoding="utf-8")
        literal |= set(re.findall(r'\breason\s*=\s*"([a-z0-9_]+)"', text))
        # reason="jwks_" + str(exc), reason=f"ppid_http_{status}": documented as families.
        prefixes |= set(re.findall(r'\breason\s*=\s*f?"([a-z0-9_]+_)(?:"\s*\+|\{)', text))
        strings |= set(re.findall(r'"([a-z0-9_]+)"', text))
    literal = {r for r in literal if not r.endswith("_")} - {"error"}  # "error": base default
    return literal, prefixes, strings


def test_every_reason_the_library_sets_is_in_the_registry() -> None:
    from rs_guard._reasons import ALL_CODES

    literal, prefixes, _ = _emitted()
    assert literal, "the grep found no reason codes: has the code's shape changed?"
    missing = sorted(literal - ALL_CODES)
    assert not missing, f"reason codes missing from rs_guard/_reasons.py: {missing}"
    for prefix in prefixes:
        assert any(c.startswith(prefix) and c != prefix for c in ALL_CODES), prefix


def test_every_registered_reason_is_one_the_library_sets() -> None:
    from rs_guard._reasons import ALL_CODES

    literal, prefixes, strings = _emitted()
    # A family (`jwks_http_<status>`) or a code built from a prefix and a detail
    # (`jwks_timeout` = "jwks_" + "timeout") comes from a prefix; a handler's EventError code is
    # a string the events module names.
    unknown = sorted(
        code
        for code in ALL_CODES
        if code not in literal
        and not any(code.startswith(p) for p in prefixes)
        and not ("<" not in code and code in strings)
    )
    assert not unknown, f"registry codes the library never sets: {unknown}"
    families = [c for c in ALL_CODES if "<" in c]
    for code in families:
        assert any(code.startswith(p) for p in prefixes), code


def test_the_reason_code_and_event_pages_are_rendered_from_the_code() -> None:
    from rs_guard._reasons import EVENT_REASONS, FAILURE_REASONS, REASONS

    page = (DOCS / "reference" / "reason-codes.md").read_text(encoding="utf-8")
    rendered: str = _hook().render_markers(page)
    assert "reason-codes:" not in rendered
    for table in (REASONS, EVENT_REASONS, FAILURE_REASONS):
        for code in table:
            assert f"`{code}`" in rendered, code
    events_page = (DOCS / "reference" / "observability.md").read_text(encoding="utf-8")
    from rs_guard.observe import EVENTS

    rendered = _hook().render_markers(events_page)
    assert "observe-events" not in rendered
    assert all(f"`{name}`" in rendered for name in EVENTS)
    with pytest.raises(ValueError, match="unknown reason-code table"):
        _hook().render_markers("<!-- reason-codes: nowhere -->")
