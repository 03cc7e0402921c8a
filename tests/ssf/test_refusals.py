"""Forged, unsigned, mis-addressed, stale and replayed events get RFC 8935 answers and change
nothing; a revocation table that is full answers 503, never evicting."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from rs_guard.idp import IdP
from rs_guard.ssf import SESSION_REVOKED, MemoryRevocations
from tests.support import ISSUER, Clock

from .conftest import RECEIVER, Service, access_token

pytestmark = pytest.mark.anyio


def revoked_event(idp: IdP, **claims: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "aud": RECEIVER,
        "iat": idp.now(),
        "jti": "evt-1",
        "sub_id": {"format": "iss_sub", "iss": ISSUER, "sub": "alice"},
        "events": {SESSION_REVOKED: {}},
    }
    payload.update(claims)
    return payload


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.fixture
def svc(idp: IdP, clock: Clock) -> Service:
    return Service(idp, clock, MemoryRevocations(clock=clock))


@pytest.mark.parametrize(
    ("make", "err"),
    [
        # signed by a key the IdP never published
        (
            lambda idp: jwt.encode(
                revoked_event(idp),
                ec.generate_private_key(ec.SECP256R1()),
                algorithm="ES256",
                headers={"typ": "secevent+jwt", "kid": idp.jwks()["keys"][0]["kid"]},
            ),
            "authentication_failed",
        ),
        # alg none
        (
            lambda idp: (
                b64({"typ": "secevent+jwt", "alg": "none"}) + "." + b64(revoked_event(idp)) + ".AAA"
            ),
            "authentication_failed",
        ),
        # for another receiver
        (
            lambda idp: idp.keys.sign(revoked_event(idp, aud="billing"), typ="secevent+jwt"),
            "invalid_audience",
        ),
        # from another issuer
        (
            lambda idp: idp.keys.sign(
                revoked_event(idp, iss="https://evil.example"), typ="secevent+jwt"
            ),
            "invalid_issuer",
        ),
        # an access token posted as an event
        (lambda idp: access_token(idp), "invalid_request"),
        # a malformed subject
        (
            lambda idp: idp.keys.sign(
                revoked_event(idp, sub_id={"format": "iss_sub", "iss": ISSUER}), typ="secevent+jwt"
            ),
            "invalid_request",
        ),
    ],
)
async def test_refused_events_change_nothing(idp: IdP, svc: Service, make: Any, err: str) -> None:
    token = access_token(idp)
    assert (await svc.get(token)).status_code == 200
    answer = await svc.push(make(idp))
    assert answer.status_code == 400
    assert answer.json()["err"] == err
    assert len(svc.revocations) == 0
    assert (await svc.get(token)).status_code == 200
    await svc.aclose()


async def test_replayed_event_is_refused(idp: IdP, svc: Service, clock: Clock) -> None:
    event = idp.keys.sign(revoked_event(idp), typ="secevent+jwt")
    assert (await svc.push(event)).status_code == 202
    clock.now += 5
    fresh = access_token(idp)
    again = await svc.push(event)
    assert again.status_code == 400 and again.json()["err"] == "invalid_request"
    assert (await svc.get(fresh)).status_code == 200  # the replay moved no cut-off
    await svc.aclose()


async def test_wrong_content_type_and_stale_events(idp: IdP, svc: Service, clock: Clock) -> None:
    event = idp.keys.sign(revoked_event(idp), typ="secevent+jwt")
    assert (await svc.push(event, ctype="application/jwt")).status_code == 400
    clock.now += 3600
    stale = await svc.push(event)
    assert stale.status_code == 400 and stale.json()["err"] == "invalid_request"
    assert len(svc.revocations) == 0
    await svc.aclose()


async def test_a_full_table_answers_503_and_keeps_every_entry(idp: IdP, clock: Clock) -> None:
    svc = Service(idp, clock, MemoryRevocations(clock=clock, max_entries=1))
    first = idp.keys.sign(revoked_event(idp), typ="secevent+jwt")
    assert (await svc.push(first)).status_code == 202
    other = revoked_event(
        idp, jti="evt-2", sub_id={"format": "iss_sub", "iss": ISSUER, "sub": "bob"}
    )
    answer = await svc.push(idp.keys.sign(other, typ="secevent+jwt"))
    assert answer.status_code == 503 and "retry-after" in answer.headers
    assert svc.revocations.get("alice") is not None
    # Once alice's entry has outlived every token it refused, room is made.
    clock.now += svc.revocations.max_token_lifetime + 1
    other["iat"] = idp.now()
    assert (await svc.push(idp.keys.sign(other, typ="secevent+jwt"))).status_code == 202
    await svc.aclose()
