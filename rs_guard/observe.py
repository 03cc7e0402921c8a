"""Observability: stable reason codes for rejections, key refreshes, cache use and IdP errors.

Every event has a short, stable name (e.g. `token_rejected`, `jwks_refreshed`) and a few fields
that never contain token material or secrets, so operators can count and alert on them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("rs_guard")

Observer = Callable[[str, dict[str, Any]], None]
"""A callable receiving (event name, fields); fields never hold tokens or secrets."""

# Events worth an operator's attention at INFO; the rest are DEBUG chatter (cache hits...).
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
        "event_rejected",
        "event_accepted",
    }
)


def emit(observer: Observer | None, event: str, **fields: Any) -> None:
    """Log one event and hand it to the observer; an observer's own failure is never fatal."""
    level = logging.INFO if event in _INFO_EVENTS else logging.DEBUG
    if logger.isEnabledFor(level):
        logger.log(level, "%s %s", event, " ".join(f"{k}={v}" for k, v in fields.items()))
    if observer is not None:
        try:
            observer(event, fields)
        except Exception:
            logger.exception("rs_guard observer failed on %s", event)
