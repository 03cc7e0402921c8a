"""PPID translation: IdP calls per 1000 requests, and the throughput cost of a warm cache.

Everything runs in-process against the bundled IdP; ResourceGuard is called directly as an ASGI
app (no HTTP client in the measured path). IdP calls are counted by an ASGI wrapper in front of
the IdP. Run: `.venv/bin/python benchmarks/ppid.py [--requests 2000] [--rounds 40]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import Counter
from typing import Any

import httpx
from starlette.types import Message, Receive, Scope, Send

from rs_guard import ResourceGuard
from rs_guard.idp import IdP
from rs_guard.ppid import PPIDTranslator

ISSUER = "https://idp.example"
API = "https://rs.example/api"


class CountingApp:
    """Counts the requests reaching the IdP per path."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.calls[scope["path"]] += 1
        await self.app(scope, receive, send)


async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """The smallest useful app: 200 with a short body."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def make_idp(users: int) -> IdP:
    idp = IdP(ISSUER)
    idp.register_client(
        "web", "web-secret", redirect_uris=["https://web.example/cb"], subject_type="pairwise"
    )
    idp.register_client(
        "rs",
        "rs-secret",
        subject_type="pairwise",
        sector_identifier_uri="https://rs.example/sector.json",
    )
    idp.ppid_policy.allow("rs")
    for i in range(users):
        idp.add_user(f"user-{i}")
    return idp


def scope_for(token: str) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": "/items",
        "raw_path": b"/items",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"rs.example"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("rs.example", 443),
    }


async def receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class Sink:
    """Collects the response status of one call."""

    __slots__ = ("status",)

    def __init__(self) -> None:
        self.status = 0

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]


async def call(app: Any, token: str) -> int:
    sink = Sink()
    await app(scope_for(token), receive, sink)
    return sink.status


def build(
    idp: IdP, counting: CountingApp, translate: bool, resolver: bool = False
) -> tuple[ResourceGuard, httpx.AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=counting), base_url=ISSUER)
    translator = (
        PPIDTranslator(issuer=ISSUER, client_id="rs", client_secret="rs-secret", http_client=http)
        if translate
        else None
    )
    users: dict[str, int] = {}

    async def resolve(local: str) -> int:
        return users.setdefault(local, len(users))

    guard = ResourceGuard(
        endpoint,
        issuer=ISSUER,
        resource=API,
        http_client=http,
        subject_translator=translator,
        user_resolver=resolve if resolver else None,
    )
    return guard, http


async def idp_calls(users: int) -> list[tuple[str, int, int]]:
    """(scenario, /ppid/convert calls, /token calls) per 1000 requests."""
    rows = []
    for label, distinct, concurrent in (
        ("1000 requests, same user, concurrent burst", False, True),
        ("1000 requests, same user, one after another", False, False),
        ("1000 requests, 1000 distinct users, concurrent burst", True, True),
        ("1000 requests, 1000 distinct users, one after another", True, False),
    ):
        idp = make_idp(users)
        counting = CountingApp(idp.app)
        guard, http = build(idp, counting, translate=True)
        tokens = [
            idp.issue_access_token(
                f"user-{i if distinct else 0}", client_id="web", audience=API, scope="x"
            )
            for i in range(1000)
        ]
        # Warm discovery and the JWKS with an unrelated user so only conversion calls count.
        warm = idp.issue_access_token("warm-up", client_id="rs", audience=API, scope="x")
        assert await call(guard, warm) == 200
        counting.calls.clear()
        if concurrent:
            statuses = await asyncio.gather(*(call(guard, t) for t in tokens))
        else:
            statuses = [await call(guard, t) for t in tokens]
        assert set(statuses) == {200}, Counter(statuses)
        rows.append((label, counting.calls["/ppid/convert"], counting.calls["/token"]))
        await http.aclose()
    return rows


async def throughput(requests: int, rounds: int) -> dict[str, float]:
    """Requests per second for each variant, best of `rounds`, measured interleaved."""
    idp = make_idp(1)
    counting = CountingApp(idp.app)
    variants = {
        "no translation": build(idp, counting, translate=False),
        "translation (warm cache)": build(idp, counting, translate=True),
        "translation + user_resolver": build(idp, counting, translate=True, resolver=True),
    }
    token = idp.issue_access_token("user-0", client_id="web", audience=API, scope="x")
    for guard, _ in variants.values():
        for _ in range(200):  # warm caches and the interpreter
            assert await call(guard, token) == 200
    calls_before = counting.calls["/ppid/convert"]
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (guard, _) in variants.items():
            sink = Sink()
            started = time.perf_counter()
            for _ in range(requests):
                await guard(scope_for(token), receive, sink)
            samples[name].append(requests / (time.perf_counter() - started))
            assert sink.status == 200, (name, sink.status)
    assert counting.calls["/ppid/convert"] == calls_before, "a warm run must not call the IdP"
    for _, http in variants.values():
        await http.aclose()
    return {name: max(s) for name, s in samples.items()} | {
        f"{name} (median)": statistics.median(s) for name, s in samples.items()
    }


async def components(calls: int = 10_000, rounds: int = 10) -> dict[str, float]:
    """Microseconds per call of the pieces translation adds to a request (best of `rounds`)."""
    idp = make_idp(1)
    counting = CountingApp(idp.app)
    guard, http = build(idp, counting, translate=True)
    bare, bare_http = build(idp, counting, translate=False)
    token = idp.issue_access_token("user-0", client_id="web", audience=API, scope="x")
    assert await call(guard, token) == 200
    translator = guard.subject_translator
    assert translator is not None
    access = await bare.authenticate(token)
    subject = access.subject

    async def noop(client_id: str, subject: str) -> str:
        return subject

    pieces: dict[str, Any] = {
        "an empty coroutine call (reference)": lambda: noop("web", subject),
        "translator.to_local, warm": lambda: translator.to_local("web", subject),
        "AccessToken.replace (core)": lambda: _ready(access.replace(local_subject="x")),
        "guard.authenticate, no translation": lambda: bare.authenticate(token),
        "guard.authenticate, translation": lambda: guard.authenticate(token),
    }
    out: dict[str, float] = {}
    for name, make in pieces.items():
        best = float("inf")
        for _ in range(rounds):
            started = time.perf_counter()
            for _ in range(calls):
                await make()
            best = min(best, (time.perf_counter() - started) / calls * 1e6)
        out[name] = best
    await http.aclose()
    await bare_http.aclose()
    return out


async def _ready(value: Any) -> Any:
    return value


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    # Many short interleaved rounds, best of each: robust against a busy machine.
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()

    print("PPID translation: IdP calls (counted at the IdP)")
    for label, convert, token in await idp_calls(1000):
        print(f"  {label:<56} {convert:>5} conversion calls, {token} token call(s)")

    print(
        f"\nThroughput, ResourceGuard called as an ASGI app ({args.requests} req x best of "
        f"{args.rounds} rounds, same token, warm caches)"
    )
    rps = await throughput(args.requests, args.rounds)
    base = rps["no translation"]
    base_median = rps["no translation (median)"]
    for name in ("no translation", "translation (warm cache)", "translation + user_resolver"):
        print(
            f"  {name:<30} {rps[name]:>9,.0f} req/s  ratio {rps[name] / base:.3f}"
            f"   (median {rps[name + ' (median)']:>9,.0f}, ratio "
            f"{rps[name + ' (median)'] / base_median:.3f})"
        )
    print("  target: translation with a warm cache within 10% of no translation (ratio >= 0.90)")

    print("\nWhere the time goes (us per call, best of 10 x 10000; includes the await)")
    for name, us in (await components()).items():
        print(f"  {name:<40} {us:6.2f} us")


if __name__ == "__main__":
    asyncio.run(main())
