"""An MCP server built with the official `mcp` SDK, protected by rs_guard (see README.md here)."""

from __future__ import annotations

from typing import Any

from .server import build_app, build_mcp

__all__ = ["build_app", "build_mcp", "run"]


def __getattr__(name: str) -> Any:
    # `run` lives in .demo; imported on first use so `python -m examples.mcp_server.demo` is clean.
    if name == "run":
        from .demo import run

        return run
    raise AttributeError(name)
