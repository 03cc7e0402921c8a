"""Observability: stable reason codes for rejections, key refreshes, cache use and IdP errors.

Every event has a short, stable name (e.g. `token_rejected`, `jwks_refreshed`) and a few fields
that never contain token material or secrets, so operators can count and alert on them. Two
ways to see them:

- the `rs_guard` logger: one line per event (`token_rejected reason=expired status=401`),
  INFO for what an operator acts on, DEBUG for chatter; the fields also travel in the
  record's `rs_guard` attribute for structured (JSON) log formatters. Misconfiguration-class
  problems (every token refused for the issuer or audience, the IdP unreachable, keys stale)
  are logged at WARNING, at most once a minute per kind: with no logging configured at all,
  Python's last-resort handler prints WARNING and above to stderr, so they reach the console
  of a plain `uvicorn app:app` without rs_guard installing any handler;
- an `Observer` callable passed as `observer=` to `ResourceGuard` (and the validators, the
  JWKS cache, the PPID translator, the event receiver): `Counters` is a ready one.

Per-request events on the hot path (`token_cache_hit`, `token_cache_miss`) go to the observer
only, never to the logger, and cost one `is None` test when no observer is set.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Counters", "Observer", "fan_out"]

logger = logging.getLogger("rs_guard")

Observer = Callable[[str, dict[str, Any]], None]
"""A callable receiving (event name, fields); fields never hold tokens or secrets."""

EVENTS: Mapping[str, str] = {
    # requests
    "token_rejected": "a request was refused; `reason` (stable code) and `status`",
    "request_accepted": "a request's token was valid and met its requirement (observer only)",
    "token_cache_hit": "a token was answered from the verified-token cache (observer only)",
    "token_cache_miss": "a token needed full validation (observer only)",
    "token_validated": "a token passed full validation; `seconds` it took",
    # keys and metadata
    "jwks_refreshed": "the JWKS was fetched and installed; `keys` usable keys",
    "jwks_refresh_failed": "a JWKS fetch failed or held no usable key; `reason`",
    "jwks_stale_served": "the JWKS could not be refreshed; keys past max_age are still used",
    "jwks_unknown_kid": "a token named a kid absent after the allowed refresh",
    "jwks_alg_mismatch": "a token named a known kid with an algorithm that key is not for",
    "jwks_unknown_kid_pending": "a token named an unknown kid while no refetch was allowed yet "
    "(answered 503 with Retry-After)",
    "discovery_fetched": "authorization-server metadata fetched; `url`",
    "discovery_issuer_mismatch": "a metadata document named another issuer; `url` (refused)",
    "discovery_failed": "no metadata location answered with a valid document; `reason`",
    # IdP calls
    "introspection_failed": "the introspection endpoint failed or answered garbage; `reason`",
    "ppid_failed": "a PPID conversion failed; `reason`",
    "ppid_stale_served": "a cached PPID past its age was used while the IdP was unreachable",
    "ppid_batch": "a batch of PPID conversions was sent; `size`",
    "ppid_denied": "the IdP refused a conversion; `from_client`, `to_client`",
    "token_request_failed": "a token request (exchange, client credentials) failed; `reason`",
    "token_request_refused": "the token endpoint refused a request; `error`, `status`",
    "token_exchanged": "an RFC 8693 exchange succeeded; `client_id`",
    # webhook events
    "event_accepted": "a security event token was accepted; `types`",
    "event_rejected": "a security event token was refused; `reason`, `status`",
    "event_commit_failed": "the replay store could not record an accepted event",
    "event_release_failed": "the replay store could not release a failed event's lease",
    # continuous access evaluation (rs_guard.ssf)
    "revocation_received": "an SSF event changed the revocation state; `type`, `reaction`, "
    "`subjects`",
    "revocations_unreachable": "Redis holding the shared revocations is unreachable; `where`, "
    "`on_outage`",
    "revocations_recovered": "the shared revocations are readable again; `since`",
}
"""Every event name rs_guard emits, with what it means (the fields it carries in backquotes)."""

# Events an operator acts on are logged at INFO; the rest are DEBUG chatter.
_INFO_EVENTS = frozenset(
    {
        "token_rejected",
        "jwks_refreshed",
        "jwks_refresh_failed",
        "jwks_stale_served",
        "discovery_issuer_mismatch",
        "discovery_failed",
        "introspection_failed",
        "ppid_failed",
        "ppid_stale_served",
        "token_request_failed",
        "event_rejected",
        "event_accepted",
        "event_commit_failed",
        "event_release_failed",
        "revocation_received",
        "revocations_unreachable",
        "revocations_recovered",
    }
)

# Problems that refuse every request until an operator acts: WARNING, rate-limited.
_WARNING_EVENTS = frozenset(
    {
        "jwks_refresh_failed",
        "jwks_stale_served",
        "discovery_issuer_mismatch",
        "discovery_failed",
        "introspection_failed",
    }
)
_MISCONFIGURATION_REASONS = frozenset({"bad_issuer", "bad_audience", "keys_unavailable"})
_MISCONFIGURATION_PREFIXES = ("jwks_", "introspection_")
WARNING_INTERVAL = 60.0  # seconds between two WARNING lines of one kind
_warned: dict[tuple[str, str], tuple[float, int]] = {}


def _level(event: str, fields: Mapping[str, Any]) -> int:
    """The log level of one event: WARNING (at most once per interval and kind) for
    misconfiguration-class problems, INFO for what an operator acts on, DEBUG for chatter."""
    reason = fields.get("reason")
    reason = reason if isinstance(reason, str) else ""
    if event in _WARNING_EVENTS or (
        event == "token_rejected"
        and (reason in _MISCONFIGURATION_REASONS or reason.startswith(_MISCONFIGURATION_PREFIXES))
    ):
        key = (event, reason)
        now = time.monotonic()
        last, suppressed = _warned.get(key, (-WARNING_INTERVAL, 0))
        if now - last >= WARNING_INTERVAL:
            _warned[key] = (now, 0)
            return logging.WARNING
        _warned[key] = (last, suppressed + 1)
        return logging.INFO
    return logging.INFO if event in _INFO_EVENTS else logging.DEBUG


# Field values reach log files: no control characters (forged log lines), bounded length.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_MAX_VALUE = 200


def _log_value(value: Any) -> str:
    text = _UNSAFE.sub("?", str(value))
    return text if len(text) <= _MAX_VALUE else text[:_MAX_VALUE] + "..."


def emit(observer: Observer | None, event: str, **fields: Any) -> None:
    """Log one event and hand it to the observer; an observer's own failure is never fatal."""
    level = _level(event, fields)
    if logger.isEnabledFor(level):
        logger.log(
            level,
            "%s %s",
            event,
            " ".join(f"{k}={_log_value(v)}" for k, v in fields.items()),
            extra={"rs_guard": {"event": event, **fields}},
        )
    if observer is not None:
        try:
            observer(event, fields)
        except Exception:
            logger.exception("rs_guard observer failed on %s", event)


def emit_hot(observer: Observer | None, event: str) -> None:
    """A per-request event for counters only: no log line, nothing at all without an observer."""
    if observer is not None:
        try:
            observer(event, {})
        except Exception:
            logger.exception("rs_guard observer failed on %s", event)


class Counters:
    """An Observer that counts events by name and by `reason`, cheaply enough for every request.

    `ResourceGuard(app, ..., observer=counters)`, then `counters.get("token_rejected",
    "expired")` or `counters.snapshot()` -> `{"jwks_refreshed": 1, "token_cache_hit": 41,
    "token_rejected:expired": 3}`.
    """

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str | None], int] = {}
        # Events without fields (the per-request ones: `token_cache_hit`, `request_accepted`)
        # are counted by name alone: one dict update, no key tuple built.
        self._plain: dict[str, int] = {}

    def __call__(self, event: str, fields: dict[str, Any]) -> None:
        if not fields:
            plain = self._plain
            plain[event] = plain.get(event, 0) + 1
            return
        reason = fields.get("reason")
        key = (event, reason if isinstance(reason, str) else None)
        self._counts[key] = self._counts.get(key, 0) + 1

    def _all(self) -> dict[tuple[str, str | None], int]:
        merged = dict(self._counts)
        for event, n in self._plain.items():
            merged[(event, None)] = merged.get((event, None), 0) + n
        return merged

    def get(self, event: str, reason: str | None = None) -> int:
        """How often `event` happened (with this `reason`, or with any reason when None)."""
        if reason is not None:
            return self._counts.get((event, reason), 0)
        counted = sum(n for (name, _), n in self._counts.items() if name == event)
        return counted + self._plain.get(event, 0)

    def reasons(self, event: str = "token_rejected") -> dict[str, int]:
        """Counts of one event by reason, e.g. rejections by reason code."""
        return {r: n for (name, r), n in self._counts.items() if name == event and r is not None}

    def snapshot(self) -> dict[str, int]:
        """All counts as `event` or `event:reason` -> count, sorted by name (for metrics)."""
        out = {(f"{e}:{r}" if r is not None else e): n for (e, r), n in self._all().items()}
        return dict(sorted(out.items()))

    def reset(self) -> None:
        """Forget every count."""
        self._counts.clear()
        self._plain.clear()


def fan_out(*observers: Observer | None) -> Observer:
    """One observer that hands every event to several (e.g. `Counters` and a tracer)."""
    targets = tuple(o for o in observers if o is not None)

    def observe(event: str, fields: dict[str, Any]) -> None:
        for target in targets:
            try:
                target(event, dict(fields))
            except Exception:
                logger.exception("rs_guard observer failed on %s", event)

    return observe
