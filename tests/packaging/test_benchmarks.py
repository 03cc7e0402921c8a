"""The benchmarks users rerun (`make bench`): rs_guard's strictness row, and that peers.py runs.

The strictness table is behaviour users rely on: every validly signed but wrong token in it
(RFC 9068 §4, RFC 8725) must be refused by rs_guard as configured by default. No timing is
asserted here: benchmarks are not tests.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import strictness  # noqa: E402

ROWS_TO_REFUSE = [c.name for c in strictness.CASES if c.control is None]


def test_strictness_table_covers_the_issue_list() -> None:
    # Issue #16: at least 17 kinds, from RFC 8725 and RFC 9068 §4.
    assert len(ROWS_TO_REFUSE) >= 17


@pytest.mark.parametrize("alg", ["RS256", "PS256"])
def test_rs_guard_refuses_every_wrong_token(alg: str) -> None:
    ctx = strictness.Context.create()
    try:
        results = asyncio.run(strictness.run(ctx, alg, [("rs_guard", "rs_guard", "")]))
    finally:
        ctx.close()
    answers = results["rs_guard"]
    assert isinstance(answers, dict)
    assert answers["valid RFC 9068 token"] is True  # the column is wired: a good token passes
    accepted = [name for name in ROWS_TO_REFUSE if answers[name]]
    assert accepted == []
    assert answers["signature of another token"] is False


@pytest.mark.slow
def test_peers_benchmark_smoke_runs_and_prints_its_tables() -> None:
    args = [sys.executable, str(BENCH / "peers.py"), "--quick", "--smoke"]
    if shutil.which("wrk") is None:
        args.append("--no-uvicorn")  # only the uvicorn part needs wrk
    proc = subprocess.run(
        args, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": ""}
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "in-process (ASGI app called directly" in out
    assert "bare Starlette endpoint" in out
    assert "ES256 rs_guard cold (new token each request)" in out
    assert "ES256 PyJWT, prebuilt key" in out
    assert "physical limit" in out
    assert "memory:" in out
    if shutil.which("wrk") is not None:
        assert "uvicorn on loopback" in out


@pytest.mark.slow
def test_memory_benchmark_smoke_runs_and_prints_its_table() -> None:
    args = [sys.executable, str(BENCH / "memory.py"), "--smoke"]
    proc = subprocess.run(
        args, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": ""}
    )
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    out = proc.stdout
    for row in (
        "sustained cold: gen-2 collections",
        "sustained cold: longest gen-2 pause, ms",
        "sustained cold: RSS growth, MB",
        "full cache (10,000 tokens), tracemalloc MB",
        "RSS growth / full cache",
        "warm adds over bare, us",
    ):
        assert row in out


def test_features_benchmark_prints_every_feature_side_by_side() -> None:
    # Issue #16: every feature on the warm path, its cost next to plain rs_guard and bare.
    args = [sys.executable, str(BENCH / "features.py"), "--quick", "--rounds", "1"]
    args += ["--seconds", "0.05", "--no-uvicorn"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    for row in (
        "bare Starlette endpoint",
        "rs_guard warm (plain)",
        "profile='auth0'",
        "PPID translation, warm translator cache",
        "observer=Counters()",
        "DPoP-bound token, fresh proof each request",
        "revocations= (10,000 others revoked)",
    ):
        assert row in out, row
    assert "+us vs plain" in out
