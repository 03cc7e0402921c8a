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


def _load_users(idp: Any, path: str) -> None:
    """Users file: {"alice": {claims...}} or [{"user_id": "alice", claims...}, ...]."""
    doc = _load_json(path, "users")
    items: list[tuple[str, dict[str, Any]]] = []
    if isinstance(doc, dict):
        items = [(k, v) for k, v in doc.items() if isinstance(v, dict)]
    elif isinstance(doc, list):
        for entry in doc:
            if isinstance(entry, dict) and isinstance(entry.get("user_id") or entry.get("id"), str):
                claims = {k: v for k, v in entry.items() if k not in ("user_id", "id")}
                items.append((entry.get("user_id") or entry["id"], claims))
    else:
        raise SystemExit(f"users file {path} must be a JSON object or array")
    for user_id, claims in items:
        idp.add_user(user_id, **claims)


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
    try:
        idp = IdP(
            issuer,
            signing_alg=args.signing_alg,
            signing_keys=signing_keys,
            resource_allowlist=args.resource_allowlist,
            dev=args.dev,
            initial_access_token=args.initial_access_token,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if keys_path is not None and signing_keys is None:
        # Generated on first run, then reused so tokens survive restarts.
        _write_private(keys_path, json.dumps(idp.private_jwks(), indent=2))
    if args.users:
        _load_users(idp, args.users)
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
    uvicorn.run(idp.app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m rs_guard`."""
    parser = argparse.ArgumentParser(prog="rs_guard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    idp = sub.add_parser("idp", help="serve the bundled test IdP with uvicorn")
    idp.add_argument("--host", default="127.0.0.1")
    idp.add_argument("--port", type=int, default=9000)
    idp.add_argument("--issuer", help="issuer URL (default http://HOST:PORT)")
    idp.add_argument("--signing-keys", metavar="FILE", help="private JWK Set; created if absent")
    idp.add_argument("--signing-alg", default="ES256", choices=["ES256", "RS256", "PS256", "EdDSA"])
    idp.add_argument("--users", metavar="FILE", help="JSON users file")
    idp.add_argument("--auto-login", metavar="USER[:ACR]", help="skip the login form")
    idp.add_argument("--resource-allowlist", nargs="+", metavar="URI")
    idp.add_argument("--initial-access-token", help="require this token at /register")
    idp.add_argument("--dev", action="store_true", help="allow http/loopback document URLs")
    idp.add_argument("--log-level", default="info")
    idp.set_defaults(func=_cmd_idp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m rs_guard` and the `rs-guard` script."""
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
