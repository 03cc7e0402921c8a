"""The ecosystem tests configure the plugin's IdP the way a user's conftest.py would."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .myservice import ISSUER, RESOURCE

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_service" / "app.py"


@pytest.fixture
def rs_guard_idp_options() -> dict[str, Any]:
    # The in-process IdP plays the production issuer, so the service's settings stay as they are.
    return {"issuer": ISSUER, "resource": RESOURCE}


def load_example() -> ModuleType:
    """examples/fastapi_service/app.py as a module (the examples are not a package)."""
    name = "rs_guard_example_fastapi_service"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, EXAMPLE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def example() -> ModuleType:
    return load_example()
