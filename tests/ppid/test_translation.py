"""Subject translation in ResourceGuard and outbound conversion, end to end with the IdP."""

from __future__ import annotations

import httpx
import pytest

from rs_guard import ResourceGuard
from rs_guard.idp import IdP
from rs_guard.ppid import PPIDTranslator, UnknownSubject

from .conftest import API, ISSUER, CountingApp, bearer, protected_app, user_token

pytestmark = pytest.mark.anyio


async def test_the_resource_recovers_its_own_ppid_from_either_caller(
    idp: IdP, api: httpx.AsyncClient, users: dict[str, str]
) -> None:
    alice_rs = idp.subject_for("alice", "rs")
    users[alice_rs] = "user-17"
    seen = {}
    for client in ("web-a", "web-b", "legacy"):
        resp = await api.get("/me", headers=bearer(user_token(idp, "alice", client)))
        assert resp.status_code == 200, resp.text
        seen[client] = resp.json()
    # Each caller presents its own PPID ...
    assert seen["web-a"]["subject"] == idp.subject_for("alice", "web-a")
    assert seen["web-b"]["subject"] == idp.subject_for("alice", "web-b")
    assert seen["legacy"]["subject"] == "alice"
    assert len({s["subject"] for s in seen.values()}) == 3
    # ... and the app sees one user, in its own namespace, mapped to its own record.
    for body in seen.values():
        assert body["local_subject"] == alice_rs
        assert body["user_id"] == "user-17"


async def test_outbound_conversion_gives_each_caller_its_own_ppid(
    idp: IdP, api: httpx.AsyncClient
) -> None:
    for client in ("web-a", "web-b", "legacy"):
        resp = await api.get("/owner", headers=bearer(user_token(idp, "alice", client)))
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"owner": idp.subject_for("alice", client)}


async def test_outbound_many_and_unknown(idp: IdP, translator: PPIDTranslator) -> None:
    alice, bob = idp.subject_for("alice", "rs"), idp.subject_for("bob", "rs")
    out = await translator.to_client("web-b", [bob, alice, bob])
    assert out == [idp.subject_for(u, "web-b") for u in ("bob", "alice", "bob")]
    assert await translator.to_client("web-b", alice) == idp.subject_for("alice", "web-b")
    with pytest.raises(UnknownSubject) as info:
        await translator.to_client("web-b", [alice, "ghost-1", "ghost-2"])
    assert info.value.subjects == ("ghost-1", "ghost-2")
    # Our own namespace needs no IdP at all.
    assert await translator.to_client("rs", [alice]) == [alice]


async def test_inbound_lookup_makes_the_reverse_lookup_free(
    idp: IdP, translator: PPIDTranslator, counting: CountingApp
) -> None:
    alice_a = idp.subject_for("alice", "web-a")
    local = await translator.to_local("web-a", alice_a)
    calls = counting.calls["/ppid/convert"]
    assert await translator.to_client("web-a", local) == alice_a
    assert counting.calls["/ppid/convert"] == calls


async def test_unknown_subject_is_401_invalid_token(
    idp: IdP, api: httpx.AsyncClient, app_calls: list[str]
) -> None:
    # A validly signed token whose sub the IdP cannot map (e.g. the user was deleted).
    token = idp.issue_access_token(
        "alice", client_id="web-a", audience=API, scope="items:read", claims={"sub": "ghost"}
    )
    resp = await api.get("/me", headers=bearer(token))
    assert resp.status_code == 401
    assert 'error="invalid_token"' in resp.headers["www-authenticate"]
    assert resp.json()["error_description"] == "The token's subject is not known"
    assert app_calls == []


async def test_a_client_the_resource_may_not_convert_from_is_401(
    idp: IdP, api: httpx.AsyncClient, app_calls: list[str]
) -> None:
    idp.ppid_policy.deny("rs", "web-b")
    resp = await api.get("/me", headers=bearer(user_token(idp, "alice", "web-b")))
    assert resp.status_code == 401
    assert 'error="invalid_token"' in resp.headers["www-authenticate"]
    assert app_calls == []
    # Other callers are unaffected.
    ok = await api.get("/me", headers=bearer(user_token(idp, "alice", "web-a")))
    assert ok.status_code == 200


async def test_token_issued_to_the_resource_itself_needs_no_conversion(
    idp: IdP, api: httpx.AsyncClient, counting: CountingApp
) -> None:
    resp = await api.get("/me", headers=bearer(user_token(idp, "alice", "rs")))
    assert resp.json()["local_subject"] == idp.subject_for("alice", "rs")
    assert counting.calls["/ppid/convert"] == 0


async def test_client_credentials_tokens_have_no_user(
    idp: IdP, api: httpx.AsyncClient, idp_http: httpx.AsyncClient
) -> None:
    token = idp.issue_access_token(None, client_id="web-a", audience=API, scope="items:read")
    resp = await api.get("/me", headers=bearer(token))
    assert resp.status_code == 401
    assert resp.json()["error_description"] == "This resource needs a token issued for a user"

    keep = PPIDTranslator(
        issuer=ISSUER,
        client_id="rs",
        client_secret="rs-secret",
        http_client=idp_http,
        client_tokens="keep",
    )
    guard = ResourceGuard(
        protected_app(keep),
        issuer=ISSUER,
        resource=API,
        http_client=idp_http,
        subject_translator=keep,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=guard), base_url="https://rs.example"
    ) as client:
        body = (await client.get("/me", headers=bearer(token))).json()
    assert body["subject"] == body["local_subject"] == body["client_id"] == "web-a"


async def test_convert_needs_this_resource_on_one_side(translator: PPIDTranslator) -> None:
    from rs_guard.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        await translator.convert("web-a", "web-b", ["x"])


async def test_forget_drops_cached_conversions(
    idp: IdP, translator: PPIDTranslator, counting: CountingApp
) -> None:
    alice_a = idp.subject_for("alice", "web-a")
    await translator.to_local("web-a", alice_a)
    await translator.to_local("web-a", alice_a)
    assert counting.calls["/ppid/convert"] == 1
    translator.forget(idp.subject_for("alice", "rs"))
    await translator.to_local("web-a", alice_a)
    assert counting.calls["/ppid/convert"] == 2
