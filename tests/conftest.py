"""Shared test configuration.

- The project opts into its own pytest plugin as a user's project does (`rs_guard_*` fixtures).
- Async tests run on asyncio through anyio's pytest plugin.
- One settable `clock` and one bundled `idp` (in-process, at `ISSUER`) serve every folder. A
  folder configures them through small fixtures instead of defining its own: `clock_start`
  (the instant its expected values pin), `idp_options` (IdP keyword arguments: another clock,
  an outbound HTTP client) and `idp_setup` (the clients, users and policies it registers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rs_guard.idp import IdP
from tests.support import ISSUER, Clock

pytest_plugins = ["rs_guard.pytest_plugin"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock_start() -> float:
    """When the shared clock starts (override where a folder's expected values pin another)."""
    return Clock().now


@pytest.fixture
def clock(clock_start: float) -> Clock:
    """The settable clock the IdP and the code under test share: tests move time, not sleep."""
    return Clock(clock_start)


@pytest.fixture
def idp_options(clock: Clock) -> dict[str, Any]:
    """Keyword arguments for the shared IdP (override for another clock or outbound client)."""
    return {"clock": clock}


def _register_nothing(idp: IdP) -> None:
    pass


@pytest.fixture
def idp_setup() -> Callable[[IdP], None]:
    """What a folder registers on each fresh IdP: clients, users, policies (override)."""
    return _register_nothing


@pytest.fixture
def idp(idp_options: dict[str, Any], idp_setup: Callable[[IdP], None]) -> IdP:
    """A fresh bundled IdP at `ISSUER`, in-process (reach it with `idp.http_client()`)."""
    idp = IdP(ISSUER, **idp_options)
    idp_setup(idp)
    return idp
