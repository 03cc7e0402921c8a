"""rs_guard against what its users would pick instead, on the same tokens, in one run.

    .venv/bin/python benchmarks/peers.py            # full run (~10 min on 2 cores)
    .venv/bin/python benchmarks/peers.py --quick    # shorter, noisier (~2 min)
    .venv/bin/python benchmarks/peers.py --quick --smoke   # a few hundred requests: does it run?

Every variant protects the same Starlette endpoint and validates the same RFC 9068 JWT access
tokens (typ at+jwt, iss, aud, exp, iat, nbf, sub, client_id, jti, scope) minted by the bundled
IdP. The peers are configured the way their own documentation shows for access-token validation
(see `PEERS` and docs/explanation/performance.md); each needs the benchmark extra:
`pip install -e '.[bench]'`; a peer that is missing gets a "not installed" row.

Measured, in interleaved rounds (load drifting on the machine hits every variant alike), as
medians with the min-max range of the rounds:

* in-process: the ASGI app is called directly, one request at a time (no HTTP client, no
  httpx.ASGITransport), so only the app's own work is timed;
* through uvicorn (1 worker, its own process per variant) driven by wrk (1 thread, 8
  connections, --latency), a Lua script rotating distinct tokens for every "cold" variant;
  in the server process gc.callbacks count the gen-2 collections and the longest GC pause,
  and /proc gives its RSS growth during the run;
* memory: RSS growth while N distinct tokens (100,000; fewer with --quick) pass each variant,
  each in a fresh process, with the same gen-2 / pause counts;
* the physical limit: one signature verify timed alone in a tight loop; bare / (bare + verify)
  is the best a validator that verifies every new token can reach, and rs_guard's non-crypto
  time is its cold per-request time minus bare minus that verify.

"warm" means the same token on every request (rs_guard remembers verified tokens; no peer has
such a cache, so for peers warm and cold are the same work); "cold" a token never seen before
on every request. Ratios matter, not absolute figures: client and server share the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the shared plumbing, also when imported from tests

from _harness import (  # noqa: E402  (re-exported: strictness.py and profile_cold.py use them)
    ISSUER,
    RESOURCE,
    GCWatch,
    Server,
    auth_headers,
    call_app,
    drive,
    measure_server,
    rss_mb,
    serve_main,
    start_server,
    write_auths,
)

CLIENT_ID = "bench-client"
LEEWAY = 30
# RFC 9068 §2.2: the claims a JWT access token MUST carry (nbf and scope are optional).
RFC9068_REQUIRED = ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"]
NOT_INSTALLED = "not installed (pip install -e '.[bench]')"
ALGS_ALL = ("ES256", "RS256", "PS256", "EdDSA")
ALGS_PEERS = ("ES256", "RS256")


# --------------------------------------------------------------------------------------------
# keys and tokens


class Context:
    """The IdP's keys (one per algorithm), and where its JWKS is served on loopback.

    Every variant gets its keys from here: a prebuilt public key, the JWK Set as a document
    (fetched once, as the docs of authlib and joserfc show), or the loopback JWKS URL (what
    PyJWKClient, fastmcp's JWTVerifier and the MCP verifier fetch themselves).
    """

    def __init__(self, private_jwks: dict[str, Any], jwks_url: str | None = None) -> None:
        from rs_guard.idp import IdP

        self.private_jwks = private_jwks
        self.idp = IdP(ISSUER, signing_keys=private_jwks)
        self._jwks_url = jwks_url
        self._server: contextlib.ExitStack | None = None

    @classmethod
    def create(cls) -> Context:
        from rs_guard.idp import IdP

        idp = IdP(ISSUER)
        for alg in ALGS_ALL:
            idp.keys.active(alg)
        return cls(idp.private_jwks())

    @classmethod
    def from_file(cls, path: str) -> Context:
        data = json.loads(Path(path).read_text())
        return cls(data["private_jwks"], data["jwks_url"])

    def to_file(self, path: str) -> None:
        Path(path).write_text(
            json.dumps({"private_jwks": self.private_jwks, "jwks_url": self.jwks_url})
        )

    @property
    def jwks_url(self) -> str:
        """The bundled IdP's /jwks on a loopback port (served in a thread on first use)."""
        if self._jwks_url is None:
            from rs_guard.testing import serve

            self._server = contextlib.ExitStack()
            base = self._server.enter_context(serve(self.idp.app))
            self._jwks_url = f"{base}/jwks"
        return self._jwks_url

    def close(self) -> None:
        if self._server is not None:
            self._server.close()

    def jwks(self) -> dict[str, Any]:
        return self.idp.jwks()

    def signing_key(self, alg: str) -> Any:
        return self.idp.keys.active(alg)

    def public_key(self, alg: str) -> Any:
        return self.signing_key(alg).public_key


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_compact(header: dict[str, Any], payload: dict[str, Any], key: Any, alg: str) -> str:
    """A compact JWS, built by hand so that any header or claim can be set (or left out)."""
    import jwt

    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(payload, separators=(",", ":")).encode())
    )
    if alg == "none":
        return signing_input + "."
    signature = jwt.get_algorithm_by_name(alg).sign(signing_input.encode(), key)
    return signing_input + "." + b64url(signature)


def claims_for(i: int, now: int, lifetime: int = 3600) -> dict[str, Any]:
    return {
        "iss": ISSUER,
        "sub": f"user-{i}",
        "aud": RESOURCE,
        "exp": now + lifetime,
        "iat": now,
        "nbf": now,
        "jti": f"jti-{i}-{now}",
        "client_id": CLIENT_ID,
        "scope": "items:read",
    }


def _mint_chunk(job: tuple[dict[str, Any], str, str, int, int, int]) -> list[str]:
    import jwt

    jwk, alg, kid, start, count, now = job
    key = jwt.PyJWK(jwk, algorithm=alg).key
    header = {"alg": alg, "typ": "at+jwt", "kid": kid}
    return [sign_compact(header, claims_for(i, now), key, alg) for i in range(start, start + count)]


def mint(ctx: Context, alg: str, n: int, *, offset: int = 0) -> list[str]:
    """`n` distinct access tokens signed by the IdP's `alg` key (both cores: RSA signs slowly)."""
    key = ctx.signing_key(alg)
    jwk = next(k for k in ctx.private_jwks["keys"] if k["kid"] == key.kid)
    now = int(time.time())
    chunk = max(1, -(-n // 8))
    jobs = [(jwk, alg, key.kid, offset + s, min(chunk, n - s), now) for s in range(0, n, chunk)]
    if n < 2000:
        return [t for job in jobs for t in _mint_chunk(job)]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        return [t for part in pool.map(_mint_chunk, jobs) for t in part]


# --------------------------------------------------------------------------------------------
# the variants: one Starlette app each, the same endpoint behind a different validator


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


async def hello_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    """The endpoint as a plain ASGI app, for stacks that wrap the endpoint itself."""
    await PlainTextResponse("hello")(scope, receive, send)


ROUTES = [Route("/hello", hello)]
UNAUTHORIZED = PlainTextResponse(
    "unauthorized", status_code=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
)


class VerifyMiddleware:
    """The thin middleware a service writes around a JWT library that has none of its own:
    Bearer token from the Authorization header, the library's verify call, 401 on any error."""

    def __init__(self, app: ASGIApp, verify: Callable[[str], Any], is_async: bool = False) -> None:
        self.app = app
        self.verify = verify
        self.is_async = is_async

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        auth = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                auth = value
                break
        if auth[:7].lower() != b"bearer ":
            await UNAUTHORIZED(scope, receive, send)
            return
        try:
            claims = self.verify(auth[7:].decode("latin-1"))
            if self.is_async:
                claims = await claims
            if claims is None:
                raise ValueError("refused")
        except Exception:  # every library raises its own family; any error is a refusal
            await UNAUTHORIZED(scope, receive, send)
            return
        scope["auth"] = claims
        await self.app(scope, receive, send)


def _with_verify(verify: Callable[[str], Any], *, is_async: bool = False) -> ASGIApp:
    return Starlette(
        routes=ROUTES, middleware=[Middleware(VerifyMiddleware, verify=verify, is_async=is_async)]
    )


def build_bare(ctx: Context, alg: str) -> ASGIApp:
    return Starlette(routes=ROUTES)


def build_rs_guard(ctx: Context, alg: str) -> ASGIApp:
    """rs_guard as its README configures it: issuer + resource; discovery and JWKS from the
    IdP (in-process client here: fetched once, like any JWKS cache); the default
    verified-token cache (10,000 entries) and the default algorithm allow-list."""
    from rs_guard import ResourceGuard

    return Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(
                ResourceGuard, issuer=ISSUER, resource=RESOURCE, http_client=ctx.idp.http_client()
            )
        ],
    )


def build_rs_guard_no_cache(ctx: Context, alg: str) -> ASGIApp:
    """rs_guard with its verified-token cache off (`Limits(cache_size=0)`): what the server
    grows by under cold load without the cache (benchmarks/memory.py subtracts it)."""
    from rs_guard import ResourceGuard
    from rs_guard.access_token import Limits

    return Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(
                ResourceGuard,
                issuer=ISSUER,
                resource=RESOURCE,
                http_client=ctx.idp.http_client(),
                limits=Limits(cache_size=0),
            )
        ],
    )


def _pyjwt_decode(token: str, key: Any, alg: str) -> dict[str, Any]:
    import jwt

    # PyJWT's documented access-token call: the one expected algorithm, audience, issuer, and
    # the claims that must be present (here all that RFC 9068 §2.2 requires).
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=[alg],
        audience=RESOURCE,
        issuer=ISSUER,
        leeway=LEEWAY,
        options={"require": RFC9068_REQUIRED},
    )
    return claims


def build_pyjwt(ctx: Context, alg: str) -> ASGIApp:
    import jwt  # noqa: F401

    key = ctx.public_key(alg)
    return _with_verify(lambda token: _pyjwt_decode(token, key, alg))


def build_pyjwks(ctx: Context, alg: str) -> ASGIApp:
    import jwt

    client = jwt.PyJWKClient(ctx.jwks_url)  # caches the JWK Set (5 min) and the keys (LRU)

    def verify(token: str) -> dict[str, Any]:
        return _pyjwt_decode(token, client.get_signing_key_from_jwt(token).key, alg)

    return _with_verify(verify)


def _fetch_jwks(ctx: Context) -> dict[str, Any]:
    import httpx

    doc: dict[str, Any] = httpx.get(ctx.jwks_url).json()
    return doc


def build_authlib_jose(ctx: Context, alg: str) -> ASGIApp:
    # authlib 1.6+ warns "authlib.jose is deprecated" (and installs its own "always" filter,
    # so only recording the warning keeps it off the report).
    with warnings.catch_warnings(record=True):
        from authlib.jose import JsonWebKey, JsonWebToken

    keys = JsonWebKey.import_key_set(_fetch_jwks(ctx))
    decoder = JsonWebToken([alg])
    essential = {"essential": True}
    options = {
        "iss": {"essential": True, "value": ISSUER},
        "aud": {"essential": True, "value": RESOURCE},
        **{name: essential for name in ("exp", "sub", "client_id", "iat", "jti")},
    }

    def verify(token: str) -> Any:
        claims = decoder.decode(token, keys, claims_options=options)
        claims.validate(leeway=LEEWAY)
        return claims

    return _with_verify(verify)


def build_authlib_rfc9068(ctx: Context, alg: str) -> ASGIApp:
    from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
    from joserfc.jwk import KeySet

    # Its docs: get_jwks() returns the JWKS, "statically stored ... or cached"; authlib 1.9
    # warns on a plain dict and asks for a joserfc KeySet, which is also the faster choice.
    jwks = KeySet.import_key_set(_fetch_jwks(ctx))

    class Validator(JWTBearerTokenValidator):  # type: ignore[misc]
        def get_jwks(self) -> KeySet:
            return jwks

    validator = Validator(issuer=ISSUER, resource_server=RESOURCE)

    def verify(token: str) -> Any:
        claims = validator.authenticate_token(token)
        validator.validate_token(claims, scopes=None, request=None)
        return claims

    return _with_verify(verify)


def build_joserfc(ctx: Context, alg: str) -> ASGIApp:
    from joserfc import jwt
    from joserfc.jwk import KeySet

    keys = KeySet.import_key_set(_fetch_jwks(ctx))
    essential = {"essential": True}
    registry = jwt.JWTClaimsRegistry(
        leeway=LEEWAY,
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": RESOURCE},
        **{name: essential for name in ("exp", "sub", "client_id", "iat", "jti")},
    )

    def verify(token: str) -> Any:
        decoded = jwt.decode(token, keys, algorithms=[alg])
        registry.validate(decoded.claims)
        return decoded.claims

    return _with_verify(verify)


def build_mcp(ctx: Context, alg: str) -> ASGIApp:
    """The MCP SDK's own HTTP auth stack, as its server wires it (mcp.server.lowlevel): Starlette
    AuthenticationMiddleware with the SDK's BearerAuthBackend (resource_server_url set, as
    AuthSettings.validate_token_resource does), AuthContextMiddleware, RequireAuthMiddleware
    around the endpoint; the TokenVerifier verifies the JWT with PyJWT (an SDK dependency)
    and PyJWKClient against the issuer's JWKS."""
    import jwt
    from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
    from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
    from mcp.server.auth.provider import AccessToken
    from pydantic import AnyHttpUrl
    from starlette.middleware.authentication import AuthenticationMiddleware

    client = jwt.PyJWKClient(ctx.jwks_url)

    class JWTTokenVerifier:  # the mcp.server.auth.provider.TokenVerifier protocol
        async def verify_token(self, token: str) -> AccessToken | None:
            try:
                claims = _pyjwt_decode(token, client.get_signing_key_from_jwt(token).key, alg)
                aud = claims["aud"]
                return AccessToken(
                    token=token,
                    client_id=claims["client_id"],
                    scopes=str(claims.get("scope", "")).split(),
                    expires_at=int(claims["exp"]),
                    resource=aud if isinstance(aud, str) else RESOURCE,
                    subject=claims["sub"],
                    claims=claims,
                )
            except (jwt.PyJWTError, KeyError, TypeError, ValueError):
                return None

    backend = BearerAuthBackend(JWTTokenVerifier(), resource_server_url=AnyHttpUrl(RESOURCE))
    return Starlette(
        routes=[Route("/hello", endpoint=RequireAuthMiddleware(hello_asgi, []))],
        middleware=[
            Middleware(AuthenticationMiddleware, backend=backend),
            Middleware(AuthContextMiddleware),
        ],
    )


def build_fastmcp(ctx: Context, alg: str) -> ASGIApp:
    """fastmcp's JWTVerifier (jwks_uri, issuer, audience, algorithm: its documented options) in
    fastmcp's own HTTP auth stack, as fastmcp.server.http wires it: the provider's
    get_middleware() and fastmcp's RequireAuthMiddleware around the endpoint."""
    import logging

    from fastmcp.server.auth.middleware import RequireAuthMiddleware
    from fastmcp.server.auth.providers.jwt import JWTVerifier

    # It logs every refusal at INFO (to a rich console): keep the strictness report readable.
    logging.getLogger("fastmcp").setLevel(logging.ERROR)

    verifier = JWTVerifier(jwks_uri=ctx.jwks_url, issuer=ISSUER, audience=RESOURCE, algorithm=alg)
    endpoint = RequireAuthMiddleware(
        hello_asgi, verifier.required_scopes, None, verifier.challenge_scopes
    )
    return Starlette(
        routes=[Route("/hello", endpoint=endpoint)], middleware=verifier.get_middleware()
    )


@dataclass(frozen=True)
class Peer:
    key: str
    label: str
    build: Callable[[Context, str], ASGIApp]
    algs: tuple[str, ...] = ALGS_PEERS
    needs: str = ""  # the module whose absence means "not installed"


# Every peer runs every algorithm it supports; authlib's RFC 9068 validator takes no algorithm
# option and its default joserfc registry refuses PS256 and EdDSA, so it runs ES256/RS256.
PEERS: list[Peer] = [
    Peer("pyjwt", "PyJWT, prebuilt key", build_pyjwt, ALGS_ALL, "jwt"),
    Peer("pyjwks", "PyJWT + PyJWKClient", build_pyjwks, ALGS_ALL, "jwt"),
    Peer("authlib", "authlib.jose JsonWebToken", build_authlib_jose, ALGS_ALL, "authlib"),
    Peer("authlib9068", "authlib RFC 9068 validator", build_authlib_rfc9068, ALGS_PEERS, "authlib"),
    Peer("joserfc", "joserfc jwt + claims registry", build_joserfc, ALGS_ALL, "joserfc"),
    Peer("mcp", "MCP SDK bearer stack", build_mcp, ALGS_ALL, "mcp"),
    Peer("fastmcp", "fastmcp JWTVerifier + HTTP stack", build_fastmcp, ALGS_ALL, "fastmcp"),
]
BUILDERS: dict[str, Callable[[Context, str], ASGIApp]] = {
    "bare": build_bare,
    "rs_guard": build_rs_guard,
    "rs_guard_no_cache": build_rs_guard_no_cache,
    **{p.key: p.build for p in PEERS},
}


def installed(module: str) -> bool:
    import importlib.util

    if not module:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class Variant:
    """One row: a builder, an algorithm, and whether each request brings a new token."""

    builder: str
    alg: str
    label: str
    cold: bool  # a token never seen before on every request
    missing: bool = False

    @property
    def name(self) -> str:
        return f"{self.alg} {self.label}" if self.builder != "bare" else self.label


def plan(algs_all: Sequence[str], algs_peers: Sequence[str]) -> list[Variant]:
    rows = [Variant("bare", "ES256", "bare Starlette endpoint", False)]
    for alg in algs_all:
        rows.append(Variant("rs_guard", alg, "rs_guard warm (reused token)", False))
        rows.append(Variant("rs_guard", alg, "rs_guard cold (new token each request)", True))
        for peer in PEERS:
            if alg in peer.algs and alg in algs_peers:
                rows.append(
                    Variant(peer.key, alg, peer.label, True, missing=not installed(peer.needs))
                )
    return rows


@dataclass
class Row:
    variant: Variant
    rates: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    gc: list[dict[str, Any]] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # server CPU us per request (uvicorn)
    notes: set[str] = field(default_factory=set)
    error: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.rates) if self.rates else float("nan")


async def run_inprocess(
    ctx: Context, rows: list[Row], pools: dict[str, Pools], args: argparse.Namespace
) -> None:
    warm_apps: dict[tuple[str, str], ASGIApp] = {}
    for row in rows:  # build once (peers fetch their JWKS); warm up every code path
        v = row.variant
        if v.missing:
            row.error = NOT_INSTALLED
            continue
        try:
            app = BUILDERS[v.builder](ctx, v.alg)
            for auth in pools[v.alg].warmup[:20]:
                if (status := await call_app(app, auth)) != 200:
                    raise RuntimeError(f"warm-up answered {status}")
        except Exception as exc:
            row.error = f"failed: {type(exc).__name__}: {exc}"[:120]
            continue
        warm_apps[(v.builder, v.alg) if not v.cold else (v.builder + "/cold", v.alg)] = app
    for _ in range(args.rounds):
        for row in rows:
            v = row.variant
            if row.error:
                continue
            pool = pools[v.alg]
            # Garbage left by the previous variant (an earlier rs_guard's evicted cache, in
            # reference cycles) is collected here, untimed, not on the next variant's clock.
            gc.collect()
            if v.builder == "rs_guard" and v.cold:
                # A fresh guard each round (an empty verified-token cache), warmed up on tokens
                # of its own: every measured request brings a token it never saw.
                app = build_rs_guard(ctx, v.alg)
                for auth in pool.warmup[:50]:
                    await call_app(app, auth)
                rate, n = await drive(app, pool.cold, seconds=args.seconds, limit=len(pool.cold))
                if n >= len(pool.cold):
                    row.notes.add("token pool exhausted: shorter round")
            else:
                app = warm_apps[(v.builder, v.alg) if not v.cold else (v.builder + "/cold", v.alg)]
                auths = pool.cold if v.cold else pool.one
                rate, _ = await drive(app, auths, seconds=args.seconds, limit=args.max_requests)
            row.rates.append(rate)


# --------------------------------------------------------------------------------------------
# uvicorn + wrk


def server_main(args: argparse.Namespace) -> None:
    """A server process: one variant under uvicorn on the socket the driver bound."""
    ctx = Context.from_file(args.ctx)
    serve_main(BUILDERS[args.serve](ctx, args.alg), args.fd)
    ctx.close()


def start_variant(variant: Variant, ctx_file: str) -> Server:
    return start_server(
        HERE / "peers.py",
        ["--serve", variant.builder, "--alg", variant.alg, "--ctx", ctx_file],
    )


def run_uvicorn(
    rows: list[Row], pools: dict[str, Pools], ctx_file: str, tmp: str, args: argparse.Namespace
) -> None:
    files: dict[tuple[str, bool], str] = {}
    for alg, pool in pools.items():
        for cold, tokens in ((True, pool.cold_tokens), (False, pool.one_token)):
            path = os.path.join(tmp, f"{alg}-{'cold' if cold else 'one'}.txt")
            files[(alg, cold)] = write_auths(path, auth_headers(tokens))
    active = [r for r in rows if not r.error]
    for _ in range(args.uvicorn_rounds):
        # Start every server of the round first (in parallel, nothing measured meanwhile);
        # each variant then runs alone, in a process that served nothing before.
        servers = {id(r): start_variant(r.variant, ctx_file) for r in active}
        try:
            for row in active:
                if not servers[id(row)].ready():
                    row.error = "server did not start"
            for row in active:
                if row.error:
                    continue
                v = row.variant
                server = servers[id(row)]
                pool = pools[v.alg]
                try:
                    out = measure_server(
                        server,
                        files[(v.alg, v.cold)],
                        pool.warmup[:30],
                        args.wrk_seconds,
                        args.connections,
                    )
                except RuntimeError as exc:
                    row.error = str(exc)
                    continue
                stats = out["stats"]
                if "cpu_us" in out:
                    row.cpu.append(out["cpu_us"])
                server.stop()
                if out["non2xx"]:
                    row.notes.add("non-2xx answers under wrk")
                if (
                    v.cold
                    and v.builder == "rs_guard"
                    and out.get("requests", 0) > len(pool.cold_tokens)
                ):
                    row.notes.add("token list wrapped: partly warm")
                row.rates.append(out["rate"])
                row.p50.append(out.get("p50", float("nan")))
                row.p99.append(out.get("p99", float("nan")))
                row.gc.append(stats)
                row.rss.append(stats["rss_growth_mb"])
        finally:
            for server in servers.values():
                server.stop()


# --------------------------------------------------------------------------------------------
# memory over N distinct tokens, one fresh process per variant


def memory_main(args: argparse.Namespace) -> None:
    ctx = Context.from_file(args.ctx)
    tokens = Path(args.tokens_file).read_text().split()
    warm, tokens = auth_headers(tokens[:200]), auth_headers(tokens[200 : 200 + args.n])
    app = BUILDERS[args.memory](ctx, args.alg)

    async def go() -> dict[str, Any]:
        for auth in warm:
            await call_app(app, auth)
        gc.collect()
        before = rss_mb()
        watch = GCWatch()
        gc.callbacks.append(watch)
        rate, n = await drive(app, tokens, seconds=1e9, limit=len(tokens))
        gc.callbacks.remove(watch)
        return {**watch.summary(), "rss_growth_mb": rss_mb() - before, "rate": rate, "n": n}

    print(json.dumps(asyncio.run(go())), flush=True)
    ctx.close()


def run_memory(
    rows: list[Variant], ctx_file: str, token_file: str, n: int
) -> list[tuple[Variant, dict[str, Any] | str]]:
    out: list[tuple[Variant, dict[str, Any] | str]] = []
    for v in rows:
        if v.missing:
            out.append((v, NOT_INSTALLED))
            continue
        proc = subprocess.run(
            [
                sys.executable,
                str(HERE / "peers.py"),
                "--memory",
                v.builder,
                "--alg",
                v.alg,
                "--ctx",
                ctx_file,
                "--tokens-file",
                token_file,
                "--n",
                str(n),
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            out.append((v, f"failed: {proc.stderr.strip().splitlines()[-1:]}"))
        else:
            out.append((v, json.loads(proc.stdout.strip().splitlines()[-1])))
    return out


# --------------------------------------------------------------------------------------------
# the physical limit: one signature verify alone


def verify_cost_us(ctx: Context, alg: str, token: str, loops: int) -> float:
    """Median microseconds of the bare `cryptography` verify of one token's signature."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    head, payload, sig = token.split(".")
    data = f"{head}.{payload}".encode()
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    key = ctx.public_key(alg)
    if alg == "ES256":
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        scheme = ec.ECDSA(hashes.SHA256())

        def once() -> None:
            key.verify(der, data, scheme)
    elif alg == "RS256":
        pkcs, sha = padding.PKCS1v15(), hashes.SHA256()

        def once() -> None:
            key.verify(raw, data, pkcs, sha)
    elif alg == "PS256":
        pss, sha = (
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
            hashes.SHA256(),
        )

        def once() -> None:
            key.verify(raw, data, pss, sha)
    else:

        def once() -> None:
            key.verify(raw, data)

    samples = []
    for _ in range(5):
        start = time.thread_time()  # CPU time, like the in-process rates
        for _ in range(loops):
            once()
        samples.append((time.thread_time() - start) / loops * 1e6)
    return statistics.median(samples)


# --------------------------------------------------------------------------------------------
# report


def fmt_rate(row: Row) -> str:
    if row.error:
        return row.error
    if not row.rates:
        return "-"
    lo, hi = min(row.rates), max(row.rates)
    return f"{row.median:8.0f} [{lo:.0f}-{hi:.0f}]"


def print_table(title: str, rows: list[Row], *, uvicorn: bool) -> None:
    print(f"\n{title}")
    bare = next(r for r in rows if r.variant.builder == "bare").median
    cold = {
        r.variant.alg: r.median for r in rows if r.variant.builder == "rs_guard" and r.variant.cold
    }
    cpu_of = {
        ("bare" if r.variant.builder == "bare" else r.variant.alg): statistics.median(r.cpu)
        for r in rows
        if r.cpu
        and (r.variant.builder == "bare" or (r.variant.builder == "rs_guard" and r.variant.cold))
    }
    head = f"  {'variant':56s} {'req/s median [min-max]':>26s} {'us/req':>7s} {'/bare':>6s} {'/rsg cold':>9s}"
    if uvicorn:
        head += (
            f" {'srv CPU us/req':>14s} {'CPU /bare':>9s} {'CPU /rsg':>8s} {'p50 ms':>7s} {'p99 ms':>7s} {'gen2':>5s} {'max GC ms':>9s}"
            f" {'RSS +MB':>7s}"
        )
    print(head)
    for row in rows:
        v = row.variant
        line = f"  {v.name:56s} {fmt_rate(row):>26s}"
        if row.rates and not row.error:
            rate = row.median
            rel = rate / cold[v.alg] if v.alg in cold and v.builder != "bare" else float("nan")
            line += f" {1e6 / rate:7.1f} {rate / bare:6.2f} {rel:9.2f}"
            if uvicorn:
                gen2 = statistics.median([g["gen2"] for g in row.gc]) if row.gc else float("nan")
                pause = max(g["longest_ms"] for g in row.gc) if row.gc else float("nan")
                cpu = statistics.median(row.cpu) if row.cpu else float("nan")
                # The same ratios from the server's CPU time per request: on a shared machine
                # these hold where requests/s (wall time) move with the neighbours' load.
                cpu_bare = cpu_of.get("bare", float("nan"))
                cpu_rsg = cpu_of.get(v.alg, float("nan")) if v.builder != "bare" else float("nan")
                line += (
                    f" {cpu:14.1f} {cpu_bare / cpu:9.2f} {cpu_rsg / cpu:8.2f}"
                    f" {statistics.median(row.p50):7.2f} {statistics.median(row.p99):7.2f}"
                    f" {gen2:5.0f} {pause:9.1f} {statistics.median(row.rss):7.1f}"
                )
        if row.notes:
            line += "  (" + "; ".join(sorted(row.notes)) + ")"
        print(line)


def print_limits(rows: list[Row], verify: dict[str, float]) -> None:
    bare = next(r for r in rows if r.variant.builder == "bare").median
    t_bare = 1e6 / bare
    print(f"\nphysical limit and rs_guard's own cost (in-process; bare = {t_bare:.1f} us/request):")
    for alg, t_verify in verify.items():
        warm = next(
            (
                r
                for r in rows
                if r.variant.alg == alg
                and r.variant.builder == "rs_guard"
                and not r.variant.cold
                and r.rates
            ),
            None,
        )
        cold = next(
            (
                r
                for r in rows
                if r.variant.alg == alg
                and r.variant.builder == "rs_guard"
                and r.variant.cold
                and r.rates
            ),
            None,
        )
        peers = [
            r
            for r in rows
            if r.variant.alg == alg and r.variant.builder not in ("bare", "rs_guard") and r.rates
        ]
        limit = bare * t_bare / (t_bare + t_verify)  # requests/s of bare + one verify
        line = f"  {alg}: verify alone {t_verify:6.1f} us; limit bare/(bare+verify) = {limit / bare:.2f}x of bare"
        if cold:
            t_cold = 1e6 / cold.median
            line += (
                f"; rs_guard cold reaches {cold.median / limit:.2f} of the limit,"
                f" non-crypto time beyond bare {t_cold - t_bare - t_verify:5.1f} us (target <= 40)"
            )
        if warm:
            line += f"; warm adds {1e6 / warm.median - t_bare:4.1f} us (target <= 5)"
        print(line)
        if peers and cold:
            best = max(peers, key=lambda r: r.median)
            line = f"         fastest peer: {best.variant.label} at {best.median / cold.median:.2f}x rs_guard cold"
            if warm:
                line += f"; rs_guard warm is {warm.median / best.median:.1f}x that peer"
            print(line)


def print_memory(results: list[tuple[Variant, dict[str, Any] | str]], n: int) -> None:
    print(
        f"\nmemory: {n} distinct ES256 tokens through each variant in a fresh process (in-process calls):"
    )
    print(
        f"  {'variant':56s} {'RSS +MB':>8s} {'gen2':>5s} {'max GC ms':>9s} {'GC total ms':>11s} {'req/s':>8s}"
    )
    for v, result in results:
        if isinstance(result, str):
            print(f"  {v.name:56s} {result}")
        else:
            print(
                f"  {v.name:56s} {result['rss_growth_mb']:8.1f} {result['gen2']:5d} {result['longest_ms']:9.1f}"
                f" {result['total_ms']:11.0f} {result['rate']:8.0f}"
            )


@dataclass
class Pools:
    cold_tokens: list[str]
    warmup_tokens: list[str]

    def __post_init__(self) -> None:
        self.cold = auth_headers(self.cold_tokens)
        self.warmup = auth_headers(self.warmup_tokens)
        self.one_token = self.cold_tokens[:1]
        self.one = self.cold[:1]


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import platform

    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()} {platform.release()}"


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in (
        "rs_guard",
        "starlette",
        "uvicorn",
        "cryptography",
        "pyjwt",
        "authlib",
        "joserfc",
        "mcp",
        "fastmcp",
    ):
        try:
            out.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            out.append(f"{name} -")
    return ", ".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="shorter runs, ES256/RS256 only under uvicorn"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="a few hundred requests: checks that it runs"
    )
    parser.add_argument("--no-uvicorn", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--rounds", type=int, help="in-process rounds")
    parser.add_argument("--seconds", type=float, help="in-process seconds per variant per round")
    parser.add_argument("--uvicorn-rounds", type=int)
    parser.add_argument("--wrk-seconds", type=int)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--memory-tokens", type=int)
    # internal: the server and memory processes
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--memory", help=argparse.SUPPRESS)
    parser.add_argument("--alg", help=argparse.SUPPRESS)
    parser.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ctx", help=argparse.SUPPRESS)
    parser.add_argument("--tokens-file", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        server_main(args)
        return 0
    if args.memory:
        memory_main(args)
        return 0

    # mode defaults: (rounds, seconds, uvicorn rounds, wrk seconds, memory tokens, cold pool)
    if args.smoke:
        defaults = (1, 0.05, 1, 1, 300, 400)
    elif args.quick:
        defaults = (3, 0.25, 1, 1, 10_000, 14_000)
    else:
        # 25,000 distinct tokens per algorithm outlast 2 s of rs_guard cold under wrk (a list
        # that wraps is flagged); RSA signing is what minting costs.
        defaults = (7, 0.4, 3, 2, 100_000, 25_000)
    args.rounds = args.rounds or defaults[0]
    args.seconds = args.seconds or defaults[1]
    args.uvicorn_rounds = args.uvicorn_rounds or defaults[2]
    args.wrk_seconds = args.wrk_seconds or defaults[3]
    args.memory_tokens = args.memory_tokens or defaults[4]
    args.max_requests = 100 if args.smoke else 10**9
    cold_pool = defaults[5]
    algs_all = ALGS_PEERS[:1] if args.smoke else ALGS_ALL
    wrk = shutil.which("wrk")
    t0 = time.perf_counter()
    print(f"peers benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {machine()}")
    print(f"versions: {versions()}")

    ctx = Context.create()
    try:
        pools: dict[str, Pools] = {}
        for alg in algs_all:
            n = cold_pool + 300
            if alg == "ES256":
                n = max(n, args.memory_tokens + 300)
            tokens = mint(ctx, alg, n)
            pools[alg] = Pools(tokens[300:], tokens[:300])
        print(
            f"minted {sum(len(p.cold_tokens) + 300 for p in pools.values())} tokens ({', '.join(pools)}) in {time.perf_counter() - t0:.0f}s"
        )

        rows = [Row(v) for v in plan(algs_all, algs_all)]
        asyncio.run(run_inprocess(ctx, rows, pools, args))
        print_table(
            f"in-process (ASGI app called directly; median of {args.rounds} interleaved rounds of {args.seconds}s),"
            " requests per second of CPU time:",
            rows,
            uvicorn=False,
        )
        verify = {
            alg: verify_cost_us(ctx, alg, pools[alg].cold_tokens[0], 200 if args.smoke else 2000)
            for alg in algs_all
        }
        print_limits(rows, verify)

        with tempfile.TemporaryDirectory() as tmp:
            ctx_file = os.path.join(tmp, "ctx.json")
            ctx.to_file(ctx_file)
            if args.no_uvicorn:
                pass
            elif not wrk:
                print("\nuvicorn + wrk: skipped, wrk is not installed (apt-get install wrk)")
            else:
                ualgs = ALGS_PEERS[:1] if args.smoke else (ALGS_PEERS if args.quick else ALGS_ALL)
                urows = [Row(v) for v in plan(ualgs, ualgs)]
                if args.smoke:
                    urows = [r for r in urows if r.variant.builder in ("bare", "rs_guard", "pyjwt")]
                for row in urows:
                    if row.variant.missing:
                        row.error = NOT_INSTALLED
                run_uvicorn(urows, {a: pools[a] for a in ualgs}, ctx_file, tmp, args)
                print_table(
                    f"uvicorn on loopback (1 worker, wrk -t1 -c{args.connections} -d{args.wrk_seconds}s --latency;"
                    f" median of {args.uvicorn_rounds} interleaved rounds; GC and RSS in the server process), requests/s:",
                    urows,
                    uvicorn=True,
                )
            if not args.no_memory:
                token_file = os.path.join(tmp, "memory-tokens.txt")
                es = pools["ES256"]
                Path(token_file).write_text(
                    "\n".join(es.warmup_tokens[:200] + es.cold_tokens[: args.memory_tokens]) + "\n"
                )
                mrows = [v for v in plan(("ES256",), ("ES256",)) if v.cold or v.builder == "bare"]
                print_memory(
                    run_memory(mrows, ctx_file, token_file, args.memory_tokens), args.memory_tokens
                )
    finally:
        ctx.close()
    print(f"\ntotal {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
