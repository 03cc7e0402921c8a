"""OpenTelemetry metrics, read with the SDK's InMemoryMetricReader."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from rs_guard import Requirement, ResourceGuard
from rs_guard.otel import MetricsObserver
from rs_guard.testing import TestIdP, serve

pytestmark = pytest.mark.anyio


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


def points(reader: InMemoryMetricReader) -> dict[str, dict[tuple[tuple[str, Any], ...], Any]]:
    """instrument name -> {sorted attributes: value (sum, or histogram count)}."""
    out: dict[str, dict[tuple[tuple[str, Any], ...], Any]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    key = tuple(sorted((point.attributes or {}).items()))
                    value = getattr(point, "value", None)
                    out.setdefault(metric.name, {})[key] = (
                        value if value is not None else point.count  # type: ignore[attr-defined]
                    )
    return out


async def test_metrics_count_outcomes_latency_cache_refreshes_and_idp_errors() -> None:
    idp = TestIdP()
    reader = InMemoryMetricReader()
    observer = MetricsObserver(MeterProvider(metric_readers=[reader]))
    guard = ResourceGuard(
        Starlette(routes=[Route("/items", hello), Route("/admin", hello)]),
        **idp.guard_settings(
            observer=observer, requirements={"/admin": Requirement(scopes=("admin",))}
        ),
    )
    token = idp.token("alice")
    async with serve(guard) as url, httpx.AsyncClient(base_url=url) as client:
        auth = {"Authorization": f"Bearer {token}"}
        for _ in range(3):
            assert (await client.get("/items", headers=auth)).status_code == 200
        assert (await client.get("/admin", headers=auth)).status_code == 403
        expired = idp.auth_headers("bob", lifetime=-120)
        assert (await client.get("/items", headers=expired)).status_code == 401
    # A second guard reporting to the same observer meets the IdP down: 503, IdP errors.
    cold = ResourceGuard(
        Starlette(routes=[Route("/items", hello)]), **idp.guard_settings(observer=observer)
    )
    with idp.outage():
        async with serve(cold) as url, httpx.AsyncClient(base_url=url) as client:
            r = await client.get("/items", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 503

    got = points(reader)
    requests = got["rs_guard.requests"]
    assert requests[(("outcome", "accepted"),)] == 3
    assert requests[(("outcome", "refused"), ("reason", "insufficient_scope"))] == 1
    assert requests[(("outcome", "refused"), ("reason", "expired"))] == 1
    assert requests[(("outcome", "refused"), ("reason", "jwks_http_503"))] == 1
    cache = got["rs_guard.token.cache"]
    assert cache[(("result", "hit"),)] == 3  # the 2nd and 3rd /items, then /admin
    assert cache[(("result", "miss"),)] == 3  # the first token, the expired one, the cold guard
    assert got["rs_guard.token.validation.duration"][()] >= 1  # one histogram point per miss
    refreshes = got["rs_guard.jwks.refreshes"]
    assert refreshes[(("result", "ok"),)] == 1
    assert refreshes[(("reason", "http_503"), ("result", "failed"))] == 1
    errors = got["rs_guard.idp.errors"]
    assert errors[(("reason", "http_503"), ("source", "jwks"))] == 1
    assert errors[(("reason", "http_503"), ("source", "discovery"))] == 1
