"""Command line: `python -m rs_guard idp ...` serves the bundled test IdP."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_LOG_LEVELS = ["critical", "error", "warning", "info", "debug", "trace"]


def _load_json(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SystemExit(f"cannot read {what} file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise SystemExit(f"{what} file {path} is not valid JSON: {exc}") from None


def _write_private(path: Path, text: str) -> None:
    """Write a private key file readable by its owner only from its first byte, atomically.

    The temporary file is created 0600 (O_EXCL: never someone else's file) next to the
    target, then renamed over it: a crash or a full disk leaves no partial key behind, and at
    no moment does the key sit in a file the umask made readable by others.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise SystemExit(f"cannot write signing keys file {path}: {exc.strerror}") from None


_USERS_SHAPE = '{"alice": {"email": "alice@example.com"}} or [{"user_id": "alice", ...}]'


def _load_users(idp: Any, path: str) -> list[str]:
    """Users file: {"alice": {claims...}} or [{"user_id": "alice", claims...}, ...].

    Every entry must have that shape: one that does not is an error naming it, never skipped.
    """
    doc = _load_json(path, "users")
    items: list[tuple[str, dict[str, Any]]] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if not isinstance(value, dict):
                raise SystemExit(f"users file {path}: {key!r} must map to an object of claims")
            items.append((key, value))
    elif isinstance(doc, list):
        for n, entry in enumerate(doc):
            user_id = entry.get("user_id", entry.get("id")) if isinstance(entry, dict) else None
            if not isinstance(user_id, str) or not user_id:
                raise SystemExit(
                    f'users file {path}: entry {n} needs a string "user_id" ({_USERS_SHAPE})'
                )
            assert isinstance(entry, dict)
            items.append((user_id, {k: v for k, v in entry.items() if k not in ("user_id", "id")}))
    else:
        raise SystemExit(f"users file {path} must be a JSON object or array: {_USERS_SHAPE}")
    for user_id, claims in items:
        try:
            idp.add_user(user_id, **claims)
        except (TypeError, ValueError) as exc:
            raise SystemExit(f"users file {path}: user {user_id!r}: {exc}") from None
    return [user_id for user_id, _ in items]


def _banner(idp: Any, issuer: str, users: list[str], auto_login: str | None) -> str:
    """What the operator of a freshly started IdP needs: where it is and how to get a token."""
    names = [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "registration_endpoint",
        "introspection_endpoint",
    ]
    metadata = idp.metadata()
    lines = [f"rs_guard test IdP: issuer {issuer}"]
    lines += [f"  {n:<24}{metadata[n]}" for n in names if n in metadata]
    lines.append(f"  users                   {', '.join(users) or '(none: --users FILE)'}")
    if auto_login:
        lines.append(f"  auto-login              {auto_login} (no login form)")
    lines += [
        "  register a client:      curl -s "
        + f"{metadata.get('registration_endpoint', issuer + '/register')} "
        + "-H 'Content-Type: application/json' -d '{\"grant_types\": [\"client_credentials\"]}'",
        "  then a token:           curl -s -u CLIENT_ID:CLIENT_SECRET "
        + f"{metadata.get('token_endpoint', issuer + '/token')} "
        + "-d grant_type=client_credentials -d resource=YOUR_RESOURCE_URL",
    ]
    return "\n".join(lines)


def _initial_access_tokens(args: argparse.Namespace) -> str | list[str] | None:
    """--initial-access-token, plus the tokens (whitespace-separated) of each
    --initial-access-token-env variable: off the command line, which others can read."""
    tokens = [args.initial_access_token] if args.initial_access_token else []
    for var in args.initial_access_token_env or []:
        value = os.environ.get(var, "").split()
        if not value:
            raise SystemExit(f"error: --initial-access-token-env: {var} is not set or empty")
        tokens.extend(value)
    if not tokens:
        return None
    return tokens[0] if len(tokens) == 1 else tokens


def _secrets_dir(args: argparse.Namespace) -> str | None:
    """Where generated secrets of --clients go: as given, else STATE_DIR/client-secrets (the
    IdP's default), else FILE's directory/STEM.secrets (never the terminal)."""
    if args.client_secrets_dir or args.state_dir or not args.clients:
        return str(args.client_secrets_dir) if args.client_secrets_dir else None
    clients = Path(args.clients)
    return str(clients.with_name(f"{clients.stem}.secrets"))


def _cmd_idp(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        print("uvicorn is needed: pip install 'rs_guard[idp]'", file=sys.stderr)
        return 2
    from rs_guard.idp import IdP

    issuer = args.issuer or f"http://{args.host}:{args.port}"
    signing_keys = None
    keys_path = Path(args.signing_keys) if args.signing_keys else None
    if keys_path is not None and keys_path.exists():
        signing_keys = _load_json(str(keys_path), "signing keys")
    from rs_guard.errors import ClientsError, ConfigurationError

    try:
        idp = IdP(
            issuer,
            signing_alg=args.signing_alg,
            signing_keys=signing_keys,
            resource_allowlist=args.resource_allowlist,
            dev=args.dev,
            initial_access_token=_initial_access_tokens(args),
            state_dir=args.state_dir,
            clients_file=args.clients,
            client_secrets_dir=_secrets_dir(args),
            rotate_registration_access_token=args.rotate_registration_access_token,
        )
    except (ValueError, ConfigurationError, ClientsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if keys_path is not None and signing_keys is None:
        # Generated on first run, then reused so tokens survive restarts.
        _write_private(keys_path, json.dumps(idp.private_jwks(), indent=2))
    users = _load_users(idp, args.users) if args.users else []
    if args.auto_login:
        user, _, acr = args.auto_login.partition(":")
        try:
            idp.login_as(user, acr=acr or "pwd")
        except ValueError as exc:
            print(f"error: --auto-login: {exc}", file=sys.stderr)
            return 2
    host = urlsplit(issuer).hostname or ""
    if args.host not in ("127.0.0.1", "::1", "localhost") or host not in args.host:
        print(f"note: serving {issuer} on {args.host}:{args.port}", file=sys.stderr)
    print(_banner(idp, issuer, users, args.auto_login), file=sys.stderr, flush=True)
    uvicorn.run(idp.app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m rs_guard`."""
    parser = argparse.ArgumentParser(prog="rs_guard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    idp = sub.add_parser(
        "idp",
        help="serve the bundled test IdP with uvicorn",
        description="Serve the bundled test IdP with uvicorn (needs the [idp] extra).",
        epilog="example: python -m rs_guard idp --port 9000 --users users.json "
        "--auto-login alice:mf",
    )
    option = idp.add_argument
    option(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s; e.g. --host 0.0.0.0)",
    )
    option(
        "--port",
        type=int,
        default=9000,
        help="port to listen on (default: %(default)s; e.g. --port 9001)",
    )
    option(
        "--issuer",
        metavar="URL",
        help="issuer URL written into tokens and metadata (default: http://HOST:PORT; "
        "e.g. --issuer https://idp.example)",
    )
    option(
        "--signing-keys",
        metavar="FILE",
        help="private JWK Set, created (mode 600) if absent so tokens survive restarts "
        "(default: a new key each run; e.g. --signing-keys keys.json)",
    )
    option(
        "--signing-alg",
        default="ES256",
        choices=["ES256", "RS256", "PS256", "EdDSA"],
        help="signing algorithm (default: %(default)s; e.g. --signing-alg RS256)",
    )
    option(
        "--users",
        metavar="FILE",
        help=f"JSON users file: {_USERS_SHAPE} (default: no users; e.g. --users users.json)",
    )
    option(
        "--auto-login",
        metavar="USER[:ACR]",
        help="sign this user in and skip the login form (default: the form; "
        "e.g. --auto-login alice:mf)",
    )
    option(
        "--resource-allowlist",
        nargs="+",
        metavar="URI",
        help="RFC 8707 resources tokens may be issued for (default: any; "
        "e.g. --resource-allowlist http://127.0.0.1:8000)",
    )
    option(
        "--initial-access-token",
        metavar="TOKEN",
        help="require this token at /register, RFC 7591 §3 (default: open registration; "
        "e.g. --initial-access-token s3cret)",
    )
    option(
        "--initial-access-token-env",
        action="append",
        metavar="VAR",
        help="require one of the tokens in $VAR (whitespace-separated) at /register, keeping "
        "them off the command line (default: none; repeatable; e.g. "
        "--initial-access-token-env IDP_IAT)",
    )
    option(
        "--rotate-registration-access-token",
        action="store_true",
        help="issue a new registration access token on each RFC 7592 update (default: off; "
        "e.g. --rotate-registration-access-token)",
    )
    option(
        "--state-dir",
        metavar="DIR",
        help="keep keys, clients, registrations, users and sessions across restarts "
        "(default: none, everything is forgotten at exit; e.g. --state-dir .idp-state)",
    )
    option(
        "--clients",
        metavar="FILE",
        help="clients file (TOML) registered at start, with fixed client ids "
        "(default: none; e.g. --clients dev-clients.toml)",
    )
    option(
        "--client-secrets-dir",
        metavar="DIR",
        help="where generated secrets of --clients go (default: STATE_DIR/client-secrets, "
        "else FILE's STEM.secrets next to it; e.g. --client-secrets-dir secrets)",
    )
    option(
        "--dev",
        action="store_true",
        help="allow http and loopback/private document URLs, as local MCP clients need "
        "(default: off; e.g. --dev)",
    )
    option(
        "--log-level",
        default="info",
        type=str.lower,
        choices=_LOG_LEVELS,
        help="uvicorn's log level (default: %(default)s; e.g. --log-level warning)",
    )
    idp.set_defaults(func=_cmd_idp)
    from rs_guard.clients._cli import add_parser as add_clients_parser

    add_clients_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m rs_guard` and the `rs-guard` script."""
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
