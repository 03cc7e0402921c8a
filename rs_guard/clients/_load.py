"""Reading a clients file (TOML, with the standard library's tomllib) into a `ClientsFile`."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ._model import ClientsFile, ClientSpec, ServerSpec
from ._validate import KNOWN_MEMBERS, SERVER_ISSUED, MetadataRules, check_web_url
from .errors import ClientsFileError

# A local name is also a file name (--secrets-dir) and a command argument: keep it plain.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TOP_LEVEL = frozenset({"server", "clients", "state"})
SERVER_KEYS = frozenset({"issuer", "registration_endpoint", "initial_access_token_env"})
MAX_FILE_BYTES = 1024 * 1024


def load(path: str | Path) -> ClientsFile:
    """Read and validate a clients file; `ClientsFileError` lists every problem found."""
    path = Path(path)
    shown = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ClientsFileError([f"{shown}: cannot read: {exc.strerror or exc}"]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ClientsFileError([f"{shown}: larger than {MAX_FILE_BYTES} bytes"])
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ClientsFileError([f"{shown}: not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ClientsFileError([f"{shown}: not valid TOML: {exc}"]) from None
    return parse(doc, path)


def parse(doc: dict[str, Any], path: Path) -> ClientsFile:
    """Validate an already-parsed document (as `load` does after reading TOML)."""
    reader = _Reader(str(path))
    for key in doc:
        if key not in TOP_LEVEL:
            reader.top(key, f"unknown key (expected {', '.join(sorted(TOP_LEVEL))})")
    server = reader.server(doc.get("server"))
    clients = reader.clients(doc.get("clients"))
    state_path = None
    state = doc.get("state")
    if state is not None:
        if not isinstance(state, str) or not state:
            reader.top("state", "must be a path (a string)")
        else:
            state_path = path.parent / state
    if reader.problems:
        raise ClientsFileError(reader.problems)
    assert server is not None
    return ClientsFile(path=path, server=server, clients=clients, state=state_path)


class _Reader:
    def __init__(self, shown: str) -> None:
        self.shown = shown
        self.problems: list[str] = []

    def top(self, key: str, message: str) -> None:
        self.problems.append(f"{self.shown}: {key}: {message}")

    def server(self, table: Any) -> ServerSpec | None:
        if not isinstance(table, dict):
            self.top("server", "a [server] table with the issuer is required")
            return None
        for key in table:
            if key == "initial_access_token":
                self.top(
                    "server.initial_access_token",
                    "never put the token in the file: name the environment variable that "
                    "holds it with initial_access_token_env",
                )
            elif key not in SERVER_KEYS:
                self.top(f"server.{key}", f"unknown key (one of {', '.join(sorted(SERVER_KEYS))})")
        issuer = table.get("issuer")
        if not isinstance(issuer, str):
            self.top("server.issuer", "required: the issuer URL of the authorization server")
        else:
            why = check_web_url(issuer)
            if why is None and urlsplit(issuer).query:
                why = "must not have a query"
            if why is not None:
                self.top("server.issuer", why)
        endpoint = table.get("registration_endpoint")
        if endpoint is not None:
            why = check_web_url(endpoint) if isinstance(endpoint, str) else "must be a URL"
            if why is not None:
                self.top("server.registration_endpoint", why)
        env = table.get("initial_access_token_env")
        if env is not None and not (isinstance(env, str) and ENV_NAME.fullmatch(env)):
            self.top("server.initial_access_token_env", "must be an environment variable name")
        if not isinstance(issuer, str):
            return None
        return ServerSpec(
            issuer=issuer.rstrip("/"),
            registration_endpoint=endpoint if isinstance(endpoint, str) else None,
            initial_access_token_env=env if isinstance(env, str) else None,
        )

    def clients(self, table: Any) -> dict[str, ClientSpec]:
        if table is None:
            return {}  # an empty file is valid: applying it deletes every client in the state
        if not isinstance(table, dict):
            self.top("clients", "must be a table of [clients.NAME] tables")
            return {}
        out = {}
        for name, body in table.items():
            spec = self.client(name, body)
            if spec is not None:
                out[name] = spec
        return out

    def client(self, name: str, body: Any) -> ClientSpec | None:
        where = f'{self.shown}: client "{name}"'
        start = len(self.problems)
        if not NAME.fullmatch(name):
            self.problems.append(
                f"{where}: the local name must be 1-64 of A-Z a-z 0-9 _ . - "
                "(starting with a letter or digit)"
            )
        if not isinstance(body, dict):
            self.problems.append(f"{where}: must be a table of client metadata")
            return None
        meta = {k: v for k, v in body.items() if k != "extensions"}
        extensions = body.get("extensions", {})
        if not isinstance(extensions, dict):
            self.problems.append(f"{where}: extensions: must be a table of extension members")
            extensions = {}
        for key in meta:
            base = key.partition("#")[0]
            if key in SERVER_ISSUED:
                self.problems.append(f"{where}: {key}: issued by the server, not declared")
            elif base not in KNOWN_MEMBERS:
                self.problems.append(
                    f"{where}: {key}: unknown member (an extension member goes in "
                    f"[clients.{name}.extensions])"
                )
        for key in extensions:
            if key in KNOWN_MEMBERS or key in SERVER_ISSUED:
                self.problems.append(
                    f"{where}: extensions.{key}: a registered member, not an extension"
                )
        known = {k: v for k, v in meta.items() if k.partition("#")[0] in KNOWN_MEMBERS}
        merged = {**known, **extensions}
        rules = MetadataRules(merged, frozenset(extensions))
        order = {key: i for i, key in enumerate(merged)}

        def position(problem: tuple[str, str]) -> int:
            # In the order of the file's members (cross-member rules run last otherwise).
            return order.get(re.split(r"[.\[]", problem[0], maxsplit=1)[0], len(order))

        for field, message in sorted(rules.run(), key=position):
            if re.split(r"[.\[]", field, maxsplit=1)[0] in extensions:
                field = f"extensions.{field}"
            self.problems.append(f"{where}: {field}: {message}")
        if len(self.problems) > start:
            return None
        return ClientSpec(name=name, metadata=merged)
