"""End to end: the bundled IdP transmits, a resource's guard reacts on the next request."""

from __future__ import annotations

import pytest

from rs_guard.idp import IdP
from rs_guard.ssf import ACCOUNT_DISABLED, POLL, SESSION_REVOKED, MemoryRevocations, Reaction
from tests.events.conftest import LocalNet
from tests.support import Clock

from .conftest import RECEIVER, Service, access_token, connect

pytestmark = pytest.mark.anyio


async def test_logout_refuses_tokens_already_in_the_cache(
    idp: IdP, clock: Clock, service: Service
) -> None:
    idp.login_as("alice")
    token = access_token(idp)
    assert (await service.get(token)).status_code == 200  # now in the verified-token cache
    idp.logout()
    await idp.ssf.drain()
    answer = await service.get(token)
    assert answer.status_code == 401
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]
    # A token issued after the event (a new login) is accepted.
    clock.now += 1
    assert (await service.get(access_token(idp))).status_code == 200
    # Bob is untouched.
    assert (await service.get(access_token(idp, "bob"))).status_code == 200


async def test_session_revoked_can_refuse_by_authentication_time(
    idp: IdP, clock: Clock, net: LocalNet
) -> None:
    svc = Service(
        idp,
        clock,
        MemoryRevocations(clock=clock),
        reactions={SESSION_REVOKED: "refuse_authenticated"},
    )
    net.add("api.example", svc.app)
    await connect(
        idp,
        svc,
        delivery={"method": "urn:ietf:rfc:8935", "endpoint_url": "https://api.example/ssf/events"},
    )
    idp.login_as("alice")
    old_login = idp.now()
    clock.now += 10
    idp.logout()
    await idp.ssf.drain()
    clock.now += 10
    # Issued after the event but from the old authentication (a refresh): refused.
    assert (await svc.get(access_token(idp, auth_time=old_login))).status_code == 401
    assert (await svc.get(access_token(idp, auth_time=idp.now()))).status_code == 200
    await svc.aclose()


async def test_credential_change_refuses_older_authentications(
    idp: IdP, clock: Clock, service: Service
) -> None:
    before = access_token(idp)
    assert (await service.get(before)).status_code == 200
    clock.now += 5
    refreshed = access_token(idp, auth_time=idp.now() - 5)  # new token, old authentication
    idp.change_credential("alice")
    await idp.ssf.drain()
    assert (await service.get(before)).status_code == 401
    assert (await service.get(refreshed)).status_code == 401
    clock.now += 1
    assert (await service.get(access_token(idp))).status_code == 200


async def test_account_disabled(idp: IdP, clock: Clock, service: Service) -> None:
    token = access_token(idp)
    assert (await service.get(token)).status_code == 200
    idp.disable_user("alice", reason="hijacking")
    await idp.ssf.drain()
    assert (await service.get(token)).status_code == 401
    assert service.revocations.get("alice") is not None


async def test_assurance_level_down_asks_for_step_up(
    idp: IdP, clock: Clock, service: Service
) -> None:
    strong = access_token(idp, acr="mfa")
    assert (await service.get(strong, "/strong")).status_code == 200
    idp.change_assurance_level("alice", "pwd", "mfa")
    await idp.ssf.drain()
    answer = await service.get(strong, "/strong")
    assert answer.status_code == 401
    challenge = answer.headers["www-authenticate"]
    assert 'error="insufficient_user_authentication"' in challenge
    assert 'acr_values="mfa"' in challenge
    # A level a handler asks for itself (rs_guard.check) is refused the same way.
    assert (await service.get(strong, "/pay")).status_code == 401
    # Routes that need no particular level keep working with the same token.
    assert (await service.get(strong, "/data")).status_code == 200
    # A fresh strong authentication passes.
    clock.now += 1
    assert (await service.get(access_token(idp, acr="mfa"), "/strong")).status_code == 200


async def test_token_claims_change_drops_cached_results(
    idp: IdP, clock: Clock, service: Service
) -> None:
    token = access_token(idp)
    other = access_token(idp, "bob")
    for t in (token, other):
        assert (await service.get(t)).status_code == 200
    validator = service.guard.validator
    assert validator.cached(token) is not None  # type: ignore[attr-defined]
    idp.ssf.emit(
        "https://schemas.openid.net/secevent/caep/event-type/token-claims-change",
        "alice",
        {"claims": {"role": "ro-admin"}},
    )
    await idp.ssf.drain()
    assert validator.cached(token) is None  # type: ignore[attr-defined]
    assert validator.cached(other) is not None  # type: ignore[attr-defined]
    assert (await service.get(token)).status_code == 200  # validated afresh


async def test_revoking_one_access_token_refuses_only_that_token(
    idp: IdP, clock: Clock, service: Service
) -> None:
    token = access_token(idp)
    other = access_token(idp)
    for t in (token, other):
        assert (await service.get(t)).status_code == 200
    async with idp.http_client() as http:
        answer = await http.post("/revoke", data={"token": token}, auth=("app", "app-secret"))
    assert answer.status_code == 200
    await idp.ssf.drain()
    assert (await service.get(token)).status_code == 401
    assert (await service.get(other)).status_code == 200


async def test_poll_delivery(idp: IdP, clock: Clock, net: LocalNet) -> None:
    svc = Service(idp, clock, MemoryRevocations(clock=clock))
    transmitter, stream = await connect(idp, svc, delivery=None)
    assert stream.method == POLL and stream.endpoint_url is not None
    token = access_token(idp)
    assert (await svc.get(token)).status_code == 200
    verified = svc.receiver.expect_verification("poll-state")
    await transmitter.request_verification(stream.stream_id, "poll-state")
    idp.disable_user("alice")
    assert await svc.receiver.poll(transmitter, stream) == 2
    assert verified.done()
    assert (await svc.get(token)).status_code == 401
    assert not idp.ssf.streams[stream.stream_id].queue  # acknowledged
    assert await svc.receiver.poll(transmitter, stream) == 0
    await svc.aclose()


async def test_stream_management(idp: IdP, clock: Clock, service: Service) -> None:
    stream = idp.ssf.stream_of(RECEIVER)
    assert stream is not None
    transmitter_stream = idp.ssf.config(stream)
    assert transmitter_stream["aud"] == RECEIVER
    assert (
        "https://schemas.openid.net/secevent/risc/event-type/account-disabled"
        in (transmitter_stream["events_delivered"])
    )


async def test_management_needs_the_receivers_own_token(idp: IdP, service: Service) -> None:
    async with idp.http_client() as http:
        assert (await http.get("/ssf/stream")).status_code == 401
        app_token = idp.issue_access_token(None, client_id="app", scope="ssf")
        answer = await http.get("/ssf/stream", headers={"Authorization": f"Bearer {app_token}"})
        assert answer.status_code == 200 and answer.json() == []  # sees no one else's stream
        stream_id = next(iter(idp.ssf.streams))
        answer = await http.get(
            "/ssf/stream",
            params={"stream_id": stream_id},
            headers={"Authorization": f"Bearer {app_token}"},
        )
        assert answer.status_code == 404


async def test_reactions_are_configurable(idp: IdP, clock: Clock, net: LocalNet) -> None:
    svc = Service(
        idp,
        clock,
        MemoryRevocations(clock=clock),
        reactions={ACCOUNT_DISABLED: Reaction.IGNORE},
    )
    net.add("api.example", svc.app)
    await connect(
        idp,
        svc,
        delivery={"method": "urn:ietf:rfc:8935", "endpoint_url": "https://api.example/ssf/events"},
    )
    token = access_token(idp)
    idp.disable_user("alice")
    await idp.ssf.drain()
    assert (await svc.get(token)).status_code == 200
    await svc.aclose()


async def test_poll_reports_refused_sets_and_acknowledges_good_ones(
    idp: IdP, clock: Clock, net: LocalNet
) -> None:
    svc = Service(idp, clock, MemoryRevocations(clock=clock))
    transmitter, stream = await connect(idp, svc, delivery=None)
    record = idp.ssf.streams[stream.stream_id]
    forged = idp.keys.sign(
        {
            "iss": "https://evil.example",
            "aud": RECEIVER,
            "iat": idp.now(),
            "jti": "bad-1",
            "sub_id": {"format": "opaque", "id": "x"},
            "events": {SESSION_REVOKED: {}},
        },
        typ="secevent+jwt",
    )
    record.queue["bad-1"] = forged
    idp.disable_user("alice")
    assert await svc.receiver.poll(transmitter, stream) == 1
    assert record.errors == {
        "bad-1": {
            "err": "invalid_issuer",
            "description": "The event was not issued by the expected issuer",
        }
    }
    assert not record.queue
    assert svc.revocations.get("alice") is not None
    await svc.aclose()
