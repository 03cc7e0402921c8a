"""The CLI serves the IdP with uvicorn on a loopback port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import free_port


def test_cli_serves_discovery(tmp_path: Path) -> None:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    keys = tmp_path / "keys.json"
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"alice": {"email": "alice@example.com"}}))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rs_guard",
            "idp",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--issuer",
            issuer,
            "--signing-keys",
            str(keys),
            "--users",
            str(users),
            "--auto-login",
            "alice:mf",
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        with httpx.Client() as http:
            deadline = time.monotonic() + 15
            while True:
                try:
                    resp = http.get(f"{issuer}/.well-known/openid-configuration")
                    break
                except httpx.TransportError:
                    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            assert resp.status_code == 200 and resp.json()["issuer"] == issuer
            jwks = (http.get(f"{issuer}/jwks")).json()
        saved = json.loads(keys.read_text())
        assert [k["kid"] for k in saved["keys"]] == [k["kid"] for k in jwks["keys"]]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
