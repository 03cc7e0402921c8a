"""Attacks on webhook event reception (RFC 8417 / RFC 8935) and on the IdP's signing endpoint:
replays (also re-encoded), stale and future tokens, foreign audiences and issuers, tokens of
other types, publishers overstepping, and fuzzed bodies. Every refusal is a 400 with an RFC 8935
error code (or a 503 for the receiver's own trouble), never a 500."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette

from rs_guard.discovery import ServerMetadata
from rs_guard.events import EventReceiver, EventVerifier, SecurityEvent
from rs_guard.idp import IdP
from rs_guard.keys import JWKSCache

from .conftest import Clock, CountingApp
from .forge import (
    P256_N,
    b64,
    ecdsa_rs,
    hmac_token,
    idp_sign,
    parts,
    public_key_encodings,
    rs_bytes,
    seg,
    with_signature,
)
from .strategies import fuzz, json_values

pytestmark = pytest.mark.anyio

ISSUER = "https://idp.example"
PUBLISHER, RECEIVER, OTHER = "billing", "mailer", "crm"
UPDATED = "https://schemas.example/event/account-updated"
NOW = 1_700_000_000.0


class Setup:
    def __init__(
        self,
        idp: IdP,
        clock: Clock,
        counter: CountingApp,
        client: httpx.AsyncClient,
        handled: list[SecurityEvent],
        verifier: EventVerifier,
    ) -> None:
        self.idp, self.clock, self.counter, self.client = idp, clock, counter, client
        self.handled, self.verifier = handled, verifier
        self.rejections: list[str] = []

    def sign(self, **kwargs: Any) -> str:
        receiver = kwargs.pop("receiver", RECEIVER)
        events = kwargs.pop("events", {UPDATED: {"fields": ["email"]}})
        kwargs.setdefault("publisher", PUBLISHER)
        kwargs.setdefault("user", "alice")
        return self.idp.events.sign(receiver, events, **kwargs)

    async def post(
        self, body: str | bytes, ctype: str = "application/secevent+jwt"
    ) -> httpx.Response:
        return await self.client.post("/events", content=body, headers={"content-type": ctype})

    def expect(self, resp: httpx.Response, status: int, err: str, reason: str) -> None:
        assert resp.status_code == status, (resp.status_code, resp.text)
        body = resp.json()
        assert body["err"] == err, body
        assert set(body) == {"err", "description"}
        assert self.rejections[-1] == reason, self.rejections


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    clock = Clock(NOW)
    idp = IdP(ISSUER, clock=clock)
    idp.register_client(PUBLISHER, "billing-secret", scope="events:publish")
    for cid in (RECEIVER, OTHER):
        idp.register_client(
            cid,
            f"{cid}-secret",
            redirect_uris=[f"https://{cid}.example/cb"],
            subject_type="pairwise",
        )
    idp.events.allow(PUBLISHER, RECEIVER)
    idp.add_user("alice")
    counter = CountingApp(idp.app)
    idp_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=counter), base_url=ISSUER)
    handled: list[SecurityEvent] = []
    keys = JWKSCache(
        metadata=ServerMetadata(ISSUER, http_client=idp_http), clock=clock, timeout=0.3
    )
    verifier = EventVerifier(issuer=ISSUER, audience=RECEIVER, keys=keys, clock=clock)

    async def on_update(event: SecurityEvent, payload: Mapping[str, Any]) -> None:
        handled.append(event)

    s: Setup
    receiver = EventReceiver(
        verifier,
        handlers={UPDATED: on_update},
        observer=lambda e, f: s.rejections.append(f["reason"]) if e == "event_rejected" else None,
    )
    app = Starlette(routes=[receiver.route("/events")])
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://mailer.example"
    )
    s = Setup(idp, clock, counter, client, handled, verifier)
    yield s
    await client.aclose()
    await idp_http.aclose()


async def test_a_valid_event_is_accepted_once(setup: Setup) -> None:
    token = setup.sign()
    assert (await setup.post(token)).status_code == 202
    assert len(setup.handled) == 1
    setup.expect(await setup.post(token), 400, "invalid_request", "replayed")
    assert len(setup.handled) == 1


async def test_re_encoded_replays(setup: Setup) -> None:
    token = setup.sign()
    assert (await setup.post(token)).status_code == 202
    h, p, s = token.split(".")
    r, sig_s = ecdsa_rs(token)
    # The ECDSA twin (r, n - s) verifies: the replay store keys on (iss, jti), not on bytes.
    twin = with_signature(token, rs_bytes(r, P256_N - sig_s))
    setup.expect(await setup.post(twin), 400, "invalid_request", "replayed")
    for wrapped in (token + "\n", "  " + token + "\r\n", token + "\t"):
        setup.expect(await setup.post(wrapped), 400, "invalid_request", "replayed")
    # The same jti re-signed by the IdP (a publisher asking twice with a fixed id).
    jti = parts(token)[1]["jti"]
    resigned = setup.sign(claims={"jti": jti})
    setup.expect(await setup.post(resigned), 400, "invalid_request", "replayed")
    # Other spellings of the same bytes are not a compact JWS at all.
    for other in (f"{h}.{p}.{s}=", f"{h}=.{p}.{s}", token.replace(".", ". "), token + "." + s):
        setup.expect(await setup.post(other), 400, "invalid_request", "malformed")
    # JSON re-serialisation of the claims breaks the signature.
    claims = parts(token)[1]
    spaced = f"{h}.{b64(json.dumps(claims, indent=1).encode())}.{s}"
    setup.expect(await setup.post(spaced), 400, "authentication_failed", "bad_signature")
    assert len(setup.handled) == 1


async def test_concurrent_duplicates_run_the_handler_once(setup: Setup) -> None:
    token = setup.sign()
    answers = await asyncio.gather(*(setup.post(token) for _ in range(10)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(202) == 1
    assert set(statuses) <= {202, 400, 503}
    assert len(setup.handled) == 1


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"iat": NOW - 300 - 30 - 1}, "stale"),
        ({"iat": NOW + 31}, "future"),
        ({"exp": NOW - 31}, "expired"),
        ({"exp": "never"}, "expired"),
        ({"iat": "now"}, "bad_iat"),
        ({"iat": None}, "bad_iat"),
        ({"iat": True}, "bad_iat"),
        ({"iat": 10**400}, "bad_iat"),
        ({"exp": 10**400}, "expired"),
        ({"jti": ""}, "bad_jti"),
        ({"jti": 7}, "bad_jti"),
        ({"jti": "j" * 257}, "bad_jti"),
        ({"sub": ""}, "bad_sub"),
        ({"sub": ["alice"]}, "bad_sub"),
        ({"azp": 7}, "bad_azp"),
        ({"nonce": "n"}, "nonce"),
        ({"events": {}}, "bad_events"),
        ({"events": []}, "bad_events"),
        ({"events": {"not a uri": {}}}, "bad_events"),
        ({"events": {UPDATED: "x"}}, "bad_events"),
        ({"events": {f"urn:x:{i}": {} for i in range(33)}}, "bad_events"),
    ],
    ids=lambda v: repr(v)[:40],
)
async def test_time_and_claim_abuse(setup: Setup, claims: dict[str, Any], reason: str) -> None:
    token = setup.sign(claims=claims)
    setup.expect(await setup.post(token), 400, "invalid_request", reason)
    assert setup.handled == []


async def test_foreign_audiences_and_issuers(setup: Setup) -> None:
    # An event the IdP signed for another receiver, replayed here.
    setup.idp.events.allow(PUBLISHER, OTHER)
    theirs = setup.sign(receiver=OTHER)
    setup.expect(await setup.post(theirs), 400, "invalid_audience", "bad_audience")
    for aud in ([], [OTHER], [RECEIVER, 1], 7, None, RECEIVER + " "):
        token = setup.sign(claims={"aud": aud})
        setup.expect(await setup.post(token), 400, "invalid_audience", "bad_audience")
    for iss in ("https://evil.example", ISSUER + "/", None, [ISSUER]):
        payload = {**parts(setup.sign())[1], "iss": iss}  # PyJWT will not write some of these
        token = idp_sign(setup.idp, {"alg": "ES256", "typ": "secevent+jwt"}, payload)
        setup.expect(await setup.post(token), 400, "invalid_issuer", "bad_issuer")
    # An audience list naming this receiver is fine.
    assert (await setup.post(setup.sign(claims={"aud": [OTHER, RECEIVER]}))).status_code == 202


async def test_other_token_types_are_not_events(setup: Setup) -> None:
    access = setup.idp.issue_access_token("alice", client_id=RECEIVER, audience=RECEIVER)
    setup.expect(await setup.post(access), 400, "invalid_request", "bad_typ")
    id_token = setup.idp.issue_id_token("alice", client_id=RECEIVER, nonce="n")
    setup.expect(await setup.post(id_token), 400, "invalid_request", "bad_typ")
    # An event whose typ was changed by someone who cannot sign.
    h, p, s = setup.sign().split(".")
    header = json.loads(b64_decode(h))
    header["typ"] = "at+jwt"
    setup.expect(await setup.post(f"{seg(header)}.{p}.{s}"), 400, "invalid_request", "bad_typ")


def b64_decode(segment: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


async def test_signature_and_key_attacks(setup: Setup) -> None:
    header, payload, sig = parts(setup.sign())
    for alg in ("none", "None", ""):
        token = f"{seg({**header, 'alg': alg})}.{seg(payload)}.{sig}"
        setup.expect(await setup.post(token), 400, "authentication_failed", "unsigned")
    for secret in list(public_key_encodings(setup.idp).values())[:5]:
        forged = hmac_token({**header, "alg": "HS256"}, payload, secret)
        setup.expect(await setup.post(forged), 400, "invalid_key", "bad_alg")
    for extra in (
        {"jku": "https://evil.example/jwks"},
        {"jwk": {"kty": "EC"}},
        {"x5u": "https://x"},
    ):
        token = setup.sign(headers=extra)
        setup.expect(await setup.post(token), 400, "invalid_key", "embedded_key")
    for extra in ({"crit": ["exp"]}, {"zip": "DEF"}):
        token = setup.sign(headers=extra)
        setup.expect(await setup.post(token), 400, "invalid_request", "unsupported_header")
    token = idp_sign(setup.idp, {**header, "kid": "nope"}, payload)
    setup.expect(await setup.post(token), 400, "invalid_key", "unknown_kid")
    token = with_signature(setup.sign(), rs_bytes(0, 0))
    setup.expect(await setup.post(token), 400, "authentication_failed", "bad_signature")
    assert setup.handled == []


async def test_claims_checked_before_any_key_fetch(setup: Setup) -> None:
    """Garbage from anyone on the internet costs no request to the IdP."""
    for claims in ({"aud": OTHER}, {"iss": "https://evil.example"}, {"iat": NOW - 10_000}):
        await setup.post(setup.sign(claims=claims))
    await setup.post("not-a-token")
    assert setup.counter.total == 0


async def test_bodies_and_content_types(setup: Setup) -> None:
    token = setup.sign()
    for ctype in ("application/json", "text/plain", "application/jwt", ""):
        setup.expect(await setup.post(token, ctype), 400, "invalid_request", "bad_content_type")
    setup.expect(await setup.post(b"\xff" + token.encode()), 400, "invalid_request", "malformed")
    setup.expect(await setup.post("a" * 20_000), 400, "invalid_request", "too_large")
    setup.expect(
        await setup.post(json.dumps({"token": token})), 400, "invalid_request", "malformed"
    )
    assert (await setup.post(token, "Application/SecEvent+JWT; charset=ascii")).status_code == 202


# ----- the IdP's signing endpoint ----------------------------------------------------------


async def publish(
    setup: Setup, body: Any, auth: tuple[str, str] = (PUBLISHER, "billing-secret")
) -> httpx.Response:
    async with setup.idp.http_client() as http:
        return await http.post("/events", json=body, auth=auth)


async def test_publishers_cannot_overstep(setup: Setup) -> None:
    sub = setup.idp.subject_for("alice", PUBLISHER)
    ok = await publish(setup, {"audience": RECEIVER, "subject": sub, "events": {UPDATED: {}}})
    assert ok.status_code == 200
    # Not allowed to publish to OTHER (deny by default), whether or not it exists.
    for audience in (OTHER, "no-such-client"):
        resp = await publish(setup, {"audience": audience, "subject": sub, "events": {UPDATED: {}}})
        assert resp.status_code == 403 and resp.json()["error"] == "access_denied"
    # A subject from another client's namespace is not the publisher's to use.
    theirs = setup.idp.subject_for("alice", RECEIVER)
    resp = await publish(setup, {"audience": RECEIVER, "subject": theirs, "events": {UPDATED: {}}})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"
    # The receiver cannot publish to itself as the publisher, and wrong secrets fail.
    resp = await publish(
        setup,
        {"audience": RECEIVER, "subject": sub, "events": {UPDATED: {}}},
        auth=(RECEIVER, f"{RECEIVER}-secret"),
    )
    assert resp.status_code in (403,)
    resp = await publish(
        setup,
        {"audience": RECEIVER, "subject": sub, "events": {UPDATED: {}}},
        auth=(PUBLISHER, "wrong"),
    )
    assert resp.status_code == 401
    # What the IdP signs cannot be steered by the publisher's body.
    resp = await publish(
        setup,
        {
            "audience": RECEIVER,
            "subject": sub,
            "events": {UPDATED: {}},
            "iss": "https://evil.example",
        },
    )
    assert resp.status_code == 400


# ----- fuzzing -----------------------------------------------------------------------------

event_body = st.one_of(
    st.binary(max_size=400),
    st.builds(
        lambda h, p, s: f"{seg(h)}.{seg(p)}.{b64(s)}".encode(),
        st.dictionaries(
            st.sampled_from(["alg", "typ", "kid", "crit", "jku"]), json_values, max_size=4
        ),
        st.dictionaries(
            st.sampled_from(["iss", "aud", "iat", "exp", "jti", "sub", "events", "nonce", "azp"]),
            json_values,
            max_size=8,
        ),
        st.binary(max_size=80),
    ),
)


@fuzz
@given(body=event_body, ctype=st.sampled_from(["application/secevent+jwt", "application/json"]))
async def test_fuzz_event_bodies(setup: Setup, body: bytes, ctype: str) -> None:
    resp = await setup.post(body, ctype)
    assert resp.status_code == 400, resp.text
    doc = resp.json()
    assert set(doc) == {"err", "description"}
    assert doc["err"] in {
        "invalid_request",
        "invalid_key",
        "invalid_issuer",
        "invalid_audience",
        "authentication_failed",
        "access_denied",
    }
    assert setup.handled == []


@fuzz
@given(
    body=st.dictionaries(
        st.sampled_from(["audience", "subject", "events", "deliver", "txn", "extra"]),
        json_values,
        max_size=5,
    )
    | json_values
)
async def test_fuzz_publish_requests(setup: Setup, body: Any) -> None:
    resp = await publish(setup, body)
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    assert "error" in resp.json()


# ----- the IdP's keys failing while events arrive -------------------------------------------


@pytest.mark.parametrize("mode", ["down", "garbage", "slow"])
async def test_event_verification_with_the_jwks_failing(setup: Setup, mode: str) -> None:
    setup.idp.faults.jwks = mode  # type: ignore[assignment]
    setup.idp.faults.delay = 10.0
    token = setup.sign()
    resp = await setup.post(token)
    # The receiver's own trouble: 503 + Retry-After so the sender retries; nothing recorded.
    assert resp.status_code == 503, resp.text
    assert resp.headers["retry-after"].isdigit()
    assert resp.json()["err"] == "temporarily_unavailable"
    assert setup.handled == []
    setup.idp.faults.jwks = None
    assert (await setup.post(token)).status_code == 202  # the retry is not refused as a replay
    assert len(setup.handled) == 1
