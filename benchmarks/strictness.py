"""Strictness: validly signed tokens a resource server must refuse, and who accepts them.

    .venv/bin/python benchmarks/strictness.py [--alg RS256]

Every token below is signed by a key the issuer really publishes in its JWKS (except `alg:
none` and the HMAC confusion, which are the classic forgeries), so a validator that only checks
the signature accepts it. Each is wrong for an RFC 9068 resource server for the reason given,
taken from RFC 9068 §4 (validating JWT access tokens), RFC 8725 (JWT best current practices)
and RFC 7515/7519. Every variant is the same app `peers.py` benchmarks, configured as its docs
show for access-token validation (peers.py says how; allow-list = the one algorithm expected),
called in-process; a 200 answer means the token was accepted.

rs_guard must refuse every row (tests/packaging/test_benchmarks.py checks that); the control rows
(a valid token: all accept; a broken signature: all refuse) show each column is wired right.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import (
    BUILDERS,
    ISSUER,
    NOT_INSTALLED,
    PEERS,
    Context,
    call_app,
    claims_for,
    installed,
    sign_compact,
)


@dataclass(frozen=True)
class Case:
    name: str
    why: str  # the rule that makes it wrong
    make: Callable[[Context, str], str]
    control: bool | None = None  # True: must be accepted; False: a broken signature


def _token(
    ctx: Context,
    alg: str,
    *,
    claims: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    header: dict[str, Any] | None = None,
    drop_header: tuple[str, ...] = (),
    sign_alg: str | None = None,
    key_alg: str | None = None,
) -> str:
    """A token like the IdP's, changed as asked, signed with the IdP's `key_alg` key."""
    now = int(time.time())
    payload = claims_for(0, now)
    payload.update(claims or {})
    for name in drop:
        payload.pop(name, None)
    key = ctx.signing_key(key_alg or alg)
    head: dict[str, Any] = {"alg": sign_alg or alg, "typ": "at+jwt", "kid": key.kid}
    head.update(header or {})
    for name in drop_header:
        head.pop(name, None)
    return sign_compact(head, payload, key.private_key, sign_alg or alg)


def _broken_signature(ctx: Context, alg: str) -> str:
    head, payload, _sig = _token(ctx, alg).split(".")
    other = _token(ctx, alg, claims={"sub": "someone-else"}).split(".")[2]
    return f"{head}.{payload}.{other}"


def _hmac_confusion(ctx: Context, alg: str) -> str:
    """HS256 keyed with the issuer's public key as published (RFC 8725 §2.1, §3.1)."""
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import serialization
    from peers import b64url

    key = ctx.signing_key(alg)
    pem = key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    unsigned = _token(ctx, alg, header={"alg": "HS256"}, sign_alg="none")[:-1]
    mac = hmac.new(pem, unsigned.encode(), hashlib.sha256).digest()
    return f"{unsigned}.{b64url(mac)}"


def _other_alg(alg: str) -> str:
    """An algorithm outside the allow-list that the same key can sign with (RFC 8725 §3.1)."""
    return {"RS256": "RS512", "PS256": "PS512", "ES256": "ES256K"}.get(alg, "RS512")


def _other_key_alg(alg: str) -> str:
    """Another published key of the same type, declared (JWK `alg`) for another algorithm."""
    return {"RS256": "PS256", "PS256": "RS256"}.get(alg, "PS256")


def _hour() -> int:
    return int(time.time()) + 3600


CASES: list[Case] = [
    Case("valid RFC 9068 token", "control: must be accepted", lambda c, a: _token(c, a), True),
    Case(
        "signature of another token", "control: forged, must be refused", _broken_signature, False
    ),
    Case(
        "typ JWT",
        "RFC 9068 §4: typ must be at+jwt",
        lambda c, a: _token(c, a, header={"typ": "JWT"}),
    ),
    Case(
        "typ absent", "RFC 9068 §4, RFC 8725 §3.11", lambda c, a: _token(c, a, drop_header=("typ",))
    ),
    Case(
        "typ secevent+jwt (a SET)",
        "RFC 8725 §3.11 explicit typing; RFC 8417 §2.3",
        lambda c, a: _token(c, a, header={"typ": "secevent+jwt"}, claims={"events": {}}),
    ),
    Case(
        "ID token presented (typ JWT, nonce, at_hash)",
        "RFC 8725 §2.8 cross-JWT confusion; RFC 9068 §4 typ",
        lambda c, a: _token(
            c,
            a,
            header={"typ": "JWT"},
            claims={"nonce": "n-0S6", "at_hash": "77QmUPtjPfzWtF2AnpK9RQ"},
        ),
    ),
    Case(
        "ID token claims under typ at+jwt",
        "RFC 9068 §4: nonce/at_hash mark an ID token",
        lambda c, a: _token(c, a, claims={"nonce": "n-0S6", "at_hash": "77QmUPtjPfzWtF2AnpK9RQ"}),
    ),
    Case(
        "wrong iss",
        "RFC 9068 §4: iss must match exactly",
        lambda c, a: _token(c, a, claims={"iss": "https://evil.example"}),
    ),
    Case(
        "iss with a trailing slash",
        "RFC 9068 §4 / RFC 8414 §3.3: exact match",
        lambda c, a: _token(c, a, claims={"iss": ISSUER + "/"}),
    ),
    Case(
        "wrong aud",
        "RFC 9068 §4: aud must name this resource",
        lambda c, a: _token(c, a, claims={"aud": "https://other.example"}),
    ),
    Case("aud missing", "RFC 9068 §2.2 required, §4", lambda c, a: _token(c, a, drop=("aud",))),
    Case(
        "expired",
        "RFC 9068 §4, RFC 7519 §4.1.4",
        lambda c, a: _token(
            c,
            a,
            claims={
                "exp": int(time.time()) - 3600,
                "iat": int(time.time()) - 7200,
                "nbf": int(time.time()) - 7200,
            },
        ),
    ),
    Case(
        "nbf in the future",
        "RFC 7519 §4.1.5",
        lambda c, a: _token(c, a, claims={"nbf": _hour(), "exp": _hour() + 3600}),
    ),
    Case(
        "iat in the future (beyond leeway)",
        "RFC 7519 §4.1.6: issued at a time not yet reached (beyond the leeway)",
        lambda c, a: _token(
            c, a, claims={"iat": _hour(), "nbf": None, "exp": _hour() + 3600}, drop=("nbf",)
        ),
    ),
    Case("exp missing", "RFC 9068 §2.2 required", lambda c, a: _token(c, a, drop=("exp",))),
    Case("sub missing", "RFC 9068 §2.2 required", lambda c, a: _token(c, a, drop=("sub",))),
    Case(
        "client_id missing",
        "RFC 9068 §2.2 required",
        lambda c, a: _token(c, a, drop=("client_id",)),
    ),
    Case("jti missing", "RFC 9068 §2.2 required", lambda c, a: _token(c, a, drop=("jti",))),
    Case("iat missing", "RFC 9068 §2.2 required", lambda c, a: _token(c, a, drop=("iat",))),
    Case(
        "exp as a string",
        "RFC 7519 §2 NumericDate",
        lambda c, a: _token(c, a, claims={"exp": str(_hour())}),
    ),
    Case(
        "alg outside the allow-list, same key (RS512 / PS512)",
        "RFC 8725 §3.1: only the expected algorithms",
        lambda c, a: _token(c, a, sign_alg=_other_alg(a)),
    ),
    Case(
        "kid of a key declared for the other RSA alg (RS256 vs PS256)",
        "RFC 7517 §4.4 key alg, RFC 8725 §3.1",
        lambda c, a: _token(c, a, key_alg=_other_key_alg(a)),
    ),
    Case(
        "crit header",
        "RFC 7515 §4.1.11: unknown critical extension",
        lambda c, a: _token(c, a, header={"crit": ["urn:example:ext"], "urn:example:ext": 1}),
    ),
    Case(
        "jku header",
        "RFC 8725 §3.10: no key URL from the token",
        lambda c, a: _token(c, a, header={"jku": "https://evil.example/jwks"}),
    ),
    Case(
        "x5u header",
        "RFC 8725 §3.10: no key URL from the token",
        lambda c, a: _token(c, a, header={"x5u": "https://evil.example/cert.pem"}),
    ),
    Case(
        "jwk header (the real key, embedded)",
        "RFC 7515 §4.1.3 / RFC 8725 §3.10: no key taken from the token",
        lambda c, a: _embedded_jwk(c, a),
    ),
    Case(
        "alg none",
        "RFC 8725 §2.1, §3.1",
        lambda c, a: _token(c, a, header={"alg": "none"}, sign_alg="none"),
    ),
    Case("HS256 keyed with the public key", "RFC 8725 §2.1 algorithm confusion", _hmac_confusion),
]


def _embedded_jwk(ctx: Context, alg: str) -> str:
    return _token(ctx, alg, header={"jwk": dict(ctx.signing_key(alg).public_jwk)})


COLUMNS: list[tuple[str, str, str]] = [("rs_guard", "rs_guard", "")] + [
    (p.key, p.label, p.needs) for p in PEERS
]


async def run(
    ctx: Context, alg: str, columns: list[tuple[str, str, str]]
) -> dict[str, dict[str, bool] | str]:
    """column key -> {case name: accepted}, or why the column could not run."""
    tokens = {case.name: case.make(ctx, alg) for case in CASES}
    out: dict[str, dict[str, bool] | str] = {}
    for key, _label, needs in columns:
        if not installed(needs):
            out[key] = NOT_INSTALLED
            continue
        try:
            app = BUILDERS[key](ctx, alg)
        except Exception as exc:
            out[key] = f"failed: {type(exc).__name__}: {exc}"
            continue
        answers: dict[str, bool] = {}
        for name, token in tokens.items():
            status = await call_app(app, b"Bearer " + token.encode())
            answers[name] = status == 200
        out[key] = answers
    return out


def report(results: dict[str, dict[str, bool] | str], alg: str) -> str:
    keys = [k for k, _, _ in COLUMNS if k in results]
    width = 12
    lines = [
        f"strictness: which validly signed but wrong tokens each validator accepts ({alg}; "
        "ACCEPTS = answered 200; '.' = refused)",
        f"  {'token':66s}" + "".join(f"{k[:width]:>{width}s}" for k in keys),
    ]
    for case in CASES:
        cells = []
        for k in keys:
            r = results[k]
            if isinstance(r, str):
                cells.append(f"{'n/a':>{width}s}")
            else:
                accepted = r[case.name]
                bad = accepted if case.control is not True else not accepted
                text = ("ACCEPTS" if accepted else ".") + (
                    "!" if bad and case.control is not None else ""
                )
                cells.append(f"{text:>{width}s}")
        lines.append(f"  {case.name[:66]:66s}" + "".join(cells))
    wrong = [c for c in CASES if c.control is None]
    counts = []
    for k in keys:
        r = results[k]
        if isinstance(r, str):
            counts.append("n/a")
        elif not r[CASES[0].name]:
            # It refuses the valid token too: its refusals say nothing about strictness.
            counts.append("no valid")
        else:
            counts.append(str(sum(r[c.name] for c in wrong)))
    lines.append(
        f"  {'accepted, of ' + str(len(wrong)) + ' tokens to refuse':66s}"
        + "".join(f"{c:>{width}s}" for c in counts)
    )
    for k, label, _ in COLUMNS:
        if k in results and isinstance(results[k], str):
            lines.append(f"  {k}: {results[k]}")
    lines.append(
        "  columns: " + "; ".join(f"{k} = {label}" for k, label, _ in COLUMNS if k in results)
    )
    lines.append("  why each row is wrong:")
    for case in CASES:
        lines.append(f"    {case.name}: {case.why}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alg", default="RS256", choices=["RS256", "PS256"])
    parser.add_argument("--only", help="one column (e.g. rs_guard)")
    args = parser.parse_args()
    ctx = Context.create()
    try:
        columns = [c for c in COLUMNS if args.only in (None, c[0])]
        results = asyncio.run(run(ctx, args.alg, columns))
    finally:
        ctx.close()
    print(report(results, args.alg))
    guard = results.get("rs_guard")
    if isinstance(guard, dict):
        wrong = [c.name for c in CASES if guard[c.name] != bool(c.control)]
        if wrong:
            print(f"\nrs_guard got these wrong: {wrong}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
