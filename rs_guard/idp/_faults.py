"""Fault switches that make IdP endpoints fail on purpose, for resilience tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FaultMode = Literal["down", "slow", "garbage"] | None
_MODES = (None, "down", "slow", "garbage")


@dataclass
class Faults:
    """Per-endpoint fault mode: None, "down" (503), "slow" (sleep `delay`), "garbage"."""

    jwks: FaultMode = None
    introspection: FaultMode = None
    ppid: FaultMode = None
    token: FaultMode = None
    events: FaultMode = None
    delay: float = 5.0

    def __setattr__(self, name: str, value: object) -> None:
        # Catch typos early: a misspelt mode would otherwise silently do nothing.
        if name != "delay" and value not in _MODES:
            raise ValueError(f"fault mode must be one of {_MODES}, got {value!r}")
        object.__setattr__(self, name, value)

    def mode(self, name: str) -> FaultMode:
        """The mode of the switch `name` (unknown names are never faulty)."""
        value = getattr(self, name, None)
        return value if value in _MODES else None

    def reset(self) -> None:
        """Turn every switch off."""
        for name in ("jwks", "introspection", "ppid", "token", "events"):
            setattr(self, name, None)
