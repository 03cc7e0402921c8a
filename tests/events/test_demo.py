"""The webhook walk-through that `make demo` runs works end to end on loopback."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.anyio

DEMO = Path(__file__).resolve().parents[2] / "examples" / "webhook_receiver" / "demo.py"


async def test_demo_walks_publish_sign_deliver_handle_and_replay() -> None:
    pytest.importorskip("uvicorn")
    spec = importlib.util.spec_from_file_location("webhook_receiver_demo", DEMO)
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    steps: list[str] = []
    await demo.run(steps.append)
    text = "\n".join(steps)
    assert "secevent+jwt" in text
    assert "HTTP 202" in text
    assert "ran its handler" in text
    assert "HTTP 400 invalid_request" in text
