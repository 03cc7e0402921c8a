"""The value objects of a clients file: the server it targets and the clients it declares."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

# RFC 7591 §2: with no token_endpoint_auth_method the server assumes client_secret_basic.
DEFAULT_AUTH_METHOD = "client_secret_basic"
SECRET_METHODS = frozenset({"client_secret_basic", "client_secret_post", "client_secret_jwt"})


@dataclass(frozen=True)
class ServerSpec:
    """The authorization server: its issuer, and how to reach its registration endpoint."""

    issuer: str
    registration_endpoint: str | None = None
    # The *name* of the environment variable holding the RFC 7591 §3 initial access token;
    # the token itself never appears in the file.
    initial_access_token_env: str | None = None

    def initial_access_token(self, env: Mapping[str, str] | None = None) -> str | None:
        """The initial access token from the environment, or None when none is configured."""
        if self.initial_access_token_env is None:
            return None
        value = (os.environ if env is None else env).get(self.initial_access_token_env)
        return value or None


@dataclass(frozen=True)
class ClientSpec:
    """One declared client: a stable local name and the metadata to register (RFC 7591 §2)."""

    name: str
    metadata: Mapping[str, Any]

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @property
    def auth_method(self) -> str:
        method = self.metadata.get("token_endpoint_auth_method", DEFAULT_AUTH_METHOD)
        return str(method)

    @property
    def gets_secret(self) -> bool:
        """True when the server will issue a client secret to this client."""
        return self.auth_method in SECRET_METHODS

    def body(self) -> dict[str, Any]:
        """The metadata as a JSON object (a deep copy: callers may change it)."""
        copied: dict[str, Any] = _copy(dict(self.metadata))
        return copied


@dataclass(frozen=True)
class ClientsFile:
    """A validated clients file (see `rs_guard.clients.load`)."""

    path: Path
    server: ServerSpec
    clients: Mapping[str, ClientSpec] = field(default_factory=dict)
    # The file's `state = "..."` (relative to the file), if it set one.
    state: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "clients", MappingProxyType(dict(self.clients)))

    @property
    def state_path(self) -> Path:
        """Where the state lives: as the file says, else `<stem>.state.json` next to it (so a
        file and its state travel together, but out of version control: it holds tokens)."""
        if self.state is not None:
            return self.state
        return self.path.with_name(f"{self.path.stem}.state.json")

    @property
    def display_name(self) -> str:
        return str(self.path)


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value
