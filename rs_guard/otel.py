"""OpenTelemetry metrics: `observer=MetricsObserver()` (`pip install 'rs_guard[otel]'`).

An `Observer` (see `rs_guard.observe`) that turns rs_guard's events into OpenTelemetry
instruments on the global meter provider (or the one given):

| instrument | kind | attributes |
|---|---|---|
| `rs_guard.requests` | counter | `outcome` (`accepted` / `refused`), `reason` (refusals) |
| `rs_guard.token.validation.duration` | histogram, s | full validations (cache misses) |
| `rs_guard.token.cache` | counter | `result` (`hit` / `miss`) |
| `rs_guard.jwks.refreshes` | counter | `result` (`ok` / `failed`), `reason` |
| `rs_guard.idp.errors` | counter | `source` (`discovery`, `jwks`, `introspection`...), `reason` |

The per-request events (accepted requests, cache hits and misses) only add one to a plain
integer; the SDK reads the totals at collection time through observable counters, so the warm
path pays no SDK call (measured in `benchmarks/features.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._version import __version__

_NEEDS_OTEL = "rs_guard.otel needs OpenTelemetry: pip install 'rs_guard[otel]'"
try:  # the `otel` extra
    from opentelemetry import metrics
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
    raise ModuleNotFoundError(_NEEDS_OTEL, name=exc.name) from exc

__all__ = ["MetricsObserver"]

# Events that are failures to reach the IdP, by the source they name.
_IDP_ERRORS = {
    "discovery_failed": "discovery",
    "discovery_issuer_mismatch": "discovery",
    "jwks_refresh_failed": "jwks",
    "introspection_failed": "introspection",
    "ppid_failed": "ppid",
    "token_request_failed": "token",
}


class MetricsObserver:
    """An Observer recording rs_guard's events as OpenTelemetry metrics.

    `ResourceGuard(app, ..., observer=MetricsObserver())`; combine with others through
    `rs_guard.observe.fan_out`. Give `meter_provider=` to use another than the global one.
    """

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        provider = meter_provider or metrics.get_meter_provider()
        meter = provider.get_meter("rs_guard", __version__)
        # Hot counters: plain integers, read by the SDK at collection time.
        self._accepted = 0
        self._hits = 0
        self._misses = 0
        self._refused: dict[str, int] = {}
        meter.create_observable_counter(
            "rs_guard.requests",
            callbacks=[self._observe_requests],
            unit="{request}",
            description="Requests authenticated, by outcome and refusal reason",
        )
        meter.create_observable_counter(
            "rs_guard.token.cache",
            callbacks=[self._observe_cache],
            unit="{lookup}",
            description="Verified-token cache look-ups, by result",
        )
        self._duration = meter.create_histogram(
            "rs_guard.token.validation.duration",
            unit="s",
            description="Time of a full token validation (a cache miss)",
        )
        self._refreshes = meter.create_counter(
            "rs_guard.jwks.refreshes", unit="{refresh}", description="JWK Set fetches, by result"
        )
        self._idp_errors = meter.create_counter(
            "rs_guard.idp.errors", unit="{error}", description="Failed calls to the IdP"
        )

    def __call__(self, event: str, fields: dict[str, Any]) -> None:
        # Most frequent first: this runs on every request.
        if event == "token_cache_hit":
            self._hits += 1
        elif event == "request_accepted":
            self._accepted += 1
        elif event == "token_cache_miss":
            self._misses += 1
        elif event == "token_rejected":
            reason = str(fields.get("reason"))
            self._refused[reason] = self._refused.get(reason, 0) + 1
        elif event == "token_validated":
            seconds = fields.get("seconds")
            if isinstance(seconds, int | float):
                self._duration.record(seconds)
        elif event == "jwks_refreshed":
            self._refreshes.add(1, {"result": "ok"})
        elif event in _IDP_ERRORS:
            reason = str(fields.get("reason", event))
            if event == "jwks_refresh_failed":
                self._refreshes.add(1, {"result": "failed", "reason": reason})
            self._idp_errors.add(1, {"source": _IDP_ERRORS[event], "reason": reason})

    def _observe_requests(self, options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self._accepted, {"outcome": "accepted"})
        for reason, count in list(self._refused.items()):
            yield Observation(count, {"outcome": "refused", "reason": reason})

    def _observe_cache(self, options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self._hits, {"result": "hit"})
        yield Observation(self._misses, {"result": "miss"})
