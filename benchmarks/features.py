"""What every feature on the warm path costs, side by side in one run (issue #16: "every other
feature on the hot path pays for itself in the same benchmark").

    .venv/bin/python benchmarks/features.py [--quick] [--no-uvicorn]

Every row protects the same Starlette `/hello` endpoint with `ResourceGuard` (issuer + resource,
everything else default) plus one feature, and sends the same reused token (a verified-token
cache hit: the warm path), next to the bare endpoint, plain rs_guard, and a second guard
configured exactly like the plain one (its "cost" is the noise floor of the run):

* profile="auth0": a token profile (its rules run on the cold path; the row shows the warm path
  pays nothing for them);
* a route requirement (`requirements={"/hello": Requirement(scopes=...)}`) and a scope
  hierarchy (implied scopes remembered on the cached token);
* PPID translation with a warm translator cache (`subject_translator=PPIDTranslator(...)`);
* observers: `Counters`, the OpenTelemetry `MetricsObserver` (when the `otel` extra is
  installed), and the `rs_guard` logger at DEBUG with no observer;
* DPoP: `dpop=DPoPVerifier(...)` with a Bearer token, and a DPoP-bound token with a fresh
  proof on every request (a proof is a signed JWT: its ES256 verify is most of that row);
* `revocations=MemoryRevocations()` holding 10,000 other revoked subjects.

In-process, the ASGI app is called directly (rates per second of CPU time, the shared harness
of benchmarks/_harness.py); through uvicorn + wrk each row runs in a fresh server process (the
server's CPU µs per request from /proc, p50/p99 from wrk). Rounds are interleaved; each figure
is the median with the min-max of the rounds, and "+µs" columns are medians of the per-round
differences to plain rs_guard and to bare.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from rs_guard import ResourceGuard
from rs_guard.idp import IdP
from rs_guard.policy import Requirement

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _harness import (  # noqa: E402
    ISSUER,
    RESOURCE,
    call_app,
    drive,
    measure_server,
    serve_main,
    spread,
    start_server,
    write_auths,
)

URL = "https://api.bench/hello"  # what a DPoP proof's htu names (the harness's scope)


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


class Setup:
    """One IdP with what every feature needs: a pairwise client ("web", whose tokens the rows
    send) and this resource's own client ("rs", allowed to translate PPIDs); the warm token,
    and a DPoP key with a token bound to it."""

    def __init__(self, signing_keys: dict[str, Any] | None = None) -> None:
        from rs_guard.dpop import DPoPKey

        self.idp = IdP(ISSUER, signing_keys=signing_keys)
        self.idp.register_client(
            "web", "web-secret", redirect_uris=["https://web.example/cb"], subject_type="pairwise"
        )
        self.idp.register_client(
            "rs",
            "rs-secret",
            subject_type="pairwise",
            sector_identifier_uri="https://api.bench/sector.json",
        )
        self.idp.ppid_policy.allow("rs")
        self.idp.add_user("user-0")
        self.http = self.idp.http_client()
        self.token = self.idp.issue_access_token(
            "user-0", client_id="web", audience=RESOURCE, scope="items:read", lifetime=3600
        )
        self.dpop_key = DPoPKey()
        self.bound = self.idp.issue_access_token(
            "user-0",
            client_id="web",
            audience=RESOURCE,
            scope="items:read",
            lifetime=3600,
            claims={"cnf": {"jkt": self.dpop_key.jkt}},
        )

    def proofs(self, n: int) -> list[list[tuple[bytes, bytes]]]:
        """`n` fresh DPoP proofs (the client's work, signed outside any timing)."""
        key, bound = self.dpop_key, self.bound
        return [[(b"dpop", key.proof("GET", URL, access_token=bound).encode())] for _ in range(n)]


def guarded(setup: Setup, **options: Any) -> ASGIApp:
    return Starlette(
        routes=[Route("/hello", hello)],
        middleware=[
            Middleware(
                ResourceGuard,
                issuer=ISSUER,
                resource=RESOURCE,
                http_client=setup.http,
                **options,
            )
        ],
    )


def _ppid(setup: Setup) -> ASGIApp:
    from rs_guard.ppid import PPIDTranslator

    translator = PPIDTranslator(
        issuer=ISSUER, client_id="rs", client_secret="rs-secret", http_client=setup.http
    )
    return guarded(setup, subject_translator=translator)


def _counters(setup: Setup) -> ASGIApp:
    from rs_guard.observe import Counters

    return guarded(setup, observer=Counters())


def _otel(setup: Setup) -> ASGIApp:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from rs_guard.otel import MetricsObserver

    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return guarded(setup, observer=MetricsObserver(provider))


def _dpop(setup: Setup) -> ASGIApp:
    from rs_guard.dpop import DPoPVerifier
    from rs_guard.events import MemoryReplayStore

    # A store large enough that no round fills it (a full store refuses rather than evicts).
    return guarded(setup, dpop=DPoPVerifier(replay_store=MemoryReplayStore(10_000_000)))


def _revocations(setup: Setup) -> ASGIApp:
    from rs_guard.ssf import MemoryRevocations

    store = MemoryRevocations(max_entries=10_001)
    now = time.time()
    for i in range(10_000):  # other subjects: the look-up is a real probe that misses
        store.apply(f"someone-else-{i}", "issued", now)
    return guarded(setup, revocations=store)


@contextlib.contextmanager
def debug_logging() -> Iterator[None]:
    """The `rs_guard` logger at DEBUG into a NullHandler, for one row's measurement."""
    logger = logging.getLogger("rs_guard")
    handler = logging.NullHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.setLevel(logging.NOTSET)
        logger.removeHandler(handler)


@dataclass
class Feature:
    key: str
    label: str
    build: Callable[[Setup], ASGIApp]
    bound: bool = False  # sends the DPoP-bound token with a fresh proof per request
    logging: bool = False  # measured with the rs_guard logger at DEBUG
    needs: str = ""  # a module that must be importable
    uvicorn: bool = True


FEATURES = [
    Feature(
        "bare", "bare Starlette endpoint", lambda s: Starlette(routes=[Route("/hello", hello)])
    ),
    Feature("plain", "rs_guard warm (plain)", guarded),
    Feature("twin", "rs_guard warm, identical twin (noise floor)", guarded),
    Feature("profile", "profile='auth0'", lambda s: guarded(s, profile="auth0")),
    Feature(
        "requirement",
        "route requirement (scope items:read)",
        lambda s: guarded(s, requirements={"/hello": Requirement(scopes=("items:read",))}),
    ),
    Feature(
        "hierarchy",
        "scope hierarchy (items:read implies items:list)",
        lambda s: guarded(s, scope_hierarchy={"items:read": ["items:list"]}),
    ),
    Feature("ppid", "PPID translation, warm translator cache", _ppid),
    Feature("counters", "observer=Counters()", _counters),
    Feature("otel", "observer=MetricsObserver (OpenTelemetry)", _otel, needs="opentelemetry.sdk"),
    Feature("debuglog", "rs_guard logger at DEBUG", guarded, logging=True, uvicorn=False),
    Feature("dpop_bearer", "dpop=DPoPVerifier(), Bearer token", _dpop),
    Feature("dpop_bound", "DPoP-bound token, fresh proof each request", _dpop, bound=True),
    Feature("revocations", "revocations= (10,000 others revoked)", _revocations),
]
BY_KEY = {f.key: f for f in FEATURES}


def available(feature: Feature) -> bool:
    if not feature.needs:
        return True
    try:
        __import__(feature.needs)
    except ImportError:
        return False
    return True


@dataclass
class Row:
    feature: Feature
    us: list[float] = field(default_factory=list)  # µs per request, per round
    cpu: list[float] = field(default_factory=list)  # uvicorn: server CPU µs per request
    rate: list[float] = field(default_factory=list)  # uvicorn: wrk requests/s
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    error: str = ""
    baseline: bool = False  # uvicorn: served by the --baseline copy of rs_guard

    @property
    def label(self) -> str:
        return self.feature.label + (" [baseline]" if self.baseline else "")


def added(row: list[float], base: list[float]) -> list[float]:
    """Per-round differences (the rounds are paired: each ran both, close in time)."""
    return [a - b for a, b in zip(row, base, strict=False)]


# --------------------------------------------------------------------------------------------
# in-process


class InProcess:
    """Every row's app, built and warmed up once; `round()` measures each row once."""

    def __init__(self, setup: Setup, args: argparse.Namespace) -> None:
        self.setup, self.args = setup, args
        self.apps: dict[str, ASGIApp] = {}
        self.errors: dict[str, str] = {}
        self.auth = f"Bearer {setup.token}".encode()
        self.dpop_auth = f"DPoP {setup.bound}".encode()

    async def prepare(self) -> None:
        for f in FEATURES:
            if not available(f):
                self.errors[f.key] = f"not installed ({f.needs})"
                continue
            app = f.build(self.setup)
            for _ in range(50):  # discovery, JWKS, the token cached, the PPID translated
                extra = self.setup.proofs(1)[0] if f.bound else ()
                status = await call_app(app, self.dpop_auth if f.bound else self.auth, extra)
                if status != 200:
                    raise SystemExit(f"{f.label}: warm-up answered {status}")
            self.apps[f.key] = app

    async def round(self) -> dict[str, float]:
        """µs per request of every row, once each."""
        out: dict[str, float] = {}
        for f in FEATURES:
            if f.key not in self.apps:
                continue
            extra = self.setup.proofs(self.args.proofs) if f.bound else None
            gc.collect()  # untimed: no row pays for garbage an earlier one left
            with debug_logging() if f.logging else contextlib.nullcontext():
                rate, _ = await drive(
                    self.apps[f.key],
                    [self.dpop_auth if f.bound else self.auth],
                    seconds=self.args.seconds,
                    limit=10**9,
                    extra=extra,
                )
            out[f.key] = 1e6 / rate
        return out


def inprocess_child(args: argparse.Namespace) -> None:
    """The --baseline side of the in-process table: the same rows on another rs_guard, one
    round per `round` line on stdin (JSON on stdout), so the rounds interleave with ours."""

    async def go() -> None:
        bench = InProcess(Setup(), args)
        await bench.prepare()
        print(json.dumps({"ready": True, "errors": bench.errors}), flush=True)
        for line in sys.stdin:
            if line.strip() == "round":
                print(json.dumps(await bench.round()), flush=True)

    asyncio.run(go())


async def run_inprocess(setup: Setup, args: argparse.Namespace) -> list[Row]:
    bench = InProcess(setup, args)
    await bench.prepare()
    rows = [Row(f, error=bench.errors.get(f.key, "")) for f in FEATURES]
    child = None
    if args.baseline:
        rows += [Row(f, baseline=True) for f in FEATURES]
        child = subprocess.Popen(
            [sys.executable, str(HERE / "features.py"), "--inprocess-child", *args.passed],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": args.baseline},
        )
        assert child.stdin is not None and child.stdout is not None
        hello = json.loads(child.stdout.readline())
        for row in rows:
            if row.baseline:
                row.error = hello["errors"].get(row.feature.key, "")
    try:
        for _ in range(args.rounds):
            results = {False: await bench.round()}
            if child is not None:
                assert child.stdin is not None and child.stdout is not None
                child.stdin.write("round\n")
                child.stdin.flush()
                results[True] = json.loads(child.stdout.readline())
            for row in rows:
                us = results[row.baseline].get(row.feature.key)
                if us is not None:
                    row.us.append(us)
    finally:
        if child is not None:
            assert child.stdin is not None
            child.stdin.close()
            child.wait(timeout=30)
    return rows


def print_inprocess(rows: list[Row], args: argparse.Namespace) -> None:
    by = {(r.feature.key, r.baseline): r for r in rows}
    print(
        f"\nin-process, warm token (ASGI app called directly; {args.rounds} interleaved rounds of "
        f"{args.seconds}s; µs per request of CPU time, median [min-max]; +µs = median of the "
        "per-round differences):"
    )
    print(f"  {'row':64} {'us/request':>22} {'+us vs plain':>22} {'+us vs bare':>12} {'/bare':>6}")
    for row in rows:
        if row.error:
            print(f"  {row.label:64} {row.error}")
            continue
        bare, plain = by[("bare", row.baseline)].us, by[("plain", row.baseline)].us
        vs_plain = spread(added(row.us, plain), "+.2f") if row.feature.key != "bare" else ""
        vs_bare = statistics.median(added(row.us, bare))
        ratio = statistics.median(bare) / statistics.median(row.us)
        print(
            f"  {row.label:64} {spread(row.us, '.2f'):>22} {vs_plain:>22} "
            f"{vs_bare:+12.2f} {ratio:6.2f}"
        )


# --------------------------------------------------------------------------------------------
# uvicorn + wrk


def server_main(args: argparse.Namespace) -> None:
    """A server process: one row's app; its `ready` line names the Authorization value to send
    (the IdP is rebuilt from the same keys, so its pairwise subjects are its own)."""
    setup = Setup(json.loads(Path(args.keys).read_text()))
    app = BY_KEY[args.serve].build(setup)
    serve_main(app, args.fd, banner=f"Bearer {setup.token}")


def run_uvicorn(setup: Setup, args: argparse.Namespace, tmp: str) -> list[Row]:
    keys = os.path.join(tmp, "keys.json")
    Path(keys).write_text(json.dumps(setup.idp.private_jwks()))
    rows = [Row(f) for f in FEATURES if f.uvicorn and not f.bound]
    if args.baseline:
        rows += [Row(r.feature, baseline=True) for r in rows if r.feature.key != "bare"]
    for row in rows:
        if not available(row.feature):
            row.error = f"not installed ({row.feature.needs})"
    for _ in range(args.uvicorn_rounds):
        for row in rows:
            if row.error:
                continue
            server = start_server(
                HERE / "features.py", ["--serve", row.feature.key, "--keys", keys]
            )
            try:
                if not server.ready():
                    row.error = "server did not start"
                    continue
                auth = server.banner.encode()
                auths = write_auths(os.path.join(tmp, "auths.txt"), [auth])
                out = measure_server(server, auths, [auth] * 30, args.wrk_seconds, args.connections)
            finally:
                server.stop()
            if out["non2xx"]:
                row.error = "non-2xx answers under wrk"
                continue
            row.rate.append(out["rate"])
            row.cpu.append(out.get("cpu_us", float("nan")))
            row.p50.append(out.get("p50", float("nan")))
            row.p99.append(out.get("p99", float("nan")))
    return rows


def print_uvicorn(rows: list[Row], args: argparse.Namespace) -> None:
    by = {(r.feature.key, r.baseline): r for r in rows}
    bare = by[("bare", False)]
    print(
        f"\nuvicorn on loopback, warm token (1 worker, wrk -t1 -c{args.connections} "
        f"-d{args.wrk_seconds}s --latency; a fresh server process per row and round; "
        f"{args.uvicorn_rounds} interleaved rounds; median [min-max]; the server's CPU per "
        "request, from /proc, is the robust figure, wall-clock req/s the noisy one):"
    )
    print(
        f"  {'row':64} {'req/s':>20} {'/bare':>6} {'srv CPU us/req':>20} {'+us vs plain':>13} "
        f"{'+us vs bare':>12} {'CPU /bare':>9} {'p50 ms':>7} {'p99 ms':>7}"
    )
    for row in rows:
        if row.error:
            print(f"  {row.label:64} {row.error}")
            continue
        if not row.rate:
            continue
        plain = by[("plain", row.baseline)]
        rate_ratio = statistics.median(row.rate) / statistics.median(bare.rate)
        cpu_ratio = statistics.median(bare.cpu) / statistics.median(row.cpu)
        vs_plain = statistics.median(added(row.cpu, plain.cpu))
        vs_bare = statistics.median(added(row.cpu, bare.cpu))
        print(
            f"  {row.label:64} {spread(row.rate, '.0f'):>20} {rate_ratio:6.2f} "
            f"{spread(row.cpu, '.1f'):>20} {vs_plain:+13.1f} {vs_bare:+12.1f} {cpu_ratio:9.2f} "
            f"{statistics.median(row.p50):7.2f} {statistics.median(row.p99):7.2f}"
        )


# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shorter, noisier")
    parser.add_argument("--no-uvicorn", action="store_true")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--uvicorn-rounds", type=int)
    parser.add_argument("--wrk-seconds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--only", help="comma-separated row keys (bare and plain always run): " + ", ".join(BY_KEY)
    )
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="a directory holding another rs_guard package (e.g. `git archive main rs_guard`): "
        "every uvicorn row also runs on it, interleaved, for a before/after in one run",
    )
    parser.add_argument("--inprocess-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # internal: a server process
    parser.add_argument("--keys", help=argparse.SUPPRESS)
    parser.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        server_main(args)
        return 0
    if args.only:
        keep = {"bare", "plain", *args.only.split(",")}
        unknown = keep - set(BY_KEY)
        if unknown:
            parser.error(f"unknown rows: {', '.join(sorted(unknown))}")
        FEATURES[:] = [f for f in FEATURES if f.key in keep]
    args.rounds = args.rounds or (3 if args.quick else 9)
    args.seconds = args.seconds or (0.2 if args.quick else 0.4)
    args.uvicorn_rounds = args.uvicorn_rounds or (1 if args.quick else 3)
    if args.quick:
        args.wrk_seconds = 1
    # A fresh proof per request: enough for a round of the DPoP-bound row (~10k requests/s).
    args.proofs = max(500, int(args.seconds * 12_000))
    # What a --baseline child needs to run the same rows the same way.
    args.passed = ["--seconds", str(args.seconds)]
    if args.only:
        args.passed += ["--only", args.only]
    if args.inprocess_child:
        inprocess_child(args)
        return 0
    started = time.perf_counter()
    print(f"features benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    setup = Setup()
    rows = asyncio.run(run_inprocess(setup, args))
    print_inprocess(rows, args)
    if any(f.key == "dpop_bound" for f in FEATURES):
        signed_at = time.thread_time()
        setup.proofs(500)
        signing = (time.thread_time() - signed_at) / 500 * 1e6
        print(f"  (the client's side: signing one DPoP proof takes {signing:.1f} us, ES256)")
    if not args.no_uvicorn:
        if shutil.which("wrk") is None:
            print("\nuvicorn + wrk: skipped, wrk is not installed (apt-get install wrk)")
        else:
            with tempfile.TemporaryDirectory() as tmp:
                print_uvicorn(run_uvicorn(setup, args, tmp), args)
            print("  (the DPoP-bound row runs in-process only: every request needs a new proof)")
    print(f"\ntotal {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
