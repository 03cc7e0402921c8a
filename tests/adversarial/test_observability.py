"""The observability hook: stable reason codes for rejections, JWKS refreshes, cache hits and
misses, IdP errors; and no token or secret ever in a log line, an event or an error body."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from rs_guard import IntrospectionValidator
from rs_guard.discovery import ServerMetadata
from rs_guard.observe import EVENTS, Counters, emit, emit_hot, fan_out

from .conftest import ISSUER, RESOURCE, World
from .forge import idp_sign, parts, seg

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


async def test_counters_count_rejections_by_reason(world: World) -> None:
    counters = Counters()
    world.use_guard(observer=fan_out(counters, world.events))
    token = world.token()
    for _ in range(3):
        assert (await world.get(token)).status_code == 200
    await world.get(None)
    await world.get("garbage")
    await world.get(world.token(lifetime=-100))
    await world.get(world.token(), path="/items/write")
    header, payload, sig = parts(world.token())
    await world.get(f"{seg({**header, 'alg': 'none'})}.{seg(payload)}.{sig}")
    assert counters.reasons() == {
        "missing_token": 1,
        "malformed": 1,
        "expired": 1,
        "insufficient_scope": 1,
        "bad_alg": 1,
    }
    assert counters.get("token_rejected") == 5
    assert counters.get("token_rejected", "expired") == 1
    assert counters.get("jwks_refreshed") == 1
    assert counters.get("discovery_fetched") == 1
    # One full validation for the reused token, then cache hits.
    assert counters.get("token_cache_hit") == 2
    snap = counters.snapshot()
    assert snap["token_rejected:bad_alg"] == 1 and snap["jwks_refreshed"] == 1
    assert list(snap) == sorted(snap)
    counters.reset()
    assert counters.snapshot() == {}


async def test_idp_errors_are_reported(world: World) -> None:
    counters = Counters()
    world.use_guard(observer=counters)
    world.idp.faults.jwks = "down"
    await world.get(world.token())
    assert counters.get("jwks_refresh_failed", "http_503") == 1
    assert counters.get("token_rejected", "jwks_http_503") == 1
    world.idp.faults.jwks = None
    validator = IntrospectionValidator(
        issuer=ISSUER,
        audience=RESOURCE,
        client_id="rs",
        client_secret="rs-secret",
        metadata=ServerMetadata(ISSUER, http_client=world.idp_http),
        http_client=world.idp_http,
        observer=counters,
    )
    world.use_guard(validator=validator, observer=counters)
    world.idp.faults.introspection = "garbage"
    await world.get(world.token())
    assert counters.get("introspection_failed", "response_not_json") == 1


async def test_every_emitted_event_is_documented() -> None:
    emitted: set[str] = set()
    for path in (ROOT / "rs_guard").glob("*.py"):
        emitted |= set(
            re.findall(r'emit(?:_hot)?\(\s*self\._observer,\s*"([a-z_]+)"', path.read_text())
        )
    assert emitted, "no emit() calls found"
    assert emitted <= set(EVENTS), sorted(emitted - set(EVENTS))


async def test_a_failing_observer_is_never_fatal(world: World, caplog: Any) -> None:
    def broken(event: str, fields: dict[str, Any]) -> None:
        raise RuntimeError("observer bug")

    world.use_guard(observer=broken)
    with caplog.at_level(logging.ERROR, logger="rs_guard"):
        assert (await world.get(world.token())).status_code == 200
        assert (await world.get("garbage")).status_code == 401
    assert any("observer failed" in r.getMessage() for r in caplog.records)


def test_log_values_cannot_forge_lines(caplog: Any) -> None:
    with caplog.at_level(logging.DEBUG, logger="rs_guard"):
        emit(None, "discovery_fetched", url="https://x\r\nINFO forged line\u2028" + "a" * 500)
    (record,) = caplog.records
    line = record.getMessage()
    assert "\n" not in line and "\r" not in line and "\u2028" not in line
    assert len(line) < 300
    assert record.rs_guard["event"] == "discovery_fetched"  # structured copy for JSON logs


def test_hot_events_never_log(caplog: Any) -> None:
    seen: list[str] = []
    with caplog.at_level(logging.DEBUG, logger="rs_guard"):
        emit_hot(None, "token_cache_hit")
        emit_hot(lambda e, f: seen.append(e), "token_cache_hit")
    assert caplog.records == []
    assert seen == ["token_cache_hit"]


# ----- nothing secret escapes --------------------------------------------------------------


def _secrets_of(token: str) -> list[str]:
    """The token and every piece of it long enough to identify it."""
    pieces = [token, *token.split(".")]
    return [p for p in pieces if len(p) >= 16]


async def test_no_token_or_secret_in_logs_events_or_bodies(world: World, caplog: Any) -> None:
    leaks: list[str] = []
    collected: list[str] = []

    def observer(event: str, fields: dict[str, Any]) -> None:
        collected.append(f"{event} {fields!r}")

    validator = IntrospectionValidator(
        issuer=ISSUER,
        audience=RESOURCE,
        client_id="rs",
        client_secret="rs-secret-that-must-not-leak",
        metadata=ServerMetadata(ISSUER, http_client=world.idp_http),
        http_client=world.idp_http,
        observer=observer,
    )
    world.idp.register_client("rs", "rs-secret-that-must-not-leak")
    header, payload, sig = parts(world.token())
    tokens = [
        world.token(),
        world.token(lifetime=-100),
        world.token(audience="https://other.example"),
        world.token(claims={"exp": "never"}),
        world.token(headers={"jku": "https://evil.example/" + "k" * 20}),
        world.idp.issue_id_token("alice", client_id="client-a", nonce="n" * 20),
        f"{seg({**header, 'alg': 'HS256'})}.{seg(payload)}.{sig}",
        f"{seg({**header, 'kid': 'kid-that-is-secretish-1234'})}.{seg(payload)}.{sig}",
        idp_sign(world.idp, '{"alg":"ES256","alg":"none"}', payload),
        "opaque-token-value-0123456789abcdef",
        "a" * 10_000,
    ]
    with caplog.at_level(logging.DEBUG):
        for observer_guard in (
            {"observer": observer},
            {"observer": observer, "validator": validator},
        ):
            world.use_guard(**observer_guard)
            for mode in (None, "down", "garbage"):
                world.idp.faults.jwks = mode  # type: ignore[assignment]
                world.idp.faults.introspection = mode  # type: ignore[assignment]
                for token in tokens:
                    for place in ("header", "query"):
                        if place == "header":
                            resp = await world.get(token)
                        else:
                            resp = await world.client.get("/items", params={"access_token": token})
                        blob = (
                            resp.text + " " + " ".join(f"{k}: {v}" for k, v in resp.headers.items())
                        )
                        leaks += [f"body:{s[:20]}" for s in _secrets_of(token) if s in blob]
                        if resp.status_code == 200:
                            continue
                        assert resp.json()["error"] in (
                            "invalid_token",
                            "invalid_request",
                            "temporarily_unavailable",
                            "insufficient_scope",
                        )
            await asyncio.sleep(0)
    # The library's own records (the test's httpx client logs its URLs, query tokens included:
    # one more reason RFC 6750 §2.3 discourages them).
    ours = [r for r in caplog.records if r.name.startswith("rs_guard")]
    text = "\n".join(
        [r.getMessage() for r in ours]
        + [repr(getattr(r, "rs_guard", "")) for r in ours]
        + [r.exc_text or "" for r in ours]
        + collected
    )
    assert ours, "expected log lines at DEBUG"
    for token in tokens:
        for piece in _secrets_of(token):
            if piece in text:
                leaks.append(piece[:20])
    assert "rs-secret-that-must-not-leak" not in text
    assert "n" * 20 not in text
    assert leaks == []


async def test_access_token_repr_never_shows_the_token(world: World) -> None:
    token = world.token()
    access = await world.guard.validator.validate(token)
    assert token not in repr(access) and token not in str(access)
    assert token not in repr(access.claims)  # claims are the payload, never the compact form


# Every reason code is in the registry (rs_guard/_reasons.py) the docs render:
# tests/packaging/test_docs.py.
