"""Token profiles on the hot path: what each `profile=` preset costs per validated token.

    .venv/bin/python benchmarks/profiles.py [--rounds 7] [--warm 20000] [--cold 300]

For every profile in `rs_guard.profiles.PROFILES`, a `JWTValidator(profile=...)` with the
issuer and audience that vendor needs, its keys from the vendor's JWK Set (a `JWKSCache`
fetching it, in-process, from `tests/profiles/vendors.py`'s `VendorApp`), validates tokens shaped
as that vendor issues them (the same Vendor objects the profile tests use; RS256, 2048-bit keys):

- warm `cached()`: the same token again, answered by `validator.cached(token)`;
- warm `validate()`: the same token again, through `await validator.validate(token)`;
- cold: a token never seen before on each call (distinct tokens minted before each round),
  through `await validator.validate(token)`: parse, signature, claims, cache insert.

rfc9068 has no vendor in vendors.py: it gets one built the same way (typ `at+jwt`, the RFC 9068
§2.2 claims, a plain JWK Set). The profiles run interleaved, in rounds; the table gives, per
profile, the median of the rounds with their min-max, in µs per call, and the ratio of the
median to rfc9068's.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rs_guard import JWTValidator  # noqa: E402
from rs_guard.keys import JWKSCache  # noqa: E402
from rs_guard.profiles import PROFILES  # noqa: E402
from tests.profiles.vendors import (  # noqa: E402
    RESOURCE,
    TIMES,
    Vendor,
    VendorApp,
    plain_jwks,
    vendors,
)

RFC9068_ISSUER = "https://as.example"


def rfc9068_vendor() -> Vendor:
    """A plain RFC 9068 authorization server, shaped like the vendors in vendors.py."""
    claims = {
        **TIMES,
        "iss": RFC9068_ISSUER,
        "sub": "alice",
        "aud": RESOURCE,
        "client_id": "web-app",
        "jti": "9b2e6c1a-0f4d-4e8b-a1c3-5d7e9f0a2b4c",
        "scope": "openid items:read",
    }
    return Vendor(
        name="rfc9068",
        profile="rfc9068",
        issuer=RFC9068_ISSUER,
        audience=RESOURCE,
        docs=("https://www.rfc-editor.org/rfc/rfc9068#section-2",),
        header={"alg": "RS256", "typ": "at+jwt"},
        access_claims=claims,
        id_claims={},
        jwks=plain_jwks,
        expect_client="web-app",
        expect_scopes=["openid", "items:read"],
        expect_roles=[],
    )


def by_profile() -> dict[str, Vendor]:
    """One vendor per shipped profile (entra-v2's Vendor says `profile="entra"`, its alias)."""
    found: dict[str, Vendor] = {"rfc9068": rfc9068_vendor()}
    for vendor in vendors():
        name = "entra-v2" if vendor.profile == "entra" else vendor.profile
        found[name] = vendor
    missing = set(PROFILES) - set(found)
    if missing:
        raise SystemExit(f"no vendor-shaped token for profile(s) {sorted(missing)}")
    return {name: found[name] for name in PROFILES}


def jwks_uri(vendor: Vendor) -> str:
    # Where VendorApp serves the vendor's JWK Set.
    return vendor.jwks_uri or vendor.issuer.rstrip("/") + "/protocol/keys"


def fresh(vendor: Vendor, count: int, serial: int) -> list[str]:
    """`count` distinct tokens of the vendor's shape (exp differs by a second each)."""
    exp = TIMES["exp"] + serial
    return [vendor.access_token(exp=exp + i) for i in range(count)]


async def per_call(
    call: Callable[[], Awaitable[Any]] | None, sync: Callable[[], Any] | None, n: int
) -> float:
    """µs per call over n calls."""
    if sync is not None:
        start = time.perf_counter()
        for _ in range(n):
            sync()
        return (time.perf_counter() - start) / n * 1e6
    assert call is not None
    start = time.perf_counter()
    for _ in range(n):
        await call()
    return (time.perf_counter() - start) / n * 1e6


async def cold(validator: JWTValidator, tokens: list[str]) -> float:
    start = time.perf_counter()
    for token in tokens:
        await validator.validate(token)
    return (time.perf_counter() - start) / len(tokens) * 1e6


async def run(rounds: int, warm_n: int, cold_n: int) -> dict[str, dict[str, list[float]]]:
    chosen = by_profile()
    app = VendorApp(list(chosen.values()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        validators: dict[str, JWTValidator] = {}
        warm_tokens: dict[str, str] = {}
        for name, vendor in chosen.items():
            validator = JWTValidator(
                issuer=vendor.issuer,
                audience=vendor.audience,
                keys=JWKSCache(jwks_uri(vendor), http_client=http),
                profile=name,
            )
            token = vendor.access_token()
            access = await validator.validate(token)  # fetches the JWK Set once
            assert access.client_id == vendor.expect_client, (name, access.client_id)
            assert validator.cached(token) is not None, name
            validators[name], warm_tokens[name] = validator, token
        fetched = app.total
        results: dict[str, dict[str, list[float]]] = {
            name: {"cached": [], "validate": [], "cold": []} for name in chosen
        }
        serial = 1
        for r in range(rounds):
            # Rotate the order each round so no profile always runs first.
            names = list(chosen)
            names = names[r % len(names) :] + names[: r % len(names)]
            for name in names:
                validator, token = validators[name], warm_tokens[name]
                tokens = fresh(chosen[name], cold_n, serial)
                serial += cold_n
                results[name]["cached"].append(
                    await per_call(None, lambda v=validator, t=token: v.cached(t), warm_n)
                )
                results[name]["validate"].append(
                    await per_call(lambda v=validator, t=token: v.validate(t), None, warm_n)
                )
                results[name]["cold"].append(await cold(validator, tokens))
        assert app.total == fetched, "the JWK Sets were fetched again during the run"
    return results


def table(results: dict[str, dict[str, list[float]]]) -> str:
    columns = (
        ("cached", "warm cached()"),
        ("validate", "warm validate()"),
        ("cold", "cold validate()"),
    )
    base = {key: statistics.median(results["rfc9068"][key]) for key, _ in columns}
    head = f"{'profile':<10}" + "".join(f"{title:>28}" for _, title in columns)
    lines = [head, "-" * len(head)]
    for name, runs in results.items():
        cells = []
        for key, _ in columns:
            med = statistics.median(runs[key])
            cell = f"{med:.2f} ({min(runs[key]):.2f}-{max(runs[key]):.2f}) x{med / base[key]:.2f}"
            cells.append(f"{cell:>28}")
        lines.append(f"{name:<10}" + "".join(cells))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warm", type=int, default=20000, help="warm calls per round")
    parser.add_argument("--cold", type=int, default=300, help="new tokens per round")
    args = parser.parse_args()
    started = time.perf_counter()
    results = asyncio.run(run(args.rounds, args.warm, args.cold))
    print(
        f"JWTValidator per profile, RS256 (2048-bit), µs per call: median of {args.rounds} "
        f"interleaved rounds (min-max), x = median / rfc9068's; warm: {args.warm} calls of "
        f"one token per round, cold: {args.cold} new tokens per round"
    )
    print(f"Python {sys.version.split()[0]} on {sys.platform}")
    print()
    print(table(results))
    print()
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
