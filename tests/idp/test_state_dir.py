"""The IdP's state directory (keys, clients, registrations, users, sessions survive a restart),
its safety checks, several initial access tokens, registration access token rotation, and the
clients file read at start, through the Python API and HTTP in-process."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import stat
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from rs_guard import AuthorizationServer, JWTValidator
from rs_guard.dpop import DPoPKey
from rs_guard.errors import ClientsFileError, IdPStateError
from rs_guard.idp import IdP

pytestmark = pytest.mark.anyio
ISSUER = "https://idp.example"
IAT = "initial-access-token-0123456789"
REDIRECT = {"redirect_uris": ["https://app.example/cb"]}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def register(idp: IdP, token: str | None = IAT, **meta: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with idp.http_client() as http:
        return await http.post("/register", json={**REDIRECT, **meta}, headers=headers)


async def manage(idp: IdP, method: str, uri: str, token: str, **body: Any) -> httpx.Response:
    async with idp.http_client() as http:
        return await http.request(
            method, uri, headers={"Authorization": f"Bearer {token}"}, json=body or None
        )


async def test_everything_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    idp = IdP(ISSUER, state_dir=state, initial_access_token=IAT)
    idp.add_user("alice", email="alice@example.com")
    idp.login_as("alice", "mf")
    worker = idp.register_client("worker", grant_types=["client_credentials"])
    token = idp.issue_access_token("alice", client_id="worker", audience="https://api.example")
    created = (await register(idp, client_name="Billing")).json()
    # On disk before the answer was sent (not only at shutdown).
    on_disk = json.loads((state / "clients.json").read_text())["data"]["clients"]
    assert [c["client_name"] for c in on_disk if c["client_id"] == created["client_id"]] == [
        "Billing"
    ]
    assert created["registration_access_token"] not in (state / "clients.json").read_text()
    await idp.aclose()
    # Private keys and secrets: the directory is 0700 and every file 0600.
    assert mode(state) == 0o700
    assert all(mode(p) == 0o600 for p in state.iterdir()), {
        p.name: mode(p) for p in state.iterdir()
    }

    again = IdP(ISSUER, state_dir=state, initial_access_token=IAT)
    assert again.jwks() == idp.jwks()
    # A token signed before the restart still verifies (same keys) and introspects active.
    async with again.http_client() as http:
        server = AuthorizationServer(ISSUER, http_client=http)
        validator = JWTValidator(server=server, audience="https://api.example")
        verified = await validator.validate(token)
    assert verified.subject == "alice"
    assert again.introspect(token)["active"] is True
    assert again.get_client("worker").client_secret == worker.client_secret  # type: ignore[union-attr]
    assert again.users["alice"].claims == {"email": "alice@example.com"}
    assert again.session is not None and again.session.acr == "mf"
    # The RFC 7592 registration (its hashed registration access token) too.
    read = await manage(
        again, "GET", created["registration_client_uri"], created["registration_access_token"]
    )
    assert read.status_code == 200 and read.json()["client_name"] == "Billing"
    await again.aclose()


async def test_a_dpop_bound_refresh_token_still_needs_its_key_after_a_restart(
    tmp_path: Path,
) -> None:
    # RFC 9449 §5: a public client's refresh token is bound to its DPoP key, restart or not.
    state = tmp_path / "state"
    cb = "https://spa.example/cb"
    idp = IdP(ISSUER, state_dir=state)
    idp.register_client("spa", redirect_uris=[cb], token_endpoint_auth_method="none")
    idp.add_user("alice")
    idp.login_as("alice")
    verifier = secrets.token_urlsafe(40)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    key = DPoPKey()
    async with idp.http_client() as http:
        authorized = await http.get(
            "/authorize",
            params={
                "response_type": "code",
                "client_id": "spa",
                "redirect_uri": cb,
                "code_challenge": challenge.rstrip(b"=").decode(),
                "code_challenge_method": "S256",
            },
        )
        code = parse_qs(urlsplit(authorized.headers["location"]).query)["code"][0]
        form = {"client_id": "spa", "code": code, "redirect_uri": cb, "code_verifier": verifier}
        issued = await http.post(
            "/token",
            data={"grant_type": "authorization_code", **form},
            headers={"DPoP": key.proof("POST", f"{ISSUER}/token", iat=time.time())},
        )
    assert issued.status_code == 200, issued.text
    refresh = {
        "grant_type": "refresh_token",
        "client_id": "spa",
        "refresh_token": issued.json()["refresh_token"],
    }
    await idp.aclose()
    again = IdP(ISSUER, state_dir=state)
    async with again.http_client() as http:
        without = await http.post("/token", data=refresh)
        assert without.status_code == 400, without.text
        assert without.json()["error"] == "invalid_grant"
        proven = await http.post(
            "/token",
            data=refresh,
            headers={"DPoP": key.proof("POST", f"{ISSUER}/token", iat=time.time())},
        )
        assert proven.status_code == 200, proven.text
    await again.aclose()


def test_unsafe_corrupt_foreign_or_busy_directories_are_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    idp = IdP(ISSUER, state_dir=state)
    with pytest.raises(IdPStateError, match="in use by another IdP"):
        IdP(ISSUER, state_dir=state)
    idp.close_state()
    keys = (state / "keys.json").read_bytes()

    with pytest.raises(IdPStateError, match="belongs to the IdP 'https://idp.example'"):
        IdP("https://other.example", state_dir=state)

    (state / "keys.json").chmod(0o644)
    with pytest.raises(IdPStateError, match=r"keys\.json.*group or others.*chmod 600"):
        IdP(ISSUER, state_dir=state)
    (state / "keys.json").chmod(0o600)
    state.chmod(0o755)
    with pytest.raises(IdPStateError, match="chmod 700"):
        IdP(ISSUER, state_dir=state)
    state.chmod(0o700)

    (state / "clients.json").write_text("{not json")
    with pytest.raises(IdPStateError, match=r"clients\.json: corrupt: not JSON"):
        IdP(ISSUER, state_dir=state)
    doc = json.loads(keys)
    doc["data"]["active"] = {"ES256": "no-such-kid"}
    (state / "clients.json").unlink()
    (state / "keys.json").write_text(json.dumps(doc))
    with pytest.raises(IdPStateError, match=r"keys\.json: corrupt: .*active key"):
        IdP(ISSUER, state_dir=state)
    doc["format"] = "something/9"
    (state / "keys.json").write_text(json.dumps(doc))
    with pytest.raises(IdPStateError, match="not an IdP state file of format rs_guard.idp.state/1"):
        IdP(ISSUER, state_dir=state)
    # Nothing was overwritten by the refused starts.
    assert json.loads((state / "keys.json").read_text())["format"] == "something/9"

    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    (other / "notes.json").write_text("{}")
    with pytest.raises(IdPStateError, match="no idp.json"):
        IdP(ISSUER, state_dir=other)


async def test_several_initial_access_tokens_one_time_and_a_validator(tmp_path: Path) -> None:
    idp = IdP(ISSUER, initial_access_token=[IAT, "second-token-0123456789"])
    assert (await register(idp, IAT)).status_code == 201
    assert (await register(idp, "second-token-0123456789")).status_code == 201
    refused = await register(idp, "wrong-token-0123456789")
    assert refused.status_code == 401 and "invalid_token" in refused.headers["www-authenticate"]
    once = idp.initial_access_tokens.issue(one_time=True)
    assert (await register(idp, once)).status_code == 201
    assert (await register(idp, once)).status_code == 401
    idp.initial_access_tokens.add("expiring-token-0123456789", lifetime=0)
    assert (await register(idp, "expiring-token-0123456789")).status_code == 401
    assert (await register(idp, None)).status_code == 401

    seen: list[str] = []
    checked = IdP(ISSUER, initial_access_token=lambda t: seen.append(t) or t == "from-sts")
    assert (await register(checked, "from-sts")).status_code == 201
    assert (await register(checked, "other")).status_code == 401
    assert seen == ["from-sts", "other"]


async def test_registration_access_token_rotation_on_update() -> None:
    idp = IdP(ISSUER, rotate_registration_access_token=True)
    created = (await register(idp, None)).json()
    uri, old = created["registration_client_uri"], created["registration_access_token"]
    body = {k: v for k, v in created.items() if k != "registration_access_token"}
    updated = await manage(idp, "PUT", uri, old, **{**body, "client_name": "Renamed"})
    assert updated.status_code == 200
    new = updated.json()["registration_access_token"]
    assert new != old
    assert (await manage(idp, "GET", uri, old)).status_code == 401
    assert (await manage(idp, "GET", uri, new)).json()["client_name"] == "Renamed"
    # Off by default: the token stays.
    plain = IdP(ISSUER)
    created = (await register(plain, None)).json()
    body = {k: v for k, v in created.items() if k != "registration_access_token"}
    same = await manage(
        plain,
        "PUT",
        created["registration_client_uri"],
        created["registration_access_token"],
        **body,
    )
    assert "registration_access_token" not in same.json()


CLIENTS_FILE = """
[clients.swagger-ui]
client_id = "swagger-ui"
token_endpoint_auth_method = "none"
redirect_uris = ["http://localhost:8000/docs/oauth2-redirect"]
scope = "openid items:read"

[clients.reports]
grant_types = ["client_credentials"]
response_types = []
client_secret_env = "REPORTS_SECRET"

[clients.worker]
grant_types = ["client_credentials"]
response_types = []
"""


async def test_a_clients_file_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REPORTS_SECRET", "reports-secret-from-the-environment")
    path = tmp_path / "clients.toml"
    path.write_text(CLIENTS_FILE)
    state = tmp_path / "state"
    idp = IdP(ISSUER, state_dir=state, clients_file=path)
    swagger = idp.clients["swagger-ui"]
    assert swagger.is_public and swagger.scope == "openid items:read"
    assert idp.clients["reports"].client_secret == "reports-secret-from-the-environment"
    secret_file = state / "client-secrets" / "worker.json"
    generated = json.loads(secret_file.read_text())
    assert generated["client_id"] == "worker" and mode(secret_file) == 0o600
    assert idp.clients["worker"].client_secret == generated["client_secret"]

    # Not RFC 7592-managed: a clear 401 invalid_token, whatever token is presented.
    answer = await manage(idp, "GET", f"{ISSUER}/register/swagger-ui", "any-token")
    assert answer.status_code == 401
    assert "not managed through RFC 7592" in answer.json()["error_description"]
    idp.close_state()

    # Restart with a file that no longer declares worker: the generated secret of the others
    # is stable, and worker is gone.
    path.write_text(CLIENTS_FILE.split("[clients.worker]")[0])
    again = IdP(ISSUER, state_dir=state, clients_file=path)
    assert "worker" not in again.clients and "swagger-ui" in again.clients
    again.close_state()
    path.write_text(CLIENTS_FILE)
    third = IdP(ISSUER, state_dir=state, clients_file=path)
    stable = third.clients["worker"].client_secret
    third.close_state()
    fourth = IdP(ISSUER, state_dir=state, clients_file=path)
    assert fourth.clients["worker"].client_secret == stable
    fourth.close_state()
    out = capsys.readouterr()
    for secret in (stable, generated["client_secret"], "reports-secret-from-the-environment"):
        assert secret and secret not in out.out + out.err


def test_clients_file_errors_name_the_file_client_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOPE", raising=False)
    path = tmp_path / "clients.toml"
    path.write_text(
        '[server]\nissuer = "https://other.example"\n\n'
        '[clients.a]\nredirect_uris = ["not a uri"]\n\n'
        '[clients.b]\ngrant_types = ["client_credentials"]\nresponse_types = []\n'
        'client_secret_env = "NOPE"\n'
    )
    with pytest.raises(ClientsFileError) as caught:
        IdP(ISSUER, clients_file=path)
    text = str(caught.value)
    assert f"{path}: server.issuer: must be this IdP's issuer" in text
    assert f'{path}: client "a": redirect_uris[0]' in text
    path.write_text(
        '[clients.b]\ngrant_types = ["client_credentials"]\nresponse_types = []\n'
        'client_secret_env = "NOPE"\n'
    )
    with pytest.raises(ClientsFileError, match=r'client "b": client_secret_env: .*NOPE'):
        IdP(ISSUER, clients_file=path)
    assert not os.environ.get("NOPE")


def test_cli_refuses_an_unusable_state_dir_or_token_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rs_guard.__main__ import main

    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    assert main(["idp", "--port", "1", "--state-dir", str(state)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "chmod 700" in err and "Traceback" not in err

    monkeypatch.delenv("UNSET_IAT", raising=False)
    with pytest.raises(SystemExit, match="UNSET_IAT is not set"):
        main(["idp", "--port", "1", "--initial-access-token-env", "UNSET_IAT"])

    clients = tmp_path / "clients.toml"
    clients.write_text('[clients.a]\nredirect_uris = ["not a uri"]\n')
    assert main(["idp", "--port", "1", "--clients", str(clients)]) == 2
    assert f'{clients}: client "a": redirect_uris[0]' in capsys.readouterr().err


async def test_a_refresh_token_and_its_grant_survive_a_restart(tmp_path: Path) -> None:
    from .conftest import add_clients, code_flow

    state = tmp_path / "state"
    idp = IdP(ISSUER, state_dir=state)
    add_clients(idp)
    idp.login_as("alice", acr="mf")
    async with idp.http_client() as http:
        body = await code_flow(http, nonce="n-1")
    await idp.aclose()

    async def refresh_after_restart() -> httpx.Response:
        restarted = IdP(ISSUER, state_dir=state)
        async with restarted.http_client() as http:
            answer = await http.post(
                "/token",
                data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
                auth=("web-app", "web-secret"),
            )
        if answer.status_code == 200:
            assert restarted.introspect(answer.json()["access_token"])["acr"] == "mf"
        await restarted.aclose()
        return answer

    refreshed = await refresh_after_restart()
    assert refreshed.status_code == 200, refreshed.text
    # Rotation was recorded: the old refresh token is used up, also after a restart.
    reused = await refresh_after_restart()
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
