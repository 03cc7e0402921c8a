"""MkDocs hook: render the reason-code tables (`rs_guard._reasons`) and the observability event
names (`rs_guard.observe.EVENTS`) into the docs, so neither list is written twice.

A page asks for a table with a marker line, `<!-- reason-codes: requests -->` (or `events`,
`failures`), or `<!-- observe-events -->`; the hook replaces it with a Markdown table. Codes
sharing one `Reason` (the same answer, cause and fix) share a row, so the registry stays one
entry per code while the page stays readable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rs_guard._reasons import EVENT_REASONS, FAILURE_REASONS, REASONS, Reason
from rs_guard.observe import EVENTS

TABLES: dict[str, Mapping[str, Reason]] = {
    "requests": REASONS,
    "events": EVENT_REASONS,
    "failures": FAILURE_REASONS,
}
MARKER = re.compile(r"^<!--\s*reason-codes:\s*(\w+)\s*-->\s*$", re.M)
EVENTS_MARKER = re.compile(r"^<!--\s*observe-events\s*-->\s*$", re.M)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _answer(reason: Reason) -> str:
    if reason.status is None:
        return ""
    if reason.error is None:
        return f"{reason.status}" + (", bare challenge" if reason.status == 401 else "")
    return f"{reason.status} `{reason.error}`"


def render(table: Mapping[str, Reason], *, with_answer: bool = True) -> str:
    """One Markdown table: reason(s) | answer | cause | fix (codes with one Reason grouped)."""
    groups: dict[Reason, list[str]] = {}
    for code, reason in table.items():
        groups.setdefault(reason, []).append(code)
    head = ["reason", "answer", "cause", "fix"] if with_answer else ["reason", "meaning"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for reason, codes in groups.items():
        names = ", ".join(f"`{code}`" for code in codes)
        cells = (
            [names, _answer(reason), reason.cause, reason.fix]
            if with_answer
            else [
                names,
                reason.cause,
            ]
        )
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def render_events() -> str:
    """The table of every observability event name and what it means."""
    lines = ["| event | meaning |", "|---|---|"]
    lines += [f"| `{name}` | {_cell(meaning)} |" for name, meaning in EVENTS.items()]
    return "\n".join(lines)


def render_markers(markdown: str) -> str:
    """Replace every marker of a page; an unknown reason-code table name is an error."""

    def table(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in TABLES:
            raise ValueError(f"unknown reason-code table {name!r}; known: {sorted(TABLES)}")
        return render(TABLES[name], with_answer=name != "failures")

    return EVENTS_MARKER.sub(lambda _: render_events(), MARKER.sub(table, markdown))


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return render_markers(markdown)
