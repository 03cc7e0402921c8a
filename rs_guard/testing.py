"""Test tools for services guarded by rs_guard, used by rs_guard's own tests too.

- `TestIdP`: the bundled IdP (`rs_guard.idp.IdP`) plus one-line helpers: `token()`,
  `auth_headers()`, `rotate_keys()`, `outage()`, `restore()`, `guard_settings()`,
  `app_client()`.
- `app_client(app)`: an `httpx.AsyncClient` calling an ASGI app in-process, with the app's
  lifespan (startup and shutdown) run around its use.
- `serve(app)`: the app under uvicorn on a free loopback port (`with` runs it in a thread,
  `async with` in the running event loop); yields the base URL. Needs `rs_guard[idp]`.
- `loopback_socket()` and `socket_url()`: bind the port first when an app must know its own
  URL before it is served, then `serve(app, sock=sock)`.
- `loopback_tls()`: a throwaway CA and a certificate for 127.0.0.1, ::1 and localhost, for
  https on loopback (`serve(app, tls=tls)`, `httpx.AsyncClient(verify=tls.client_context())`).
- `Switchboard`: an ASGI app forwarding to whichever app is plugged in, so that one loopback
  server can serve a fresh app per test.

The pytest fixtures over these live in `rs_guard.pytest_plugin` (opt-in).

```python
from rs_guard import ResourceGuard
from rs_guard.testing import TestIdP

idp = TestIdP()
app = ResourceGuard(my_app, **idp.guard_settings())
async with idp.app_client(app) as client:
    response = await client.get("/items", headers=idp.auth_headers("alice", "items:read"))
```
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import enum
import functools
import ipaddress
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from rs_guard.idp import ACR_AMR, FAULT_SWITCHES, IdP

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_ISSUER",
    "DEFAULT_RESOURCE",
    "FAULT_SWITCHES",
    "LoopbackServer",
    "LoopbackTLS",
    "Outage",
    "OutageMode",
    "Switchboard",
    "TestIdP",
    "app_client",
    "loopback_socket",
    "loopback_tls",
    "serve",
    "socket_url",
]

DEFAULT_ISSUER = "https://idp.test"
DEFAULT_RESOURCE = "https://api.test"
DEFAULT_CLIENT_ID = "test-client"
DEFAULT_CLIENT_SECRET = "test-client-secret"
OutageMode = Literal["down", "slow", "garbage", "unreachable"]
Lifespan = Literal["on", "off", "auto"]


class _Unset(enum.Enum):
    UNSET = enum.auto()


_UNSET = _Unset.UNSET


# -- the test IdP --------------------------------------------------------------------------


class TestIdP(IdP):
    """The bundled IdP (`rs_guard.idp.IdP`) plus one-line helpers for tests.

    Everything of `IdP` is there (`issue_access_token`, `register_client`, `login_as`,
    `faults`, `rotate`, ...), and: `resource` (the default audience), `client_id` /
    `client_secret` (a registered confidential client), `token()`, `auth_headers()`,
    `rotate_keys()`, `outage()`, `restore()`, `guard_settings()` and `app_client()`.

    `in_process=False` marks an IdP reached over a socket (see `serve`): `guard_settings()`
    then gives no in-process HTTP client, and the "unreachable" outage is refused.
    """

    __test__ = False  # a class named Test* imported into a test module is not a test

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
        # The registered client is also the resource server of `resource`: introspection
        # answers it about tokens for that audience (RFC 7662 §4), whoever they were issued to.
        self.register_client(client_id, client_secret, served_resources=[resource])

    # -- tokens ----------------------------------------------------------------------------

    def token(
        self,
        user: str | None = "alice",
        scopes: str | Sequence[str] = (),
        *,
        acr: str | _Unset | None = _UNSET,
        auth_time: float | _Unset | None = _UNSET,
        auth_age: float = 0,
        amr: Sequence[str] | _Unset | None = _UNSET,
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
        if acr is _UNSET:
            acr = "pwd" if user is not None else None
        if auth_time is _UNSET:
            auth_time = self.now() - auth_age if user is not None else None
        if amr is _UNSET:
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

        Without names the whole IdP fails (`faults.whole`, discovery included); with names
        only those switches of `faults` (`FAULT_SWITCHES`: the route table's). Modes: "down"
        (503), "slow" (`faults.delay` seconds late), "garbage" (200 with a non-JSON body),
        "unreachable" (connection refused; whole IdP, in-process clients only).
        """
        return Outage(self, endpoints, mode)

    def restore(self) -> None:
        """End every outage and fault (`faults.reset()`)."""
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
    ) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        """`rs_guard.testing.app_client(app, ...)`: an in-process client for `app`."""
        return app_client(app, token=token, base_url=base_url, lifespan=lifespan, **client_kwargs)


class Outage:
    """An IdP outage in progress; ends with `.end()` or when its `with` block exits."""

    def __init__(self, idp: TestIdP, endpoints: Sequence[str], mode: OutageMode) -> None:
        if mode not in ("down", "slow", "garbage", "unreachable"):
            raise ValueError(f"unknown outage mode {mode!r}")
        unknown = set(endpoints) - set(FAULT_SWITCHES)
        if unknown:
            raise ValueError(f"unknown IdP endpoints {sorted(unknown)}; use {FAULT_SWITCHES}")
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


# -- an in-process client that runs the app's lifespan ----------------------------------------


@asynccontextmanager
async def app_client(
    app: ASGIApp,
    *,
    token: str | None = None,
    base_url: str = "http://testserver",
    lifespan: bool = True,
    **client_kwargs: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    """An `httpx.AsyncClient` calling `app` in-process (use it with `async with`).

    The app's lifespan startup runs on entry and its shutdown on exit (`lifespan=False` to
    skip); the lifespan state reaches each request as an ASGI server would pass it. A failed
    startup raises `RuntimeError`. With `token`, every request carries it unless it sets its
    own Authorization header. Other keyword arguments go to `httpx.AsyncClient`.
    """
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


# -- loopback TLS ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LoopbackTLS:
    """A throwaway CA and a loopback certificate signed by it, as PEM files in `directory`.

    Give it to `serve(app, tls=tls)` (uvicorn reads `cert_file` and `key_file`); clients
    trust it with `httpx.AsyncClient(verify=tls.client_context())`.
    """

    directory: Path
    ca_file: Path
    cert_file: Path
    key_file: Path

    def client_context(self) -> ssl.SSLContext:
        """An SSL context that trusts this CA and nothing else."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def server_context(self) -> ssl.SSLContext:
        """An SSL context presenting the loopback certificate (for servers other than uvicorn)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@contextlib.contextmanager
def loopback_tls(
    *, valid_for: datetime.timedelta = datetime.timedelta(hours=1)
) -> Iterator[LoopbackTLS]:
    """A fresh CA and a certificate for 127.0.0.1, ::1 and localhost; files removed on exit.

    Nothing is trusted system-wide: only clients given `client_context()` (or `ca_file`)
    accept the certificate.
    """
    now = datetime.datetime.now(datetime.UTC)
    # Valid from a minute ago, so clocks a little apart still agree.
    not_before, not_after = now - datetime.timedelta(minutes=1), now + valid_for
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("rs_guard test CA"))
        .issuer_name(_name("rs_guard test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
        x509.DNSName("localhost"),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    with tempfile.TemporaryDirectory(prefix="rs_guard_tls_") as tmp:
        directory = Path(tmp)
        tls = LoopbackTLS(
            directory, directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
        )
        tls.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        tls.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        # The key file is private to this user: created empty with 0600, then written.
        tls.key_file.touch(mode=0o600)
        tls.key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        yield tls


# -- a uvicorn server on a free loopback port ----------------------------------------------------


def loopback_socket(host: str = "127.0.0.1") -> socket.socket:
    """A TCP socket bound to a free port of a loopback `host`, for `serve(app, sock=...)`.

    Binding to port 0 (not to a port guessed beforehand) leaves no race with other processes,
    and the URL is known before the app is built (see `socket_url`).
    """
    address = ipaddress.ip_address(host)
    if not address.is_loopback:
        raise ValueError(f"{host!r} is not a loopback address: test servers stay on loopback")
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


def socket_url(sock: socket.socket, *, tls: bool = False) -> str:
    """The base URL (`http://127.0.0.1:<port>`, or https) of a server on `sock`."""
    host, port = sock.getsockname()[:2]
    authority = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{authority}:{port}"


class LoopbackServer:
    """uvicorn serving one ASGI app on a loopback socket: see `serve`.

    `with` runs it in a background thread (for synchronous tests and session fixtures);
    `async with` runs it as a task of the running asyncio event loop. Both yield the base URL
    once the server accepts connections, and stop it on exit. One use per object.
    """

    def __init__(self, server: Any, sock: socket.socket, url: str) -> None:
        self._server = server  # a uvicorn.Server, configured by serve()
        self._sock = sock
        self.url = url
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self._used = False
        self._startup_failed = False

    def _claim(self) -> None:
        if self._used:
            raise RuntimeError("a LoopbackServer runs once; call serve() again")
        self._used = True

    # -- in a thread -------------------------------------------------------------------------

    def __enter__(self) -> str:
        self._claim()
        port = self._sock.getsockname()[1]
        self._thread = threading.Thread(
            target=self._run_in_thread,
            name=f"rs_guard-serve-{port}",
            daemon=True,  # a test that never exits its block must not hang the interpreter
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._stop_thread()
                why = ": lifespan startup failed" if self._startup_failed else ""
                raise RuntimeError(f"uvicorn did not start on {self.url}{why}")
            time.sleep(0.005)
        return self.url

    def _run_in_thread(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except SystemExit:
            # uvicorn exits the process when the app's lifespan startup fails; in a thread
            # that would only end the thread, unreported: __enter__ reports it instead.
            self._startup_failed = True

    def __exit__(self, *exc_info: object) -> None:
        self._stop_thread()

    def _stop_thread(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._sock.close()

    # -- in the running event loop ---------------------------------------------------------

    async def __aenter__(self) -> str:
        self._claim()
        self._task = asyncio.get_running_loop().create_task(self._serve())
        try:
            async with asyncio.timeout(10):
                while not self._server.started:
                    if self._task.done():
                        self._task.result()  # its error, if it has one
                        raise RuntimeError(f"uvicorn did not start on {self.url}")
                    await asyncio.sleep(0.005)
        except BaseException:
            await self._stop_task(report=False)
            raise
        return self.url

    async def __aexit__(self, *exc_info: object) -> None:
        # The server's own failure is reported only when no other error is on its way.
        await self._stop_task(report=exc_info[1] is None)

    async def _serve(self) -> None:
        try:
            await self._server.serve(sockets=[self._sock])
        except SystemExit:
            # uvicorn exits the process when the app's lifespan startup fails; a test server
            # must not take the event loop (and the test run) down with it.
            raise RuntimeError(f"uvicorn on {self.url} stopped: lifespan startup failed") from None

    async def _stop_task(self, *, report: bool) -> None:
        """Stop the server; its own failure is raised unless another error is on its way."""
        self._server.should_exit = True
        try:
            if self._task is not None:
                try:
                    await self._task
                except Exception:
                    if report:
                        raise
        finally:
            self._sock.close()


def serve(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    sock: socket.socket | None = None,
    tls: LoopbackTLS | None = None,
    lifespan: Lifespan = "on",
    root_path: str = "",
) -> LoopbackServer:
    """Serve `app` with uvicorn on a free loopback port; a context manager yielding the URL.

    `with serve(app) as url:` runs the server in a thread, `async with serve(app) as url:` in
    the running event loop (use the latter when the app shares objects bound to that loop,
    such as an `httpx.AsyncClient`). The app's lifespan runs (`lifespan="off"` to skip it).
    `sock` serves on a socket bound beforehand by `loopback_socket()`; `tls` serves https
    with a `loopback_tls()` certificate; `root_path` is uvicorn's `--root-path` (the prefix a
    reverse proxy strips). Needs uvicorn (`pip install 'rs_guard[idp]'`).
    """
    try:
        import uvicorn
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "serving on a loopback port needs uvicorn: pip install 'rs_guard[idp]'",
            name=exc.name,
        ) from exc
    sock = sock if sock is not None else loopback_socket(host)
    options: dict[str, Any] = {
        "log_level": "warning",
        "access_log": False,
        "lifespan": lifespan,
        # A client that keeps a connection open must not hold up the test's end for long.
        "timeout_graceful_shutdown": 1,
        "root_path": root_path,
    }
    if tls is not None:
        options.update(ssl_certfile=str(tls.cert_file), ssl_keyfile=str(tls.key_file))
    server = _quiet_server_class()(uvicorn.Config(app, **options))
    return LoopbackServer(server, sock, socket_url(sock, tls=tls is not None))


@functools.cache
def _quiet_server_class() -> type[Any]:
    import uvicorn

    class QuietServer(uvicorn.Server):
        """uvicorn without signal handlers: Ctrl-C belongs to the test runner, not to it."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return QuietServer


class Switchboard:
    """An ASGI app forwarding to the app plugged into `target` (503 while none is).

    One loopback server for a whole test session, a fresh app per test:
    `with serve(board) as url:` once, then `with board.plug(app):` in each test. The plugged
    apps' own lifespans do not run: the board has none (it returns at once, which ASGI
    servers take as "nothing to start").
    """

    def __init__(self) -> None:
        self.target: ASGIApp | None = None

    @contextlib.contextmanager
    def plug(self, app: ASGIApp) -> Iterator[None]:
        """Forward to `app` for the duration of the block."""
        self.target = app
        try:
            yield
        finally:
            self.target = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = self.target
        if scope["type"] == "lifespan":
            return
        if target is not None:
            await target(scope, receive, send)
        elif scope["type"] == "http":
            unplugged = Response(
                b'{"error":"temporarily_unavailable"}', 503, media_type="application/json"
            )
            await unplugged(scope, receive, send)
