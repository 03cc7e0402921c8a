"""`rs-guard clients` against the bundled IdP's own options: a registration access token
rotated on every RFC 7592 update, and an IdP process restarted on the same state directory
(registrations survive: the plan after the restart shows nothing to do, and updates work)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import free_port

from .conftest import CLI, IAT, IAT_ENV, serve_idp, write_clients
from .test_cli_idp import CLIENTS


def tokens_in(state: Path) -> dict[str, str]:
    doc = json.loads(state.read_text())
    return {name: r["registration_access_token"] for name, r in doc["clients"].items()}


def test_a_rotated_registration_access_token_is_followed(tmp_path: Path, cli: CLI) -> None:
    for served in serve_idp(initial_access_token=IAT, rotate_registration_access_token=True):
        path = write_clients(tmp_path / "clients.toml", served.issuer, CLIENTS)
        state, secrets = tmp_path / "clients.state.json", tmp_path / "secrets"
        assert cli("apply", path, "--secrets-dir", secrets).code == 0
        before = tokens_in(state)
        path.write_text(path.read_text().replace('"Billing"', '"Billing v2"'))
        done = cli("apply", path, "--secrets-dir", secrets)
        assert done.code == 0, done.err
        after = tokens_in(state)
        # The update answered a new token; the state holds it, the old one is dead.
        assert after["billing"] != before["billing"] and after["worker"] == before["worker"]
        assert after["spa"] == before["spa"]
        uri = json.loads(state.read_text())["clients"]["billing"]["registration_client_uri"]
        old = httpx.get(uri, headers={"Authorization": f"Bearer {before['billing']}"})
        assert old.status_code == 401
        assert cli("plan", path, "--detailed-exitcode").code == 0
        path.write_text(path.read_text().replace('"Billing v2"', '"Billing v3"'))
        assert cli("apply", path, "--secrets-dir", secrets).code == 0
        assert tokens_in(state)["billing"] not in (before["billing"], after["billing"])
        assert cli("plan", path, "--detailed-exitcode").code == 0
        for text in (done.out, done.err):
            assert after["billing"] not in text and before["billing"] not in text


IDP_CLIENTS = """
[clients.swagger-ui]
client_id = "swagger-ui"
token_endpoint_auth_method = "none"
redirect_uris = ["http://localhost:8000/docs/oauth2-redirect"]

[clients.local-worker]
grant_types = ["client_credentials"]
response_types = []
"""


class IdPProcess:
    """`python -m rs_guard idp` with a state directory, the token only in its environment."""

    def __init__(self, port: int, state_dir: Path, clients: Path) -> None:
        self.issuer = f"http://127.0.0.1:{port}"
        self.argv = [
            sys.executable,
            "-m",
            "rs_guard",
            "idp",
            "--port",
            str(port),
            "--state-dir",
            str(state_dir),
            "--clients",
            str(clients),
            "--initial-access-token-env",
            IAT_ENV,
            "--rotate-registration-access-token",
            "--log-level",
            "warning",
        ]
        self.env = {
            **os.environ,
            IAT_ENV: IAT,
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        }
        self.outputs: list[str] = []
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=2)
                return
            except httpx.TransportError:
                if self.proc.poll() is not None:
                    self.stop()
                    pytest.fail(f"the IdP exited: {self.outputs}")
                assert time.monotonic() < deadline, "the IdP did not start"
                time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=20)
        self.outputs += [out, err]
        self.proc = None


@pytest.fixture
def idp_process(tmp_path: Path) -> Iterator[IdPProcess]:
    clients = tmp_path / "idp-clients.toml"
    clients.write_text(IDP_CLIENTS)
    process = IdPProcess(free_port(), tmp_path / "idp-state", clients)
    process.start()
    yield process
    process.stop()


def test_registrations_survive_an_idp_restart(
    tmp_path: Path, idp_process: IdPProcess, cli: CLI
) -> None:
    assert IAT not in " ".join(idp_process.argv)  # off the command line (ps shows it)
    path = write_clients(tmp_path / "clients.toml", idp_process.issuer, CLIENTS)
    state, secrets = tmp_path / "clients.state.json", tmp_path / "secrets"
    applied = cli("apply", path, "--secrets-dir", secrets)
    assert applied.code == 0, applied.err
    assert cli("plan", path, "--detailed-exitcode").code == 0

    # Killed, not stopped: what an answer confirmed was on disk before the answer was sent.
    idp_process.stop(signal.SIGKILL)
    idp_process.start()  # same port, same state directory

    planned = cli("plan", path, "--json")
    assert planned.code == 0, planned.err
    assert planned.json()["has_changes"] is False, planned.out
    before = tokens_in(state)
    path.write_text(path.read_text().replace('"Billing"', '"Billing after restart"'))
    updated = cli("apply", path, "--secrets-dir", secrets)
    assert updated.code == 0, updated.err
    assert "1 updated" in updated.out
    assert tokens_in(state)["billing"] != before["billing"]  # rotated, and followed
    assert cli("plan", path, "--detailed-exitcode").code == 0

    # The clients file's clients are there after the restart too, with their fixed ids, and
    # are not RFC 7592-managed.
    answer = httpx.get(
        f"{idp_process.issuer}/register/swagger-ui", headers={"Authorization": "Bearer x"}
    )
    assert answer.status_code == 401
    assert "not managed through RFC 7592" in answer.json()["error_description"]
    generated = json.loads(
        (tmp_path / "idp-state" / "client-secrets" / "local-worker.json").read_text()
    )
    token = httpx.post(
        f"{idp_process.issuer}/token",
        data={"grant_type": "client_credentials"},
        auth=("local-worker", generated["client_secret"]),
    )
    assert token.status_code == 200, token.text
    idp_process.stop()

    # Nothing secret was printed, by the IdP or by the CLI.
    secret_values = [IAT, generated["client_secret"], *before.values(), *tokens_in(state).values()]
    secret_values += [json.loads(f.read_text())["client_secret"] for f in secrets.glob("*.json")]
    printed = [*idp_process.outputs, applied.out, applied.err, updated.out, updated.err]
    for text in printed:
        for secret in secret_values:
            assert secret not in text
