"""Per-tool requirements declared next to the tools (`ToolRequirements`), for `ToolGuard`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from .. import AccessToken
from ..errors import ConfigurationError
from ..policy import Requirement

ToolPolicy = Requirement | Callable[[Mapping[str, Any]], Requirement | None]
"""A tool's requirement, or a function of the call's arguments returning one (or None)."""

F = TypeVar("F")


class ToolRequirements(Mapping[str, ToolPolicy]):
    """Per-tool requirements declared next to the tools; a mapping `ToolGuard` reads.

        tools = ToolRequirements()

        @mcp.tool()
        @tools.require("notes:write")
        async def add_note(text: str) -> str: ...

    The key is the tool's name: `name=` when the framework registers it under another name,
    else the decorated object's `name` (a framework's tool object) or `__name__`. A name
    declared twice is a configuration error: the second declaration would silently win.
    """

    def __init__(self, tools: Mapping[str, ToolPolicy] | None = None) -> None:
        self._tools: dict[str, ToolPolicy] = {}
        for name, policy in (tools or {}).items():
            self.add(name, policy)

    def add(self, name: str, policy: ToolPolicy) -> None:
        """Declare what the tool `name` needs."""
        if not isinstance(name, str) or not name:
            raise ConfigurationError("a tool name must be a non-empty string")
        if name in self._tools:
            raise ConfigurationError(f"the tool {name!r} already has a requirement")
        if not isinstance(policy, Requirement) and not callable(policy):
            raise ConfigurationError(f"the requirement of {name!r} is not a Requirement")
        self._tools[name] = policy

    def require(
        self,
        scopes: str | Sequence[str] = (),
        *,
        name: str | None = None,
        acr_values: str | Sequence[str] = (),
        max_age: int | None = None,
        claims: Mapping[str, Any] | None = None,
        predicate: Callable[[AccessToken], bool] | None = None,
        description: str | None = None,
        policy: Callable[[Mapping[str, Any]], Requirement | None] | None = None,
    ) -> Callable[[F], F]:
        """Decorator: the tool needs this (`Requirement`'s fields), or what `policy` decides
        from the call's arguments. Returns the decorated object unchanged."""
        if policy is not None:
            if scopes or acr_values or max_age is not None or claims or predicate:
                raise ConfigurationError("give either a policy function or requirement fields")
            decided: ToolPolicy = policy
        else:
            decided = Requirement(
                scopes=(scopes,) if isinstance(scopes, str) else tuple(scopes),
                acr_values=(acr_values,) if isinstance(acr_values, str) else tuple(acr_values),
                max_age=max_age,
                claims=dict(claims or {}),
                predicate=predicate,
                description=description,
            )

        def declare(tool: F) -> F:
            found = name or getattr(tool, "name", None) or getattr(tool, "__name__", None)
            if not isinstance(found, str):
                raise ConfigurationError("cannot tell the tool's name; pass name=")
            self.add(found, decided)
            return tool

        return declare

    def __getitem__(self, name: str) -> ToolPolicy:
        return self._tools[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tools)

    def __len__(self) -> int:
        return len(self._tools)

    def __repr__(self) -> str:
        return f"ToolRequirements({sorted(self._tools)!r})"


def check_tool_names(tools: Mapping[str, ToolPolicy], served: Sequence[str]) -> None:
    """Fail at startup when a requirement names a tool the server does not have: a misspelt
    name would leave the real tool unguarded (fail-open)."""
    unknown = sorted(set(tools) - set(served))
    if unknown:
        raise ConfigurationError(
            f"requirements name tools the MCP server does not have: {', '.join(unknown)}"
        )
