"""The IdP side: POST /events signs for an allowed publisher and can push with retries."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rs_guard.idp import IdP
from tests.support import Clock, free_port

from .conftest import (
    ISSUER,
    PUBLISHER,
    PUBLISHER_SECRET,
    RECEIVER,
    UPDATED,
    LocalNet,
    Receiver,
)

pytestmark = pytest.mark.anyio

BASIC = (PUBLISHER, PUBLISHER_SECRET)


def request_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "audience": RECEIVER,
        "subject": "alice",  # the publisher has public subjects: its PPID is the user id
        "events": {UPDATED: {"fields": ["email"]}},
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


async def publish(
    idp: IdP, auth: Any = BASIC, headers: dict[str, str] | None = None, **changes: Any
) -> httpx.Response:
    async with idp.http_client() as http:
        return await http.post("/events", json=request_body(**changes), auth=auth, headers=headers)


def signed_token(idp: IdP, answer: httpx.Response) -> str:
    """The token the IdP signed for an answer's jti, read the way an operator does (in-process):
    the publisher's answer never carries it."""
    token = idp.events.signed(answer.json()["jti"])
    assert token is not None
    return token


def verified_claims(idp: IdP, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header = jwt.get_unverified_header(token)
    jwk = next(k for k in idp.jwks()["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(
        token, jwt.PyJWK(jwk).key, algorithms=[jwk["alg"]], audience=RECEIVER, issuer=ISSUER
    )
    return header, claims


async def test_discovery_advertises_the_endpoint(idp: IdP) -> None:
    async with idp.http_client() as http:
        doc = (await http.get("/.well-known/openid-configuration")).json()
    assert doc["event_signing_endpoint"] == ISSUER + "/events"


async def test_publisher_gets_a_signed_event_token(idp: IdP) -> None:
    resp = await publish(idp)
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"].startswith("no-store")
    body = resp.json()
    assert body["delivered"] is False
    header, claims = verified_claims(idp, signed_token(idp, resp))
    assert header["typ"] == "secevent+jwt"
    assert header["alg"] == "ES256"
    assert claims["jti"] == body["jti"]
    assert claims["aud"] == RECEIVER
    assert claims["azp"] == PUBLISHER
    assert claims["events"] == {UPDATED: {"fields": ["email"]}}
    assert claims["exp"] == claims["iat"] + 300
    assert "nonce" not in claims
    # The receiver is pairwise: it gets its own PPID for alice, not the publisher's.
    assert claims["sub"] == idp.subject_for("alice", RECEIVER) != "alice"


async def test_publisher_learns_the_outcome_never_the_token(idp: IdP, receiver: Receiver) -> None:
    """The event token's `sub` is the receiver's pairwise identifier for the user: handing it
    to the publisher would leak the mapping /ppid/convert refuses it (issue #14)."""
    receiver_sub = idp.subject_for("alice", RECEIVER)
    assert receiver_sub != "alice"
    signed = await publish(idp)
    delivered = await publish(idp, deliver=True)
    for resp, members in (
        (signed, {"jti", "delivered"}),
        (delivered, {"jti", "delivered", "delivery"}),
    ):
        assert resp.status_code == 200, resp.text
        assert set(resp.json()) == members
        assert receiver_sub not in resp.text
        assert "eyJ" not in resp.text  # no JWS of any kind
    assert delivered.json()["delivered"] is True
    # What the receiver got is the token the IdP signed for that jti, and it names its user.
    [(_, event, _)] = receiver.handled
    assert event.jti == delivered.json()["jti"] and event.subject == receiver_sub
    token = signed_token(idp, delivered)
    assert verified_claims(idp, token)[1]["sub"] == receiver_sub
    # The operator's record is bounded.
    idp.events.kept = 1
    await publish(idp)
    assert idp.events.signed(delivered.json()["jti"]) is None


async def test_subject_is_converted_between_pairwise_namespaces(idp: IdP) -> None:
    idp.register_client(
        "crm",
        "crm-secret",
        redirect_uris=["https://crm.example/cb"],
        subject_type="pairwise",
        scope="events:publish",
    )
    idp.events.allow("crm", RECEIVER)
    crm_sub = idp.subject_for("alice", "crm")
    resp = await publish(idp, auth=("crm", "crm-secret"), subject=crm_sub)
    assert resp.status_code == 200, resp.text
    _, claims = verified_claims(idp, signed_token(idp, resp))
    assert claims["sub"] == idp.subject_for("alice", RECEIVER)
    assert claims["sub"] != crm_sub
    # The receiver's PPID for alice means nothing in crm's namespace.
    refused = await publish(idp, auth=("crm", "crm-secret"), subject=claims["sub"])
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_request"


async def test_receiver_alg_is_its_id_token_alg(idp: IdP) -> None:
    for alg in ("RS256", "EdDSA", "PS256"):
        idp.register_client(
            f"r-{alg}", "s", id_token_signed_response_alg=alg, event_publishers=[PUBLISHER]
        )
        resp = await publish(idp, audience=f"r-{alg}")
        assert resp.status_code == 200, resp.text
        assert jwt.get_unverified_header(signed_token(idp, resp))["alg"] == alg


async def test_txn_is_passed_through(idp: IdP) -> None:
    resp = await publish(idp, txn="order-42")
    _, claims = verified_claims(idp, signed_token(idp, resp))
    assert claims["txn"] == "order-42"


# ----- who may publish ----------------------------------------------------------------------


async def test_publisher_must_authenticate(idp: IdP) -> None:
    resp = await publish(idp, auth=None)
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"
    assert "Basic" in resp.headers["www-authenticate"]
    resp = await publish(idp, auth=(PUBLISHER, "wrong"))
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"


async def test_publishing_needs_permission(idp: IdP) -> None:
    idp.register_client("stranger", "s", scope="events:publish")
    resp = await publish(idp, auth=("stranger", "s"))
    assert resp.status_code == 403
    assert resp.json()["error"] == "access_denied"
    # Unknown receivers look the same as forbidden ones to a publisher without permission.
    resp = await publish(idp, auth=("stranger", "s"), audience="no-such-client")
    assert resp.status_code == 403
    # With permission, an unknown receiver is a plain bad request.
    idp.events.allow(PUBLISHER, "no-such-client")
    resp = await publish(idp, audience="no-such-client")
    assert resp.status_code == 400
    # Withdrawn permission.
    idp.events.deny(PUBLISHER, RECEIVER)
    assert (await publish(idp)).status_code == 403


async def test_receiver_metadata_lists_its_publishers(idp: IdP) -> None:
    async with idp.http_client() as http:
        reg = await http.post(
            "/register",
            json={
                "client_name": "audit",
                "grant_types": ["client_credentials"],
                "event_publishers": [PUBLISHER],
            },
        )
    assert reg.status_code == 201, reg.text
    audit = reg.json()["client_id"]
    resp = await publish(idp, audience=audit)
    assert resp.status_code == 200, resp.text
    claims = jwt.decode(signed_token(idp, resp), options={"verify_signature": False})
    assert claims["aud"] == audit


async def test_client_not_registered_for_the_scope(idp: IdP) -> None:
    idp.register_client("reader", "s", scope="items:read")
    idp.events.allow("reader", RECEIVER)
    resp = await publish(idp, auth=("reader", "s"))
    assert resp.status_code == 403


async def test_bearer_publisher(idp: IdP) -> None:
    async with idp.http_client() as http:
        tok = await http.post(
            "/token",
            data={"grant_type": "client_credentials", "scope": "events:publish"},
            auth=BASIC,
        )
        assert tok.status_code == 200, tok.text
        access = tok.json()["access_token"]
        ok = await http.post(
            "/events", json=request_body(), headers={"Authorization": f"Bearer {access}"}
        )
        assert ok.status_code == 200, ok.text
        claims = jwt.decode(signed_token(idp, ok), options={"verify_signature": False})
        assert claims["azp"] == PUBLISHER
        # Wrong scope, a user's token, garbage: refused.
        idp.register_client("both", "s", scope="items:read events:publish")
        idp.events.allow("both", RECEIVER)
        narrow = idp.issue_access_token(None, client_id="both", scope="items:read")
        resp = await http.post(
            "/events", json=request_body(), headers={"Authorization": f"Bearer {narrow}"}
        )
        assert resp.status_code == 403
        assert resp.json()["error"] == "insufficient_scope"
        users = idp.issue_access_token("alice", client_id="both", scope="events:publish")
        resp = await http.post(
            "/events", json=request_body(), headers={"Authorization": f"Bearer {users}"}
        )
        assert resp.status_code == 401
        resp = await http.post(
            "/events", json=request_body(), headers={"Authorization": "Bearer nope"}
        )
        assert resp.status_code == 401
        assert 'error="invalid_token"' in resp.headers["www-authenticate"]


# ----- bad requests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"audience": ""},
        {"audience": 5},
        {"subject": None},
        {"subject": ["alice"]},
        {"subject": "nobody"},
        {"events": None},
        {"events": {}},
        {"events": {"not a uri": {}}},
        {"events": {UPDATED: "x"}},
        {"events": {f"urn:e:{i}": {} for i in range(40)}},
        {"deliver": "yes"},
        {"txn": 3},
        {"unknown": 1},
    ],
)
async def test_bad_requests(idp: IdP, changes: dict[str, Any]) -> None:
    resp = await publish(idp, **changes)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("content", "ctype"),
    [
        (b"{", "application/json"),
        (b"[]", "application/json"),
        (b'{"audience": "a", "audience": "b"}', "application/json"),
        (b"audience=mailer", "application/x-www-form-urlencoded"),
        (b"\xff", "application/json"),
    ],
)
async def test_malformed_bodies(idp: IdP, content: bytes, ctype: str) -> None:
    async with idp.http_client() as http:
        resp = await http.post(
            "/events", content=content, headers={"Content-Type": ctype}, auth=BASIC
        )
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_request"


async def test_events_fault_switch(idp: IdP) -> None:
    idp.faults.events = "down"
    resp = await publish(idp)
    assert resp.status_code == 503
    idp.faults.events = None
    assert (await publish(idp)).status_code == 200


# ----- delivery -----------------------------------------------------------------------------


async def test_delivery_to_the_receiver(idp: IdP, receiver: Receiver) -> None:
    resp = await publish(idp, deliver=True)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["delivered"] is True
    assert body["delivery"] == {
        "delivered": True,
        "attempts": 1,
        "status": 202,
        "err": None,
        "description": None,
    }
    [(_, event, payload)] = receiver.handled
    assert event.jti == body["jti"]
    assert event.publisher == PUBLISHER
    assert event.subject == idp.subject_for("alice", RECEIVER)
    assert payload == {"fields": ["email"]}
    # Anyone who saw the token on its way posting it again gets a replay refusal.
    again = await receiver.post(signed_token(idp, resp))
    assert again.status_code == 400


async def test_delivery_retries_a_failing_handler(idp: IdP, receiver: Receiver) -> None:
    receiver.fail_next = 2
    body = (await publish(idp, deliver=True)).json()
    assert body["delivered"] is True
    assert body["delivery"]["attempts"] == 3
    assert len(receiver.handled) == 1


async def test_delivery_retries_while_the_idp_keys_are_unreachable(
    idp: IdP, receiver: Receiver
) -> None:
    idp.faults.jwks = "down"
    idp.events.max_attempts = 2
    resp = await publish(idp, deliver=True)
    body = resp.json()
    assert body["delivered"] is False
    assert body["delivery"]["status"] == 503
    assert body["delivery"]["attempts"] == 2
    idp.faults.jwks = None
    assert (await receiver.post(signed_token(idp, resp))).status_code == 202


async def test_no_retry_on_400(idp: IdP, receiver: Receiver) -> None:
    receiver.endpoint.handlers.clear()  # the receiver now refuses this event type
    body = (await publish(idp, deliver=True)).json()
    assert body["delivered"] is False
    assert body["delivery"]["attempts"] == 1
    assert body["delivery"]["status"] == 400
    assert body["delivery"]["err"] == "invalid_request"


async def test_delivery_needs_a_registered_uri(idp: IdP) -> None:
    idp.register_client("no-uri", "s", event_publishers=[PUBLISHER])
    resp = await publish(idp, audience="no-uri", deliver=True)
    assert resp.status_code == 400


class Flaky:
    """A receiver that answers a scripted sequence of statuses (for retry accounting)."""

    def __init__(self, statuses: list[int], headers: dict[str, str] | None = None) -> None:
        self.statuses = statuses
        self.headers = headers or {}
        self.bodies: list[bytes] = []
        self.content_types: list[str] = []

    async def endpoint(self, request: Request) -> Response:
        self.bodies.append(await request.body())
        self.content_types.append(request.headers.get("content-type", ""))
        status = self.statuses.pop(0)
        if status == 400:
            return JSONResponse({"err": "invalid_key", "description": "no"}, status_code=400)
        return Response(status_code=status, headers=self.headers)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/events", self.endpoint, methods=["POST"])])


@pytest.mark.parametrize(
    ("statuses", "delivered", "attempts"),
    [
        ([500, 502, 202], True, 3),
        ([429, 204], True, 2),
        ([400], False, 1),
        ([404], False, 1),
        ([503] * 5, False, 5),
    ],
)
async def test_retry_policy(
    idp: IdP, net: LocalNet, statuses: list[int], delivered: bool, attempts: int
) -> None:
    flaky = Flaky(list(statuses))
    net.add("mailer.example", flaky.app())
    outcome = await idp.events.deliver(
        RECEIVER, idp.events.sign(RECEIVER, {UPDATED: {}}, user="alice")
    )
    assert outcome.delivered is delivered
    assert outcome.attempts == attempts
    assert len(set(flaky.bodies)) == 1  # the very same token every time
    assert set(flaky.content_types) == {"application/secevent+jwt"}
    if statuses == [400]:
        assert outcome.err == "invalid_key"


async def test_retry_after_is_honoured_up_to_the_cap(idp: IdP, net: LocalNet) -> None:
    flaky = Flaky([503, 202], {"Retry-After": "3600"})
    net.add("mailer.example", flaky.app())
    idp.events.max_backoff = 0.05
    outcome = await idp.events.deliver(
        RECEIVER, idp.events.sign(RECEIVER, {UPDATED: {}}, user="alice")
    )
    assert outcome.delivered and outcome.attempts == 2


async def test_network_errors_are_retried(clock: Clock) -> None:
    # A real loopback port with nobody listening, reached through a real client.
    port = free_port()
    async with httpx.AsyncClient(timeout=2) as real:
        idp = IdP(ISSUER, clock=clock, http_client=real)
        idp.register_client(PUBLISHER, PUBLISHER_SECRET, scope="events:publish")
        idp.register_client(
            "gone",
            "s",
            event_delivery_uri=f"http://127.0.0.1:{port}/events",
            event_publishers=[PUBLISHER],
        )
        idp.add_user("alice")
        idp.events.backoff = 0.01
        idp.events.max_backoff = 0.05
        idp.events.max_attempts = 3
        body = (await publish(idp, audience="gone", deliver=True)).json()
    assert body["delivered"] is False
    assert body["delivery"]["attempts"] == 3
    assert body["delivery"]["status"] is None
    assert body["delivery"]["err"] == "network_error"


async def test_python_api_shortcuts(idp: IdP) -> None:
    idp.events.allow("crm", RECEIVER)
    assert idp.events.permits("crm", RECEIVER)
    token = idp.events.sign(RECEIVER, {UPDATED: {}}, user="bob")
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["sub"] == idp.subject_for("bob", RECEIVER)
    assert "azp" not in claims
    with pytest.raises(ValueError):
        idp.events.sign("nobody", {UPDATED: {}}, user="bob")
    with pytest.raises(ValueError):
        idp.events.sign(RECEIVER, {UPDATED: {}}, subject="alice")  # no publisher
    with pytest.raises(ValueError):
        idp.events.sign(RECEIVER, {UPDATED: {}})
