"""`rs-guard clients` end to end against the bundled IdP on a loopback port (uvicorn):
create, plan after apply, update, drift, secret rotation, partial failure and rerun,
lost registration access tokens, destroy; secrets and tokens never printed."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from rs_guard import clients
from rs_guard.clients import _cli

from .conftest import CLI, IAT, IAT_ENV, FailingTransport, Run, Served, write_clients

CLIENTS = """
[clients.billing]
client_name = "Billing"
redirect_uris = ["http://127.0.0.1:8080/callback"]
grant_types = ["authorization_code", "refresh_token"]
response_types = ["code"]
scope = "openid profile"
token_endpoint_auth_method = "client_secret_basic"
contacts = ["billing@example.com"]

[clients.worker]
grant_types = ["client_credentials"]
response_types = []
scope = "items:read"

[clients.spa]
application_type = "web"
redirect_uris = ["http://localhost:3000/cb"]
token_endpoint_auth_method = "none"
"""


def state_of(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class Leaks:
    """Collects every output and checks that no token or secret is in any of them."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.outputs: list[str] = []

    def __call__(self, run: Run) -> Run:
        self.outputs += [run.out, run.err]
        return run

    def check(self, *extra: str) -> None:
        secrets = [IAT, *extra]
        for state in self.tmp.glob("*.state.json"):
            for record in state_of(state)["clients"].values():
                secrets.append(record["registration_access_token"])
        for file in self.tmp.glob("secrets/*.json"):
            secrets.append(json.loads(file.read_text())["client_secret"])
        assert len(secrets) > 1
        for text in self.outputs:
            for secret in secrets:
                assert secret not in text


@pytest.fixture
def files(tmp_path: Path, idp_served: Served) -> tuple[Path, Path, Path]:
    path = write_clients(tmp_path / "clients.toml", idp_served.issuer, CLIENTS)
    return path, tmp_path / "clients.state.json", tmp_path / "secrets"


def test_create_then_nothing_to_do_then_update_then_destroy(
    files: tuple[Path, Path, Path], idp_served: Served, cli: CLI, tmp_path: Path
) -> None:
    path, state, secrets = files
    leaks = Leaks(tmp_path)
    planned = leaks(cli("plan", path))
    assert planned.code == 0
    assert "+ billing  (create)" in planned.out
    assert "Plan: 3 to create, 0 to update, 0 to delete, 0 unchanged." in planned.out
    assert not state.exists()  # a plan of creates changes nothing

    applied = leaks(cli("apply", path, "--secrets-dir", secrets))
    assert applied.code == 0, applied.err
    assert "Apply: 3 created, 0 updated, 0 deleted, 0 failed." in applied.out
    doc = state_of(state)
    assert mode(state) == 0o600 and sorted(doc["clients"]) == ["billing", "spa", "worker"]
    for name, record in doc["clients"].items():
        client = idp_served.idp.clients[record["client_id"]]
        assert record["registration_client_uri"].endswith(f"/register/{client.client_id}")
        if name == "spa":
            assert client.client_secret is None and not (secrets / "spa.json").exists()
        else:
            assert mode(secrets / f"{name}.json") == 0o600
            written = json.loads((secrets / f"{name}.json").read_text())
            assert written["client_id"] == client.client_id
            assert client.check_secret(written["client_secret"])
    assert mode(secrets) == 0o700
    assert idp_served.idp.clients[doc["clients"]["billing"]["client_id"]].client_name == "Billing"

    again = leaks(cli("plan", path, "--json"))
    assert again.code == 0
    plan = again.json()
    assert plan["format"] == "rs_guard.clients.plan/1" and plan["has_changes"] is False
    assert plan["summary"] == {
        "create": 0,
        "update": 0,
        "delete": 0,
        "unchanged": 3,
        "secrets_to_deliver": 0,
    }
    assert cli("plan", path, "--detailed-exitcode").code == 0

    # Change one member, drop another, and remove a client from the file.
    text = path.read_text().replace('"Billing"', '"Billing v2"')
    text = text.replace('contacts = ["billing@example.com"]\n', "")
    text = text[: text.index("[clients.spa]")]
    path.write_text(text)
    update = leaks(cli("plan", path, "--json"))
    by_name = {c["name"]: c for c in update.json()["clients"]}
    assert by_name["billing"]["action"] == "update"
    assert by_name["billing"]["fields"] == [
        {
            "field": "client_name",
            "action": "change",
            "before": "Billing",
            "after": "Billing v2",
            "drift": False,
        },
        {
            "field": "contacts",
            "action": "remove",
            "before": ["billing@example.com"],
            "after": None,
            "drift": False,
        },
    ]
    assert by_name["spa"]["action"] == "delete" and by_name["worker"]["action"] == "none"
    assert cli("plan", path, "--detailed-exitcode").code == 2
    text_plan = leaks(cli("plan", path)).out
    assert '~ client_name "Billing" -> "Billing v2"' in text_plan
    assert '- contacts    ["billing@example.com"] (no longer in the file)' in text_plan
    assert "- spa  (delete, client_id " in text_plan

    spa_id = doc["clients"]["spa"]["client_id"]
    done = leaks(cli("apply", path, "--secrets-dir", secrets))
    assert done.code == 0, done.err
    billing = idp_served.idp.clients[doc["clients"]["billing"]["client_id"]]
    assert billing.client_name == "Billing v2" and "contacts" not in billing.metadata
    assert spa_id not in idp_served.idp.clients
    assert "Apply: 0 created, 1 updated, 1 deleted, 0 failed." in done.out
    assert cli("plan", path, "--detailed-exitcode").code == 0

    leaks.check()  # while the secret files are there to compare with
    destroyed = leaks(cli("destroy", path, "--secrets-dir", secrets))
    assert destroyed.code == 0, destroyed.err
    assert "Apply: 0 created, 0 updated, 2 deleted, 0 failed." in destroyed.out
    assert state_of(state)["clients"] == {} and not list(secrets.iterdir())
    assert not [c for c in idp_served.idp.clients.values() if c.client_name == "Billing v2"]
    leaks.check(*[r["registration_access_token"] for r in doc["clients"].values()])


def test_drift_is_shown_and_put_back(
    files: tuple[Path, Path, Path], idp_served: Served, cli: CLI
) -> None:
    path, state, secrets = files
    assert cli("apply", path, "--secrets-dir", secrets).code == 0
    record = state_of(state)["clients"]["billing"]
    # Someone changes the client behind the tool's back, through RFC 7592 itself.
    uri, token = record["registration_client_uri"], record["registration_access_token"]
    current = httpx.get(uri, headers={"Authorization": f"Bearer {token}"}).json()
    for issued in (
        "registration_client_uri",
        "client_id_issued_at",
        "client_secret_expires_at",
        "client_secret",
    ):
        current.pop(issued, None)
    current.update(client_name="Hacked", scope="openid")
    changed = httpx.put(uri, json=current, headers={"Authorization": f"Bearer {token}"})
    assert changed.status_code == 200, changed.text

    plan = cli("plan", path, "--json").json()
    billing = next(c for c in plan["clients"] if c["name"] == "billing")
    assert billing["action"] == "update" and billing["drift"] is True
    assert {f["field"]: (f["before"], f["after"], f["drift"]) for f in billing["fields"]} == {
        "client_name": ("Hacked", "Billing", True),
        "scope": ("openid", "openid profile", True),
    }
    text = cli("plan", path).out
    assert (
        '~ client_name "Hacked" -> "Billing"  [drift: changed at the server since the last apply]'
        in text
    )
    assert cli("apply", path, "--secrets-dir", secrets).code == 0
    assert idp_served.idp.clients[record["client_id"]].client_name == "Billing"
    assert cli("plan", path, "--detailed-exitcode").code == 0


def test_a_rotated_secret_is_delivered(
    files: tuple[Path, Path, Path], idp_served: Served, cli: CLI
) -> None:
    path, state, secrets = files
    assert cli("apply", path, "--secrets-dir", secrets).code == 0
    first = json.loads((secrets / "worker.json").read_text())["client_secret"]
    idp_served.idp.rotate_secrets_on_update = True
    path.write_text(
        path.read_text().replace('scope = "items:read"', 'scope = "items:read items:write"')
    )
    run = cli("apply", path, "--secrets-dir", secrets)
    assert run.code == 0 and "a new client secret was delivered" in run.out
    second = json.loads((secrets / "worker.json").read_text())["client_secret"]
    assert second != first
    worker = idp_served.idp.clients[state_of(state)["clients"]["worker"]["client_id"]]
    assert worker.check_secret(second) and not worker.check_secret(first)
    assert first not in run.out + run.err and second not in run.out + run.err


def test_partial_failure_leaves_a_true_state_and_a_rerun_converges(
    files: tuple[Path, Path, Path], idp_served: Served, cli: CLI
) -> None:
    path, state, secrets = files
    # Valid by RFC 7591, refused by this server: only the server can say no.
    good = path.read_text()
    path.write_text(
        good.replace(
            "[clients.worker]\n", '[clients.worker]\nid_token_signed_response_alg = "HS256"\n'
        )
    )
    run = cli("apply", path, "--secrets-dir", secrets)
    assert run.code == 1 and "Traceback" not in run.err
    assert (
        '! worker: FAILED: client "worker": the server refused the registration (HTTP 400): '
        "invalid_client_metadata" in run.out
    )
    assert "apply failed for worker; every other change was made and saved" in run.err
    assert sorted(state_of(state)["clients"]) == ["billing", "spa"]
    assert len(idp_served.idp.clients) == 2
    path.write_text(good)
    plan = cli("plan", path, "--json").json()
    assert [(c["name"], c["action"]) for c in plan["clients"]] == [
        ("billing", "none"),
        ("spa", "none"),
        ("worker", "create"),
    ]
    assert cli("apply", path, "--secrets-dir", secrets).code == 0
    assert len(idp_served.idp.clients) == 3
    assert cli("plan", path, "--detailed-exitcode").code == 0


def test_a_network_fault_mid_apply_and_a_rerun(
    files: tuple[Path, Path, Path], idp_served: Served, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, state, secrets = files
    # Requests: discovery, POST billing, POST spa (fails), POST worker.
    monkeypatch.setattr(
        _cli, "make_http_client", lambda: httpx.AsyncClient(transport=FailingTransport(3))
    )
    run = cli("apply", path, "--secrets-dir", secrets)
    assert run.code == 1
    assert (
        "! spa: FAILED: spa: cannot reach" in run.out and "ConnectError: injected fault" in run.out
    )
    assert sorted(state_of(state)["clients"]) == ["billing", "worker"]
    monkeypatch.undo()
    monkeypatch.setenv(IAT_ENV, IAT)
    rerun = cli("apply", path, "--secrets-dir", secrets)
    assert rerun.code == 0 and "Apply: 1 created, 0 updated, 0 deleted, 0 failed." in rerun.out
    assert len(idp_served.idp.clients) == 3


def test_a_failed_secret_delivery_is_retried(
    files: tuple[Path, Path, Path], idp_served: Served, cli: CLI, tmp_path: Path
) -> None:
    path, state, _ = files
    store = tmp_path / "store"
    store.mkdir()
    script = tmp_path / "store.py"
    script.write_text(
        "import os, pathlib, sys\n"
        "name = os.environ['RS_GUARD_CLIENT_NAME']\n"
        "secret = sys.stdin.read()\n"
        f"if pathlib.Path({str(tmp_path / 'broken')!r}).exists():\n"
        "    print('vault sealed; got ' + secret, file=sys.stderr); sys.exit(3)\n"
        f"pathlib.Path({str(store)!r}, name).write_text(\n"
        "    os.environ['RS_GUARD_CLIENT_ID'] + ' ' + secret)\n"
    )
    command = f"{sys.executable} {script}"
    (tmp_path / "broken").touch()
    run = cli("apply", path, "--secrets-command", command)
    assert run.code == 1
    assert (
        "the secrets command" in run.out
        and "exited with status 3: vault sealed; got [secret]" in run.out
    )
    # The clients exist and are in the state; only the secrets wait.
    assert sorted(state_of(state)["clients"]) == ["billing", "spa", "worker"]
    plan = cli("plan", path)
    assert plan.code == 0 and "client secret not delivered yet: apply delivers it" in plan.out
    (tmp_path / "broken").unlink()
    rerun = cli("apply", path, "--secrets-command", command)
    assert rerun.code == 0, rerun.err
    for name in ("billing", "worker"):
        client_id, secret = (store / name).read_text().split(" ")
        assert idp_served.idp.clients[client_id].check_secret(secret)
        assert secret not in run.out + run.err + rerun.out + rerun.err
    assert cli("plan", path, "--detailed-exitcode").code == 0


def test_no_secret_sink_refuses_before_any_change(
    files: tuple[Path, Path, Path], idp_served: Served, cli: CLI
) -> None:
    path, state, _ = files
    run = cli("apply", path)
    assert run.code == 1
    assert "the server will issue a client secret to billing, worker: say where it goes" in run.err
    assert not idp_served.idp.clients and not state.exists()


def test_initial_access_token(
    files: tuple[Path, Path, Path], idp_served: Served, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, state, secrets = files
    monkeypatch.delenv(IAT_ENV)
    run = cli("apply", path, "--secrets-dir", secrets)
    assert run.code == 1 and f"the environment variable {IAT_ENV}" in run.err
    assert "is not set; nothing was changed" in run.err and not idp_served.idp.clients
    monkeypatch.setenv("OTHER_IAT", "wrong-token")
    run = cli("apply", path, "--secrets-dir", secrets, "--initial-access-token-env", "OTHER_IAT")
    assert (
        run.code == 1
        and "registration answered HTTP 401: an initial access token was refused" in run.out
    )
    assert "wrong-token" not in run.out + run.err and not idp_served.idp.clients
    monkeypatch.setenv("OTHER_IAT", IAT)
    run = cli("apply", path, "--secrets-dir", secrets, "--initial-access-token-env", "OTHER_IAT")
    assert run.code == 0


def test_a_refused_registration_access_token_and_its_recovery(
    files: tuple[Path, Path, Path], idp_served: Served, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, state, secrets = files
    assert cli("apply", path, "--secrets-dir", secrets).code == 0
    doc = state_of(state)
    real = doc["clients"]["billing"]["registration_access_token"]
    client_id = doc["clients"]["billing"]["client_id"]
    # The token is lost (here: overwritten); the API keeps the hash consistent.
    st = clients.State.load(state, idp_served.issuer)
    record = st.get("billing")
    assert record is not None and real not in repr(record) and real not in repr(st)
    st.put("billing", record.with_changes(registration_access_token="lost"))
    run = cli("plan", path)
    assert run.code == 1 and "Traceback" not in run.err
    assert 'client "billing": the server refused its registration access token (HTTP 401' in run.err
    assert f"rs-guard clients import FILE billing --token-env VAR -- {client_id}" in run.err
    assert "rs-guard clients forget FILE billing" in run.err
    assert cli("apply", path, "--secrets-dir", secrets).code == 1

    # Recovery 1: import with a valid token (here: the one an admin gives back).
    monkeypatch.setenv("BILLING_RAT", real)
    # As the advice says: `--` first, since a generated client_id may begin with "-".
    imported = cli("import", path, "billing", "--token-env", "BILLING_RAT", "--", client_id)
    assert imported.code == 0, imported.err
    assert real not in imported.out + imported.err
    assert cli("plan", path, "--detailed-exitcode").code == 0

    # Recovery 2: the client was deleted at the server: forget it, and apply creates it anew.
    idp_served.idp.delete_client(client_id)
    assert "the client was deleted at the server" in cli("plan", path).err
    forgot = cli("forget", path, "billing")
    assert forgot.code == 0 and f'forgot client "billing" ({client_id})' in forgot.out
    plan = cli("plan", path, "--json").json()
    assert [c["action"] for c in plan["clients"] if c["name"] == "billing"] == ["create"]
    assert cli("apply", path, "--secrets-dir", secrets).code == 0
    assert state_of(state)["clients"]["billing"]["client_id"] != client_id


def test_import_refusals(
    files: tuple[Path, Path, Path], idp_served: Served, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _, secrets = files
    monkeypatch.setenv("RAT", "nonsense")
    run = cli("import", path, "nobody", "abc", "--token-env", "RAT")
    assert run.code == 1 and 'no client "nobody" is declared' in run.err
    run = cli("import", path, "billing", "abc", "--token-env", "RAT")
    assert run.code == 1 and "check the client_id, the token" in run.err
    # A client_id beginning with "-" (token_urlsafe makes one now and then) after `--` is the
    # client_id, checked at the server, not an unknown option (argparse's exit 2).
    run = cli("import", path, "billing", "--token-env", "RAT", "--", "-abc")
    assert run.code == 1 and "check the client_id, the token" in run.err
    assert cli("import", path, "billing", "abc", "--token-env", "UNSET_VAR").code == 1
    assert cli("forget", path, "billing").code == 1


def test_state_file_problems(files: tuple[Path, Path, Path], idp_served: Served, cli: CLI) -> None:
    path, state, secrets = files
    assert cli("apply", path, "--secrets-dir", secrets).code == 0
    os.chmod(state, 0o644)
    run = cli("plan", path)
    assert run.code == 1 and "readable by others (mode 644)" in run.err and "chmod 600" in run.err
    os.chmod(state, 0o600)
    other = path.with_name("other.toml")
    other.write_text(path.read_text().replace(idp_served.issuer, "http://127.0.0.1:9"))
    run = cli("plan", other, "--state", state)
    assert run.code == 1 and "belongs to the issuer" in run.err
    doc = state_of(state)
    doc["clients"]["billing"]["applied"]["client_name"] = "edited"
    state.write_text(json.dumps(doc))
    run = cli("plan", path)
    assert run.code == 1 and "does not match its hash (edited by hand?)" in run.err
    state.write_text("{not json")
    assert "not valid JSON" in cli("plan", path).err
    state.write_text("[]")
    assert "not a state file of rs-guard clients" in cli("plan", path).err


def test_server_problems(tmp_path: Path, idp_served: Served, cli: CLI) -> None:
    nobody = write_clients(tmp_path / "a.toml", "http://127.0.0.1:9", CLIENTS)
    run = cli("plan", nobody)
    assert (
        run.code == 1
        and "discovery: cannot reach http://127.0.0.1:9/.well-known/openid-configuration" in run.err
    )
    wrong = write_clients(tmp_path / "b.toml", idp_served.issuer + "/elsewhere", CLIENTS)
    run = cli("plan", wrong)
    assert run.code == 1 and "no discovery document for" in run.err
    endpoint = tmp_path / "c.toml"
    endpoint.write_text(
        f'[server]\nissuer = "{idp_served.issuer}"\n'
        f'registration_endpoint = "{idp_served.issuer}/no-such-endpoint"\n'
        f'initial_access_token_env = "{IAT_ENV}"\n' + CLIENTS
    )
    run = cli("apply", endpoint, "--secrets-dir", tmp_path / "s")
    assert run.code == 1 and "the server refused the registration (HTTP 404)" in run.out
    assert "Traceback" not in run.err


@pytest.mark.anyio
async def test_the_python_api(files: tuple[Path, Path, Path], idp_served: Served) -> None:
    path, state_path, secrets = files
    spec = clients.load(path)
    state = clients.State.load(state_path, spec.server.issuer)
    async with clients.Registrar(spec.server, initial_access_token=IAT) as server:
        plan = await clients.plan(spec, state, server)
        assert plan.summary()["create"] == 3 and plan.has_changes
        with pytest.raises(clients.SecretDeliveryError):
            await clients.apply(plan, state, server)
        result = await clients.apply(plan, state, server, secrets=clients.SecretsDir(secrets))
        assert result.ok and result.summary()["create"] == 3
        assert not (await clients.plan(spec, state, server)).has_changes
        record = state.get("billing")
        assert record is not None and record.registration_access_token is not None
        assert record.registration_access_token not in repr(record) + repr(state) + repr(plan)
        gone = await clients.destroy(spec, state, server)
        assert gone.summary()["delete"] == 3 and len(state) == 0


def test_json_output_of_apply_and_destroy(
    files: tuple[Path, Path, Path], idp_served: Served, cli: CLI
) -> None:
    path, state, secrets = files
    run = cli("apply", path, "--secrets-dir", secrets, "--json")
    assert run.code == 0
    doc = run.json()  # only JSON on stdout
    assert doc["plan"]["summary"]["create"] == 3 and doc["result"]["ok"] is True
    assert sorted(o["name"] for o in doc["result"]["done"]) == ["billing", "spa", "worker"]
    quiet = cli("apply", path, "--secrets-dir", secrets, "--json").json()
    assert quiet["plan"]["has_changes"] is False and quiet["result"]["done"] == []
    gone = cli("destroy", path, "--json").json()
    assert gone["plan"]["destroy"] is True and gone["plan"]["summary"]["delete"] == 3
    empty = cli("destroy", path)
    assert empty.code == 0 and "(no clients declared and none in the state)" in empty.out


def test_a_network_fault_while_planning(
    files: tuple[Path, Path, Path], idp_served: Served, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, state, secrets = files
    assert cli("apply", path, "--secrets-dir", secrets).code == 0
    before = state.read_bytes()
    # Requests: discovery, then one RFC 7592 read per client; the second read fails.
    monkeypatch.setattr(
        _cli, "make_http_client", lambda: httpx.AsyncClient(transport=FailingTransport(3))
    )
    run = cli("plan", path)
    assert run.code == 1 and "Traceback" not in run.err
    assert "error: spa: cannot reach" in run.err and "injected fault" in run.err
    assert state.read_bytes() == before


def test_a_secrets_command_that_cannot_run(
    files: tuple[Path, Path, Path], idp_served: Served, cli: CLI
) -> None:
    path, state, _ = files
    run = cli("apply", path, "--secrets-command", "/nonexistent/store-secret --flag")
    assert run.code == 1
    assert "the secrets command '/nonexistent/store-secret' cannot run" in run.out
    # Registered and tracked; the secrets wait for a working command.
    assert sorted(state_of(state)["clients"]) == ["billing", "spa", "worker"]
    assert "2 secrets to deliver" in cli("plan", path).out


def test_the_installed_command(files: tuple[Path, Path, Path], idp_served: Served) -> None:
    """The same through a real process: `python -m rs_guard clients ...` (the `rs-guard`
    script's entry point), its exit codes and streams."""
    import subprocess

    path, state, secrets = files
    env = {**os.environ, IAT_ENV: IAT}

    def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rs_guard", "clients", *map(str, argv)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    planned = run("plan", path, "--detailed-exitcode")
    assert planned.returncode == 2 and "Plan: 3 to create" in planned.stdout
    applied = run("apply", path, "--secrets-dir", secrets)
    assert applied.returncode == 0, applied.stderr
    assert run("plan", path, "--detailed-exitcode").returncode == 0
    path.write_text(path.read_text().replace("[clients.spa]", "[clients.spa]\nbogus = 1"))
    bad = run("plan", path)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
    assert 'client "spa": bogus: unknown member' in bad.stderr
