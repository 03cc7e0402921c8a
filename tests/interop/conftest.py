"""Fixtures for the interop suite: a real node-oidc-provider on loopback and a guarded app.

The provider is started once per test session (and separately by tests that restart it); its
log goes to a temporary file, copied to test-output/interop/ when a test using it failed.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rs_guard import AuthorizationServer, ResourceGuard, require

from .oidc_provider import OidcProvider, private_jwk

OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "interop"

ALGORITHMS = ("ES256", "RS256", "PS256", "EdDSA")
SCOPES = "items:read items:write"
# One RFC 8707 resource per signing algorithm, so each test knows which key signed its token.
JWT_RESOURCES = {alg: f"https://api.test/{alg.lower()}" for alg in ALGORITHMS}
OPAQUE_RESOURCE = "https://api.test/opaque"
OTHER_RESOURCE = "https://other.test/api"
SHORT_RESOURCE = "https://api.test/short-lived"  # its tokens live two seconds
# RFC 9864's fully-specified name for EdDSA over Ed25519, which oidc-provider also signs with.
ED25519_RESOURCE = "https://api.test/ed25519"

SERVICE = ("svc", "svc-secret-0123456789")  # a client credentials client
RS_CLIENT = ("rs", "rs-secret-0123456789")  # the resource server, for introspection only
WEBAPP = "webapp"  # a public client (PKCE, no secret)
REDIRECT_URI = "http://127.0.0.1/callback"  # never fetched: the test reads the redirect


def provider_config(keys: list[dict[str, Any]]) -> dict[str, Any]:
    """The launcher configuration the suite's provider runs with."""
    resources: dict[str, Any] = {
        url: {"scope": SCOPES, "format": "jwt", "alg": alg} for alg, url in JWT_RESOURCES.items()
    }
    resources[OPAQUE_RESOURCE] = {"scope": SCOPES, "format": "opaque"}
    resources[OTHER_RESOURCE] = {"scope": SCOPES, "format": "jwt", "alg": "ES256"}
    resources[SHORT_RESOURCE] = {"scope": SCOPES, "format": "jwt", "alg": "ES256", "ttl": 2}
    if any(key.get("alg") == "Ed25519" for key in keys):
        resources[ED25519_RESOURCE] = {"scope": SCOPES, "format": "jwt", "alg": "Ed25519"}
    return {
        "jwks": {"keys": keys},
        "resources": resources,
        "clients": [
            {
                "client_id": SERVICE[0],
                "client_secret": SERVICE[1],
                "grant_types": ["client_credentials"],
                "response_types": [],
                "token_endpoint_auth_method": "client_secret_basic",
            },
            {
                "client_id": RS_CLIENT[0],
                "client_secret": RS_CLIENT[1],
                "grant_types": [],
                "response_types": [],
                "token_endpoint_auth_method": "client_secret_basic",
            },
            {
                "client_id": WEBAPP,
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "redirect_uris": [REDIRECT_URI],
                "token_endpoint_auth_method": "none",
            },
        ],
    }


@pytest.fixture(scope="session")
def op_keys() -> dict[str, dict[str, Any]]:
    """One private signing key per algorithm."""
    return {alg: private_jwk(alg, f"{alg.lower()}-1") for alg in (*ALGORITHMS, "Ed25519")}


class _Logs:
    """Copies a provider's log to test-output/ when a test failed while it ran."""

    def __init__(self, request: pytest.FixtureRequest, tmp: Path, name: str) -> None:
        self.session = request.session
        self.failed_before = request.session.testsfailed
        self.path = tmp / f"{name}.log"
        self.name = name

    def keep_if_failed(self) -> None:
        if self.session.testsfailed > self.failed_before and self.path.exists():
            OUTPUT.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.path, OUTPUT / f"{self.name}.log")


@pytest.fixture(scope="session")
def oidc_provider(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    op_keys: dict[str, dict[str, Any]],
) -> Iterator[OidcProvider]:
    """node-oidc-provider on a free loopback port for the whole session."""
    logs = _Logs(request, tmp_path_factory.mktemp("oidc-provider"), "oidc-provider")
    op = OidcProvider(provider_config(list(op_keys.values())), logs.path)
    op.start()
    try:
        yield op
    finally:
        op.stop()
        logs.keep_if_failed()


ProviderFactory = Callable[[dict[str, Any]], OidcProvider]


@pytest.fixture
def fresh_provider(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ProviderFactory]:
    """Starts a provider of the test's own (for restarts); stopped with the test."""
    started: list[tuple[OidcProvider, _Logs]] = []

    def start(config: dict[str, Any]) -> OidcProvider:
        logs = _Logs(request, tmp_path, f"{request.node.name}-{len(started)}")
        op = OidcProvider(config, logs.path)
        started.append((op, logs))
        op.start()
        return op

    yield start
    for op, logs in started:
        op.stop()
        logs.keep_if_failed()


# ----- the protected app ------------------------------------------------------------------------


async def whoami(request: Request) -> JSONResponse:
    auth = request.auth
    return JSONResponse(
        {
            "sub": auth.subject,
            "client_id": auth.client_id,
            "scopes": list(auth.scopes),
            "issuer": auth.issuer,
            "audience": list(auth.audience),
        }
    )


@require("items:write")
async def write(request: Request) -> JSONResponse:
    return JSONResponse({"written": True})


def protected_app(**guard_options: Any) -> Starlette:
    """The app, with the guard as its Starlette middleware (so `@require` answers are its)."""
    return Starlette(
        routes=[Route("/whoami", whoami), Route("/write", write, methods=["POST"])],
        middleware=[Middleware(ResourceGuard, **guard_options)],
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The guard's own HTTP client towards the provider (real loopback connections)."""
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


GuardClient = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def guarded(http: httpx.AsyncClient) -> AsyncIterator[GuardClient]:
    """`guarded(issuer, resource, **options)`: a client of the app behind a ResourceGuard."""
    clients: list[httpx.AsyncClient] = []

    def make(issuer: str, resource: str, **options: Any) -> httpx.AsyncClient:
        # Key-cache timings belong to the issuer's AuthorizationServer, not to the guard.
        jwks = {k: options.pop(k) for k in list(options) if k.startswith("jwks_")}
        server = AuthorizationServer(issuer, http_client=http, **jwks)
        app = protected_app(server=server, resource=resource, **options)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://api.test"
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
