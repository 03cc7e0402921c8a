"""Plans and apply results as text for a terminal (plain ASCII marks, no colour codes, so the
same text reads well in a CI log and in a pull-request comment)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._apply import ApplyResult
    from ._plan import ClientChange, FieldChange, Plan

MARK = {"create": "+", "update": "~", "delete": "-", "none": " ", "secret": "*"}
FIELD_MARK = {"add": "+", "change": "~", "remove": "-"}
MAX_VALUE = 200


def _value(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 3] + "..."


def _field(change: FieldChange, width: int) -> str:
    mark = FIELD_MARK[change.action]
    if change.action == "add":
        text = _value(change.after)
    elif change.action == "remove":
        text = f"{_value(change.before)} (no longer in the file)"
    else:
        text = f"{_value(change.before)} -> {_value(change.after)}"
    if change.drift:
        text += "  [drift: changed at the server since the last apply]"
    return f"      {mark} {change.name.ljust(width)} {text}"


def _client(change: ClientChange) -> list[str]:
    ident = f", client_id {change.client_id}" if change.client_id else ""
    label = "no changes" if change.action == "none" else change.action
    lines = [f"  {MARK[change.action]} {change.name}  ({label}{ident})"]
    width = max((len(f.name) for f in change.fields), default=0)
    lines += [_field(f, width) for f in change.fields]
    if change.secret_pending:
        lines.append("      * client secret not delivered yet: apply delivers it")
    return lines


def render_plan(plan: Plan) -> str:
    verb = "destroy" if plan.destroy else "plan"
    lines = [f"rs-guard clients {verb}: {plan.file} against {plan.issuer}", ""]
    for change in plan.changes:
        lines += _client(change)
    if not plan.changes:
        lines.append("  (no clients declared and none in the state)")
    counts = plan.summary()
    lines.append("")
    if plan.has_changes:
        lines.append(
            f"Plan: {counts['create']} to create, {counts['update']} to update, "
            f"{counts['delete']} to delete, {counts['unchanged']} unchanged"
            + (
                f", {counts['secrets_to_deliver']} secrets to deliver."
                if counts["secrets_to_deliver"]
                else "."
            )
        )
    else:
        lines.append(f"No changes: the server matches {plan.file}.")
    return "\n".join(lines)


def render_result(result: ApplyResult) -> str:
    lines = []
    for outcome in result.done:
        ident = f" ({outcome.client_id})" if outcome.client_id else ""
        lines.append(f"  {MARK[outcome.action]} {outcome.name}{ident}: {outcome.message}")
        lines += [f"      note: {note}" for note in outcome.notes]
    for name, error in result.failed:
        lines.append(f"  ! {name}: FAILED: {error}")
    counts = result.summary()
    lines.append("")
    lines.append(
        f"Apply: {counts['create']} created, {counts['update']} updated, "
        f"{counts['delete']} deleted, {len(result.failed)} failed."
    )
    return "\n".join(lines)
