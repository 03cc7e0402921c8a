"""The pieces under the command: the plan's comparison rule, following a server's answer, the
state file's safety, and what never shows in a repr."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from rs_guard import clients
from rs_guard.clients._plan import diff_fields, follow, same
from rs_guard.clients._registrar import Registrar, Registration

ISSUER = "https://idp.example.com"


def record(**extra: object) -> clients.ClientRecord:
    base: dict[str, object] = {
        "client_id": "c1",
        "registration_client_uri": f"{ISSUER}/register/c1",
        "registration_access_token": "rat-1",
    }
    return clients.ClientRecord(**{**base, **extra})  # type: ignore[arg-type]


def test_lists_without_order_and_scopes_compare_as_sets() -> None:
    assert same("scope", "openid profile", "profile openid")
    assert same("grant_types", ["a", "b"], ["b", "a"])
    assert same("response_types", ["code id_token"], ["id_token code"])
    assert not same("contacts", ["a"], ["a", "b"])
    assert not same("client_name", "A", "a")
    assert not same("require_auth_time", True, 1)


def test_a_servers_own_normalisation_is_not_a_change() -> None:
    # The file said "Billing"; the server answered "billing" and still does: in sync.
    rec = record(applied={"client_name": "Billing"}, answered={"client_name": "billing"})
    assert diff_fields({"client_name": "Billing"}, rec, {"client_name": "billing"}) == ()
    # The server moved since: drift.
    (change,) = diff_fields({"client_name": "Billing"}, rec, {"client_name": "Other"})
    assert change.drift and change.action == "change" and change.after == "Billing"
    # The file moved: a change, no drift.
    (change,) = diff_fields({"client_name": "New"}, rec, {"client_name": "billing"})
    assert not change.drift and (change.before, change.after) == ("billing", "New")


def test_only_declared_or_applied_members_are_compared() -> None:
    rec = record(applied={"scope": "a", "contacts": ["x"]}, answered={"scope": "a"})
    current = {"scope": "a", "id_token_signed_response_alg": "RS256"}
    # contacts was applied but the server did not keep it; the file still declares it.
    assert diff_fields({"scope": "a", "contacts": ["x"]}, rec, current) == ()
    # Dropped from the file while the server still has it: removed.
    current = {"scope": "a", "contacts": ["x"]}
    rec = record(applied={"scope": "a", "contacts": ["x"]}, answered=current)
    (change,) = diff_fields({"scope": "a"}, rec, current)
    assert (change.name, change.action, change.before) == ("contacts", "remove", ["x"])


def test_following_the_servers_answer(tmp_path: Path) -> None:
    state = clients.State(tmp_path / "s.json", ISSUER, {})
    answer = Registration(
        client_id="c2",
        metadata={},
        registration_access_token="rat-2",
        registration_client_uri=f"{ISSUER}/register/c2",
        client_secret=None,
    )
    followed = follow(state, "x", record(), answer)
    assert (followed.client_id, followed.registration_access_token) == ("c2", "rat-2")
    assert followed.registration_client_uri == f"{ISSUER}/register/c2"
    assert clients.State.load(tmp_path / "s.json", ISSUER).get("x") == followed
    # An answer without a token or URI (RFC 7592 §2.1 lets a read omit them) keeps ours.
    quiet = Registration("c2", {}, None, None, None)
    assert follow(state, "x", followed, quiet) is followed


def test_a_registration_uri_on_another_origin_is_refused() -> None:
    registrar = Registrar(clients.ServerSpec(ISSUER))
    doc = {"client_id": "c", "registration_client_uri": "https://evil.example/register/c"}
    with pytest.raises(clients.RegistrationError, match="on another origin"):
        registrar._registration("x", doc, f"{ISSUER}/register")
    doc["registration_client_uri"] = "https://idp.example.com:443/register/c"
    assert registrar._registration("x", doc, f"{ISSUER}/register").client_id == "c"


def test_the_state_is_private_from_the_first_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = os.umask(0)  # the most permissive umask: the file must still be 0600
    try:
        state = clients.State(tmp_path / "s.json", ISSUER, {})
        seen: list[int] = []
        real_replace = os.replace

        def spy(src: str, dst: str) -> None:
            seen.append(stat.S_IMODE(os.stat(src).st_mode))  # the temp file, before the rename
            real_replace(src, dst)

        monkeypatch.setattr(os, "replace", spy)
        state.put("x", record())
    finally:
        os.umask(old)
    assert seen == [0o600]
    assert stat.S_IMODE((tmp_path / "s.json").stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]  # no temp file left


def test_a_failed_write_leaves_the_old_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = clients.State(tmp_path / "s.json", ISSUER, {})
    state.put("x", record())
    before = (tmp_path / "s.json").read_bytes()

    def broken(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(clients.StateError, match="No space left on device"):
        state.put("y", record(client_id="c2"))
    assert (tmp_path / "s.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]


def test_no_token_or_secret_in_a_repr() -> None:
    rec = record(secret_sha256="h" * 64)
    assert "rat-1" not in repr(rec) and "h" * 64 not in repr(rec)
    secret = clients.IssuedSecret("x", "c1", "s3cr3t-value")
    assert "s3cr3t" not in repr(secret) + str(secret) and secret.reveal() == "s3cr3t-value"
    reg = Registration("c1", {}, "rat-9", None, "s3cr3t-value")
    assert "rat-9" not in repr(reg) and "s3cr3t" not in repr(reg)
    assert "tok" not in repr(Registrar(clients.ServerSpec(ISSUER), initial_access_token="tok"))


def test_a_concurrent_run_is_refused(tmp_path: Path) -> None:
    state = clients.State(tmp_path / "s.json", ISSUER, {})
    other = clients.State(tmp_path / "s.json", ISSUER, {})
    refused = pytest.raises(clients.StateError, match="another rs-guard clients run")
    with state.lock(), refused, other.lock():
        pass


def test_what_a_server_says_cannot_drive_the_terminal() -> None:
    registrar = Registrar(clients.ServerSpec(ISSUER))
    with pytest.raises(clients.RegistrationRefused) as caught:
        registrar._check_error(
            "x",
            "update",
            400,
            {"error": "bad\x1b[2J", "error_description": "a\x1b]0;b\x07"},
            ok=(200,),
        )
    assert "\x1b" not in str(caught.value) and "\x07" not in str(caught.value)
    with pytest.raises(clients.RegistrationError, match="invalid client_id"):
        registrar._registration("x", {"client_id": "c\x1b[31m"}, f"{ISSUER}/register")
