"""The command line and the first minutes: help, validated options, users files, the banner."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from rs_guard.__main__ import build_parser, main
from tests.support import free_port


def idp_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["idp"]


def test_every_idp_option_has_help_with_default_and_example() -> None:
    options = [a for a in idp_parser()._actions if a.option_strings and a.dest != "help"]
    assert len(options) >= 11
    for action in options:
        assert action.help and "default" in action.help, action.option_strings
        assert "e.g. " + action.option_strings[0] in action.help, action.option_strings


def test_bad_log_level_is_a_usage_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["idp", "--log-level", "loud"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'loud'" in err and "Traceback" not in err
    assert build_parser().parse_args(["idp", "--log-level", "WARNING"]).log_level == "warning"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([{"name": "alice"}], 'entry 0 needs a string "user_id"'),
        (["alice"], 'entry 0 needs a string "user_id"'),
        ({"alice": "alice@example.com"}, "'alice' must map to an object of claims"),
        ("alice", "must be a JSON object or array"),
    ],
)
def test_users_file_of_the_wrong_shape_is_an_error(
    tmp_path: Path, content: object, message: str
) -> None:
    users = tmp_path / "users.json"
    users.write_text(json.dumps(content))
    with pytest.raises(SystemExit, match=message):
        main(["idp", "--users", str(users), "--port", "1"])


def test_the_idp_prints_a_banner(tmp_path: Path) -> None:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    users = tmp_path / "users.json"
    users.write_text(json.dumps([{"user_id": "alice"}, {"user_id": "bob", "email": "b@x.test"}]))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rs_guard", "idp", "--port", str(port), "--users", str(users)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"{issuer}/.well-known/openid-configuration")
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert f"rs_guard test IdP: issuer {issuer}" in err
    assert f"token_endpoint          {issuer}/token" in err
    assert f"jwks_uri                {issuer}/jwks" in err or "jwks_uri" in err
    assert "users                   alice, bob" in err
    assert f"register a client:      curl -s {issuer}/register" in err
