"""`rs-guard clients` against node-oidc-provider's RFC 7591 registration and RFC 7592
management, through the command line: create, plan after apply, update with a rotated
registration access token, drift, a server-only refusal and rerun, a token refused, destroy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from rs_guard.clients import _cli

from ..clients.conftest import CLI, IAT, FailingTransport, make_cli, write_clients
from .conftest import ProviderFactory, provider_config
from .oidc_provider import OidcProvider, private_jwk

CLIENTS = """
[clients.portal]
client_name = "Portal"
redirect_uris = ["http://127.0.0.1:8080/callback"]
post_logout_redirect_uris = ["http://127.0.0.1:8080/bye"]
grant_types = ["authorization_code", "refresh_token"]
response_types = ["code"]
scope = "openid offline_access"
token_endpoint_auth_method = "client_secret_basic"
contacts = ["portal@example.com"]

[clients.portal.extensions]
x_owner = "team-portal"

[clients.batch]
grant_types = ["client_credentials"]
response_types = []
token_endpoint_auth_method = "client_secret_post"

[clients.app]
application_type = "native"
redirect_uris = ["com.example.app:/callback", "http://127.0.0.1/callback"]
token_endpoint_auth_method = "none"
"""


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> CLI:
    """`rs-guard clients ...` through main(argv), output captured (as in tests/clients)."""
    return make_cli(capsys, monkeypatch)


def start(fresh_provider: ProviderFactory, *, rotate: bool = True) -> OidcProvider:
    config: dict[str, Any] = {
        **provider_config([private_jwk("ES256", "es-1"), private_jwk("RS256", "rs-1")]),
        "registration": {
            "enabled": True,
            "initialAccessToken": IAT,
            "management": True,
            "rotateRegistrationAccessToken": rotate,
        },
    }
    return fresh_provider(config)


def state_of(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def read(record: dict[str, Any]) -> httpx.Response:
    return httpx.get(
        record["registration_client_uri"],
        headers=bearer(record["registration_access_token"]),
        timeout=10,
    )


def editable(record: dict[str, Any]) -> dict[str, Any]:
    """The client's metadata as read back, without the members an RFC 7592 update must omit."""
    current: dict[str, Any] = read(record).json()
    for issued in (
        "registration_access_token",
        "registration_client_uri",
        "client_id_issued_at",
        "client_secret_expires_at",
        "client_secret",
    ):
        current.pop(issued, None)
    return current


def update(record: dict[str, Any], metadata: dict[str, Any]) -> httpx.Response:
    """An RFC 7592 update made by someone else than the tool, with the state's token."""
    return httpx.put(
        record["registration_client_uri"],
        json=metadata,
        headers=bearer(record["registration_access_token"]),
        timeout=10,
    )


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    return tmp_path / "clients.toml", tmp_path / "clients.state.json", tmp_path / "secrets"


def test_lifecycle_with_rotation(
    fresh_provider: ProviderFactory, setup: tuple[Path, Path, Path], cli: CLI
) -> None:
    op = start(fresh_provider)
    path, state, secrets = setup
    write_clients(path, op.issuer, CLIENTS)
    assert "Plan: 3 to create" in cli("plan", path).out

    applied = cli("apply", path, "--secrets-dir", secrets)
    assert applied.code == 0, applied.out + applied.err
    # The OP ignores an extension member it does not know: said once, not a perpetual diff.
    assert "the server did not keep x_owner" in applied.out
    first = state_of(state)["clients"]
    assert (
        first["portal"]["registration_client_uri"]
        == f"{op.issuer}/reg/{first['portal']['client_id']}"
    )
    portal = read(first["portal"]).json()
    assert portal["client_name"] == "Portal" and portal["contacts"] == ["portal@example.com"]
    secret = json.loads((secrets / "portal.json").read_text())
    assert secret["client_id"] == portal["client_id"] == first["portal"]["client_id"]
    assert secret["client_secret"] == portal["client_secret"]
    assert not (secrets / "app.json").exists()

    # Right after the apply: nothing to do, although the OP added many defaults.
    assert read(first["portal"]).json()["id_token_signed_response_alg"] == "RS256"
    again = cli("plan", path, "--detailed-exitcode")
    assert again.code == 0, again.out
    assert "No changes" in again.out

    # An update: the OP rotates the registration access token (RFC 7592 §2.2); the old one
    # is dead at once and the state has the new one.
    path.write_text(path.read_text().replace('"Portal"', '"Portal 2"'))
    updated = cli("apply", path, "--secrets-dir", secrets)
    assert updated.code == 0, updated.out + updated.err
    assert "the server rotated the registration access token (saved in the state)" in updated.out
    second = state_of(state)["clients"]
    assert (
        second["portal"]["registration_access_token"]
        != first["portal"]["registration_access_token"]
    )
    assert read(first["portal"]).status_code == 401
    assert read(second["portal"]).json()["client_name"] == "Portal 2"
    assert second["batch"] == first["batch"]  # untouched
    assert cli("plan", path, "--detailed-exitcode").code == 0
    # A PUT keeps the secret (the tool never sends one back): nothing new to deliver.
    assert json.loads((secrets / "portal.json").read_text()) == secret

    destroyed = cli("destroy", path)
    assert destroyed.code == 0, destroyed.out + destroyed.err
    assert "Apply: 0 created, 0 updated, 3 deleted, 0 failed." in destroyed.out
    assert read(second["portal"]).status_code == 401 and state_of(state)["clients"] == {}
    for run in (applied, again, updated, destroyed):
        for record in (*first.values(), *second.values()):
            assert record["registration_access_token"] not in run.out + run.err
        assert secret["client_secret"] not in run.out + run.err and IAT not in run.out + run.err


def test_drift_is_shown_and_put_back(
    fresh_provider: ProviderFactory, setup: tuple[Path, Path, Path], cli: CLI
) -> None:
    op = start(fresh_provider, rotate=False)
    path, state, secrets = setup
    write_clients(path, op.issuer, CLIENTS)
    assert cli("apply", path, "--secrets-dir", secrets).code == 0
    record = state_of(state)["clients"]["portal"]
    current = editable(record)
    current["client_name"] = "Changed by hand"
    current["redirect_uris"] = ["http://127.0.0.1:8080/callback", "http://127.0.0.1:9999/evil"]
    changed = update(record, current)
    assert changed.status_code == 200, changed.text

    plan = cli("plan", path, "--json").json()
    portal = next(c for c in plan["clients"] if c["name"] == "portal")
    assert portal["action"] == "update" and portal["drift"] is True
    fields = {f["field"]: f for f in portal["fields"]}
    assert sorted(fields) == ["client_name", "redirect_uris"]
    assert fields["client_name"]["before"] == "Changed by hand" and fields["client_name"]["drift"]
    assert fields["redirect_uris"]["after"] == ["http://127.0.0.1:8080/callback"]
    assert "[drift: changed at the server since the last apply]" in cli("plan", path).out
    assert cli("apply", path, "--secrets-dir", secrets).code == 0
    assert read(record).json()["redirect_uris"] == ["http://127.0.0.1:8080/callback"]
    assert cli("plan", path, "--detailed-exitcode").code == 0


def test_a_refusal_only_the_server_makes_and_a_rerun(
    fresh_provider: ProviderFactory, setup: tuple[Path, Path, Path], cli: CLI
) -> None:
    op = start(fresh_provider)
    path, state, secrets = setup
    # Valid by RFC 7591 (an algorithm is a string); this OP has no such algorithm.
    bad = CLIENTS.replace(
        "[clients.batch]\n", '[clients.batch]\nid_token_signed_response_alg = "XS999"\n'
    )
    write_clients(path, op.issuer, bad)
    run = cli("apply", path, "--secrets-dir", secrets)
    assert run.code == 1 and "Traceback" not in run.err
    assert (
        '! batch: FAILED: client "batch": the server refused the registration (HTTP 400): '
        "invalid_client_metadata" in run.out
    )
    assert sorted(state_of(state)["clients"]) == ["app", "portal"]
    write_clients(path, op.issuer, CLIENTS)
    plan = cli("plan", path, "--json").json()
    assert {c["name"]: c["action"] for c in plan["clients"]} == {
        "app": "none",
        "batch": "create",
        "portal": "none",
    }
    assert cli("apply", path, "--secrets-dir", secrets).code == 0
    assert cli("plan", path, "--detailed-exitcode").code == 0


def test_a_token_rotated_elsewhere_is_explained_and_recovered(
    fresh_provider: ProviderFactory,
    setup: tuple[Path, Path, Path],
    cli: CLI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    op = start(fresh_provider)
    path, state, secrets = setup
    write_clients(path, op.issuer, CLIENTS)
    assert cli("apply", path, "--secrets-dir", secrets).code == 0
    record = state_of(state)["clients"]["batch"]
    # Someone else uses the token: the OP rotates it, and the state's copy is dead.
    current = editable(record)
    changed = update(record, current)
    assert changed.status_code == 200
    new_token = changed.json()["registration_access_token"]
    run = cli("plan", path)
    assert run.code == 1 and "Traceback" not in run.err
    assert 'client "batch": the server refused its registration access token (HTTP 401' in run.err
    assert f"rs-guard clients import FILE batch --token-env VAR -- {record['client_id']}" in run.err
    monkeypatch.setenv("BATCH_RAT", new_token)
    imported = cli("import", path, "batch", "--token-env", "BATCH_RAT", "--", record["client_id"])
    assert imported.code == 0, imported.err
    assert cli("plan", path, "--detailed-exitcode").code == 0

    # Deleted at the server: forget, then apply registers it anew.
    httpx.delete(record["registration_client_uri"], headers=bearer(new_token), timeout=10)
    assert "the client was deleted at the server" in cli("plan", path).err
    assert cli("forget", path, "batch").code == 0
    again = cli("apply", path, "--secrets-dir", secrets)
    assert again.code == 0 and "Apply: 1 created" in again.out
    assert state_of(state)["clients"]["batch"]["client_id"] != record["client_id"]


def test_registration_needs_the_initial_access_token(
    fresh_provider: ProviderFactory,
    setup: tuple[Path, Path, Path],
    cli: CLI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    op = start(fresh_provider)
    path, state, secrets = setup
    write_clients(path, op.issuer, CLIENTS, iat_env=None)
    run = cli("apply", path, "--secrets-dir", secrets)
    assert run.code == 1
    assert "registration answered HTTP 401: an initial access token is required" in run.out
    assert not state.exists() or state_of(state)["clients"] == {}
    monkeypatch.setenv("OP_IAT", IAT)
    ok = cli("apply", path, "--secrets-dir", secrets, "--initial-access-token-env", "OP_IAT")
    assert ok.code == 0, ok.out + ok.err


def test_a_network_fault_mid_apply_and_a_rerun(
    fresh_provider: ProviderFactory,
    setup: tuple[Path, Path, Path],
    cli: CLI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    op = start(fresh_provider)
    path, state, secrets = setup
    write_clients(path, op.issuer, CLIENTS)
    assert cli("apply", path, "--secrets-dir", secrets).code == 0
    path.write_text(path.read_text().replace('"Portal"', '"Portal 2"'))
    path.write_text(path.read_text().replace("[clients.app]", '[clients.app]\nclient_name = "App"'))
    # Requests: discovery, three reads (app, batch, portal), PUT app, PUT portal (fails).
    monkeypatch.setattr(
        _cli, "make_http_client", lambda: httpx.AsyncClient(transport=FailingTransport(6))
    )
    run = cli("apply", path, "--secrets-dir", secrets)
    assert run.code == 1 and "! portal: FAILED: portal: cannot reach" in run.out
    monkeypatch.undo()
    monkeypatch.setenv("RS_GUARD_TEST_IAT", IAT)
    plan = cli("plan", path, "--json").json()
    assert {c["name"]: c["action"] for c in plan["clients"]} == {
        "app": "none",
        "batch": "none",
        "portal": "update",
    }
    rerun = cli("apply", path, "--secrets-dir", secrets)
    assert rerun.code == 0 and "Apply: 0 created, 1 updated" in rerun.out
    assert read(state_of(state)["clients"]["portal"]).json()["client_name"] == "Portal 2"
    assert cli("plan", path, "--detailed-exitcode").code == 0
