"""The receiver endpoint answers every delivery per RFC 8935 and accepts each event once."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rs_guard import ResourceGuard
from rs_guard.events import EventError, EventReceiver, EventVerifier, SecurityEvent
from rs_guard.idp import IdP
from rs_guard.keys import JWKSCache

from .conftest import (
    ISSUER,
    LOGGED_OUT,
    PUBLISHER,
    RECEIVER,
    UPDATED,
    Clock,
    Receiver,
    sign,
)

pytestmark = pytest.mark.anyio


def refused(resp: httpx.Response, err: str) -> None:
    assert resp.status_code == 400, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["err"] == err, body
    assert isinstance(body["description"], str) and body["description"]
    assert set(body) == {"err", "description"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"x" * 64) -> str:
    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(signature)]
    )


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


# ----- the happy path and replays -----------------------------------------------------------


async def test_valid_event_is_accepted_once_with_202_and_empty_body(
    idp: IdP, receiver: Receiver
) -> None:
    token = sign(idp)
    resp = await receiver.post(token)
    assert resp.status_code == 202
    assert resp.content == b""
    [(etype, event, payload)] = receiver.handled
    assert etype == UPDATED
    assert payload == {"fields": ["email"]}
    assert event.issuer == ISSUER
    assert event.audience == (RECEIVER,)
    assert event.publisher == PUBLISHER
    assert event.subject == idp.subject_for("alice", RECEIVER)
    assert event.jti == claims_of(token)["jti"]

    again = await receiver.post(token)
    refused(again, "invalid_request")
    assert "already" in again.json()["description"]
    assert len(receiver.handled) == 1


async def test_same_event_re_encoded_is_a_replay(idp: IdP, receiver: Receiver) -> None:
    token = sign(idp)
    assert (await receiver.post(token)).status_code == 202
    jti = claims_of(token)["jti"]
    # Re-signed: other bytes (ECDSA is randomised, header members reordered), same (iss, jti).
    resigned = sign(idp, claims={"jti": jti}, headers={"zzz": 1})
    assert resigned != token
    refused(await receiver.post(resigned), "invalid_request")
    # Padding the body does not make a new event either.
    refused(await receiver.post(token + "\r\n"), "invalid_request")
    # A second spelling of the same base64url is not accepted at all (strict parser).
    h, p, s = token.split(".")
    last = s[-1]
    alt = {"A": "B", "Q": "R", "g": "h", "w": "x"}.get(last)
    if alt is not None:
        refused(await receiver.post(f"{h}.{p}.{s[:-1]}{alt}"), "invalid_request")
    assert len(receiver.handled) == 1


async def test_distinct_events_are_each_accepted(idp: IdP, receiver: Receiver) -> None:
    for user in ("alice", "bob", "alice"):
        assert (await receiver.post(sign(idp, user=user))).status_code == 202
    assert len(receiver.handled) == 3
    assert receiver.handled[0][1].subject != receiver.handled[1][1].subject


async def test_event_with_two_types_runs_both_handlers(idp: IdP, receiver: Receiver) -> None:
    token = sign(idp, events={UPDATED: {}, LOGGED_OUT: {"reason": "admin"}})
    assert (await receiver.post(token)).status_code == 202
    assert [e for e, _, _ in receiver.handled] == [UPDATED, LOGGED_OUT]


# ----- freshness ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shift", "ok"),
    [(-300 - 30 - 1, False), (-300 - 29, True), (29, True), (31, False)],
)
async def test_iat_window_in_both_directions(
    idp: IdP, receiver: Receiver, clock: Clock, shift: int, ok: bool
) -> None:
    token = sign(idp, claims={"iat": int(clock.now) + shift, "exp": int(clock.now) + 3600})
    resp = await receiver.post(token)
    if ok:
        assert resp.status_code == 202
    else:
        refused(resp, "invalid_request")
        assert not receiver.handled


async def test_expired_exp_is_refused(idp: IdP, receiver: Receiver, clock: Clock) -> None:
    token = sign(idp, claims={"exp": int(clock.now) - 31})
    refused(await receiver.post(token), "invalid_request")


async def test_a_replay_stays_refused_for_the_whole_window(
    idp: IdP, receiver: Receiver, clock: Clock
) -> None:
    token = sign(idp, claims={"iat": int(clock.now) + 30, "exp": int(clock.now) + 10_000})
    assert (await receiver.post(token)).status_code == 202
    # The store keeps the pair longer than the token stays acceptable, whatever its iat.
    for step in (100, 200, 60):
        clock.now += step
        refused(await receiver.post(token), "invalid_request")
    assert len(receiver.handled) == 1


# ----- who sent it, to whom -----------------------------------------------------------------


async def test_wrong_audience(idp: IdP, receiver: Receiver) -> None:
    idp.register_client("other-receiver", "x")
    token = idp.events.sign("other-receiver", {UPDATED: {}}, user="alice", publisher=PUBLISHER)
    refused(await receiver.post(token), "invalid_audience")


async def test_audience_array_containing_the_receiver_is_accepted(
    idp: IdP, receiver: Receiver
) -> None:
    token = sign(idp, claims={"aud": ["someone-else", RECEIVER]})
    assert (await receiver.post(token)).status_code == 202


async def test_wrong_issuer(idp: IdP, receiver: Receiver) -> None:
    refused(
        await receiver.post(sign(idp, claims={"iss": "https://evil.example"})), "invalid_issuer"
    )
    refused(await receiver.post(sign(idp, claims={"iss": ISSUER + "/"})), "invalid_issuer")


async def test_unsigned_event(idp: IdP, receiver: Receiver) -> None:
    claims = claims_of(sign(idp))
    for alg in ("none", "None", "NONE", None):
        header = {"typ": "secevent+jwt", "alg": alg} if alg is not None else {"typ": "secevent+jwt"}
        refused(await receiver.post(forge(header, claims, b"\0\0")), "authentication_failed")
    # The usual alg=none form, with an empty signature, is not even a compact JWS here.
    token = forge({"typ": "secevent+jwt", "alg": "none"}, claims)
    refused(await receiver.post(token[: token.rindex(".") + 1]), "invalid_request")
    assert not receiver.handled


async def test_symmetric_alg_with_the_public_key_is_refused(idp: IdP, receiver: Receiver) -> None:
    claims = claims_of(sign(idp))
    kid = idp.jwks()["keys"][0]["kid"]
    token = jwt.encode(
        claims,
        "a-shared-secret-of-sufficient-len",
        algorithm="HS256",
        headers={"typ": "secevent+jwt", "kid": kid},
    )
    refused(await receiver.post(token), "invalid_key")


async def test_foreign_signed_events(idp: IdP, receiver: Receiver, clock: Clock) -> None:
    claims = claims_of(sign(idp))
    claims["jti"] = "forged-1"
    foreign = ec.generate_private_key(ec.SECP256R1())
    # Unknown key id: a key the IdP never published.
    token = jwt.encode(
        claims, foreign, algorithm="ES256", headers={"typ": "secevent+jwt", "kid": "evil"}
    )
    refused(await receiver.post(token), "invalid_key")
    # The IdP's key id, someone else's key: the signature does not verify.
    kid = idp.jwks()["keys"][0]["kid"]
    token = jwt.encode(
        claims, foreign, algorithm="ES256", headers={"typ": "secevent+jwt", "kid": kid}
    )
    refused(await receiver.post(token), "authentication_failed")
    # Another IdP with the same issuer name and its own keys.
    other = IdP(ISSUER, clock=clock)
    other.register_client(RECEIVER, "x")
    other.add_user("alice")
    refused(
        await receiver.post(other.events.sign(RECEIVER, {UPDATED: {}}, user="alice")),
        "invalid_key",
    )
    # An embedded key is never used to verify.
    token = jwt.encode(
        claims,
        foreign,
        algorithm="ES256",
        headers={"typ": "secevent+jwt", "kid": kid, "jwk": {"kty": "EC"}},
    )
    refused(await receiver.post(token), "invalid_key")
    assert not receiver.handled


async def test_tampered_payload_fails_authentication(idp: IdP, receiver: Receiver) -> None:
    h, _, s = sign(idp).split(".")
    claims = claims_of(sign(idp))
    claims["sub"] = idp.subject_for("bob", RECEIVER)
    p = b64(json.dumps(claims).encode())
    refused(await receiver.post(f"{h}.{p}.{s}"), "authentication_failed")


async def test_allowed_publishers(idp: IdP, make_receiver: Callable[..., Receiver]) -> None:
    receiver = make_receiver(publishers=["crm"])
    refused(await receiver.post(sign(idp)), "access_denied")
    refused(await receiver.post(sign(idp, publisher=None)), "access_denied")
    assert (await receiver.post(sign(idp, publisher="crm"))).status_code == 202


# ----- tokens that are not events -----------------------------------------------------------


async def test_access_token_posted_as_event(idp: IdP, receiver: Receiver) -> None:
    token = idp.issue_access_token(
        "alice",
        client_id=PUBLISHER,
        audience=RECEIVER,
        scope="x",
        claims={"events": {UPDATED: {}}},
    )
    refused(await receiver.post(token), "invalid_request")
    # Even relabelled as an event by its signer, an access token's typ is what it is.
    assert not receiver.handled


async def test_id_token_posted_as_event(idp: IdP, receiver: Receiver) -> None:
    token = idp.issue_id_token("alice", client_id=RECEIVER, nonce="n-1")
    refused(await receiver.post(token), "invalid_request")
    # The same claims with the event typ: the nonce still marks it as an ID token.
    refused(
        await receiver.post(sign(idp, claims={"nonce": "n-1"})),
        "invalid_request",
    )
    assert not receiver.handled


async def test_event_posted_as_access_token_gets_invalid_token(idp: IdP) -> None:
    async def items(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    app = ResourceGuard(
        Starlette(routes=[Route("/items", items)]),
        issuer=ISSUER,
        # Even a resource named like the receiver: the event's typ and `events` give it away.
        resource="https://mailer.example",
        audience=RECEIVER,
        http_client=idp.http_client(),
    )
    token = sign(idp)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://mailer.example"
    ) as client:
        resp = await client.get("/items", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 401
        assert 'error="invalid_token"' in resp.headers["www-authenticate"]
        # The guard works: a real access token for that resource passes.
        access = idp.issue_access_token("alice", client_id=PUBLISHER, audience=RECEIVER)
        ok = await client.get("/items", headers={"Authorization": f"Bearer {access}"})
        assert ok.status_code == 200


# ----- malformed requests -------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not a token",
        b"a.b",
        b"a.b.c.d.e",
        "é.é.é".encode(),
        b"\xff\xfe",
        # {"typ": "secevent+jwt", "alg": "ES256"} header, {} payload
        b"eyJ0eXAiOiJzZWNldmVudCtqd3QiLCJhbGciOiJFUzI1NiJ9.e30.AAAA",
        b"W10.W10.AAAA",  # arrays, not objects
    ],
)
async def test_malformed_bodies(receiver: Receiver, body: bytes) -> None:
    refused(await receiver.post(body), "invalid_request")


async def test_oversized_body(receiver: Receiver) -> None:
    refused(await receiver.post(b"A" * 100_000), "invalid_request")


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", "application/jwt", "text/plain", "application/secevent+json"],
)
async def test_wrong_content_types(idp: IdP, receiver: Receiver, content_type: str | None) -> None:
    token = sign(idp)
    refused(await receiver.post(token, content_type=content_type), "invalid_request")
    # Not consumed: the correct delivery of the same event goes through.
    assert (await receiver.post(token)).status_code == 202


async def test_content_type_parameters_and_case_are_accepted(idp: IdP, receiver: Receiver) -> None:
    resp = await receiver.post(sign(idp), content_type="Application/SecEvent+JWT; charset=ascii")
    assert resp.status_code == 202


async def test_only_post(receiver: Receiver) -> None:
    resp = await receiver.client.get("/events")
    assert resp.status_code == 405


DROP = object()


def raw_sign(idp: IdP, change: dict[str, Any], header: dict[str, Any]) -> str:
    """Re-sign a valid event's claims with `change` applied (DROP removes a member)."""
    payload = claims_of(sign(idp))
    for name, value in change.items():
        if value is DROP:
            payload.pop(name, None)
        else:
            payload[name] = value
    key = idp.keys.active()
    headers = {"typ": "secevent+jwt", "kid": key.kid, **header}
    return jwt.encode(payload, key.private_key, algorithm=key.alg, headers=headers)


@pytest.mark.parametrize(
    ("change", "header"),
    [
        ({"events": DROP}, {}),
        ({"events": {}}, {}),
        ({"events": []}, {}),
        ({"events": "x"}, {}),
        ({"events": {"not a uri": {}}}, {}),
        ({"events": {UPDATED: "payload"}}, {}),
        ({"events": {UPDATED: []}}, {}),
        ({"events": {f"urn:x:{i}": {} for i in range(33)}}, {}),
        ({"jti": DROP}, {}),
        ({"jti": ""}, {}),
        ({"jti": 7}, {}),
        ({"jti": "j" * 300}, {}),
        ({"sub": DROP}, {}),
        ({"sub": 5}, {}),
        ({"sub": ""}, {}),
        ({"iat": DROP}, {}),
        ({"iat": "now"}, {}),
        ({"iat": True}, {}),
        ({"exp": "later"}, {}),
        ({"azp": 3}, {}),
        ({}, {"typ": None}),
        ({}, {"typ": "JWT"}),
        ({}, {"typ": "at+jwt"}),
        ({}, {"typ": "application/at+jwt"}),
        ({}, {"typ": "logout+jwt"}),
        ({}, {"crit": ["exp"]}),
    ],
)
async def test_ill_shaped_events_are_invalid_requests(
    idp: IdP, receiver: Receiver, change: dict[str, Any], header: dict[str, Any]
) -> None:
    refused(await receiver.post(raw_sign(idp, change, header)), "invalid_request")
    assert not receiver.handled


async def test_missing_aud_or_iss(idp: IdP, receiver: Receiver) -> None:
    refused(await receiver.post(raw_sign(idp, {"aud": DROP}, {})), "invalid_audience")
    refused(await receiver.post(raw_sign(idp, {"aud": []}, {})), "invalid_audience")
    refused(await receiver.post(raw_sign(idp, {"iss": DROP}, {})), "invalid_issuer")


async def test_application_prefixed_typ_is_accepted(idp: IdP, receiver: Receiver) -> None:
    token = sign(idp, headers={"typ": "application/secevent+jwt"})
    assert (await receiver.post(token)).status_code == 202


async def test_unknown_event_type_is_refused_unless_ignored(
    idp: IdP, make_receiver: Callable[..., Receiver]
) -> None:
    receiver = make_receiver()
    token = sign(idp, events={"https://schemas.example/event/other": {}})
    refused(await receiver.post(token), "invalid_request")
    receiver.endpoint.ignore_unknown_events = True
    # Refused above without being consumed, so now it is accepted (and nothing runs).
    assert (await receiver.post(token)).status_code == 202
    assert receiver.handled == []


# ----- the receiver's own failures ----------------------------------------------------------


async def test_handler_failure_does_not_consume_the_event(idp: IdP, receiver: Receiver) -> None:
    token = sign(idp)
    receiver.fail_next = 1
    resp = await receiver.post(token)
    assert resp.status_code == 500
    assert "database" not in resp.text  # nothing of the handler's error leaks
    assert receiver.handled == []
    retry = await receiver.post(token)
    assert retry.status_code == 202
    assert len(receiver.handled) == 1
    refused(await receiver.post(token), "invalid_request")


async def test_handler_may_refuse_a_payload(
    idp: IdP, make_receiver: Callable[..., Receiver]
) -> None:
    receiver = make_receiver()
    seen: list[str] = []

    async def strict(event: SecurityEvent, payload: Any) -> None:
        seen.append(event.jti)
        if "fields" not in payload:
            raise EventError(description="fields is required")

    etype = "https://schemas.example/event/strict"
    receiver.endpoint.add_handler(etype, strict)
    resp = await receiver.post(sign(idp, events={etype: {}}))
    refused(resp, "invalid_request")
    assert resp.json()["description"] == "fields is required"
    assert (await receiver.post(sign(idp, events={etype: {"fields": []}}))).status_code == 202


async def test_handler_timeout_is_a_503_and_not_consumed(
    idp: IdP, make_receiver: Callable[..., Receiver]
) -> None:
    receiver = make_receiver()
    endpoint = EventReceiver(receiver.verifier, handler_timeout=0.05)
    calls: list[int] = []

    async def slow(event: SecurityEvent, payload: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            await asyncio.sleep(1)

    endpoint.add_handler(UPDATED, slow)
    receiver.app.router.routes[:] = [endpoint.route("/events")]
    token = sign(idp)
    resp = await receiver.post(token)
    assert resp.status_code == 503
    assert resp.headers["retry-after"].isdigit()
    assert (await receiver.post(token)).status_code == 202
    assert len(calls) == 2


async def test_concurrent_duplicate_is_told_to_retry(
    idp: IdP, make_receiver: Callable[..., Receiver]
) -> None:
    receiver = make_receiver()
    gate = asyncio.Event()
    started = asyncio.Event()
    runs: list[str] = []

    async def blocking(event: SecurityEvent, payload: Any) -> None:
        runs.append(event.jti)
        started.set()
        await gate.wait()

    receiver.endpoint.handlers[UPDATED] = blocking
    token = sign(idp)
    first = asyncio.create_task(receiver.post(token))
    await started.wait()
    second = await receiver.post(token)
    assert second.status_code == 503
    assert int(second.headers["retry-after"]) >= 1
    gate.set()
    assert (await first).status_code == 202
    refused(await receiver.post(token), "invalid_request")
    assert len(runs) == 1


async def test_idp_keys_unreachable_is_503_then_recovers(idp: IdP, receiver: Receiver) -> None:
    token = sign(idp)
    idp.faults.jwks = "down"
    resp = await receiver.post(token)
    assert resp.status_code == 503
    assert resp.headers["retry-after"].isdigit()
    assert resp.json()["err"] == "temporarily_unavailable"
    assert receiver.handled == []
    idp.faults.jwks = None
    assert (await receiver.post(token)).status_code == 202


async def test_idp_jwks_garbage_is_503(idp: IdP, receiver: Receiver) -> None:
    idp.faults.jwks = "garbage"
    assert (await receiver.post(sign(idp))).status_code == 503


async def test_observer_sees_reasons_but_no_token(
    idp: IdP, make_receiver: Callable[..., Receiver]
) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    receiver = make_receiver()
    receiver.endpoint._observer = lambda name, fields: seen.append((name, fields))
    token = sign(idp)
    await receiver.post(token)
    await receiver.post(token)
    assert [n for n, _ in seen] == ["event_accepted", "event_rejected"]
    assert seen[1][1]["reason"] == "replayed"
    assert token not in repr(seen)


# ----- the verifier on its own --------------------------------------------------------------


async def test_verifier_python_api(idp: IdP, clock: Clock) -> None:
    verifier = EventVerifier(
        issuer=ISSUER, audience=RECEIVER, http_client=idp.http_client(), clock=clock
    )
    token = sign(idp)
    event = await verifier.check(token)
    assert event.types == (UPDATED,)
    assert event.claims["azp"] == PUBLISHER
    # check() does not consume; verify() does.
    await verifier.check(token)
    assert (await verifier.verify(token)).jti == event.jti
    with pytest.raises(EventError) as info:
        await verifier.verify(token)
    assert info.value.error == "invalid_request"
    assert info.value.reason == "replayed"
    # accept(): released when the body fails, recorded when it succeeds.
    other = sign(idp)
    with pytest.raises(RuntimeError):
        async with verifier.accept(other):
            raise RuntimeError("handler failed")
    async with verifier.accept(other) as accepted:
        assert accepted.subject == idp.subject_for("alice", RECEIVER)
    with pytest.raises(EventError):
        await verifier.verify(other)


async def test_verifier_shares_the_guard_key_cache(idp: IdP, clock: Clock) -> None:
    guard = ResourceGuard(
        Starlette(), issuer=ISSUER, resource="https://api.example", http_client=idp.http_client()
    )
    verifier = EventVerifier(issuer=ISSUER, audience=RECEIVER, keys=guard.keys, clock=clock)
    assert verifier.keys is guard.keys
    await verifier.verify(sign(idp))
    assert guard.keys.keys  # fetched once, now cached for access tokens too


async def test_verifier_follows_key_rotation(
    idp: IdP, make_receiver: Callable[..., Receiver]
) -> None:
    # The JWKS cache refetches on an unknown kid (here without the usual 30 s cooldown).
    keys = JWKSCache(ISSUER + "/jwks", http_client=idp.http_client(), cooldown=0)
    receiver = make_receiver(keys=keys)
    assert (await receiver.post(sign(idp))).status_code == 202
    idp.rotate()
    assert (await receiver.post(sign(idp))).status_code == 202


@pytest.mark.parametrize("alg", ["RS256", "PS256", "EdDSA"])
async def test_receiver_algorithms(idp: IdP, receiver: Receiver, alg: str) -> None:
    assert (await receiver.post(sign(idp, alg=alg))).status_code == 202


async def test_receiver_as_the_whole_asgi_app(idp: IdP, receiver: Receiver) -> None:
    app = receiver.endpoint
    sent: list[dict[str, Any]] = []
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    sent.clear()
    await app({"type": "websocket", "path": "/"}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": ""}]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://mailer.example"
    ) as client:
        resp = await client.post(
            "/anything", content=sign(idp), headers={"Content-Type": "application/secevent+jwt"}
        )
    assert resp.status_code == 202
