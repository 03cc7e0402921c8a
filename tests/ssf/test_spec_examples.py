"""The SETs and requests the SSF 1.0, CAEP 1.0 and RISC 1.0 specifications print, accepted
byte for byte: each example's exact JSON is signed as the transmitter's payload."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from starlette.applications import Starlette

from rs_guard.events import EventVerifier
from rs_guard.idp import IdP
from rs_guard.ssf import MemoryRevocations, SignalReceiver, configuration_url

from . import spec_examples as ex
from .conftest import RECEIVER, RECEIVER_SECRET

pytestmark = pytest.mark.anyio


def sign_bytes(idp: IdP, payload: str, **headers: Any) -> str:
    """A compact JWS over exactly these payload bytes, with the IdP's active key."""
    jwk = idp.private_jwks()["keys"][-1]
    key = jwt.PyJWK(jwk)
    header = {"typ": "secevent+jwt", "kid": jwk["kid"], **headers}
    return jwt.api_jws.encode(payload.encode(), key.key, algorithm=jwk["alg"], headers=header)


class ExampleReceiver:
    """A receiver for the issuer and audience one example names, at the example's time."""

    def __init__(self, idp: IdP, example: str) -> None:
        claims = json.loads(example)
        self.revocations = MemoryRevocations(clock=lambda: float(claims["iat"]))
        self.http = idp.http_client()
        verifier = EventVerifier(
            issuer=claims["iss"],
            audience=claims["aud"],
            jwks_uri=idp.endpoint("jwks"),
            http_client=self.http,
            require_subject=False,
            clock=lambda: float(claims["iat"]),
        )
        self.receiver = SignalReceiver(verifier, self.revocations)
        app = Starlette(routes=[self.receiver.route("/caep")])
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://sp.example.com"
        )

    async def post(self, token: str) -> httpx.Response:
        return await self.client.post(
            "/caep", content=token, headers={"Content-Type": "application/secevent+jwt"}
        )

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.http.aclose()


@pytest.fixture
async def deliver(idp: IdP) -> AsyncIterator[Any]:
    made: list[ExampleReceiver] = []

    async def deliver(
        example: str, like: str | None = None
    ) -> tuple[httpx.Response, MemoryRevocations]:
        receiver = ExampleReceiver(idp, like or example)
        made.append(receiver)
        return await receiver.post(sign_bytes(idp, example)), receiver.revocations

    yield deliver
    for receiver in made:
        await receiver.aclose()


async def test_session_revoked_simple_opaque_subject_names_a_session(deliver: Any) -> None:
    answer, state = await deliver(ex.CAEP_SESSION_REVOKED_SIMPLE)
    assert answer.status_code == 202 and answer.content == b""
    entry = state.get("sid:dMTlD|1600802906337.16|16008.16")
    assert entry is not None and entry.issued == 1615304991  # event_timestamp


async def test_session_revoked_complex_user_and_session(deliver: Any) -> None:
    answer, state = await deliver(ex.CAEP_SESSION_REVOKED_COMPLEX_SESSION)
    assert answer.status_code == 202
    entry = state.get("99beb27c-c1c2-4955-882a-e0dc4996fcbc")
    assert entry is not None
    assert entry.sessions == {"dMTlD|1600802906337.16|16008.16": 1615304991}
    assert entry.issued == -math.inf  # only that session, not every token of the user


async def test_session_revoked_complex_user_and_device(deliver: Any) -> None:
    answer, state = await deliver(ex.CAEP_SESSION_REVOKED_COMPLEX_DEVICE)
    assert answer.status_code == 202
    entry = state.get("jane.smith@example.com")
    assert entry is not None and entry.issued == 1615304991


@pytest.mark.parametrize(
    "example",
    [
        ex.CAEP_TOKEN_CLAIMS_CHANGE_OIDC,
        ex.CAEP_TOKEN_CLAIMS_CHANGE_OIDC_OPTIONAL,
        ex.CAEP_TOKEN_CLAIMS_CHANGE_SAML,
        ex.CAEP_DEVICE_COMPLIANCE_CHANGE,
        ex.CAEP_SESSION_ESTABLISHED,
        ex.CAEP_SESSION_PRESENTED,
        ex.CAEP_RISK_LEVEL_CHANGE,
        ex.CAEP_ASSURANCE_INCREASE,
    ],
)
async def test_examples_that_take_nothing_away_are_accepted_and_change_nothing(
    deliver: Any, example: str
) -> None:
    answer, state = await deliver(example)
    assert answer.status_code == 202
    assert len(state) == 0


async def test_credential_change(deliver: Any) -> None:
    answer, state = await deliver(ex.CAEP_CREDENTIAL_CHANGE_FIDO2)
    assert answer.status_code == 202
    entry = state.get("jane.smith@example.com")
    assert entry is not None and entry.authenticated == 1615304991
    assert entry.issued == -math.inf


async def test_assurance_level_of_unknown_direction_asks_for_step_up(deliver: Any) -> None:
    answer, state = await deliver(ex.CAEP_ASSURANCE_CUSTOM)
    assert answer.status_code == 202
    entry = state.get("jane.smith@example.com")
    assert entry is not None and entry.step_up == 1615304991


async def test_risc_account_credential_change_required_is_accepted(deliver: Any) -> None:
    answer, state = await deliver(ex.RISC_ACCOUNT_CREDENTIAL_CHANGE_REQUIRED)
    assert answer.status_code == 202 and len(state) == 0  # no reaction configured by default


async def test_risc_account_disabled_as_printed_is_not_json(deliver: Any) -> None:
    # The printed example has a trailing comma: no JSON parser accepts it, nor does rs_guard.
    fixed = ex.RISC_ACCOUNT_DISABLED.replace('"7375626A656374",', '"7375626A656374"')
    answer, state = await deliver(ex.RISC_ACCOUNT_DISABLED, like=fixed)
    assert answer.status_code == 400 and answer.json()["err"] == "invalid_request"
    assert len(state) == 0
    answer, state = await deliver(fixed)
    assert answer.status_code == 202
    entry = state.get("7375626A656374")
    assert entry is not None and entry.issued == 1508184845  # no event_timestamp: iat


async def test_ssf_verification_event(idp: IdP) -> None:
    receiver = ExampleReceiver(idp, ex.SSF_VERIFICATION)
    receiver.receiver.stream_id = "f67e39a0a4d34d56b3aa1bc4cff0069f"
    verified = receiver.receiver.expect_verification("VGhpcyBpcyBhbiBleGFtcGxlIHN0YXRlIHZhbHVlLgo=")
    answer = await receiver.post(sign_bytes(idp, ex.SSF_VERIFICATION))
    assert answer.status_code == 202 and verified.done()
    # The same event again is a replay; a state nobody asked for is invalid_state.
    again = await receiver.post(sign_bytes(idp, ex.SSF_VERIFICATION))
    assert again.status_code == 400 and again.json()["err"] == "invalid_request"
    other = ex.SSF_VERIFICATION.replace('"123456"', '"123457"')
    answer = await receiver.post(sign_bytes(idp, other))
    assert answer.status_code == 400 and answer.json()["err"] == "invalid_state"
    await receiver.aclose()


def test_configuration_locations_of_the_spec() -> None:
    assert configuration_url("https://tr.example.com") == (
        "https://tr.example.com/.well-known/ssf-configuration"
    )
    assert configuration_url("https://tr.example.com/issuer1") == (
        "https://tr.example.com/.well-known/ssf-configuration/issuer1"
    )


async def test_idp_metadata_has_the_members_of_the_spec_example(idp: IdP) -> None:
    example = json.loads(ex.SSF_CONFIGURATION_RESPONSE)
    async with idp.http_client() as http:
        answer = await http.get("/.well-known/ssf-configuration")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    doc = answer.json()
    assert doc["issuer"] == idp.issuer and doc["spec_version"] == example["spec_version"]
    assert set(doc) >= set(example) - {
        "add_subject_endpoint",
        "remove_subject_endpoint",
        "critical_subject_members",
    }
    assert doc["delivery_methods_supported"] == example["delivery_methods_supported"]


async def test_create_stream_and_verification_requests_of_the_spec(idp: IdP) -> None:
    async with idp.http_client() as http:
        token = (
            await http.post(
                "/token",
                data={"grant_type": "client_credentials", "scope": "ssf"},
                auth=(RECEIVER, RECEIVER_SECRET),
            )
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        created = await http.post("/ssf/stream", content=ex.SSF_CREATE_STREAM_REQUEST, headers=auth)
        assert created.status_code == 201
        doc = created.json()
        request = json.loads(ex.SSF_CREATE_STREAM_REQUEST)
        assert doc["iss"] == idp.issuer and doc["aud"] == RECEIVER
        assert doc["delivery"] == request["delivery"]
        assert doc["events_requested"] == request["events_requested"]
        assert doc["events_delivered"] == []  # the example's event types are not ours
        assert doc["description"] == request["description"]
        # A second stream for the same receiver: 409 (SSF 1.0 §8.1.1.1).
        again = await http.post("/ssf/stream", content=ex.SSF_CREATE_STREAM_REQUEST, headers=auth)
        assert again.status_code == 409
        # The verification request of the spec, for the spec's stream id.
        record = idp.ssf.streams.pop(doc["stream_id"])
        record.stream_id = "f67e39a0a4d34d56b3aa1bc4cff0069f"
        idp.ssf.streams[record.stream_id] = record
        record.delivery = {"method": "urn:ietf:rfc:8936", "endpoint_url": "x"}  # keep it local
        verify = await http.post("/ssf/verify", content=ex.SSF_VERIFICATION_REQUEST, headers=auth)
        assert verify.status_code == 204
        (queued,) = record.queue.values()
        claims = jwt.decode(queued, options={"verify_signature": False})
        assert claims["sub_id"] == {"format": "opaque", "id": record.stream_id}
        event = claims["events"]["https://schemas.openid.net/secevent/ssf/event-type/verification"]
        assert event == {"state": "VGhpcyBpcyBhbiBleGFtcGxlIHN0YXRlIHZhbHVlLgo="}
        deleted = await http.delete(
            "/ssf/stream", params={"stream_id": record.stream_id}, headers=auth
        )
        assert deleted.status_code == 204
        assert (await http.get("/ssf/stream", headers=auth)).json() == []
