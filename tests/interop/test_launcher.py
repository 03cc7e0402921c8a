"""The interop harness itself: the skip/fail policy and the launcher's promises."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from . import nodejs
from .conftest import ProviderFactory, provider_config
from .oidc_provider import LAUNCHER, ProviderFailed, private_jwk


@pytest.mark.parametrize("ci", ["", "false"])
def test_missing_install_skips_naming_the_step(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="make node-deps"):
        nodejs.unavailable("Node 22 is not installed")


@pytest.mark.parametrize("ci", ["true", "1"])
def test_missing_install_fails_under_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="make node-deps"):
        nodejs.unavailable("Node 22 is not installed")


def _config() -> dict[str, Any]:
    return provider_config([private_jwk("ES256", "es-1"), private_jwk("RS256", "rs-1")])


def test_launcher_refuses_a_non_loopback_host(fresh_provider: ProviderFactory) -> None:
    with pytest.raises(ProviderFailed, match="host must be loopback"):
        fresh_provider({**_config(), "host": "0.0.0.0"})


def test_launcher_restart_keeps_the_issuer(fresh_provider: ProviderFactory) -> None:
    op = fresh_provider(_config())
    issuer = op.issuer
    op.restart(_config())
    assert op.issuer == issuer
    assert op.metadata()["issuer"] == issuer


def test_launcher_exits_when_its_parent_goes(tmp_path: Path) -> None:
    """Closing stdin (what the OS does when pytest dies) stops the provider: no orphans."""
    node = nodejs.node_binary()
    nodejs.node_package("oidc-provider")
    config = tmp_path / "config.json"
    config.write_text(json.dumps(_config()))
    proc = subprocess.Popen(
        [str(node), str(LAUNCHER), str(config)],
        cwd=nodejs.NODE_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().startswith(b"oidc-provider ready ")
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
