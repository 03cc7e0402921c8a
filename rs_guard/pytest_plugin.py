"""pytest fixtures over `rs_guard.testing`: a fresh bundled IdP per test, in-process or on loopback.

The plugin is opt-in. Enable it in your top-level `conftest.py`:

```python
pytest_plugins = ["rs_guard.pytest_plugin"]
```

(or run `pytest -p rs_guard.pytest_plugin`). Every fixture name starts with `rs_guard_`, so
none collides with a project's own:

- `rs_guard_idp`: an in-process `rs_guard.testing.TestIdP` (no socket, fresh per test) with
  one-line tokens (`rs_guard_idp.token("alice", "items:read", acr="mf")`), key rotation and
  outage switches.
- `rs_guard_idp_server`: the same, served by uvicorn on a free loopback port, for code that
  needs a URL (a browser, a subprocess, a guard that makes its own HTTP client).
- `rs_guard_app_client`: builds your app from its factory, wired to `rs_guard_idp`, and gives
  an `httpx.AsyncClient` that calls it in-process (lifespan included).
- `rs_guard_idp_options`: override it to configure both IdPs (issuer, resource, client_id,
  client_secret and any `rs_guard.idp.IdP` keyword).

`rs_guard.testing` is imported when a fixture is first used, not when the plugin loads.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import httpx
    from starlette.types import ASGIApp

    from rs_guard.testing import Switchboard, TestIdP

__all__ = [
    "AppClientFactory",
    "rs_guard_app_client",
    "rs_guard_idp",
    "rs_guard_idp_options",
    "rs_guard_idp_server",
    "rs_guard_loopback",
]

AppClientFactory = Callable[..., AbstractAsyncContextManager["httpx.AsyncClient"]]
"""`rs_guard_app_client(factory, *, token=None, base_url=..., lifespan=True, **factory_kwargs)`."""


@pytest.fixture
def rs_guard_idp_options() -> dict[str, Any]:
    """Options for `rs_guard_idp` and `rs_guard_idp_server`: override in your conftest.py.

    Keys: `issuer` (in-process only; on loopback its path is kept), `resource`,
    `client_id`, `client_secret`, and any `rs_guard.idp.IdP` keyword (`signing_alg`, ...).
    """
    return {}


@pytest.fixture
def rs_guard_idp(rs_guard_idp_options: dict[str, Any]) -> TestIdP:
    """A fresh in-process `TestIdP`: no socket, reached through `rs_guard_idp.http_client()`."""
    from rs_guard.testing import DEFAULT_ISSUER, TestIdP

    options = dict(rs_guard_idp_options)
    return TestIdP(options.pop("issuer", DEFAULT_ISSUER), **options)


@pytest.fixture(scope="session")
def rs_guard_loopback() -> Iterator[tuple[Switchboard, str]]:
    """One uvicorn server per session; each `rs_guard_idp_server` test plugs its IdP into it."""
    from rs_guard.testing import Switchboard, serve

    board = Switchboard()
    with serve(board) as url:
        yield board, url


@pytest.fixture
def rs_guard_idp_server(
    rs_guard_loopback: tuple[Switchboard, str], rs_guard_idp_options: dict[str, Any]
) -> Iterator[TestIdP]:
    """A fresh `TestIdP` served on a loopback port (issuer `http://127.0.0.1:<port>`)."""
    from urllib.parse import urlsplit

    from rs_guard.testing import TestIdP

    board, url = rs_guard_loopback
    options = dict(rs_guard_idp_options)
    path = urlsplit(options.pop("issuer", "")).path.rstrip("/")
    options.setdefault("dev", True)  # loopback http URLs are what this IdP is about
    server = TestIdP(url + path, in_process=False, **options)
    with board.plug(server.app):
        yield server


@pytest.fixture
def rs_guard_app_client(rs_guard_idp: TestIdP) -> AppClientFactory:
    """Build your app from its factory, wired to `rs_guard_idp`, and get an in-process client.

    `rs_guard_app_client(create_app)` calls `create_app(...)` with whichever of `http_client`,
    `issuer` and `resource` it accepts (from `rs_guard_idp.guard_settings()`), plus any extra
    keyword arguments, and returns an `httpx.AsyncClient` to use with `async with`.
    """

    def connect(
        factory: Callable[..., ASGIApp],
        /,
        *,
        token: str | None = None,
        base_url: str = "http://testserver",
        lifespan: bool = True,
        **factory_kwargs: Any,
    ) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        settings = rs_guard_idp.guard_settings()
        app = factory(**_accepted(factory, settings), **factory_kwargs)
        return rs_guard_idp.app_client(app, token=token, base_url=base_url, lifespan=lifespan)

    return connect


def _accepted(factory: Callable[..., Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of `settings` that `factory` takes as keyword arguments."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(settings)
    chosen = {
        name: value
        for name, value in settings.items()
        if name in params and params[name].kind is not inspect.Parameter.POSITIONAL_ONLY
    }
    if "http_client" not in chosen:
        raise TypeError(
            f"rs_guard_app_client needs an app factory with an `http_client` keyword for its "
            f"ResourceGuard; {getattr(factory, '__name__', factory)!r} has none. For an app "
            f"that is already wired, use `rs_guard_idp.app_client(app)`."
        )
    return chosen
