"""Where issued client secrets go: only where the user says (a directory or a command).

A secret is never printed, logged, put in a plan, the state, a repr or an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ._state import write_private
from .errors import SecretDeliveryError, StateError


@dataclass(frozen=True)
class IssuedSecret:
    """A client secret the server issued for the client `name`; `reveal()` gives the value."""

    name: str
    client_id: str
    _value: str = field(repr=False)
    expires_at: int | None = None

    def reveal(self) -> str:
        return self._value

    @property
    def sha256(self) -> str:
        return secret_hash(self._value)

    def __str__(self) -> str:
        return f"<client secret of {self.name}>"


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class SecretSink(Protocol):
    """Receives each newly issued client secret (and may define `async discard(name)`, called
    when the client is deleted)."""

    async def deliver(self, secret: IssuedSecret) -> None: ...


class SecretsDir:
    """One file per client, `DIR/NAME.json` (0600, written atomically), holding
    `{"client_id", "client_secret", "client_secret_expires_at"}`; DIR is made 0700."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"SecretsDir({str(self.path)!r})"

    def file_for(self, name: str) -> Path:
        return self.path / f"{name}.json"

    async def discard(self, name: str) -> None:
        """The client was deleted: its secret file goes too (a stale secret helps no one)."""
        with contextlib.suppress(FileNotFoundError):
            self.file_for(name).unlink()

    async def deliver(self, secret: IssuedSecret) -> None:
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise SecretDeliveryError(
                f'client "{secret.name}": cannot create the secrets directory {self.path}: '
                f"{exc.strerror or exc}"
            ) from None
        doc = {
            "client_id": secret.client_id,
            "client_secret": secret.reveal(),
            "client_secret_expires_at": secret.expires_at,
        }
        try:
            write_private(self.file_for(secret.name), json.dumps(doc, indent=2).encode() + b"\n")
        except StateError as exc:
            raise SecretDeliveryError(f'client "{secret.name}": {exc}') from None


class SecretsCommand:
    """Runs a command per issued secret (no shell): the secret on its stdin, and
    RS_GUARD_CLIENT_NAME / RS_GUARD_CLIENT_ID / RS_GUARD_CLIENT_SECRET_EXPIRES_AT in its
    environment; e.g. `vault kv put secret/oauth/$NAME client_secret=-` behind a script.
    Its stdout is discarded; its stderr is shown only with any copy of the secret removed."""

    def __init__(self, command: str | Sequence[str], *, timeout: float = 60.0) -> None:
        self.argv = shlex.split(command) if isinstance(command, str) else list(command)
        if not self.argv:
            raise SecretDeliveryError("the secrets command is empty")
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"SecretsCommand({self.argv[0]!r})"

    async def deliver(self, secret: IssuedSecret) -> None:
        env = {
            **os.environ,
            "RS_GUARD_CLIENT_NAME": secret.name,
            "RS_GUARD_CLIENT_ID": secret.client_id,
            "RS_GUARD_CLIENT_SECRET_EXPIRES_AT": str(secret.expires_at or 0),
        }
        where = f'client "{secret.name}": the secrets command {self.argv[0]!r}'
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
        except OSError as exc:
            raise SecretDeliveryError(f"{where} cannot run: {exc.strerror or exc}") from None
        try:
            _, err = await asyncio.wait_for(
                proc.communicate(secret.reveal().encode("utf-8")), self.timeout
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise SecretDeliveryError(f"{where} took over {self.timeout:g}s") from None
        if proc.returncode != 0:
            text = err.decode("utf-8", "replace").replace(secret.reveal(), "[secret]").strip()
            tail = f": {text[-500:]}" if text else ""
            raise SecretDeliveryError(f"{where} exited with status {proc.returncode}{tail}")
