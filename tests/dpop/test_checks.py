"""Each RFC 9449 §4.3 check, its own failure, with the exact challenge; and the §7 scheme rules."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from rs_guard import ResourceGuard
from rs_guard.dpop import DPoPKey, DPoPNonces, DPoPVerifier, access_token_hash
from rs_guard.idp import IdP
from tests.dpop.conftest import BASE, bound_token, client, dpop_headers, protected
from tests.support import Clock

pytestmark = pytest.mark.anyio

ALGS = 'algs="ES256 ES384 PS256 RS256 EdDSA"'


def refused(description: str, error: str = "invalid_dpop_proof") -> str:
    """The challenge of a resource taking Bearer and DPoP for a refused DPoP request."""
    return f'Bearer, DPoP error="{error}", error_description="{description}", {ALGS}'


class Holder:
    """A client key with full control over what its proofs say (to break one thing at a time)."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.jwk = json.loads(pyjwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key()))
        self.key = DPoPKey(self.private)

    def proof(
        self,
        clock: Clock,
        token: str,
        *,
        header: dict[str, Any] | None = None,
        drop: str | None = None,
        signer: Any = None,
        alg: str = "ES256",
        **claims: Any,
    ) -> str:
        body: dict[str, Any] = {
            "jti": f"j-{clock():.6f}-{id(claims)}",
            "htm": "GET",
            "htu": f"{BASE}/whoami",
            "iat": int(clock()),
            "ath": access_token_hash(token),
            **claims,
        }
        if drop:
            del body[drop]
        head = {"typ": "dpop+jwt", "jwk": self.jwk, **(header or {})}
        return pyjwt.encode(body, signer or self.private, algorithm=alg, headers=head)


@pytest.fixture
def holder() -> Holder:
    return Holder()


@pytest.fixture
def service(idp: IdP, clock: Clock) -> ResourceGuard:
    return protected(idp, clock, serve_metadata=False)


async def ask(guard: ResourceGuard, headers: Any, path: str = "/whoami") -> tuple[int, str, Any]:
    async with client(guard) as http:
        answer = await http.get(path, headers=headers)
    return answer.status_code, answer.headers.get("www-authenticate", ""), answer


def as_dpop(token: str, *proofs: str) -> list[tuple[str, str]]:
    return [("Authorization", f"DPoP {token}"), *(("DPoP", p) for p in proofs)]


async def test_a_valid_proof_is_accepted_and_request_auth_says_so(
    idp: IdP, clock: Clock, service: ResourceGuard, holder: Holder
) -> None:
    token = bound_token(idp, holder.key.jkt)
    status, _, answer = await ask(service, as_dpop(token, holder.proof(clock, token)))
    assert status == 200
    assert answer.json() == {"sub": "svc", "jkt": holder.key.jkt, "sender_constrained": True}


async def test_1_more_than_one_proof(
    idp: IdP, clock: Clock, service: ResourceGuard, holder: Holder
) -> None:
    token = bound_token(idp, holder.key.jkt)
    proofs = holder.proof(clock, token), holder.proof(clock, token, jti="other")
    status, challenge, _ = await ask(service, as_dpop(token, *proofs))
    assert (status, challenge) == (401, refused("More than one DPoP proof"))


async def test_no_proof(idp: IdP, service: ResourceGuard, holder: Holder) -> None:
    token = bound_token(idp, holder.key.jkt)
    status, challenge, _ = await ask(service, as_dpop(token))
    assert (status, challenge) == (401, refused("A DPoP proof is required"))


@pytest.mark.parametrize("proof", ["abc", "a.b.c", "e30.e30.", "e30.e30.e30.e30", "x" * 9000])
async def test_2_not_a_well_formed_jwt(
    idp: IdP, service: ResourceGuard, holder: Holder, proof: str
) -> None:
    token = bound_token(idp, holder.key.jkt)
    status, challenge, _ = await ask(service, as_dpop(token, proof))
    assert status == 401
    assert challenge in (
        refused("The DPoP proof is not a well-formed JWT"),
        refused("The DPoP proof is invalid"),  # too large: refused before parsing
    )


@pytest.mark.parametrize(
    ("drop", "description"),
    [
        ("jti", "The DPoP proof has no valid jti"),
        ("htm", "The DPoP proof lacks htm, htu or iat"),
        ("htu", "The DPoP proof lacks htm, htu or iat"),
        ("iat", "The DPoP proof lacks htm, htu or iat"),
        ("ath", "The DPoP proof has no ath"),
    ],
)
async def test_3_required_claims(
    idp: IdP, clock: Clock, service: ResourceGuard, holder: Holder, drop: str, description: str
) -> None:
    token = bound_token(idp, holder.key.jkt)
    status, challenge, _ = await ask(service, as_dpop(token, holder.proof(clock, token, drop=drop)))
    assert (status, challenge) == (401, refused(description))


@pytest.mark.parametrize("typ", ["JWT", "at+jwt", "dpop"])
async def test_4_typ(
    idp: IdP, clock: Clock, service: ResourceGuard, holder: Holder, typ: str
) -> None:
    token = bound_token(idp, holder.key.jkt)
    proof = holder.proof(clock, token, header={"typ": typ})
    status, challenge, _ = await ask(service, as_dpop(token, proof))
    assert (status, challenge) == (401, refused("The DPoP proof typ is not dpop+jwt"))


async def test_5_symmetric_or_unlisted_alg(
    idp: IdP, clock: Clock, service: ResourceGuard, holder: Holder
) -> None:
    token = bound_token(idp, holder.key.jkt)
    hmac_proof = holder.proof(clock, token, signer=b"k" * 32, alg="HS256")
    status, challenge, _ = await ask(service, as_dpop(token, hmac_proof))
    assert (status, challenge) == (401, refused("The DPoP proof alg is not accepted"))
    strict = protected(
        idp, clock, serve_metadata=False, dpop=DPoPVerifier(algorithms=("PS256",), clock=clock)
    )
    status, challenge, _ = await ask(strict, as_dpop(token, holder.proof(clock, token)))
    assert status == 401
    assert challenge == (
        'Bearer, DPoP error="invalid_dpop_proof", '
        'error_description="The DPoP proof alg is not accepted", algs="PS256"'
    )


async def test_6_signature(idp: IdP, clock: Clock, service: ResourceGuard, holder: Holder) -> None:
    token = bound_token(idp, holder.key.jkt)
    forged = holder.proof(clock, token, signer=ec.generate_private_key(ec.SECP256R1()))
    status, challenge, _ = await ask(service, as_dpop(token, forged))
    assert (status, challenge) == (401, refused("The DPoP proof signature is invalid"))


async def test_7_private_key_in_jwk(
    idp: IdP, clock: Clock, service: ResourceGuard, holder: Holder
) -> None:
    token = bound_token(idp, holder.key.jkt)
    private = json.loads(pyjwt.algorithms.ECAlgorithm.to_jwk(holder.private))
    proof = holder.proof(clock, token, header={"jwk": private})
    status, challenge, _ = await ask(service, as_dpop(token, proof))
    assert (status, challenge) == (401, refused("The DPoP proof jwk is a private key"))


async def test_8_htm(idp: IdP, clock: Clock, service: ResourceGuard, holder: Holder) -> None:
    token = bound_token(idp, holder.key.jkt)
    proof = holder.proof(clock, token, htm="POST")
    status, challenge, _ = await ask(service, as_dpop(token, proof))
    assert (status, challenge) == (401, refused("The DPoP proof htm does not match"))


@pytest.mark.parametrize(
    "htu",
    [f"{BASE}/pay/whoami", "https://testserver/whoami", "http://other/whoami", "/whoami", "x"],
)
async def test_9_htu(
    idp: IdP, clock: Clock, service: ResourceGuard, holder: Holder, htu: str
) -> None:
    token = bound_token(idp, holder.key.jkt)
    status, challenge, _ = await ask(service, as_dpop(token, holder.proof(clock, token, htu=htu)))
    assert (status, challenge) == (401, refused("The DPoP proof htu does not match"))


@pytest.mark.parametrize(
    "htu",
    [
        f"{BASE}/whoami?x=1#frag",  # query and fragment ignored
        "HTTP://TestServer:80/whoami",  # scheme, host and default port normalised
        f"{BASE}/%77hoami",  # an unreserved character percent-encoded
    ],
)
async def test_9_htu_normalised(
    idp: IdP, clock: Clock, service: ResourceGuard, holder: Holder, htu: str
) -> None:
    token = bound_token(idp, holder.key.jkt)
    proof = holder.proof(clock, token, htu=htu)
    async with client(service) as http:
        answer = await http.get("/whoami?x=2", headers=as_dpop(token, proof))
    assert answer.status_code == 200


async def test_9_htu_under_root_path(idp: IdP, clock: Clock, holder: Holder) -> None:
    """Mounted under a root_path, the URI the client addressed is what the proof names."""
    guard = protected(idp, clock, serve_metadata=False)
    token = bound_token(idp, holder.key.jkt)
    transport = httpx.ASGITransport(app=guard, root_path="/api")
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        good = holder.proof(clock, token, htu=f"{BASE}/api/whoami")
        assert (await http.get("/api/whoami", headers=as_dpop(token, good))).status_code == 200
        bad = holder.proof(clock, token, htu=f"{BASE}/whoami")
        assert (await http.get("/api/whoami", headers=as_dpop(token, bad))).status_code == 401


async def test_10_nonce(idp: IdP, clock: Clock, holder: Holder) -> None:
    nonces = DPoPNonces(b"0123456789abcdef", lifetime=60, clock=clock)
    guard = protected(
        idp, clock, serve_metadata=False, dpop=DPoPVerifier(nonces=nonces, clock=clock)
    )
    token = bound_token(idp, holder.key.jkt)
    status, challenge, answer = await ask(
        guard, as_dpop(token, holder.proof(clock, token, nonce="made-up"))
    )
    assert status == 401
    assert challenge == 'Bearer, DPoP error="use_dpop_nonce", error_description=' + (
        '"Resource server requires nonce in DPoP proof"'
    )
    good = answer.headers["dpop-nonce"]
    status, _, _ = await ask(guard, as_dpop(token, holder.proof(clock, token, nonce=good)))
    assert status == 200
    clock.now += 61  # the next step: the nonce is still good (rotation)
    token = bound_token(idp, holder.key.jkt)
    status, _, _ = await ask(guard, as_dpop(token, holder.proof(clock, token, nonce=good)))
    assert status == 200
    clock.now += 60  # two steps on: stale, a new one is handed out
    token = bound_token(idp, holder.key.jkt)
    status, _, answer = await ask(guard, as_dpop(token, holder.proof(clock, token, nonce=good)))
    assert status == 401
    assert answer.headers["dpop-nonce"] != good


@pytest.mark.parametrize(("offset", "ok"), [(-330, True), (-331, False), (30, True), (31, False)])
async def test_11_iat_window(
    idp: IdP, clock: Clock, service: ResourceGuard, holder: Holder, offset: int, ok: bool
) -> None:
    token = bound_token(idp, holder.key.jkt)
    proof = holder.proof(clock, token, iat=int(clock()) + offset)
    status, challenge, _ = await ask(service, as_dpop(token, proof))
    if ok:
        assert status == 200
    else:
        assert (status, challenge) == (401, refused("The DPoP proof iat is out of range"))


async def test_12_ath(idp: IdP, clock: Clock, service: ResourceGuard, holder: Holder) -> None:
    token = bound_token(idp, holder.key.jkt)
    other = bound_token(idp, holder.key.jkt, jti="another")
    proof = holder.proof(clock, token, ath=access_token_hash(other))
    status, challenge, _ = await ask(service, as_dpop(token, proof))
    assert (status, challenge) == (401, refused("The DPoP proof ath does not match"))


async def test_12_key_binding(
    idp: IdP, clock: Clock, service: ResourceGuard, holder: Holder
) -> None:
    token = bound_token(idp, DPoPKey().jkt)
    status, challenge, _ = await ask(service, as_dpop(token, holder.proof(clock, token)))
    assert (status, challenge) == (401, refused("Invalid DPoP key binding", "invalid_token"))


# ----- §7: schemes and policies -------------------------------------------------------------


async def test_bound_token_as_bearer_is_refused(
    idp: IdP, clock: Clock, service: ResourceGuard, holder: Holder
) -> None:
    token = bound_token(idp, holder.key.jkt)
    status, challenge, _ = await ask(service, {"Authorization": f"Bearer {token}"})
    assert status == 401
    assert challenge == (
        'Bearer error="invalid_token", '
        'error_description="The access token is DPoP-bound and needs a DPoP proof", '
        f"DPoP {ALGS}"
    )


async def test_bound_token_is_refused_by_a_guard_without_dpop(
    idp: IdP, clock: Clock, holder: Holder
) -> None:
    guard = protected(idp, clock, serve_metadata=False, dpop=None)
    token = bound_token(idp, holder.key.jkt)
    status, challenge, _ = await ask(guard, {"Authorization": f"Bearer {token}"})
    assert status == 401
    assert challenge == (
        'Bearer error="invalid_token", '
        'error_description="The access token is DPoP-bound and needs a DPoP proof"'
    )
    # ... and the DPoP scheme is not one it takes.
    status, challenge, _ = await ask(guard, as_dpop(token, holder.proof(clock, token)))
    assert (status, challenge) == (401, "Bearer")


async def test_unbound_token_with_dpop_scheme_is_refused(
    idp: IdP, clock: Clock, service: ResourceGuard, holder: Holder
) -> None:
    token = bound_token(idp, None)
    status, challenge, _ = await ask(service, as_dpop(token, holder.proof(clock, token)))
    assert status == 401
    assert challenge == refused("The access token is not DPoP-bound", "invalid_token")


async def test_bearer_where_dpop_is_required(idp: IdP, clock: Clock) -> None:
    guard = protected(
        idp,
        clock,
        serve_metadata=False,
        dpop=DPoPVerifier(routes={"/pay": "required"}, clock=clock),
    )
    token = bound_token(idp, None)
    status, _, _ = await ask(guard, {"Authorization": f"Bearer {token}"})
    assert status == 200  # allowed elsewhere
    status, challenge, _ = await ask(guard, {"Authorization": f"Bearer {token}"}, "/pay/whoami")
    assert status == 401
    assert challenge == f'DPoP error="invalid_token", error_description="DPoP is required", {ALGS}'


async def test_route_with_dpop_off(idp: IdP, clock: Clock, holder: Holder) -> None:
    guard = protected(
        idp, clock, serve_metadata=False, dpop=DPoPVerifier(routes={"/pay": "off"}, clock=clock)
    )
    token = bound_token(idp, holder.key.jkt)
    proof = holder.proof(clock, token, htu=f"{BASE}/pay/whoami")
    status, challenge, _ = await ask(guard, as_dpop(token, proof), "/pay/whoami")
    assert status == 401
    assert (
        challenge == 'Bearer error="invalid_token", error_description="DPoP is not accepted here"'
    )


async def test_cached_token_still_needs_a_fresh_proof_every_time(
    idp: IdP, clock: Clock, service: ResourceGuard, holder: Holder
) -> None:
    token = bound_token(idp, holder.key.jkt)
    for _ in range(3):
        status, _, _ = await ask(service, dpop_headers(holder.key, token, clock))
        assert status == 200
    status, _, _ = await ask(service, {"Authorization": f"DPoP {token}"})
    assert status == 401


async def test_metadata_advertises_dpop(idp: IdP, clock: Clock) -> None:
    make: Callable[..., ResourceGuard] = lambda **o: protected(idp, clock, **o)  # noqa: E731
    for verifier, required in [
        (DPoPVerifier(clock=clock), False),
        (DPoPVerifier(policy="required", algorithms=("ES256",), clock=clock), True),
    ]:
        async with client(make(dpop=verifier)) as http:
            doc = (await http.get("/.well-known/oauth-protected-resource/items")).json()
        assert doc["dpop_signing_alg_values_supported"] == list(verifier.algorithms)
        assert doc["dpop_bound_access_tokens_required"] is required


async def test_a_long_bearer_token_is_taken_where_dpop_is_allowed(
    idp: IdP, service: ResourceGuard
) -> None:
    # Tokens up to Limits.max_token_bytes (8 KiB) are valid Bearer tokens; one longer than the
    # guard's Authorization memo keeps (4 KiB) must be found just the same with DPoP on.
    token = bound_token(idp, None, padding="x" * 5000)
    assert len(token) > 5000
    status, challenge, answer = await ask(service, {"Authorization": f"Bearer {token}"})
    assert status == 200, challenge
    assert answer.json()["sender_constrained"] is False
