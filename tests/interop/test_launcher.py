"""The interop harness itself: the skip/fail policy and the launcher's promises."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from . import nodejs
from .conftest import JWT_RESOURCES, SERVICE, ProviderFactory, provider_config
from .oidc_provider import LAUNCHER, ProviderFailed, client_credentials, jwt_claims, private_jwk


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


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


def test_registration_knobs_give_rfc7591_and_rfc7592(fresh_provider: ProviderFactory) -> None:
    """The knobs later suites need (issue #18): registration with an initial access token,
    and management (read, update with a rotated registration access token, delete)."""
    config = {
        **_config(),
        "registration": {"enabled": True, "initialAccessToken": "iat-0123", "management": True},
    }
    op = fresh_provider(config)
    endpoint = op.metadata()["registration_endpoint"]
    metadata = {"redirect_uris": ["http://127.0.0.1/cb"], "client_name": "planned"}
    refused = httpx.post(endpoint, json=metadata, timeout=10)
    assert refused.status_code == 401
    created = httpx.post(endpoint, json=metadata, headers=bearer("iat-0123"), timeout=10)
    assert created.status_code == 201, created.text
    client = created.json()
    uri, rat = client["registration_client_uri"], client["registration_access_token"]
    read = httpx.get(uri, headers=bearer(rat), timeout=10)
    assert read.status_code == 200 and read.json()["client_name"] == "planned"
    update = {**metadata, "client_id": client["client_id"], "client_name": "applied"}
    updated = httpx.put(uri, json=update, headers=bearer(rat), timeout=10)
    assert updated.status_code == 200, updated.text
    rotated = updated.json()["registration_access_token"]
    assert rotated != rat  # rotateRegistrationAccessToken defaults to true
    assert httpx.delete(uri, headers=bearer(rotated), timeout=10).status_code == 204


def test_dpop_knob_issues_bound_tokens(fresh_provider: ProviderFactory) -> None:
    """DPoP (RFC 9449) is on by default, for the DPoP suite to come (issue #17)."""
    op = fresh_provider(_config())
    meta = op.metadata()
    assert "ES256" in meta["dpop_signing_alg_values_supported"]
    token = client_credentials(
        op,
        *SERVICE,
        resource=JWT_RESOURCES["ES256"],
        scope="items:read",
        dpop_key=ec.generate_private_key(ec.SECP256R1()),
    )
    assert token["token_type"] == "DPoP"
    assert "jkt" in jwt_claims(token["access_token"])["cnf"]


def test_package_commands_run_on_the_suites_node() -> None:
    """What a later suite (a package's own command) gets: Node 22 first on PATH."""
    env = nodejs.node_env()
    done = subprocess.run(
        ["node", "--version"], env=env, capture_output=True, text=True, timeout=30, check=True
    )
    assert int(done.stdout.strip().lstrip("v").split(".")[0]) >= nodejs.MIN_NODE_MAJOR
    with pytest.raises((pytest.skip.Exception, pytest.fail.Exception), match="make node-deps"):
        nodejs.package_command("no-such-command")
