"""The IdP's PPID conversion endpoint (POST /ppid/convert), over HTTP against the bundled IdP."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from rs_guard.idp import IdP

from .conftest import ISSUER, bearer

pytestmark = pytest.mark.anyio


async def convert(
    http: httpx.AsyncClient,
    body: Any,
    auth: tuple[str, str] | None = ("rs", "rs-secret"),
    **kw: Any,
) -> httpx.Response:
    return await http.post("/ppid/convert", json=body, auth=auth, **kw)


@pytest.fixture
async def http(idp: IdP) -> Any:
    async with idp.http_client() as client:
        yield client


async def cc_token(http: httpx.AsyncClient, client: str, secret: str, scope: str) -> str:
    resp = await http.post(
        "/token", data={"grant_type": "client_credentials", "scope": scope}, auth=(client, secret)
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


async def test_metadata_advertises_the_endpoint(http: httpx.AsyncClient) -> None:
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        doc = (await http.get(path)).json()
        assert doc["ppid_conversion_endpoint"] == f"{ISSUER}/ppid/convert"
        assert "pairwise" in doc["subject_types_supported"]


async def test_two_clients_see_different_subjects_for_one_user(idp: IdP) -> None:
    a, b, rs = (idp.subject_for("alice", c) for c in ("web-a", "web-b", "rs"))
    assert len({a, b, rs, "alice"}) == 4
    assert idp.subject_for("bob", "web-a") != a
    assert idp.subject_for("alice", "legacy") == "alice"  # public subject type


async def test_inbound_and_outbound_conversion(idp: IdP, http: httpx.AsyncClient) -> None:
    alice_a = idp.subject_for("alice", "web-a")
    alice_rs = idp.subject_for("alice", "rs")
    resp = await convert(http, {"from_client": "web-a", "subjects": [alice_a]})
    assert resp.status_code == 200
    assert resp.headers["cache-control"] == "no-store"
    assert resp.json() == {
        "from_client": "web-a",
        "to_client": "rs",
        "results": [{"subject": alice_a, "converted": alice_rs}],
    }
    resp = await convert(http, {"to_client": "web-b", "subjects": [alice_rs]})
    assert resp.json()["results"] == [
        {"subject": alice_rs, "converted": idp.subject_for("alice", "web-b")}
    ]
    # Public subject clients convert too: their subject is the user id.
    resp = await convert(http, {"from_client": "legacy", "subjects": ["bob"]})
    assert resp.json()["results"][0]["converted"] == idp.subject_for("bob", "rs")


async def test_unknown_subjects_are_reported_per_item(idp: IdP, http: httpx.AsyncClient) -> None:
    alice_a = idp.subject_for("alice", "web-a")
    bob_rs = idp.subject_for("bob", "rs")
    resp = await convert(
        http, {"from_client": "web-a", "subjects": ["nobody", alice_a, bob_rs, alice_a]}
    )
    assert resp.status_code == 200
    results = resp.json()["results"]
    assert [r["subject"] for r in results] == ["nobody", alice_a, bob_rs, alice_a]
    assert results[0] == {"subject": "nobody", "error": "unknown_subject"}
    assert results[1]["converted"] == idp.subject_for("alice", "rs")
    # bob's PPID for rs is not a PPID issued to web-a.
    assert results[2] == {"subject": bob_rs, "error": "unknown_subject"}
    assert results[3] == results[1]


async def test_bearer_client_credentials_token_with_scope(
    idp: IdP, http: httpx.AsyncClient
) -> None:
    token = await cc_token(http, "rs", "rs-secret", "ppid:convert")
    alice_a = idp.subject_for("alice", "web-a")
    resp = await convert(
        http, {"from_client": "web-a", "subjects": [alice_a]}, auth=None, headers=bearer(token)
    )
    assert resp.status_code == 200
    assert resp.json()["results"][0]["converted"] == idp.subject_for("alice", "rs")


async def test_bearer_token_without_the_scope_is_403(http: httpx.AsyncClient) -> None:
    token = await cc_token(http, "rs", "rs-secret", "items:read")
    resp = await convert(http, {"subjects": ["x"]}, auth=None, headers=bearer(token))
    assert resp.status_code == 403
    assert resp.json()["error"] == "insufficient_scope"
    assert 'scope="ppid:convert"' in resp.headers["www-authenticate"]


@pytest.mark.parametrize("kind", ["user", "garbage", "revoked", "other_audience"])
async def test_bearer_tokens_that_are_not_client_credentials_are_401(
    idp: IdP, http: httpx.AsyncClient, kind: str
) -> None:
    if kind == "user":
        # A user's token carries the scope but names a user, not the client.
        token = idp.issue_access_token("alice", client_id="rs", scope="ppid:convert")
    elif kind == "garbage":
        token = "not-a-token"
    elif kind == "revoked":
        token = await cc_token(http, "rs", "rs-secret", "ppid:convert")
        idp.revoke(token)
    else:
        token = idp.issue_access_token(
            None, client_id="rs", scope="ppid:convert", audience="https://elsewhere.example"
        )
    resp = await convert(http, {"subjects": ["x"]}, auth=None, headers=bearer(token))
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert token not in resp.text


@pytest.mark.parametrize(
    "auth", [None, ("rs", "wrong"), ("nobody", "x")], ids=["none", "bad-secret", "unknown"]
)
async def test_client_authentication_is_required(
    http: httpx.AsyncClient, auth: tuple[str, str] | None
) -> None:
    resp = await convert(http, {"subjects": ["x"]}, auth=auth)
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"
    assert "www-authenticate" in resp.headers


async def test_client_not_registered_for_the_scope_cannot_use_basic(
    idp: IdP, http: httpx.AsyncClient
) -> None:
    idp.register_client("narrow", "narrow-secret", scope="items:read")
    idp.ppid_policy.allow("narrow")
    resp = await convert(http, {"subjects": ["x"]}, auth=("narrow", "narrow-secret"))
    assert resp.status_code == 403
    assert resp.json()["error"] == "access_denied"


async def test_a_caller_cannot_convert_between_two_other_clients(
    idp: IdP, http: httpx.AsyncClient
) -> None:
    alice_a = idp.subject_for("alice", "web-a")
    resp = await convert(
        http, {"from_client": "web-a", "to_client": "web-b", "subjects": [alice_a]}
    )
    assert resp.status_code == 403
    assert resp.json()["error"] == "access_denied"
    assert idp.subject_for("alice", "web-b") not in resp.text


async def test_pairs_are_denied_unless_allowed(idp: IdP, http: httpx.AsyncClient) -> None:
    alice_a = idp.subject_for("alice", "web-a")
    creds = ("other-rs", "other-rs-secret")
    body = {"from_client": "web-a", "subjects": [alice_a]}
    assert (await convert(http, body, auth=creds)).status_code == 403

    idp.ppid_policy.allow("other-rs", "web-a", direction="from")
    assert (await convert(http, body, auth=creds)).status_code == 200
    # Only inbound was allowed: the other direction stays closed.
    mine = idp.subject_for("alice", "other-rs")
    out = await convert(http, {"to_client": "web-a", "subjects": [mine]}, auth=creds)
    assert out.status_code == 403

    # A specific deny beats a wildcard allow.
    idp.ppid_policy.allow("other-rs", direction="both")
    idp.ppid_policy.deny("other-rs", "web-b")
    assert (await convert(http, {"to_client": "web-a", "subjects": [mine]}, auth=creds)).is_success
    denied = await convert(http, {"to_client": "web-b", "subjects": [mine]}, auth=creds)
    assert denied.status_code == 403


async def test_policy_is_checked_before_client_existence(idp: IdP, http: httpx.AsyncClient) -> None:
    creds = ("other-rs", "other-rs-secret")
    body = {"from_client": "ghost", "subjects": ["x"]}
    # Not allowed: 403, whether or not "ghost" exists (nothing learnt about client ids).
    assert (await convert(http, body, auth=creds)).status_code == 403
    resp = await convert(http, body)  # rs may convert from anyone
    assert resp.status_code == 400
    assert resp.json() == {
        "error": "invalid_request",
        "error_description": "from_client 'ghost' is not a registered client",
    }


async def test_identity_conversion_is_always_allowed(idp: IdP, http: httpx.AsyncClient) -> None:
    mine = idp.subject_for("alice", "other-rs")
    resp = await convert(http, {"subjects": [mine]}, auth=("other-rs", "other-rs-secret"))
    assert resp.json()["results"] == [{"subject": mine, "converted": mine}]


async def test_batch_size_is_bounded(idp: IdP, http: httpx.AsyncClient) -> None:
    ok = await convert(http, {"from_client": "web-a", "subjects": ["s"] * 100})
    assert ok.status_code == 200
    assert len(ok.json()["results"]) == 100
    resp = await convert(http, {"from_client": "web-a", "subjects": ["s"] * 101})
    assert resp.status_code == 400
    assert resp.json()["error_description"] == (
        "subjects holds 101 items; at most 100 are allowed per request"
    )


@pytest.mark.parametrize(
    ("body", "description"),
    [
        ([], "the body must be a JSON object"),
        ({}, "subjects is required"),
        ({"subjects": "abc"}, "subjects must be an array of strings"),
        ({"subjects": []}, "subjects must not be empty"),
        (
            {"subjects": ["a", 3]},
            "subjects[1] must be a non-empty string of at most 512 characters",
        ),
        ({"subjects": [""]}, "subjects[0] must be a non-empty string of at most 512 characters"),
        (
            {"subjects": ["x" * 513]},
            "subjects[0] must be a non-empty string of at most 512 characters",
        ),
        (
            {"subjects": ["a"], "from_client": 7},
            "from_client must be a non-empty string (a client id)",
        ),
        (
            {"subjects": ["a"], "to_client": ""},
            "to_client must be a non-empty string (a client id)",
        ),
        ({"subjects": ["a"], "form_client": "web-a"}, "unknown member 'form_client'"),
    ],
)
async def test_malformed_requests_get_a_precise_400(
    http: httpx.AsyncClient, body: Any, description: str
) -> None:
    resp = await convert(http, body)
    assert resp.status_code == 400
    assert resp.json() == {"error": "invalid_request", "error_description": description}


@pytest.mark.parametrize(
    ("content", "ctype", "description"),
    [
        (b'{"subjects": ["a"]}', "text/plain", "the body must be application/json"),
        (b'{"subjects": ["a"', "application/json", "the body is not valid JSON"),
        (b"\xff\xfe", "application/json", "the body is not UTF-8"),
        (
            b'{"subjects": ["a"], "subjects": ["b"]}',
            "application/json",
            "member 'subjects' appears more than once",
        ),
        (b'{"subjects": [NaN]}', "application/json", "the body is not valid JSON (NaN)"),
    ],
)
async def test_malformed_bodies_get_a_precise_400(
    http: httpx.AsyncClient, content: bytes, ctype: str, description: str
) -> None:
    resp = await http.post(
        "/ppid/convert",
        content=content,
        headers={"content-type": ctype},
        auth=("rs", "rs-secret"),
    )
    assert resp.status_code == 400
    assert resp.json() == {"error": "invalid_request", "error_description": description}


async def test_oversized_body_is_refused(http: httpx.AsyncClient) -> None:
    body = json.dumps({"subjects": ["x" * 500] * 200}).encode()
    resp = await http.post(
        "/ppid/convert",
        content=body,
        headers={"content-type": "application/json"},
        auth=("rs", "rs-secret"),
    )
    assert resp.status_code == 413
    assert resp.json()["error"] == "invalid_request"


async def test_fault_switch(idp: IdP, http: httpx.AsyncClient) -> None:
    idp.faults.ppid = "down"
    resp = await convert(http, {"subjects": ["x"]})
    assert resp.status_code == 503
    idp.faults.ppid = "garbage"
    resp = await convert(http, {"subjects": ["x"]})
    with pytest.raises(ValueError):
        resp.json()
    idp.faults.ppid = None
    assert (await convert(http, {"from_client": "web-a", "subjects": ["x"]})).status_code == 200


async def test_policy_rejects_bad_arguments(idp: IdP) -> None:
    with pytest.raises(ValueError):
        idp.ppid_policy.allow("rs", direction="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        idp.ppid_policy.allow("")
