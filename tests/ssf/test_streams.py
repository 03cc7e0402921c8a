"""The receiver's management calls against the bundled transmitter, push retries, bad input,
and subjects matched through the PPID translator."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rs_guard.idp import IdP
from rs_guard.ppid import PPIDTranslator
from rs_guard.ssf import (
    ACCOUNT_DISABLED,
    PUSH,
    SESSION_REVOKED,
    MemoryRevocations,
    Transmitter,
    TransmitterUnavailable,
)
from tests.events.conftest import LocalNet
from tests.support import ISSUER, Clock

from .conftest import APP, RECEIVER, RECEIVER_SECRET, Service, access_token, connect

pytestmark = pytest.mark.anyio


async def test_read_update_status_and_delete(idp: IdP, clock: Clock, service: Service) -> None:
    transmitter, stream = await connect_again(idp, service)
    read = await transmitter.get_stream(stream.stream_id)
    assert read.stream_id == stream.stream_id and read.audience == (RECEIVER,)
    updated = await transmitter.update_stream(
        stream.stream_id, {"events_requested": [SESSION_REVOKED], "description": "fewer"}
    )
    assert updated.events_delivered == (SESSION_REVOKED,)
    assert updated.config["description"] == "fewer"
    assert await transmitter.status(stream.stream_id) == "enabled"
    # Events of types no longer delivered are not sent.
    token = access_token(idp)
    idp.disable_user("alice")
    await idp.ssf.drain()
    assert (await service.get(token)).status_code == 200
    await transmitter.delete_stream(stream.stream_id)
    with pytest.raises(TransmitterUnavailable) as refused:
        await transmitter.get_stream(stream.stream_id)
    assert refused.value.status == 404 and refused.value.reason == "ssf_http_404"


async def connect_again(idp: IdP, service: Service) -> tuple[Transmitter, Any]:
    """The transmitter client of the fixture's receiver, and its existing stream."""
    from rs_guard.outbound import ClientCredentials

    credentials = ClientCredentials(
        client_id=RECEIVER,
        client_secret=RECEIVER_SECRET,
        scope="ssf",
        issuer=ISSUER,
        http_client=service.http,
    )
    transmitter = await Transmitter.discover(
        ISSUER, credentials=credentials, http_client=service.http
    )
    record = idp.ssf.stream_of(RECEIVER)
    assert record is not None
    return transmitter, await transmitter.get_stream(record.stream_id)


async def test_paused_stream_sends_nothing(idp: IdP, clock: Clock, service: Service) -> None:
    record = idp.ssf.stream_of(RECEIVER)
    assert record is not None
    async with idp.http_client() as http:
        answer = await http.post(
            "/ssf/status",
            json={"stream_id": record.stream_id, "status": "paused"},
            auth=(RECEIVER, RECEIVER_SECRET),
        )
    assert answer.status_code == 200 and answer.json()["status"] == "paused"
    token = access_token(idp)
    idp.disable_user("alice")
    await idp.ssf.drain()
    assert (await service.get(token)).status_code == 200


async def test_discovery_refuses_metadata_of_another_issuer(idp: IdP) -> None:
    async def lying(request: Request) -> Response:
        return Response('{"issuer": "https://evil.example"}', media_type="application/json")

    app = Starlette(routes=[Route("/.well-known/ssf-configuration", lying)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        with pytest.raises(TransmitterUnavailable) as refused:
            await Transmitter.discover("https://tr.example", http_client=http)
    assert refused.value.reason == "ssf_issuer_mismatch"
    with pytest.raises(TransmitterUnavailable):
        await Transmitter.discover("http://tr.example")


async def test_push_is_retried_with_the_streams_authorization(
    idp: IdP, clock: Clock, net: LocalNet
) -> None:
    svc = Service(idp, clock, MemoryRevocations(clock=clock))
    seen: list[str | None] = []
    failures = [2]

    async def flaky(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.append(dict(scope["headers"]).get(b"authorization", b"").decode() or None)
            if failures[0]:
                failures[0] -= 1
                await Response(status_code=503, headers={"Retry-After": "0"})(scope, receive, send)
                return
        # A push carrying its own Authorization goes to the receiver directly, not through the
        # guard (which would take that header for an access token).
        await svc.receiver.endpoint(scope, receive, send)

    net.add("api.example", flaky)
    await connect(
        idp,
        svc,
        delivery={
            "method": PUSH,
            "endpoint_url": "https://api.example/ssf/events",
            "authorization_header": "Bearer push-secret",
        },
    )
    token = access_token(idp)
    idp.disable_user("alice")
    await idp.ssf.drain()
    record = idp.ssf.stream_of(RECEIVER)
    assert record is not None and record.deliveries[-1].delivered
    assert record.deliveries[-1].attempts == 3
    assert seen == ["Bearer push-secret"] * 3
    assert (await svc.get(token)).status_code == 401
    # The stream's configuration never shows the secret back.
    assert "authorization_header" not in idp.ssf.config(record)["delivery"]
    await svc.aclose()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/ssf/stream", {"delivery": {"method": "urn:example:carrier-pigeon"}}),
        ("/ssf/stream", {"delivery": {"method": PUSH, "endpoint_url": "http://plain.example"}}),
        ("/ssf/stream", {"events_requested": "all"}),
        ("/ssf/stream", {"deliver": True}),
        ("/ssf/verify", {"stream_id": 7}),
        ("/ssf/status", {"stream_id": "x", "status": "on"}),
    ],
)
async def test_bad_management_requests_are_400(idp: IdP, path: str, body: Any) -> None:
    async with idp.http_client() as http:
        answer = await http.post(path, json=body, auth=(RECEIVER, RECEIVER_SECRET))
    assert answer.status_code in (400, 404)
    assert answer.json()["error"] in ("invalid_request", "not_found")


async def test_bad_poll_requests_are_400(idp: IdP, clock: Clock) -> None:
    svc = Service(idp, clock, MemoryRevocations(clock=clock))
    _, stream = await connect(idp, svc, delivery=None)
    assert stream.endpoint_url is not None
    async with idp.http_client() as http:
        for body in ({"maxEvents": -1}, {"ack": "x"}, {"setErrs": []}, {"maxEvents": True}):
            answer = await http.post(
                stream.endpoint_url, json=body, auth=(RECEIVER, RECEIVER_SECRET)
            )
            assert answer.status_code == 400, body
        answer = await http.post(
            stream.endpoint_url,
            content=b"{",
            auth=(RECEIVER, RECEIVER_SECRET),
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 400
    await svc.aclose()


# ----- pairwise subjects ----------------------------------------------------------------------


def pairwise_setup(idp: IdP) -> None:
    idp.register_client(
        RECEIVER,
        RECEIVER_SECRET,
        scope="ssf ppid:convert",
        subject_type="pairwise",
        sector_identifier_uri="https://api.example/sector.json",
    )
    idp.register_client(
        APP, "app-secret", redirect_uris=["https://app.example/cb"], subject_type="pairwise"
    )
    idp.ppid_policy.allow(RECEIVER)
    idp.add_user("alice")
    idp.events.backoff = 0.01


async def test_pairwise_subjects_match_in_the_resources_namespace(
    clock: Clock, net: LocalNet, idp_options: dict[str, Any]
) -> None:
    idp = IdP(ISSUER, **idp_options)
    pairwise_setup(idp)
    http = idp.http_client()
    translator = PPIDTranslator(
        client_id=RECEIVER, client_secret=RECEIVER_SECRET, issuer=ISSUER, http_client=http
    )
    svc = Service(
        idp,
        clock,
        MemoryRevocations(clock=clock),
        guard_options={"subject_translator": translator},  # a pairwise resource
        subject_translator=translator,
        subject_client=APP,
    )
    net.add("api.example", svc.app)
    web_sub = idp.subject_for("alice", APP)
    api_sub = idp.subject_for("alice", RECEIVER)
    assert web_sub != api_sub
    token = access_token(idp)
    assert (await svc.get(token)).status_code == 200
    # A transmitter naming alice as the web app sees her: translated to the resource's own.
    event = idp.keys.sign(
        {
            "iss": ISSUER,
            "aud": RECEIVER,
            "iat": idp.now(),
            "jti": "pairwise-1",
            "sub_id": {"format": "iss_sub", "iss": ISSUER, "sub": web_sub},
            "events": {ACCOUNT_DISABLED: {}},
        },
        typ="secevent+jwt",
    )
    assert (await svc.push(event)).status_code == 202
    assert svc.revocations.get(api_sub) is not None
    assert (await svc.get(token)).status_code == 401
    await svc.aclose()
    await translator.aclose()
    await http.aclose()
