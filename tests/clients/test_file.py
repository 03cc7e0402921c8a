"""The clients file: every bad input gets a clear error naming the file, the client and the
field, all of them at once, a non-zero exit code and no traceback; nothing reaches a server
(the issuer of these files is a port nobody listens on)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rs_guard import clients
from rs_guard.errors import RSGuardError

from .conftest import CLI

NOBODY = "http://127.0.0.1:9"  # discard port: a network call would fail, not hang

GOOD = """
[clients.web]
client_name = "Web"
"client_name#fr" = "Toile"
redirect_uris = ["https://app.example.com/cb", "http://127.0.0.1:8080/cb"]
grant_types = ["authorization_code", "refresh_token"]
response_types = ["code"]
token_endpoint_auth_method = "private_key_jwt"
scope = "openid profile"
subject_type = "pairwise"
sector_identifier_uri = "https://app.example.com/sector.json"
post_logout_redirect_uris = ["https://app.example.com/bye"]
contacts = ["ops@example.com"]
default_max_age = 3600
require_auth_time = true
id_token_signed_response_alg = "ES256"

[[clients.web.jwks.keys]]
kty = "EC"
crv = "P-256"
x = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"

[clients.web.extensions]
x_team = "payments"

[clients.mobile]
application_type = "native"
redirect_uris = ["com.example.app:/callback", "http://127.0.0.1/cb", "https://app.example.com/native"]
token_endpoint_auth_method = "none"

[clients.worker]
grant_types = ["client_credentials"]
response_types = []
jwks_uri = "https://worker.example.com/jwks.json"
token_endpoint_auth_method = "private_key_jwt"
"""


def write(tmp_path: Path, text: str, name: str = "clients.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def server(issuer: str = NOBODY) -> str:
    return f'[server]\nissuer = "{issuer}"\n'


def problems(tmp_path: Path, body: str) -> list[str]:
    with pytest.raises(clients.ClientsFileError) as caught:
        clients.load(write(tmp_path, server() + body))
    assert isinstance(caught.value, RSGuardError)
    return list(caught.value.problems)


def test_a_full_file_is_valid(tmp_path: Path, cli: CLI) -> None:
    path = write(tmp_path, server() + GOOD)
    spec = clients.load(path)
    assert sorted(spec.clients) == ["mobile", "web", "worker"]
    assert spec.clients["web"].metadata["x_team"] == "payments"  # extensions are members
    assert spec.clients["web"].metadata["client_name#fr"] == "Toile"
    assert spec.state_path == tmp_path / "clients.state.json"
    run = cli("validate", path)
    assert run.code == 0 and "valid (3 clients)" in run.out


def test_the_message_names_file_client_and_field(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        '[clients.billing]\nredirect_uris = ["https://a.example/cb", "https://a.example/cb#x"]\n',
    )
    assert found == [
        f'{tmp_path / "clients.toml"}: client "billing": redirect_uris[1]: fragment not allowed'
    ]


def test_every_problem_is_reported_at_once(tmp_path: Path, cli: CLI) -> None:
    body = """
[clients.a]
redirect_uris = ["http://example.com/cb"]
token_endpoint_auth_method = "client_secret_magic"

[clients.b]
grant_types = ["client_credentials"]
response_types = []
jwks = { keys = [] }
jwks_uri = "https://b.example/jwks"
"""
    path = write(tmp_path, server() + body)
    run = cli("plan", path)
    assert run.code == 1 and "Traceback" not in run.err
    assert "3 problems in the clients file" in run.err
    assert (
        'client "a": redirect_uris[0]: web clients may use http only on a loopback host' in run.err
    )
    assert 'client "a": token_endpoint_auth_method: unknown method' in run.err
    assert 'client "b": jwks: jwks and jwks_uri are mutually exclusive' in run.err
    assert not (tmp_path / "clients.state.json").exists()


CC = 'grant_types = ["client_credentials"]\nresponse_types = []\n'
CASES = [
    # (client table body, expected "field: message" fragment)
    ('redirect_uris = "https://a.example/cb"', "redirect_uris: must be an array of strings"),
    ('redirect_uris = ["/cb"]', "redirect_uris[0]: must be an absolute URI"),
    ('redirect_uris = ["https://a.example/c b"]', "redirect_uris[0]: must not contain whitespace"),
    ('redirect_uris = ["javascript:alert(1)"]', "redirect_uris[0]: the javascript: scheme"),
    ('redirect_uris = ["com.example.app:/cb"]', "redirect_uris[0]: web clients need https"),
    (
        'application_type = "native"\nredirect_uris = ["myapp:/cb"]',
        "redirect_uris[0]: a native app's private-use scheme must be a reverse domain name",
    ),
    (
        'application_type = "native"\nredirect_uris = ["http://example.com/cb"]',
        "redirect_uris[0]: native clients may use http only on a loopback host",
    ),
    (
        'redirect_uris = ["https://a.example/cb", "https://a.example/cb"]',
        "redirect_uris: duplicate value",
    ),
    (
        'redirect_uris = ["https://user:pw@a.example/cb"]',
        "redirect_uris[0]: must not carry credentials",
    ),
    (
        'grant_types = ["implicit"]\nresponse_types = ["token"]\nredirect_uris = ["http://127.0.0.1/cb"]',
        "redirect_uris[0]: web clients using the implicit grant need https",
    ),
    (
        'application_type = "desktop"\nredirect_uris = ["https://a.example/cb"]',
        "application_type: must be one of web, native",
    ),
    ('grant_types = ["authorization_code"]', "redirect_uris: required by the authorization_code"),
    (
        'grant_types = ["client_credentials"]',
        "grant_types: response type 'code' needs the authorization_code grant",
    ),
    (
        'grant_types = ["client_credentials"]\nresponse_types = ["token"]',
        "grant_types: response types 'token'/'id_token' need the implicit grant",
    ),
    (
        'grant_types = ["authorization_code"]\nresponse_types = []\nredirect_uris = ["https://a.example/cb"]',
        "response_types: the authorization_code grant needs response type 'code'",
    ),
    (
        'grant_types = ["telepathy"]\nresponse_types = []',
        "grant_types[0]: unknown grant type 'telepathy'",
    ),
    (
        'response_types = ["code banana"]\nredirect_uris = ["https://a.example/cb"]',
        "response_types[0]: unknown response type",
    ),
    (
        CC + 'token_endpoint_auth_method = "none"',
        "grant_types: a public client (auth method none) cannot use client_credentials",
    ),
    (
        CC + 'token_endpoint_auth_method = "private_key_jwt"',
        "token_endpoint_auth_method: private_key_jwt needs jwks or jwks_uri",
    ),
    (
        CC + 'jwks = { keys = [{ kty = "EC", d = "secret" }] }',
        "jwks.keys[0].d: private key material must not be registered",
    ),
    (
        CC + 'jwks = { keys = [{ crv = "P-256" }] }',
        'jwks.keys[0]: must be a JWK with a "kty" member',
    ),
    (
        CC + 'jwks = "none"',
        "jwks: must be a JWK Set",
    ),
    (
        CC + 'jwks_uri = "http://keys.example/jwks"',
        "jwks_uri: must use https",
    ),
    (
        CC + 'scope = "a  b"',
        "scope: must be scope tokens separated by single spaces",
    ),
    (
        CC + 'scope = ["a", "b"]',
        "scope: must be a non-empty string",
    ),
    (
        CC + 'subject_type = "secret"',
        "subject_type: must be one of public, pairwise",
    ),
    (
        'subject_type = "pairwise"\nredirect_uris = ["https://a.example/cb", "https://b.example/cb"]',
        "sector_identifier_uri: required for a pairwise client",
    ),
    (
        CC + 'sector_identifier_uri = "ftp://a.example/s"',
        "sector_identifier_uri: must be an absolute https URL",
    ),
    (
        CC + 'post_logout_redirect_uris = ["https://a.example/#bye"]',
        "post_logout_redirect_uris[0]: fragment not allowed",
    ),
    (
        CC + "contacts = [1]",
        "contacts[0]: must be a non-empty string",
    ),
    (
        CC + 'client_name = ""',
        "client_name: must be a non-empty string",
    ),
    (
        CC + "default_max_age = -1",
        "default_max_age: must be a non-negative integer",
    ),
    (
        CC + 'require_auth_time = "yes"',
        "require_auth_time: must be true or false",
    ),
    (
        CC + 'token_endpoint_auth_signing_alg = "none"',
        "token_endpoint_auth_signing_alg: 'none' is not allowed",
    ),
    (
        CC + 'id_token_encrypted_response_enc = "A128GCM"',
        "id_token_encrypted_response_enc: needs id_token_encrypted_response_alg",
    ),
    (
        CC + 'logo_uri = "https://a.example/logo.png#x"',
        "logo_uri: fragment not allowed",
    ),
    (
        CC + '"tos_uri#not a tag" = "https://a.example/tos"',
        "tos_uri#not a tag: the language tag after '#' is not a BCP 47 tag",
    ),
    (
        CC + '"scope#fr" = "a"',
        "scope#fr: only client_name, client_uri, logo_uri, policy_uri, tos_uri take a language tag",
    ),
    (
        CC + 'redirect_uri = "https://a.example/cb"',
        "redirect_uri: unknown member (an extension member goes in [clients.x.extensions])",
    ),
    (
        CC + 'client_id = "fixed"',
        "client_id: issued by the server, not declared",
    ),
    (
        CC + 'client_secret = "s3cr3t"',
        "client_secret: issued by the server, not declared",
    ),
    (
        CC + 'extensions = { scope = "a" }',
        "extensions.scope: a registered member, not an extension",
    ),
    (
        CC + "extensions = { born = 1979-05-27 }",
        "extensions.born: a TOML date has no JSON form",
    ),
    (
        CC + "extensions = { ratio = inf }",
        "extensions.ratio: must be a finite number",
    ),
    (
        CC + 'extensions = "x"',
        "extensions: must be a table",
    ),
]


@pytest.mark.parametrize(("body", "expected"), CASES, ids=[c[1][:40] for c in CASES])
def test_bad_metadata(tmp_path: Path, body: str, expected: str) -> None:
    found = problems(tmp_path, f"[clients.x]\n{body}\n")
    assert any(f'client "x": {expected}' in p for p in found), found
    assert all(p.startswith(f'{tmp_path / "clients.toml"}: client "x": ') for p in found)


FILE_CASES = [
    ("", "server: a [server] table with the issuer is required"),
    ("[server]\n", "server.issuer: required"),
    ('[server]\nissuer = "http://idp.example.com"\n', "server.issuer: must use https"),
    ('[server]\nissuer = "https://idp.example.com?x=1"\n', "server.issuer: must not have a query"),
    ('[server]\nissuer = "https://idp.example.com/#f"\n', "server.issuer: fragment not allowed"),
    (
        server() + 'initial_access_token = "abc"\n',
        "server.initial_access_token: never put the token in the file",
    ),
    (
        server() + 'initial_access_token_env = "not a name"\n',
        "server.initial_access_token_env: must be an environment variable name",
    ),
    (
        server() + 'registration_endpoint = "ftp://x"\n',
        "server.registration_endpoint: must be an absolute https URL",
    ),
    (server() + "colour = 1\n", "server.colour: unknown key"),
    (server() + "[other]\n", "other: unknown key"),
    ("state = 3\n" + server(), "state: must be a path"),
    ('clients = "web"\n' + server(), "clients: must be a table of [clients.NAME] tables"),
    (
        server() + '[clients."../etc"]\nclient_name = "x"\n',
        'client "../etc": the local name must be',
    ),
    (server() + "[clients]\nweb = 1\n", 'client "web": must be a table of client metadata'),
    ("[server\n", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "expected"), FILE_CASES, ids=[c[1][:40] for c in FILE_CASES])
def test_bad_file(tmp_path: Path, cli: CLI, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    for command in ("validate", "plan", "apply", "destroy"):
        run = cli(command, path)
        assert run.code == 1, (command, run)
        assert run.err.startswith("error: ") and expected in run.err, run.err
        assert "Traceback" not in run.err and run.out == ""


def test_unreadable_or_not_text(tmp_path: Path, cli: CLI) -> None:
    run = cli("plan", tmp_path / "missing.toml")
    assert run.code == 1 and "missing.toml: cannot read: No such file or directory" in run.err
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe[server]")
    run = cli("validate", path)
    assert run.code == 1 and "not UTF-8 text" in run.err


def test_usage_errors_exit_2(tmp_path: Path, cli: CLI) -> None:
    assert cli().code == 2
    assert cli("plan").code == 2
    path = write(tmp_path, server())
    assert cli("apply", path, "--secrets-dir", "a", "--secrets-command", "b").code == 2
    assert cli("import", path, "web").code == 2


def test_an_empty_file_is_valid(tmp_path: Path) -> None:
    assert clients.load(write(tmp_path, server())).clients == {}


def test_state_path_from_the_file(tmp_path: Path) -> None:
    spec = clients.load(write(tmp_path, 'state = "states/prod.json"\n' + server()))
    assert spec.state_path == tmp_path / "states" / "prod.json"
