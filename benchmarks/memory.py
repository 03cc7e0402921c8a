"""Memory and GC of the verified-token cache under sustained cold load, side by side.

    .venv/bin/python benchmarks/memory.py [--tokens 100000] [--rounds 3] [--against DIR ...]
    .venv/bin/python benchmarks/memory.py --quick   # 20,000 tokens, one round (~20 s)

Issue #16 asks for no full-collection (gen-2) pauses caused by the guard under sustained cold
load, and for RSS growth over 100,000 distinct tokens no larger than the cache's own bounded
size. This prints both, for this tree and for every `--against` source tree (another checkout
of rs_guard, e.g. `main` in a second git worktree: only its `rs_guard` package is swapped in,
the harness is this one), in interleaved rounds, each run in a fresh process:

* **sustained cold**: N distinct ES256 tokens (100,000; 20,000 with --quick) through a guard
  with the default 10,000-entry cache, one request at a time: gen-2 collections counted by a
  `gc.callbacks` hook, the longest gen-2 pause, the total GC time, the RSS growth (/proc), and
  the CPU µs per request including GC;
* **the cache's bound**: a fresh guard whose cache is filled with exactly `cache_size` tokens
  under `tracemalloc`: the bytes it keeps (the full cache, what the RSS growth is compared
  with) and the GC-tracked objects it keeps per cached token (each one is promoted to the
  oldest generation while the token is cached, and CPython runs a full collection once the
  promoted objects reach 25% of that generation);
* **per request** (CPU µs, medians of short interleaved runs, a GC between them as in
  peers.py): the bare endpoint, the guard with a reused token (warm) and with a new token
  each request while the cache fills (cold);
* **under uvicorn + wrk** (when `wrk` is installed): each tree's guard, cold, in a fresh
  server process (peers.py's), next to PyJWT with a prebuilt key (the peer with the best p99
  in peers.py's runs): p50/p99 latency, and in the server, gen-2 collections, the longest
  GC pause and the RSS growth.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _harness import http_get, run_wrk, write_auths  # noqa: E402
from peers import (  # noqa: E402
    Context,
    GCWatch,
    Variant,
    auth_headers,
    build_bare,
    build_rs_guard,
    call_app,
    drive,
    mint,
    rss_mb,
    start_variant,
)

ALG = "ES256"
WARM = 200  # tokens every guard sees before a measurement (code paths, JWKS fetched)
CACHE_SIZE = 10_000  # Limits' default; build_rs_guard uses the defaults
NO_CACHE = "rs_guard cold, this tree, cache off"


def child(args: argparse.Namespace) -> None:
    import rs_guard

    ctx = Context.from_file(args.ctx)
    tokens = Path(args.tokens_file).read_text().split()
    warm, cold = auth_headers(tokens[:WARM]), auth_headers(tokens[WARM : WARM + args.n])

    async def fresh_guard() -> Any:
        app = build_rs_guard(ctx, ALG)
        for auth in warm:
            if (status := await call_app(app, auth)) != 200:
                raise RuntimeError(f"warm-up answered {status}")
        return app

    async def go() -> dict[str, Any]:
        out: dict[str, Any] = {"rs_guard": str(Path(rs_guard.__file__).parent)}
        # 1. per request: bare, warm, cold (cache filling), CPU time, a collection between.
        bare = build_bare(ctx, ALG)
        warm_app = await fresh_guard()
        one = warm[:1]
        per: dict[str, list[float]] = {"bare_us": [], "warm_us": [], "cold_us": []}
        chunk = min(args.cold_chunk, len(cold) // args.inner)
        for r in range(args.inner):
            gc.collect()
            rate, _ = await drive(bare, one, seconds=args.seconds, limit=10**9)
            per["bare_us"].append(1e6 / rate)
            gc.collect()
            rate, _ = await drive(warm_app, one, seconds=args.seconds, limit=10**9)
            per["warm_us"].append(1e6 / rate)
            cold_app = await fresh_guard()
            gc.collect()
            rate, _ = await drive(
                cold_app, cold[r * chunk : (r + 1) * chunk], seconds=1e9, limit=chunk
            )
            per["cold_us"].append(1e6 / rate)
            del cold_app
        out.update({k: statistics.median(v) for k, v in per.items()})
        del warm_app
        # 2. sustained cold load: every token new, the cache fills and then evicts.
        app = await fresh_guard()
        gc.collect()
        before = rss_mb()
        watch = GCWatch()
        gc.callbacks.append(watch)
        rate, n = await drive(app, cold, seconds=1e9, limit=len(cold))
        gc.callbacks.remove(watch)
        out.update(watch.summary())
        out.update({"n": n, "sustained_us": 1e6 / rate, "rss_growth_mb": rss_mb() - before})
        del app
        gc.collect()
        # 3. the cache's own bound: exactly cache_size tokens kept, measured by tracemalloc.
        app = await fresh_guard()
        gc.collect()
        objects = len(gc.get_objects())
        tracemalloc.start()
        traced = tracemalloc.get_traced_memory()[0]
        fill = cold[:CACHE_SIZE]
        await drive(app, fill, seconds=1e9, limit=len(fill))
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - traced
        tracemalloc.stop()
        out.update(
            {
                "cache_mb": kept / 2**20,
                "bytes_per_entry": kept / len(fill),
                "tracked_per_entry": (len(gc.get_objects()) - objects) / len(fill),
            }
        )
        return out

    print(json.dumps(asyncio.run(go())), flush=True)
    ctx.close()


ROWS = [
    ("per request, CPU us: bare endpoint", "bare_us", "{:.1f}"),
    ("per request, CPU us: guard warm (reused token)", "warm_us", "{:.1f}"),
    ("  warm adds over bare, us", "warm_add_us", "{:.1f}"),
    ("per request, CPU us: guard cold (cache filling)", "cold_us", "{:.1f}"),
    ("  cold adds over bare, us", "cold_add_us", "{:.1f}"),
    ("sustained cold: CPU us per request incl. GC", "sustained_us", "{:.1f}"),
    ("sustained cold: gen-2 collections", "gen2", "{:.0f}"),
    ("sustained cold: longest gen-2 pause, ms", "longest_gen2_ms", "{:.1f}"),
    ("sustained cold: longest GC pause, ms", "longest_ms", "{:.1f}"),
    ("sustained cold: total GC time, ms", "total_ms", "{:.0f}"),
    ("sustained cold: RSS growth, MB", "rss_growth_mb", "{:.1f}"),
    ("full cache (10,000 tokens), tracemalloc MB", "cache_mb", "{:.1f}"),
    ("  bytes kept per cached token", "bytes_per_entry", "{:.0f}"),
    ("  GC-tracked objects per cached token", "tracked_per_entry", "{:.2f}"),
    ("RSS growth / full cache", "rss_over_cache", "{:.2f}"),
]


def wrk_section(
    trees: list[tuple[str, str]],
    tokens: list[str],
    ctx_file: str,
    tmp: str,
    args: argparse.Namespace,
) -> dict[str, list[dict[str, Any]]]:
    """Each tree's guard cold, and PyJWT, through uvicorn + wrk; interleaved rounds."""
    if args.wrk_seconds <= 0 or shutil.which("wrk") is None:
        return {}
    token_file = f"{tmp}/wrk-tokens.txt"
    write_auths(token_file, auth_headers(tokens[WARM:]))
    warm = auth_headers(tokens[:30])
    rows: dict[str, list[dict[str, Any]]] = {}
    servers = [
        (f"rs_guard cold, {label}", Variant("rs_guard", ALG, "rs_guard cold", True), root)
        for label, root in trees
    ]
    # The same guard with its cache off: the server's growth that is not the cache's (the
    # requests' own working set, the allocator's arenas), to tell the two apart.
    servers.append(
        (
            NO_CACHE,
            Variant("rs_guard_no_cache", ALG, "rs_guard cold, no cache", True),
            str(HERE.parent),
        )
    )
    servers.append(("PyJWT, prebuilt key (peer)", Variant("pyjwt", ALG, "PyJWT", True), ""))
    saved = os.environ.get("PYTHONPATH")
    try:
        for _ in range(args.rounds):
            for label, variant, root in servers:
                # The server process imports rs_guard from PYTHONPATH (the tree measured).
                os.environ["PYTHONPATH"] = root or str(HERE.parent)
                server = start_variant(variant, ctx_file)
                try:
                    if not server.ready():
                        raise RuntimeError(f"{label}: server did not start")
                    if set(http_get(server.port, warm)) != {200}:
                        raise RuntimeError(f"{label}: warm-up failed")
                    server.command("reset")
                    out = run_wrk(server.port, token_file, args.wrk_seconds, args.connections)
                    stats = json.loads(server.command("stats"))
                finally:
                    server.stop()
                if out["non2xx"] or out.get("requests", 0) > len(tokens) - WARM:
                    raise RuntimeError(f"{label}: non-2xx answers or the token list wrapped: {out}")
                rows.setdefault(label, []).append({**out, **stats})
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=100_000, help="distinct tokens (sustained)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (processes)")
    parser.add_argument("--against", action="append", default=[], help="another rs_guard tree")
    parser.add_argument("--quick", action="store_true", help="20,000 tokens, 1 round")
    parser.add_argument("--inner", type=int, default=3, help="timing rounds inside a process")
    parser.add_argument("--seconds", type=float, default=0.3, help="length of a warm/bare run")
    parser.add_argument("--cold-chunk", type=int, default=3000, help="tokens per cold run")
    parser.add_argument("--wrk-seconds", type=int, default=8, help="0: no uvicorn + wrk part")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--smoke", action="store_true", help="just run it (tests)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ctx", help=argparse.SUPPRESS)
    parser.add_argument("--tokens-file", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    if args.quick:
        args.tokens, args.rounds, args.wrk_seconds = min(args.tokens, 20_000), 1, 2
    if args.smoke:  # the least that still fills the cache once
        args.tokens, args.rounds, args.inner = 10_500, 1, 1
        args.cold_chunk, args.seconds, args.wrk_seconds = 500, 0.05, 1
    if args.tokens < CACHE_SIZE + args.inner * args.cold_chunk:
        parser.error(f"--tokens must be at least {CACHE_SIZE + args.inner * args.cold_chunk}")
    trees = [("this tree", str(HERE.parent))] + [
        (Path(t).name, str(Path(t).resolve())) for t in args.against
    ]
    started = time.perf_counter()
    ctx = Context.create()
    tokens = mint(ctx, ALG, WARM + args.tokens)
    print(
        f"memory benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}; {args.tokens} distinct "
        f"{ALG} tokens per run, default cache ({CACHE_SIZE} entries); {args.rounds} interleaved "
        f"rounds, a fresh process per run (minted in {time.perf_counter() - started:.0f}s)",
        flush=True,
    )
    results: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in trees}
    with tempfile.TemporaryDirectory() as tmp:
        ctx_file, token_file = f"{tmp}/ctx.json", f"{tmp}/tokens.txt"
        ctx.to_file(ctx_file)
        Path(token_file).write_text("\n".join(tokens))
        for _ in range(args.rounds):
            for label, root in trees:
                proc = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        "--ctx",
                        ctx_file,
                        "--tokens-file",
                        token_file,
                        "--n",
                        str(args.tokens),
                        "--inner",
                        str(args.inner),
                        "--seconds",
                        str(args.seconds),
                        "--cold-chunk",
                        str(args.cold_chunk),
                    ],
                    capture_output=True,
                    text=True,
                    cwd=tmp,  # not a tree: the rs_guard imported is PYTHONPATH's
                    env={**os.environ, "PYTHONPATH": root},
                )
                if proc.returncode != 0:
                    print(f"{label}: failed: {proc.stderr.strip()[-1500:]}")
                    return 1
                results[label].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        wrk_rows = wrk_section(trees, tokens, ctx_file, tmp, args)
    ctx.close()
    for runs in results.values():
        for run in runs:
            run["warm_add_us"] = run["warm_us"] - run["bare_us"]
            run["cold_add_us"] = run["cold_us"] - run["bare_us"]
            run["rss_over_cache"] = run["rss_growth_mb"] / run["cache_mb"]
    width = 26
    print(f"  {'':<50}" + "".join(f"{label:>{width}}" for label, _ in trees))
    for title, key, fmt in ROWS:
        cells = []
        for label, _ in trees:
            values = [run[key] for run in results[label]]
            cell = fmt.format(statistics.median(values))
            if len(values) > 1:
                cell += f" [{fmt.format(min(values))}-{fmt.format(max(values))}]"
            cells.append(f"{cell:>{width}}")
        print(f"  {title:<50}" + "".join(cells))
    for label, root in trees:
        print(f"  {label}: {root} (rs_guard imported from {results[label][0]['rs_guard']})")
    if wrk_rows:
        print(
            f"\nuvicorn on loopback (1 worker, wrk -t1 -c{args.connections} -d{args.wrk_seconds}s"
            f" --latency, distinct tokens, no wrap; median of {args.rounds} interleaved rounds"
            "; GC and RSS in the server process):"
        )
        keys = [
            ("req/s", "rate", "{:.0f}"),
            ("p50 ms", "p50", "{:.2f}"),
            ("p99 ms", "p99", "{:.2f}"),
        ]
        keys += [("gen2", "gen2", "{:.0f}"), ("max GC ms", "longest_ms", "{:.1f}")]
        keys += [("RSS +MB", "rss_growth_mb", "{:.1f}")]
        print(f"  {'':<44}" + "".join(f"{title:>12}" for title, _, _ in keys))
        for label, runs in wrk_rows.items():
            cells = "".join(
                f"{fmt.format(statistics.median(run[key] for run in runs)):>12}"
                for _, key, fmt in keys
            )
            print(f"  {label:<44}{cells}")
        own = f"rs_guard cold, {trees[0][0]}"
        if own in wrk_rows and NO_CACHE in wrk_rows:
            grown = statistics.median(r["rss_growth_mb"] for r in wrk_rows[own])
            base = statistics.median(r["rss_growth_mb"] for r in wrk_rows[NO_CACHE])
            cache = statistics.median(run["cache_mb"] for run in results[trees[0][0]])
            print(
                f"  server RSS growth with the cache minus without it: {grown - base:.1f} MB, "
                f"{(grown - base) / cache:.2f}x the full cache's {cache:.1f} MB (tracemalloc)"
            )
    print(f"total {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
