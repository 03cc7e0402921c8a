"""Shared test configuration: async tests run on asyncio through anyio's pytest plugin.

The project opts into its own pytest plugin, as a user's project does (it is not auto-loaded).
"""

import pytest

pytest_plugins = ["rs_guard.pytest_plugin"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
