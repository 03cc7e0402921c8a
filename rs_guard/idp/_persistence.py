"""The IdP's state directory: each service's snapshot in its own file, so a development IdP
survives restarts (`IdP(..., state_dir=...)`, `python -m rs_guard idp --state-dir DIR`).

Layout (every file `{"format": "rs_guard.idp.state/1", "issuer": ..., "kind": ..., "data": ...}`):

    DIR/                0700, refused when group or others may read it
      idp.json          the issuer the directory belongs to (a foreign issuer is refused)
      keys.json         KeyStore: private signing keys (the reason for 0600 from the first byte)
      subjects.json     SubjectMapper: the pairwise secret (pairwise `sub` values stay stable)
      clients.json      ClientRegistry: clients, their secrets, registration token hashes
      tokens.json       TokenStore: unexpired access/refresh records (by hash) and their grants
      users.json        UserDirectory: users and their claims
      sessions.json     Sessions: the signed-in session, login script, consents
      dpop.json         DPoPAtIdP: DPoP key bindings of public clients' refresh tokens (by hash)
      clients-file.json the clients file loader: which client ids the file put there
      lock              held (flock) while an IdP uses the directory

Durability: `save()` writes each file whose snapshot changed, atomically (a temporary file
created 0600, fsync, rename, fsync of the directory). The IdP calls it before it sends the
first byte of every HTTP response, so an answer (a registration, a token) is only seen once
what it created is on disk; changes made from Python are saved by `IdP.save_state()`, the
next request, or at shutdown.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from ..clients._state import write_private as _write_private
from ..errors import IdPStateError, StateError

FORMAT = "rs_guard.idp.state/1"
MANIFEST = "idp"


class Snapshotting(Protocol):
    """A service that owns a piece of the state."""

    def snapshot(self) -> Mapping[str, Any]: ...

    def restore(self, doc: dict[str, Any]) -> None: ...


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically, 0600 from its first byte (the one implementation,
    shared with the clients-as-code state file)."""
    try:
        _write_private(path, data)
    except StateError as exc:
        raise IdPStateError(str(exc)) from None


def _check_private(path: Path, what: str) -> None:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        raise IdPStateError(f"{path}: {what} must not be a symbolic link")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise IdPStateError(f"{path}: {what} belongs to another user")
    if info.st_mode & 0o077:
        mode = oct(stat.S_IMODE(info.st_mode))
        fix = "chmod 700" if stat.S_ISDIR(info.st_mode) else "chmod 600"
        raise IdPStateError(
            f"{path}: {what} is accessible to group or others (mode {mode}); it holds "
            f"private keys and secrets: `{fix} {path}`"
        )


class StateDir:
    """Loads every owner's snapshot at start and saves what changed (see the module doc)."""

    def __init__(self, path: str | os.PathLike[str], issuer: str) -> None:
        self.path = Path(path)
        self.issuer = issuer
        self._owners: dict[str, Snapshotting] = {}
        self._written: dict[str, bytes] = {}
        self._lock_fd: int | None = None

    def add(self, kind: str, owner: Snapshotting) -> None:
        """Register the owner of `kind` (restored and saved in the order added)."""
        self._owners[kind] = owner

    # ----- start ----------------------------------------------------------------------------

    def open(self) -> bool:
        """Create or check the directory, lock it, and restore every owner's snapshot.

        Returns False for a new directory (nothing restored). IdPStateError for a directory
        that is unsafe, in use, corrupt, or of another issuer: nothing is overwritten then.
        """
        if not self.path.exists():
            self.path.mkdir(mode=0o700, parents=True)
        elif not self.path.is_dir():
            raise IdPStateError(f"{self.path}: the IdP state directory is not a directory")
        _check_private(self.path, "the IdP state directory")
        self._lock()
        try:
            manifest = self.path / f"{MANIFEST}.json"
            if not manifest.exists():
                stray = [p.name for p in self.path.glob("*.json")]
                if stray:
                    raise IdPStateError(
                        f"{self.path}: has state files ({', '.join(sorted(stray))}) but no "
                        f"{MANIFEST}.json: not an IdP state directory, or a damaged one"
                    )
                self.save()
                return False
            self._read(MANIFEST)
            docs = {kind: self._read(kind) for kind in self._owners}
            for kind, doc in docs.items():
                if doc is None:
                    continue
                try:
                    self._owners[kind].restore(doc)
                except ValueError as exc:
                    raise IdPStateError(f"{self.path / (kind + '.json')}: corrupt: {exc}") from None
            return True
        except BaseException:
            self.close()
            raise

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no second-process protection
            return
        fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise IdPStateError(
                f"{self.path}: in use by another IdP (one directory serves one IdP at a time)"
            ) from None
        self._lock_fd = fd

    def close(self) -> None:
        """Release the directory (another IdP may then open it)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _read(self, kind: str) -> dict[str, Any] | None:
        path = self.path / f"{kind}.json"
        if not path.exists():
            return None
        _check_private(path, "an IdP state file")
        raw = path.read_bytes()
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise IdPStateError(f"{path}: corrupt: not JSON ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            found = doc.get("format") if isinstance(doc, dict) else None
            raise IdPStateError(
                f"{path}: not an IdP state file of format {FORMAT} (found {found!r})"
            )
        if doc.get("issuer") != self.issuer:
            raise IdPStateError(
                f"{path}: belongs to the IdP {doc.get('issuer')!r}, not {self.issuer!r}; "
                "use another --state-dir (keys and clients are per issuer)"
            )
        if doc.get("kind") != kind or not isinstance(doc.get("data"), dict):
            raise IdPStateError(f"{path}: corrupt: expected a {kind!r} snapshot")
        self._written[kind] = raw
        data: dict[str, Any] = doc["data"]
        return data

    # ----- saving ---------------------------------------------------------------------------

    def save(self) -> None:
        """Write every file whose snapshot changed since the last write."""
        self._write(MANIFEST, {"created_by": "rs_guard"})
        for kind, owner in self._owners.items():
            self._write(kind, self._snapshot(owner))

    @staticmethod
    def _snapshot(owner: Snapshotting) -> Mapping[str, Any]:
        # A test may change the IdP from Python while a served request saves on the server's
        # thread: a dict changing size under iteration is retried, not a failed answer.
        for _ in range(4):
            try:
                return owner.snapshot()
            except RuntimeError:
                continue
        return owner.snapshot()

    def _write(self, kind: str, data: Mapping[str, Any]) -> None:
        doc = {"format": FORMAT, "issuer": self.issuer, "kind": kind, "data": data}
        raw = json.dumps(doc, indent=1, sort_keys=True).encode("utf-8") + b"\n"
        if self._written.get(kind) == raw:
            return
        write_private(self.path / f"{kind}.json", raw)
        self._written[kind] = raw


class SaveOnResponse:
    """ASGI wrapper: `save()` before each response starts, and at lifespan shutdown."""

    def __init__(self, app: Any, save: Callable[[], None]) -> None:
        self.app = app
        self.save = save

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "lifespan"):
            await self.app(scope, receive, send)
            return

        async def saving_send(message: Any) -> None:
            if message["type"] in ("http.response.start", "lifespan.shutdown.complete"):
                self.save()
            await send(message)

        await self.app(scope, receive, saving_send)


def open_state(services: Any, loader: Any, path: str | os.PathLike[str], issuer: str) -> StateDir:
    """The state directory of an IdP's services, opened (restored when it existed)."""
    state = StateDir(path, issuer)
    # Keys first: token records are checked against them; clients before tokens and sessions.
    state.add("keys", services.keys)
    state.add("subjects", services.subjects)
    state.add("users", services.users)
    state.add("clients", services.clients)
    state.add("clients-file", loader)
    state.add("tokens", services.tokens)
    state.add("sessions", services.sessions)
    state.add("dpop", services.dpop)
    state.open()
    return state
