"""The state file: what the last apply did, per local client name.

It holds registration access tokens, so it is created 0600 from its first byte (never chmod-ed
after the fact), replaced atomically (a temporary file in the same directory, fsync, then
`os.replace`), and never printed: records mask their token in `repr`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ._model import ClientsFile
from .errors import StateError

FORMAT = "rs_guard.clients.state/1"
MAX_STATE_BYTES = 16 * 1024 * 1024


def canonical_hash(value: Any) -> str:
    """SHA-256 of a value's canonical JSON (sorted keys, no spaces)."""
    data = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ClientRecord:
    """One registered client as the state knows it.

    `applied` is the metadata the last apply sent (the fields the file declared then);
    `answered` is what the server answered for those fields, to tell its own normalisation
    (kept quietly) from a later change behind the tool's back (drift).
    """

    client_id: str
    registration_client_uri: str | None
    registration_access_token: str | None = field(repr=False)
    applied: Mapping[str, Any] = field(default_factory=dict)
    answered: Mapping[str, Any] = field(default_factory=dict)
    # SHA-256 of the last client secret delivered, to deliver only a new one.
    secret_sha256: str | None = field(default=None, repr=False)

    @property
    def applied_sha256(self) -> str:
        return canonical_hash(dict(self.applied))

    @property
    def manageable(self) -> bool:
        """True when RFC 7592 management is possible (the server gave a URI and a token)."""
        return bool(self.registration_client_uri and self.registration_access_token)

    def with_changes(self, **changes: Any) -> ClientRecord:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "registration_client_uri": self.registration_client_uri,
            "registration_access_token": self.registration_access_token,
            "applied": dict(self.applied),
            "applied_sha256": self.applied_sha256,
            "answered": dict(self.answered),
            "secret_sha256": self.secret_sha256,
        }

    @classmethod
    def from_json(cls, name: str, doc: Any, where: str) -> ClientRecord:
        def text(key: str, optional: bool = True) -> str | None:
            value = doc.get(key)
            if value is None and optional:
                return None
            if not isinstance(value, str) or not value:
                raise StateError(f'{where}: client "{name}": {key} must be a string')
            return value

        if not isinstance(doc, dict):
            raise StateError(f'{where}: client "{name}" is not an object')
        applied, answered = doc.get("applied", {}), doc.get("answered", {})
        if not isinstance(applied, dict) or not isinstance(answered, dict):
            raise StateError(f'{where}: client "{name}": applied/answered must be objects')
        record = cls(
            client_id=text("client_id", optional=False) or "",
            registration_client_uri=text("registration_client_uri"),
            registration_access_token=text("registration_access_token"),
            applied=applied,
            answered=answered,
            secret_sha256=text("secret_sha256"),
        )
        stored = doc.get("applied_sha256")
        if stored is not None and stored != record.applied_sha256:
            raise StateError(
                f'{where}: client "{name}": the applied metadata does not match its hash '
                "(edited by hand?); restore the file or re-import the client"
            )
        return record


class State:
    """The state of one clients file: client records by local name, saved after every step."""

    def __init__(self, path: Path, issuer: str | None, records: dict[str, ClientRecord]) -> None:
        self.path = path
        self.issuer = issuer
        self._records = records

    def __repr__(self) -> str:
        return f"State(path={str(self.path)!r}, clients={sorted(self._records)!r})"

    @classmethod
    def of(cls, file: ClientsFile, path: str | Path | None = None) -> State:
        """The state of a clients file: at `path`, or where the file says (`state_path`)."""
        return cls.load(file.state_path if path is None else path, file.server.issuer)

    @classmethod
    def load(cls, path: str | Path, issuer: str) -> State:
        """Read the state at `path` (empty when absent); refuses a state of another issuer."""
        path = Path(path)
        where = str(path)
        try:
            with path.open("rb") as handle:
                info = os.fstat(handle.fileno())
                raw = handle.read(MAX_STATE_BYTES + 1)
        except FileNotFoundError:
            return cls(path, issuer, {})
        except OSError as exc:
            raise StateError(f"{where}: cannot read: {exc.strerror or exc}") from None
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise StateError(
                f"{where}: readable by others (mode {stat.S_IMODE(info.st_mode):o}); it holds "
                f"registration access tokens: chmod 600 {where}"
            )
        if len(raw) > MAX_STATE_BYTES:
            raise StateError(f"{where}: larger than {MAX_STATE_BYTES} bytes")
        try:
            doc = json.loads(raw)
        except ValueError:
            raise StateError(f"{where}: not valid JSON") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise StateError(f"{where}: not a state file of rs-guard clients ({FORMAT})")
        if doc.get("issuer") != issuer:
            raise StateError(
                f"{where}: belongs to the issuer {doc.get('issuer')!r}, not {issuer!r}; "
                "use a state file per authorization server"
            )
        clients = doc.get("clients")
        if not isinstance(clients, dict):
            raise StateError(f"{where}: clients must be an object")
        records = {
            str(name): ClientRecord.from_json(str(name), body, where)
            for name, body in clients.items()
        }
        return cls(path, issuer, records)

    # ----- records -------------------------------------------------------------------------

    def __contains__(self, name: object) -> bool:
        return name in self._records

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._records))

    def __len__(self) -> int:
        return len(self._records)

    def get(self, name: str) -> ClientRecord | None:
        return self._records.get(name)

    def put(self, name: str, record: ClientRecord) -> None:
        """Record `name` and save at once: the file always matches what was done."""
        self._records[name] = record
        self.save()

    def remove(self, name: str) -> None:
        if self._records.pop(name, None) is not None:
            self.save()

    # ----- the file ------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive lock (a `STATE.lock` file beside it) against a concurrent run."""
        lock_path = self.path.with_name(f"{self.path.name}.lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateError(f"{lock_path}: cannot open: {exc.strerror or exc}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise StateError(
                    f"{self.path}: another rs-guard clients run holds {lock_path}"
                ) from None
            yield
        finally:
            os.close(fd)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "issuer": self.issuer,
            "clients": {name: self._records[name].to_json() for name in sorted(self._records)},
        }

    def save(self) -> None:
        """Write the state atomically, 0600 from the first byte."""
        data = json.dumps(self.to_json(), indent=2, sort_keys=True).encode("utf-8") + b"\n"
        write_private(self.path, data)


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically; the file is never readable by others."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        # mkstemp creates the file O_EXCL with mode 0600, whatever the umask.
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise StateError(f"{path}: cannot write in {directory}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise StateError(f"{path}: cannot write: {exc.strerror or exc}") from None
    with contextlib.suppress(OSError):
        # The rename is durable only once the directory entry is.
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
