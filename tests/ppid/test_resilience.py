"""IdP outages, single-flight, batching and the translator's own token, end to end."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from rs_guard import ResourceGuard
from rs_guard.idp import IdP
from rs_guard.outbound import ClientCredentials
from rs_guard.ppid import PPIDTranslator, PPIDUnavailable

from .conftest import API, ISSUER, Clock, CountingApp, bearer, protected_app, user_token

pytestmark = pytest.mark.anyio


def assert_503(resp: httpx.Response) -> None:
    assert resp.status_code == 503, resp.text
    assert int(resp.headers["retry-after"]) >= 1
    assert resp.json()["error"] == "temporarily_unavailable"


@pytest.mark.parametrize("fault", ["down", "slow", "garbage"])
async def test_idp_outage_is_503_with_retry_after_then_recovers(
    idp: IdP, api: httpx.AsyncClient, app_calls: list[str], fault: str
) -> None:
    token = user_token(idp, "alice", "web-a")
    idp.faults.ppid = fault  # type: ignore[assignment]
    idp.faults.delay = 2.0  # the translator gives up after 0.5 s
    started = time.monotonic()
    resp = await api.get("/me", headers=bearer(token))
    assert_503(resp)
    assert time.monotonic() - started < 1.5
    assert app_calls == []  # nothing half-translated reached the app
    assert token not in resp.text

    # Failures are not cached: the first request after the IdP is back succeeds.
    idp.faults.ppid = None
    resp = await api.get("/me", headers=bearer(token))
    assert resp.status_code == 200
    assert resp.json()["local_subject"] == idp.subject_for("alice", "rs")


async def test_idp_unreachable_is_503(idp: IdP) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as dead:
        tr = PPIDTranslator(
            client_id="rs",
            client_secret="rs-secret",
            conversion_endpoint=f"{ISSUER}/ppid/convert",
            token_endpoint=f"{ISSUER}/token",
            http_client=dead,
        )
        with pytest.raises(PPIDUnavailable) as info:
            await tr.to_local("web-a", idp.subject_for("alice", "web-a"))
        assert info.value.status_code == 503
        assert info.value.reason == "token_unreachable"


async def test_outbound_conversion_during_an_outage_is_503(
    idp: IdP, api: httpx.AsyncClient
) -> None:
    token = user_token(idp, "alice", "web-a")
    assert (await api.get("/owner", headers=bearer(token))).status_code == 200
    idp.faults.ppid = "down"
    # alice's own PPID was learnt with the inbound lookup: still served.
    resp = await api.get("/owner", headers=bearer(token))
    assert resp.json() == {"owner": idp.subject_for("alice", "web-a")}
    # bob's was never converted for web-a: the handler's conversion fails cleanly.
    bob = idp.subject_for("bob", "rs")
    assert_503(await api.get("/owner", params={"of": bob}, headers=bearer(token)))
    idp.faults.ppid = None
    resp = await api.get("/owner", params={"of": bob}, headers=bearer(token))
    assert resp.json() == {"owner": idp.subject_for("bob", "web-a")}


async def test_token_endpoint_down_is_503(idp: IdP, api: httpx.AsyncClient) -> None:
    idp.faults.token = "down"
    assert_503(await api.get("/me", headers=bearer(user_token(idp, "alice", "web-a"))))
    idp.faults.token = None
    assert (await api.get("/me", headers=bearer(user_token(idp, "alice", "web-a")))).is_success


async def test_cache_keeps_serving_known_subjects_during_an_outage(
    idp: IdP, api: httpx.AsyncClient, clock: Clock
) -> None:
    alice = user_token(idp, "alice", "web-a")
    assert (await api.get("/me", headers=bearer(alice))).status_code == 200
    idp.faults.ppid = "down"
    resp = await api.get("/me", headers=bearer(alice))
    assert resp.status_code == 200
    # Past the cache TTL the IdP is asked again; while it is down, the known answer stands.
    clock.now += 3600 + 1
    resp = await api.get("/me", headers=bearer(alice))
    assert resp.status_code == 200
    assert resp.json()["local_subject"] == idp.subject_for("alice", "rs")
    # A subject never seen before cannot be answered.
    assert_503(await api.get("/me", headers=bearer(user_token(idp, "bob", "web-a"))))
    # Once stale_for has passed too, the entry is gone.
    clock.now += 86_400
    assert_503(await api.get("/me", headers=bearer(alice)))


async def test_stale_entries_are_served_at_once_and_refreshed_behind(
    idp: IdP, api: httpx.AsyncClient, clock: Clock, counting: CountingApp
) -> None:
    alice = user_token(idp, "alice", "web-a")
    assert (await api.get("/me", headers=bearer(alice))).status_code == 200
    assert counting.calls["/ppid/convert"] == 1
    clock.now += 3600 + 1
    idp.faults.ppid = "slow"
    idp.faults.delay = 2.0
    started = time.monotonic()
    assert (await api.get("/me", headers=bearer(alice))).status_code == 200
    assert time.monotonic() - started < 0.4  # no waiting for the slow IdP
    await asyncio.sleep(0.6)  # the refresh behind gives up after the 0.5 s timeout
    idp.faults.ppid = None
    assert (await api.get("/me", headers=bearer(alice))).status_code == 200
    await asyncio.sleep(0.05)
    assert counting.calls["/ppid/convert"] == 3  # first lookup, failed refresh, refresh
    assert (await api.get("/me", headers=bearer(alice))).status_code == 200
    assert counting.calls["/ppid/convert"] == 3  # fresh again


async def test_a_burst_for_one_user_makes_one_idp_call(
    idp: IdP, api: httpx.AsyncClient, counting: CountingApp
) -> None:
    token = user_token(idp, "alice", "web-a")
    responses = await asyncio.gather(*(api.get("/me", headers=bearer(token)) for _ in range(1000)))
    assert {r.status_code for r in responses} == {200}
    assert {r.json()["local_subject"] for r in responses} == {idp.subject_for("alice", "rs")}
    assert counting.calls["/ppid/convert"] == 1
    assert counting.calls["/token"] == 1  # the translator's own client-credentials token


async def test_a_burst_during_an_outage_makes_one_idp_call(
    idp: IdP, api: httpx.AsyncClient, counting: CountingApp
) -> None:
    token = user_token(idp, "alice", "web-a")
    await api.get("/owner", headers=bearer(user_token(idp, "bob", "web-b")))  # warm up keys
    idp.faults.ppid = "down"
    responses = await asyncio.gather(*(api.get("/me", headers=bearer(token)) for _ in range(200)))
    assert {r.status_code for r in responses} == {503}
    assert counting.calls["/ppid/convert"] == 2  # the warm-up, and one for the whole burst


async def test_concurrent_distinct_lookups_are_batched(
    idp: IdP, translator: PPIDTranslator, counting: CountingApp
) -> None:
    users = [f"user-{i}" for i in range(250)]
    subjects = [idp.subject_for(u, "web-a") for u in users]
    local = await asyncio.gather(*(translator.to_local("web-a", s) for s in subjects))
    assert local == [idp.subject_for(u, "rs") for u in users]
    assert counting.calls["/ppid/convert"] == 3  # 100 + 100 + 50
    # All known now: no more calls, in either direction.
    await asyncio.gather(*(translator.to_local("web-a", s) for s in subjects))
    assert await translator.to_client("web-a", local) == subjects
    assert counting.calls["/ppid/convert"] == 3


async def test_batching_through_the_middleware(
    idp: IdP, idp_http: httpx.AsyncClient, counting: CountingApp
) -> None:
    sizes: list[int] = []

    def observe(name: str, fields: dict[str, Any]) -> None:
        if name == "ppid_batch":
            sizes.append(fields["size"])

    tr = PPIDTranslator(
        issuer=ISSUER,
        client_id="rs",
        client_secret="rs-secret",
        http_client=idp_http,
        observer=observe,
    )
    guard = ResourceGuard(
        protected_app(tr),
        issuer=ISSUER,
        resource=API,
        http_client=idp_http,
        subject_translator=tr,
    )
    tokens = [user_token(idp, f"user-{i}", "web-a") for i in range(300)]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=guard), base_url="https://rs.example"
    ) as api:
        await api.get("/me", headers=bearer(tokens[0]))  # warm up discovery and keys
        responses = await asyncio.gather(*(api.get("/me", headers=bearer(t)) for t in tokens[1:]))
    assert {r.status_code for r in responses} == {200}
    assert sum(sizes) == 300
    assert max(sizes) <= 100
    # 299 concurrent requests: a handful of batch calls, not hundreds.
    assert counting.calls["/ppid/convert"] == len(sizes) <= 10
    await tr.aclose()


async def test_unknown_answers_are_cached_briefly(
    idp: IdP, translator: PPIDTranslator, counting: CountingApp, clock: Clock
) -> None:
    for _ in range(3):
        with pytest.raises(Exception, match="not known"):
            await translator.to_local("web-a", "ghost")
    assert counting.calls["/ppid/convert"] == 1
    clock.now += 31
    with pytest.raises(Exception, match="not known"):
        await translator.to_local("web-a", "ghost")
    assert counting.calls["/ppid/convert"] == 2


async def test_own_token_is_reused_and_renewed_when_refused(
    idp: IdP, translator: PPIDTranslator, counting: CountingApp
) -> None:
    await translator.to_local("web-a", idp.subject_for("alice", "web-a"))
    await translator.to_local("web-a", idp.subject_for("bob", "web-a"))
    assert counting.calls["/token"] == 1
    # The IdP revokes the translator's token: one 401, a fresh token, and the call succeeds.
    idp.revoke(await translator.tokens.token(scope="ppid:convert"))
    await translator.to_local("web-b", idp.subject_for("alice", "web-b"))
    assert counting.calls["/token"] == 2


async def test_garbage_answers_are_refused(idp: IdP) -> None:
    """Answers that do not match the request are treated as an outage, never used."""
    alice_a = idp.subject_for("alice", "web-a")
    real = idp.app

    def tamper(body: bytes) -> bytes:
        return body.replace(b'"to_client":"rs"', b'"to_client":"web-b"')

    async def tampering(scope: Any, receive: Any, send: Any) -> None:
        async def patched(message: Any) -> None:
            if message["type"] == "http.response.body" and scope["path"] == "/ppid/convert":
                message = {**message, "body": tamper(message.get("body", b""))}
            await send(message)

        await real(scope, receive, patched)

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=tampering), base_url=ISSUER
    ) as http:
        tr = PPIDTranslator(
            issuer=ISSUER, client_id="rs", client_secret="rs-secret", http_client=http
        )
        with pytest.raises(PPIDUnavailable) as info:
            await tr.to_local("web-a", alice_a)
        assert info.value.reason == "ppid_garbage"
        await tr.aclose()


async def test_cancelled_caller_does_not_cancel_the_shared_lookup(
    idp: IdP, translator: PPIDTranslator, counting: CountingApp
) -> None:
    alice_a = idp.subject_for("alice", "web-a")
    first = asyncio.ensure_future(translator.to_local("web-a", alice_a))
    second = asyncio.ensure_future(translator.to_local("web-a", alice_a))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == idp.subject_for("alice", "rs")
    assert counting.calls["/ppid/convert"] == 1


async def test_guard_without_translator_is_unchanged(idp: IdP, idp_http: httpx.AsyncClient) -> None:
    guard = ResourceGuard(
        protected_app(None),  # type: ignore[arg-type]
        issuer=ISSUER,
        resource=API,
        http_client=idp_http,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=guard), base_url="https://rs.example"
    ) as client:
        body = (await client.get("/me", headers=bearer(user_token(idp, "alice", "web-a")))).json()
    assert body["local_subject"] is None


async def test_one_deadline_covers_the_translators_own_token_request(
    idp: IdP, idp_http: httpx.AsyncClient
) -> None:
    # The token source's own timeout is long; the translator's budget (0.5 s) bounds the token
    # request it starts, so nothing of a timed-out batch lingers for the next request to join.
    tokens = ClientCredentials(
        client_id="rs", client_secret="rs-secret", issuer=ISSUER, http_client=idp_http, timeout=10
    )
    tr = PPIDTranslator(
        client_id="rs", token_source=tokens, issuer=ISSUER, http_client=idp_http, timeout=0.5
    )
    alice = idp.subject_for("alice", "web-a")
    await tr.to_local("web-b", idp.subject_for("bob", "web-b"))  # warm up discovery
    tokens.invalidate()
    idp.faults.token = "slow"
    idp.faults.delay = 2.0
    started = time.monotonic()
    with pytest.raises(PPIDUnavailable):
        await tr.to_local("web-a", alice)
    assert time.monotonic() - started < 1.0
    idp.faults.token = None
    started = time.monotonic()
    assert await tr.to_local("web-a", alice) == idp.subject_for("alice", "rs")
    assert time.monotonic() - started < 0.5  # a new token request, not the stalled one
    await tr.aclose()


async def test_a_bug_in_a_batch_reaches_every_caller_as_a_503(
    idp: IdP, idp_http: httpx.AsyncClient
) -> None:
    class Broken(ClientCredentials):
        async def token(self, **kwargs: Any) -> str:
            raise RuntimeError("a bug")

    seen: list[tuple[str, Any]] = []
    tr = PPIDTranslator(
        client_id="rs",
        token_source=Broken(client_id="rs", client_secret="s", token_endpoint=f"{ISSUER}/t"),
        issuer=ISSUER,
        http_client=idp_http,
        observer=lambda name, fields: seen.append((name, fields.get("reason"))),
    )
    subjects = [idp.subject_for(u, "web-a") for u in ("alice", "bob")]
    results = await asyncio.gather(
        *(tr.to_local("web-a", s) for s in subjects), return_exceptions=True
    )
    assert all(isinstance(r, PPIDUnavailable) for r in results), results
    assert {r.reason for r in results if isinstance(r, PPIDUnavailable)} == {"ppid_internal_error"}
    assert ("ppid_failed", "internal_error") in seen
    assert ("ppid_failed", "ppid_internal_error") in seen
    await tr.aclose()
