"""Clients fixed at IdP start, for local development (`IdP(clients_file=...)`, `--clients`).

The file is a clients-as-code file (`rs_guard.clients`: same TOML, same validation, errors
naming the file, the client and the field) with members only an IdP can honour:

* `client_id`: the fixed id (default: the client's local name), e.g. `swagger-ui`;
* `client_secret_env`: the environment variable holding its secret. Without it, a client that
  needs a secret gets a generated one, kept across restarts by the state directory and
  written to `SECRETS_DIR/NAME.json` (0600); it is never printed;
* `served_resources`, `introspects_any`: what introspection answers the client about
  (RFC 7662 §4, see `Client`), the operator's to say and never the client's own metadata;
  `served_resources` also names the tokens the client may exchange, `exchange_audiences`
  what for (RFC 8693, see `_exchange_policy`).

`[server]` may be omitted; when present its issuer must be the IdP's. These clients are not
RFC 7592-managed (they have no registration access token): change them in the file.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..clients import ClientsFileError, parse
from ..clients._model import SECRET_METHODS
from ._client_metadata import (
    RegistrationError,
    build_client,
    operator_exchange,
    operator_introspection,
    validate_metadata,
)
from ._persistence import write_private
from ._util import random_token

if TYPE_CHECKING:
    from ._clients import ClientRegistry

IDP_MEMBERS = (
    "client_id",
    "client_secret_env",
    "served_resources",
    "introspects_any",
    "exchange_audiences",
)
KIND = "clients-file"


class ClientsFileLoader:
    """Registers a file's clients; owns which client ids came from it (to drop the ones a
    later version of the file no longer declares)."""

    def __init__(self, registry: ClientRegistry, issuer: str) -> None:
        self._registry = registry
        self._issuer = issuer
        self.from_file: dict[str, str] = {}  # local name -> client_id

    def snapshot(self) -> dict[str, Any]:
        return {"clients": dict(self.from_file)}

    def restore(self, doc: dict[str, Any]) -> None:
        clients = doc.get("clients") or {}
        if not isinstance(clients, dict):
            raise ValueError("clients-file: 'clients' must be an object")
        self.from_file = {str(k): str(v) for k, v in clients.items()}

    def load(
        self,
        path: str | os.PathLike[str],
        *,
        now: int,
        secrets_dir: str | os.PathLike[str] | None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Register every client of the file (ClientsFileError lists every problem)."""
        env = os.environ if env is None else env
        path = Path(path)
        shown = str(path)
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ClientsFileError([f"{shown}: cannot read: {exc.strerror or exc}"]) from None
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ClientsFileError([f"{shown}: not valid TOML: {exc}"]) from None
        server = doc.setdefault("server", {"issuer": self._issuer})
        problems: list[str] = []
        if isinstance(server, dict) and str(server.get("issuer", "")).rstrip("/") != self._issuer:
            problems.append(f"{shown}: server.issuer: must be this IdP's issuer {self._issuer}")
        fixed: dict[str, dict[str, Any]] = {}
        for name, body in (doc.get("clients") or {}).items():
            if isinstance(body, dict):
                fixed[name] = {k: body.pop(k) for k in IDP_MEMBERS if k in body}
        try:
            spec = parse(doc, path)  # the clients-as-code rules, every problem at once
        except ClientsFileError as exc:
            raise ClientsFileError([*problems, *exc.problems]) from None
        wanted: dict[str, Any] = {}
        seen: dict[str, str] = {}
        for name, client in spec.clients.items():
            where = f'{shown}: client "{name}"'
            client_id = fixed[name].get("client_id", name)
            if not isinstance(client_id, str) or not client_id:
                problems.append(f"{where}: client_id: must be a non-empty string")
                continue
            if client_id in seen:
                problems.append(f"{where}: client_id: {client_id!r} is also {seen[client_id]!r}")
            seen[client_id] = name
            current = self._registry.registered(client_id)
            if current is not None and current.registration_access_token_hash is not None:
                problems.append(
                    f"{where}: client_id: {client_id!r} was registered by RFC 7591 here; "
                    "delete it there first"
                )
            try:
                meta = validate_metadata(client.body(), dev=True, strict_redirects=False)
                introspection = operator_introspection(fixed[name])
                exchange = operator_exchange(fixed[name])
            except RegistrationError as exc:
                problems.append(f"{where}: {exc.description}")
                continue
            secret = self._secret(name, client_id, meta, fixed[name], env, where, problems)
            wanted[name] = (client_id, secret, meta, introspection, exchange)
        if problems:
            raise ClientsFileError(problems)
        for name, old_id in self.from_file.items():
            if name not in wanted or wanted[name][0] != old_id:
                self._registry.delete(old_id)
        for name, (client_id, secret, meta, introspection, exchange) in wanted.items():
            previous = self._registry.registered(client_id)
            issued = previous.client_id_issued_at if previous is not None else now
            built = build_client(client_id, secret, meta, issued_at=issued)
            built.served_resources, built.introspects_any = introspection
            built.exchange_audiences = exchange
            self._registry.add(built)
            if secret is not None and "client_secret_env" not in fixed[name]:
                self._deliver(name, client_id, secret, secrets_dir)
        self.from_file = {name: w[0] for name, w in wanted.items()}

    def _secret(
        self,
        name: str,
        client_id: str,
        meta: dict[str, Any],
        fixed: dict[str, Any],
        env: Mapping[str, str],
        where: str,
        problems: list[str],
    ) -> str | None:
        if meta["token_endpoint_auth_method"] not in SECRET_METHODS:
            if "client_secret_env" in fixed:
                problems.append(f"{where}: client_secret_env: this client has no secret")
            return None
        var = fixed.get("client_secret_env")
        if var is not None:
            value = env.get(var) if isinstance(var, str) else None
            if not value or len(value) < 16:
                problems.append(
                    f"{where}: client_secret_env: the environment variable {var!r} must hold "
                    "the secret (at least 16 characters)"
                )
            return value
        previous = self._registry.registered(client_id)
        if previous is not None and previous.client_secret and self.from_file.get(name):
            return previous.client_secret  # kept by the state directory: stable across restarts
        return random_token(32)

    def _deliver(
        self, name: str, client_id: str, secret: str, secrets_dir: str | os.PathLike[str] | None
    ) -> None:
        if secrets_dir is None:
            return  # Python API without a directory: the secret is in idp.clients[id]
        directory = Path(secrets_dir)
        target = directory / f"{name}.json"
        doc = {"client_id": client_id, "client_secret": secret, "client_secret_expires_at": 0}
        raw = json.dumps(doc, indent=2).encode() + b"\n"
        if target.exists() and target.read_bytes() == raw:
            return
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(target, raw)
