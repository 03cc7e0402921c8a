"""Strict JSON for everything rs_guard reads from the network or a token.

Strict means: UTF-8 only, no NaN / Infinity, no duplicate member names (two members with one
name let different parsers see different documents, RFC 8725 §3.1 / RFC 8259 §4).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


class JSONError(ValueError):
    """Input that strict JSON refuses.

    `reason` is a stable code: `duplicate_member`, `constant`, `not_utf8`, `malformed` or
    `not_object`; `name` is the duplicated member or the refused constant, when there is one.
    """

    def __init__(self, reason: str, message: str, name: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.name = name


def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A `json.loads` object_pairs_hook refusing duplicate member names (JSONError).

    For the few readers that must accept exactly what a downstream parser accepts (NaN
    included) and only refuse what could make two parsers disagree.
    """
    obj = dict(pairs)
    if len(obj) != len(pairs):
        name = _first_repeat(pairs)
        raise JSONError("duplicate_member", f"member {name!r} appears more than once", name)
    return obj


def _first_repeat(pairs: list[tuple[str, Any]]) -> str:
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            return name
        seen.add(name)
    raise AssertionError("no repeated member")  # pragma: no cover


def _constant(name: str) -> Any:
    raise JSONError("constant", f"not valid JSON ({name})", name)


# Built once: `json.loads` with any keyword builds a new decoder on every call (hot path).
_DECODER = json.JSONDecoder(object_pairs_hook=no_duplicates, parse_constant=_constant)
_decode = _DECODER.decode
# The decoder's C scanner, called directly: `decode` adds two regex whitespace matches and two
# Python frames around it. Anything it does not parse exactly (surrounding whitespace, errors)
# goes to `decode`, so what is accepted and refused is unchanged.
_scan_once: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


def loads(data: bytes | str) -> Any:
    """Parse strict JSON; JSONError on anything strict JSON refuses."""
    text = data if isinstance(data, str) else _utf8(data)
    try:
        return _decode(text)
    except JSONError:
        raise
    except (ValueError, RecursionError):
        raise JSONError("malformed", "not valid JSON") from None


def _utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise JSONError("not_utf8", "not UTF-8") from None


def loads_object(data: bytes | str) -> dict[str, Any]:
    """Parse strict JSON that must be an object; JSONError otherwise."""
    # `loads` written out again: this runs twice per new token (header and claims).
    if not isinstance(data, str):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise JSONError("not_utf8", "not UTF-8") from None
    try:
        try:
            obj, end = _scan_once(data, 0)
        except StopIteration:
            end = -1
        if end != len(data):
            obj = _decode(data)
    except JSONError:
        raise
    except (ValueError, RecursionError):
        raise JSONError("malformed", "not valid JSON") from None
    if type(obj) is not dict:
        raise JSONError("not_object", "not a JSON object")
    return obj


def dumps(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes (ASCII-escaped, so it is safe in any context); NaN refused."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("ascii")
