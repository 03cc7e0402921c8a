"""Bounded memo dicts for values derived from request input (one rule for all of them)."""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def remember(memo: dict[K, V], key: K, value: V, size: int) -> None:
    """Keep `key -> value` in `memo`, which holds at most `size` entries.

    When full it starts over rather than evicting one by one: a dict used as a FIFO scans its
    deleted slots, and a flood of distinct inputs must stay as cheap as a hit is.
    """
    if len(memo) >= size:
        memo.clear()
    memo[key] = value
