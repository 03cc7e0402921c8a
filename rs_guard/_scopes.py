"""Scope strings (RFC 6749 §3.3): space-delimited, case-sensitive, order not significant."""

from __future__ import annotations

from collections.abc import Iterable


def split_scope(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """The scopes of a scope string (or of an iterable of scopes), in order, without empty
    entries or repeats."""
    if value is None:
        return ()
    items = value.split(" ") if isinstance(value, str) else value
    return tuple(dict.fromkeys(s for s in items if s))


def join_scope(scopes: Iterable[str]) -> str:
    """A scope string: the scopes in order, each once, separated by one space."""
    return " ".join(dict.fromkeys(s for s in scopes if s))
