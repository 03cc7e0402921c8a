"""The house stays livable (issue #11): no class in rs_guard/ grows past 300 lines, and the IdP's
endpoint modules reach its state only through their narrow context, never another object's
private attributes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "rs_guard"
ENDPOINTS = PACKAGE / "idp" / "endpoints"
MAX_CLASS_LINES = 300


def _modules(root: Path) -> list[Path]:
    return sorted(root.rglob("*.py"))


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def long_classes(root: Path, limit: int = MAX_CLASS_LINES) -> list[str]:
    """`file:line Class (N lines)` for every class of `root` longer than `limit` lines."""
    found = []
    for path in _modules(root):
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    where = path.relative_to(root.parent)
                    found.append(f"{where}:{node.lineno} {node.name} ({lines} lines)")
    return found


def private_reaches(root: Path) -> list[str]:
    """`file:line expr._name` for every underscore attribute read or written on anything but
    `self` / `cls` (dunders such as `__name__` are public protocol, not private state)."""
    found = []
    for path in _modules(root):
        for node in ast.walk(_tree(path)):
            if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
                continue
            if node.attr.startswith("__") and node.attr.endswith("__"):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            where = path.relative_to(root.parent)
            found.append(f"{where}:{node.lineno} {ast.unparse(node)}")
    return found


def test_no_class_is_over_300_lines() -> None:
    assert long_classes(PACKAGE) == []


def test_no_idp_endpoint_touches_private_state() -> None:
    assert list(ENDPOINTS.glob("*.py")), "the endpoint modules moved: update this test"
    assert private_reaches(ENDPOINTS) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def f(idp):\n    idp._store = 1\n", ["m.py:2 idp._store"]),
        ("def f(ctx):\n    return ctx.services._tokens.get()\n", ["m.py:2 ctx.services._tokens"]),
        ("class A:\n    def f(self):\n        return self._x, cls._y\n", []),
        ("def f(o):\n    return o.__class__, o.public\n", []),
    ],
)
def test_the_private_reach_check_sees_reads_and_writes(
    tmp_path: Path, source: str, expected: list[str]
) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(source, encoding="utf-8")
    found = private_reaches(tmp_path / "pkg")
    assert [f.removeprefix("pkg/") for f in found] == expected


def test_the_class_size_check_counts_lines(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(5))
    (tmp_path / "pkg" / "m.py").write_text(f"class Big:\n{body}\n", encoding="utf-8")
    assert long_classes(tmp_path / "pkg", limit=5) == ["pkg/m.py:1 Big (6 lines)"]
    assert long_classes(tmp_path / "pkg", limit=6) == []
