"""pytest plugin: fixtures that give each test a fresh bundled IdP, in-process or on loopback.

Installing rs_guard registers it (entry point `pytest11`). Fixtures:

- `idp`: an in-process IdP (no socket, fresh per test) with one-line tokens
  (`idp.token("alice", "items:read", acr="mf")`), key rotation and outage switches.
- `idp_server`: the same, served by uvicorn on a free loopback port, for code that needs a URL.
- `guarded_client`: builds your app from its factory, wired to the in-process IdP, and gives
  an `httpx.AsyncClient` that calls it in-process (lifespan included).
- `idp_options`: override it to configure both IdPs (issuer, resource, client_id, IdP kwargs).

Nothing heavy is imported until a fixture is used, so projects that do not use the plugin
collect as fast as before.
"""

from __future__ import annotations

import enum
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, Literal

import pytest

if TYPE_CHECKING:
    import httpx
    from starlette.types import ASGIApp, Receive, Scope, Send

    from rs_guard.idp import IdP

    _Base = IdP
else:
    _Base = object

__all__ = ["IdPFixture", "Outage", "guarded_client", "idp", "idp_options", "idp_server", "serve"]

DEFAULT_ISSUER = "https://idp.test"
DEFAULT_RESOURCE = "https://api.test"
DEFAULT_CLIENT_ID = "test-client"
DEFAULT_CLIENT_SECRET = "test-client-secret"
OutageMode = Literal["down", "slow", "garbage", "unreachable"]


class _Unset(enum.Enum):
    UNSET = enum.auto()


UNSET = _Unset.UNSET


class _Helpers(_Base):
    """The test helpers that `IdPFixture` adds to `rs_guard.idp.IdP` (see IdPFixture)."""

    resource: str
    client_id: str
    client_secret: str
    in_process: bool

    def __init__(
        self,
        issuer: str = DEFAULT_ISSUER,
        *,
        resource: str = DEFAULT_RESOURCE,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        in_process: bool = True,
        **idp_kwargs: Any,
    ) -> None:
        idp_kwargs.setdefault("default_audience", resource)
        super().__init__(issuer, **idp_kwargs)
        self.resource = resource
        self.client_id = client_id
        self.client_secret = client_secret
        self.in_process = in_process
        self.register_client(client_id, client_secret)

    # -- tokens ----------------------------------------------------------------------------

    def token(
        self,
        user: str | None = "alice",
        scopes: str | Sequence[str] = (),
        *,
        acr: str | _Unset | None = UNSET,
        auth_time: float | _Unset | None = UNSET,
        auth_age: float = 0,
        amr: Sequence[str] | _Unset | None = UNSET,
        client_id: str | None = None,
        audience: str | Sequence[str] | None = None,
        lifetime: int | None = None,
        claims: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> str:
        """An access token (RFC 9068 JWT) for `user` with `scopes`, in one line.

        For a user, `acr` defaults to "pwd", `amr` to what that method produces and
        `auth_time` to `auth_age` seconds ago (default now); pass None to leave a claim out.
        `user=None` is a client acting for itself (client credentials): no acr/auth_time
        unless given. `audience` defaults to `resource`; other keyword arguments
        (`headers`, `alg`) go to `IdP.issue_access_token`.
        """
        from rs_guard.idp import ACR_AMR

        if acr is UNSET:
            acr = "pwd" if user is not None else None
        if auth_time is UNSET:
            auth_time = self.now() - auth_age if user is not None else None
        if amr is UNSET:
            amr = ACR_AMR.get(acr) if acr is not None and user is not None else None
        return self.issue_access_token(
            user,
            client_id=client_id or self.client_id,
            audience=audience if audience is not None else self.resource,
            scope=scopes,
            acr=acr,
            auth_time=int(auth_time) if auth_time is not None else None,
            amr=amr,
            lifetime=lifetime,
            claims=claims,
            **kwargs,
        )

    def auth_headers(
        self, user: str | None = "alice", scopes: str | Sequence[str] = (), **kwargs: Any
    ) -> dict[str, str]:
        """`{"Authorization": "Bearer <token>"}` for a token made by `token()`."""
        return {"Authorization": f"Bearer {self.token(user, scopes, **kwargs)}"}

    # -- keys and outages ------------------------------------------------------------------

    def rotate_keys(self, alg: str | None = None, *, retire_old: bool = False) -> str:
        """Start signing with a new key; returns its kid.

        The old keys stay published (tokens they signed keep verifying) unless `retire_old`,
        which removes them from the JWKS at once, as after a key compromise.
        """
        old = [k["kid"] for k in self.jwks().get("keys", []) if "kid" in k]
        kid = self.rotate(alg)
        if retire_old:
            for old_kid in old:
                if old_kid != kid:
                    self.retire(old_kid)
        return kid

    def outage(self, *endpoints: str, mode: OutageMode = "down") -> Outage:
        """Make the IdP fail until `.end()`, `restore()` or the end of a `with` block.

        Without names the whole IdP fails (discovery included); with names only those
        switches of `faults` (`faults.names`: jwks, introspection, ppid, token, events; the
        whole IdP is `faults.whole`). Modes: "down"
        (503), "slow" (`faults.delay` seconds late), "garbage" (200 with a non-JSON body),
        "unreachable" (connection refused; whole IdP, in-process clients only).
        """
        return Outage(self, endpoints, mode)

    def restore(self) -> None:
        """End every outage and fault."""
        self.faults.reset()

    # -- wiring ----------------------------------------------------------------------------

    def guard_settings(self, **overrides: Any) -> dict[str, Any]:
        """`issuer`, `resource` and, in-process, an `http_client` bound to this IdP.

        Spread into `ResourceGuard(app, **idp.guard_settings())`, or into your app factory.
        """
        settings: dict[str, Any] = {"issuer": self.issuer, "resource": self.resource}
        if self.in_process:
            settings["http_client"] = self.http_client()
        settings.update(overrides)
        return settings

    def app_client(
        self,
        app: ASGIApp,
        *,
        token: str | None = None,
        base_url: str = "http://testserver",
        lifespan: bool = True,
        **client_kwargs: Any,
    ) -> _AppClient:
        """An `httpx.AsyncClient` calling `app` in-process (use it with `async with`).

        The app's lifespan runs on entry and exit (`lifespan=False` to skip). With `token`,
        every request carries it unless it sets its own Authorization header.
        """
        return _app_client(app, token=token, base_url=base_url, lifespan=lifespan, **client_kwargs)


if TYPE_CHECKING:

    class IdPFixture(_Helpers):
        """The bundled IdP (`rs_guard.idp.IdP`) plus one-line helpers for tests.

        Everything of `IdP` is there (`issue_access_token`, `register_client`, `login_as`,
        `faults`, `rotate`, ...), and: `resource` (default audience), `client_id` /
        `client_secret` (a registered confidential client), `token()`, `auth_headers()`,
        `rotate_keys()`, `outage()`, `restore()`, `guard_settings()` and `app_client()`.
        """

else:

    def __getattr__(name: str) -> Any:
        # Built on first use: importing the IdP costs ~0.3 s, which projects that never use
        # these fixtures must not pay at collection time.
        if name == "IdPFixture":
            return _fixture_class()
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _fixture_class() -> type[IdPFixture]:
    from rs_guard.idp import IdP

    cls = type("IdPFixture", (_Helpers, IdP), {"__module__": __name__})
    cls.__doc__ = (
        "The bundled IdP (`rs_guard.idp.IdP`) plus one-line helpers for tests: token(), "
        "auth_headers(), rotate_keys(), outage(), restore(), guard_settings(), app_client()."
    )
    return cls


class Outage:
    """An IdP outage in progress; ends with `.end()` or when its `with` block exits."""

    def __init__(self, idp: _Helpers, endpoints: Sequence[str], mode: OutageMode) -> None:
        if mode not in ("down", "slow", "garbage", "unreachable"):
            raise ValueError(f"unknown outage mode {mode!r}")
        unknown = set(endpoints) - set(idp.faults.names)
        if unknown:
            raise ValueError(f"unknown IdP endpoints {sorted(unknown)}; use {idp.faults.names}")
        if mode == "unreachable" and endpoints:
            raise ValueError('"unreachable" applies to the whole IdP: name no endpoints')
        if mode == "unreachable" and not idp.in_process:
            raise ValueError('"unreachable" needs the in-process IdP; use "down" on loopback')
        self._idp = idp
        self._endpoints = tuple(endpoints)
        self._previous = {name: idp.faults.mode(name) for name in endpoints}
        self._previous_whole = idp.faults.whole
        if endpoints:
            for name in endpoints:
                setattr(idp.faults, name, mode)
        else:
            idp.faults.whole = mode

    def end(self) -> None:
        """The IdP answers normally again (as it did before this outage began)."""
        for name, previous in self._previous.items():
            setattr(self._idp.faults, name, previous)
        if not self._endpoints:
            self._idp.faults.whole = self._previous_whole

    def __enter__(self) -> Outage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()


# -- in-process app client ---------------------------------------------------------------


_AppClient = AbstractAsyncContextManager["httpx.AsyncClient"]


@asynccontextmanager
async def _app_client(
    app: ASGIApp,
    *,
    token: str | None,
    base_url: str,
    lifespan: bool,
    **client_kwargs: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    import httpx

    headers = dict(client_kwargs.pop("headers", None) or {})
    if token is not None:
        headers.setdefault("Authorization", f"Bearer {token}")
    async with _lifespan(app, enabled=lifespan) as state:
        wired = _with_state(app, state) if state else app
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=wired),
            base_url=base_url,
            headers=headers,
            **client_kwargs,
        ) as client:
            yield client


def _with_state(app: ASGIApp, state: dict[str, Any]) -> ASGIApp:
    """Give each request a shallow copy of the lifespan state, as ASGI servers do."""

    async def wired(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, "state": dict(state)}
        await app(scope, receive, send)

    return wired


@asynccontextmanager
async def _lifespan(app: ASGIApp, *, enabled: bool) -> AsyncIterator[dict[str, Any]]:
    """Run the app's lifespan startup before and shutdown after the block."""
    state: dict[str, Any] = {}
    if not enabled:
        yield state
        return
    import anyio

    started, stopping, stopped = anyio.Event(), anyio.Event(), anyio.Event()
    outcome: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        if "startup_sent" not in outcome:
            outcome["startup_sent"] = True
            return {"type": "lifespan.startup"}
        await stopping.wait()
        return {"type": "lifespan.shutdown"}

    async def send(message: Mapping[str, Any]) -> None:
        kind = message["type"]
        if kind in ("lifespan.startup.complete", "lifespan.startup.failed"):
            outcome["startup"] = kind
            outcome["message"] = message.get("message", "")
            started.set()
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            outcome["shutdown"] = kind
            outcome["message"] = message.get("message", "")
            stopped.set()

    async def run() -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}
        try:
            await app(scope, receive, send)
        except Exception as exc:
            # Before any lifespan message, an exception means "lifespan not supported"
            # (allowed by the ASGI spec); a failure the app reported is handled below.
            reported = outcome.get("startup") == "lifespan.startup.failed"
            if "startup" in outcome and "shutdown" not in outcome and not reported:
                outcome["error"] = exc
        finally:
            started.set()
            stopped.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await started.wait()
        if outcome.get("startup") == "lifespan.startup.failed":
            stopping.set()
        else:
            try:
                yield state
            finally:
                stopping.set()
                await stopped.wait()
    if outcome.get("startup") == "lifespan.startup.failed":
        # Starlette sends the whole traceback as the message; its last line names the error.
        last = (outcome["message"] or "").strip().splitlines()[-1:] or ["(no message)"]
        raise RuntimeError(f"the app's lifespan startup failed: {last[0]}")
    if "error" in outcome:
        raise outcome["error"]
    if outcome.get("shutdown") == "lifespan.shutdown.failed":
        raise RuntimeError(f"the app's lifespan shutdown failed: {outcome['message']}")


# -- loopback server ---------------------------------------------------------------------


@contextmanager
def serve(
    app: ASGIApp | Callable[[str], ASGIApp],
    *,
    host: str = "127.0.0.1",
    lifespan: Literal["auto", "on", "off"] = "auto",
    factory: bool = False,
) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port in a thread; yields its URL.

    With `factory=True`, `app` is called with the URL first: for apps that must know their own
    address (e.g. a resource server whose resource identifier is its URL).
    """
    import socket
    import threading
    import time

    try:
        import uvicorn
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "serving on a loopback port needs uvicorn: pip install 'rs_guard[idp]'", name=exc.name
        ) from exc

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Binding to port 0 here (not a port guessed beforehand) leaves no race with other tests.
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    url = f"http://[{host}]:{port}" if family == socket.AF_INET6 else f"http://{host}:{port}"
    try:
        asgi: Any = app(url) if factory else app  # type: ignore[call-arg,arg-type]
        config = uvicorn.Config(asgi, log_level="warning", access_log=False, lifespan=lifespan)
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"rs_guard-serve-{port}"
        )
        thread.daemon = True
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                raise RuntimeError(f"uvicorn did not start on {url}")
            time.sleep(0.005)
        try:
            yield url
        finally:
            server.should_exit = True
            thread.join(10)
    finally:
        sock.close()


class _Switchboard:
    """The ASGI app of the shared loopback server: forwards to the current test's IdP."""

    def __init__(self) -> None:
        self.target: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = self.target
        if target is None:
            if scope["type"] == "http":
                body = b'{"error":"temporarily_unavailable"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 503,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
            return
        await target(scope, receive, send)


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def idp_options() -> dict[str, Any]:
    """Options for `idp` and `idp_server`: override in your conftest.py.

    Keys: `issuer` (in-process only; on loopback its path is kept), `resource`,
    `client_id`, `client_secret`, and any `rs_guard.idp.IdP` keyword (`signing_alg`, ...).
    """
    return {}


@pytest.fixture
def idp(idp_options: dict[str, Any]) -> IdPFixture:
    """A fresh in-process IdP: no socket, reached through `idp.http_client()`."""
    options = dict(idp_options)
    return _fixture_class()(options.pop("issuer", DEFAULT_ISSUER), **options)


@pytest.fixture(scope="session")
def rs_guard_loopback() -> Iterator[tuple[_Switchboard, str]]:
    """One uvicorn server per session; each `idp_server` test plugs its own IdP into it."""
    board = _Switchboard()
    with serve(board, lifespan="off") as url:
        yield board, url


@pytest.fixture
def idp_server(
    rs_guard_loopback: tuple[_Switchboard, str], idp_options: dict[str, Any]
) -> Iterator[IdPFixture]:
    """A fresh IdP served on a loopback port (issuer `http://127.0.0.1:<port>`)."""
    from urllib.parse import urlsplit

    board, url = rs_guard_loopback
    options = dict(idp_options)
    path = urlsplit(options.pop("issuer", "")).path.rstrip("/")
    options.setdefault("dev", True)  # loopback http URLs are what this IdP is about
    server = _fixture_class()(url + path, in_process=False, **options)
    board.target = server.app
    try:
        yield server
    finally:
        board.target = None


GuardedClient = Callable[..., Any]
"""`guarded_client(factory, *, token=None, base_url=..., lifespan=True, **factory_kwargs)`."""


@pytest.fixture
def guarded_client(idp: IdPFixture) -> GuardedClient:
    """Build your app from its factory, wired to `idp`, and get an in-process client for it.

    `guarded_client(create_app)` calls `create_app(...)` with whichever of `http_client`,
    `issuer` and `resource` it accepts (from `idp.guard_settings()`), plus any extra keyword
    arguments, and returns an `httpx.AsyncClient` to use with `async with`.
    """

    def connect(
        factory: Callable[..., ASGIApp],
        /,
        *,
        token: str | None = None,
        base_url: str = "http://testserver",
        lifespan: bool = True,
        **factory_kwargs: Any,
    ) -> _AppClient:
        settings = idp.guard_settings()
        app = factory(**_accepted(factory, settings), **factory_kwargs)
        return idp.app_client(app, token=token, base_url=base_url, lifespan=lifespan)

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
            f"guarded_client needs an app factory with an `http_client` keyword for its "
            f"ResourceGuard; {getattr(factory, '__name__', factory)!r} has none. For an app "
            f"that is already wired, use `idp.app_client(app)`."
        )
    return chosen
