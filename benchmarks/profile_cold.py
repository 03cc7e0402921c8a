"""Where rs_guard's cold path (a token never seen before) spends its time and memory.

    .venv/bin/python benchmarks/profile_cold.py [--alg ES256|RS256|PS256|EdDSA|all] [--requests 4000]

Input for the performance work of issue #16, not a benchmark of record (peers.py is). Prints:

1. stage times per request, each measured alone, medians of rounds: bare endpoint; the guard
   around it, cold; `ResourceGuard.authenticate()` alone (no ASGI); the signature verify alone;
   and the same cold run with the garbage collector off. The differences attribute the time:
   ASGI plumbing = cold - bare - authenticate, validation = authenticate - verify, GC = cold -
   cold without GC; and the cold run once more with the signature verify stubbed out (every
   check but the `cryptography` call), which gives the non-crypto time directly instead of
   by subtracting a tight-loop verify.
2. cProfile of the cold middleware path: the functions with the most own time.
3. memory per cold request: bytes and blocks the guard keeps (tracemalloc, by line), objects
   the GC tracks that it keeps, the peak transient bytes of one request, and the cyclic garbage
   an evicted cache entry leaves (objects only a full collection frees).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import pstats
import statistics
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import (
    ALGS_ALL,
    ISSUER,
    RESOURCE,
    Context,
    auth_headers,
    build_bare,
    call_app,
    drive,
    mint,
    verify_cost_us,
)

from rs_guard import ResourceGuard
from rs_guard.access_token import Limits
from rs_guard.keys import VerificationKey


def guard(ctx: Context, cache_size: int = 10_000) -> ResourceGuard:
    return ResourceGuard(
        build_bare(ctx, "bare"),
        issuer=ISSUER,
        resource=RESOURCE,
        http_client=ctx.idp.http_client(),
        limits=Limits(cache_size=cache_size),
    )


async def warmed(ctx: Context, warm: list[bytes], cache_size: int = 10_000) -> ResourceGuard:
    app = guard(ctx, cache_size)
    for auth in warm:
        assert await call_app(app, auth) == 200
    return app


@contextlib.contextmanager
def stubbed_verify() -> Iterator[None]:
    """Every check of a new token except the `cryptography` call: the key must still fit."""
    real = VerificationKey.verify

    def stub(self: VerificationKey, alg: str, signing_input: bytes, signature: bytes) -> bool:
        return self.fits(alg)

    VerificationKey.verify = stub  # type: ignore[method-assign]
    try:
        yield
    finally:
        VerificationKey.verify = real  # type: ignore[method-assign]


async def stages(ctx: Context, alg: str, tokens: list[str], warm: list[bytes], rounds: int) -> None:
    auths = auth_headers(tokens)
    bare = build_bare(ctx, alg)
    per = len(tokens) // rounds
    results: dict[str, list[float]] = {
        k: [] for k in ("bare", "cold", "cold_nogc", "auth", "stubbed")
    }
    for r in range(rounds):
        chunk = auths[r * per : (r + 1) * per]
        raw = tokens[r * per : (r + 1) * per]
        rate, _ = await drive(bare, chunk, seconds=1e9, limit=len(chunk))
        results["bare"].append(1e6 / rate)
        app = await warmed(ctx, warm)
        rate, _ = await drive(app, chunk, seconds=1e9, limit=len(chunk))
        results["cold"].append(1e6 / rate)
        app = await warmed(ctx, warm)
        gc.collect()
        gc.disable()
        try:
            rate, _ = await drive(app, chunk, seconds=1e9, limit=len(chunk))
        finally:
            gc.enable()
        results["cold_nogc"].append(1e6 / rate)
        app = await warmed(ctx, warm)
        with stubbed_verify():
            rate, _ = await drive(app, chunk, seconds=1e9, limit=len(chunk))
        results["stubbed"].append(1e6 / rate)
        app = await warmed(ctx, warm)
        start = time.thread_time()  # CPU time, like drive()
        for token in raw:
            await app.authenticate(token)
        results["auth"].append((time.thread_time() - start) / len(raw) * 1e6)
    med = {k: statistics.median(v) for k, v in results.items()}
    verify = verify_cost_us(ctx, alg, tokens[0], 2000)
    print(f"\n1. stage times, us per request ({alg}; median of {rounds} rounds of {per} tokens)")
    print(f"   bare endpoint                         {med['bare']:7.1f}")
    print(f"   guard, cold                           {med['cold']:7.1f}")
    print(f"   guard, cold, GC disabled              {med['cold_nogc']:7.1f}")
    print(f"   authenticate() alone, cold            {med['auth']:7.1f}")
    print(f"   signature verify alone (tight loop)   {verify:7.1f}")
    print(f"   guard, cold, verify stubbed           {med['stubbed']:7.1f}")
    print(f"   -> non-crypto beyond bare             {med['cold'] - med['bare'] - verify:7.1f}")
    print(f"      the same, verify stubbed           {med['stubbed'] - med['bare']:7.1f}")
    print(
        f"      ASGI plumbing (cold-bare-auth)     {med['cold'] - med['bare'] - med['auth']:7.1f}"
    )
    print(f"      validation beyond verify           {med['auth'] - verify:7.1f}")
    print(f"      GC (cold - cold without GC)        {med['cold'] - med['cold_nogc']:7.1f}")


async def profile(ctx: Context, tokens: list[str], warm: list[bytes]) -> None:
    app = await warmed(ctx, warm)
    auths = auth_headers(tokens)
    profiler = cProfile.Profile()
    profiler.enable()
    for auth in auths:
        await call_app(app, auth)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(28)
    print(f"\n2. cProfile, {len(auths)} cold requests through the guard (own time, top functions):")
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    for line in lines[start:]:
        if line.strip():
            print("   " + line.replace(str(Path(sys.prefix)), "<venv>"))


async def memory(ctx: Context, tokens: list[str], warm: list[bytes]) -> None:
    auths = auth_headers(tokens)
    n = len(auths)
    print(f"\n3. memory per cold request ({n} requests, cache large enough to keep them all)")
    app = await warmed(ctx, warm, cache_size=10 * n)
    gc.collect()
    objects_before = len(gc.get_objects())
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    for auth in auths:
        await call_app(app, auth)
    after = tracemalloc.take_snapshot()
    gc.collect()
    objects_after = len(gc.get_objects())
    diff = after.compare_to(before, "lineno")
    kept = sum(d.size_diff for d in diff)
    blocks = sum(d.count_diff for d in diff)
    print(
        f"   kept: {kept / n:7.0f} bytes, {blocks / n:5.1f} blocks,"
        f" {(objects_after - objects_before) / n:5.1f} GC-tracked objects per request"
    )
    for d in sorted(diff, key=lambda d: -d.size_diff)[:10]:
        frame = d.traceback[0]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        print(f"     {d.size_diff / n:7.0f} B {d.count_diff / n:5.2f} blocks  {where}")
    # Peak transient memory of one request: what it allocates on top of what it keeps.
    peaks = []
    for auth in auths[:300]:
        current = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        await call_app(app, auth)
        peaks.append(tracemalloc.get_traced_memory()[1] - current)
    tracemalloc.stop()
    print(f"   peak transient bytes of one cold request: median {statistics.median(peaks):.0f}")
    # Cyclic garbage: with a small cache every request evicts an entry; whatever of it is in
    # a reference cycle stays until a collection (gen 2 once it has aged) finds it.
    app = await warmed(ctx, warm, cache_size=64)
    for auth in auths[:200]:
        await call_app(app, auth)
    gc.collect()
    gc.disable()
    try:
        for auth in auths[200:]:
            await call_app(app, auth)
        unreachable = gc.collect()
    finally:
        gc.enable()
    print(
        f"   cyclic garbage left per evicted cache entry: {unreachable / (n - 200):.1f} objects"
        " (0 = reference counting frees it at once)"
    )


async def run(ctx: Context, alg: str, tokens: list[str], warm: list[bytes], rounds: int) -> None:
    await stages(ctx, alg, tokens, warm, rounds)
    await profile(ctx, tokens[:2000], warm)
    await memory(ctx, tokens[:2000], warm)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alg", default="ES256", help="ES256, RS256, PS256, EdDSA or all")
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ctx = Context.create()
    algs = ALGS_ALL if args.alg == "all" else (args.alg,)
    for alg in algs:
        tokens = mint(ctx, alg, args.requests + 200)
        warm, tokens = auth_headers(tokens[:200]), tokens[200:]

        asyncio.run(run(ctx, alg, tokens, warm, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
