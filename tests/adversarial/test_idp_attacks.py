"""Attacks on the bundled IdP: redirect URI tricks, PKCE downgrade, code reuse and theft,
registration metadata abuse, `sector_identifier_uri` (and other fetched URIs) aimed at internal
addresses, and PPID conversion requests for other clients. The IdP never fetches anything here:
its outbound client records and refuses every request."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rs_guard.idp import IdP

from .strategies import fuzz, json_values, junk

pytestmark = pytest.mark.anyio

ISSUER = "https://idp.example"
REDIRECT = "https://app.example/cb"


class Outbound(httpx.AsyncBaseTransport):
    """The IdP's only way out: records every URL and serves only the documents given."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.documents: dict[str, Any] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        self.urls.append(url)
        if url in self.documents:
            return httpx.Response(200, json=self.documents[url], request=request)
        raise httpx.ConnectError("no network in tests", request=request)


@pytest.fixture
def outbound() -> Outbound:
    return Outbound()


@pytest.fixture
async def idp_options(outbound: Outbound) -> AsyncIterator[dict[str, Any]]:
    # Wall time, and an outbound client that records and refuses every fetch.
    async with httpx.AsyncClient(transport=outbound) as client:
        yield {"http_client": client}


def add_clients(idp: IdP) -> None:
    """Three clients to attack each other with, and alice signed in."""
    idp.register_client(
        "web-app", "web-secret", redirect_uris=[REDIRECT], scope="openid items:read"
    )
    idp.register_client("other-app", "other-secret", redirect_uris=["https://other.example/cb"])
    idp.register_client(
        "spa", redirect_uris=["https://spa.example/cb"], token_endpoint_auth_method="none"
    )
    idp.add_user("alice")
    idp.login_as("alice")


@pytest.fixture
def idp_setup() -> Callable[[IdP], None]:
    return add_clients


@pytest.fixture
async def http(idp: IdP) -> AsyncIterator[httpx.AsyncClient]:
    async with idp.http_client() as client:
        yield client


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def query(resp: httpx.Response) -> dict[str, str]:
    location = resp.headers.get("location", "")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def authorize(http: httpx.AsyncClient, **params: Any) -> httpx.Response:
    base = {"response_type": "code", "client_id": "web-app", "redirect_uri": REDIRECT}
    base.update({k: v for k, v in params.items() if v is not None})
    return await http.get("/authorize", params={k: v for k, v in base.items() if v != ""})


async def code_for(http: httpx.AsyncClient, **params: Any) -> tuple[str, str | None]:
    verifier, challenge = pkce()
    if params.pop("pkce", True):
        params.setdefault("code_challenge", challenge)
        params.setdefault("code_challenge_method", "S256")
    else:
        verifier = None  # type: ignore[assignment]
    resp = await authorize(http, scope="openid items:read", **params)
    assert resp.status_code == 302, resp.text
    return query(resp)["code"], verifier


async def redeem(
    http: httpx.AsyncClient, code: str, verifier: str | None, **extra: Any
) -> httpx.Response:
    auth = extra.pop("auth", ("web-app", "web-secret"))
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    if verifier is not None:
        data["code_verifier"] = verifier
    data.update(extra)
    return await http.post(
        "/token", data={k: v for k, v in data.items() if v is not None}, auth=auth
    )


# ----- redirect URIs -----------------------------------------------------------------------

REDIRECT_TRICKS = [
    "https://app.example/cb/",
    "https://app.example/cb/../evil",
    "https://app.example/cb/%2e%2e/evil",
    "https://app.example/cb?next=https://evil.example",
    "https://app.example/cb#",
    "https://app.example/cb#evil",
    "https://app.example/CB",
    "https://app.example:443/cb",
    "https://app.example:8443/cb",
    "http://app.example/cb",
    "https://app.example.evil.example/cb",
    "https://app.example@evil.example/cb",
    "https://evil.example/cb?https://app.example/cb",
    "https://evil.example/https://app.example/cb",
    "//evil.example/cb",
    "/cb",
    "javascript:alert(1)//https://app.example/cb",
    "data:text/html,https://app.example/cb",
    "https://app.example\\@evil.example/cb",
    "https://app.example/cb\r\nLocation: https://evil.example",
    "https://app.example/cb\x00",
    " https://app.example/cb",
    "https://app.example/cb%00",
    "https://xn--pp-8ka.example/cb",
]


@pytest.mark.parametrize("uri", REDIRECT_TRICKS)
async def test_redirect_uri_tricks_are_never_redirected_to(
    http: httpx.AsyncClient, uri: str
) -> None:
    resp = await authorize(
        http,
        redirect_uri=uri,
        scope="openid",
        code_challenge=pkce()[1],
        code_challenge_method="S256",
    )
    assert resp.status_code == 400, (uri, resp.status_code, resp.headers.get("location"))
    assert "location" not in resp.headers
    assert "evil" not in resp.text.lower() or "evil.example" not in resp.headers.get("location", "")


async def test_unknown_client_is_never_redirected(http: httpx.AsyncClient) -> None:
    resp = await authorize(http, client_id="nobody", redirect_uri="https://evil.example/cb")
    assert resp.status_code == 400 and "location" not in resp.headers


async def test_errors_after_redirect_validation_go_to_the_registered_uri(
    http: httpx.AsyncClient,
) -> None:
    resp = await authorize(
        http, scope="openid", code_challenge_method="plain", code_challenge="x" * 43, state="s1"
    )
    assert resp.status_code == 302
    assert resp.headers["location"].startswith(REDIRECT + "?")
    q = query(resp)
    assert q["error"] == "invalid_request" and q["state"] == "s1" and q["iss"] == ISSUER


# ----- PKCE downgrade ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "client"),
    [
        ({"code_challenge_method": "plain", "code_challenge": "a" * 43}, "web-app"),
        ({"code_challenge": "a" * 43}, "web-app"),  # no method means plain (RFC 7636 §4.3)
        ({"code_challenge_method": "S256"}, "spa"),  # method without challenge
        ({"code_challenge_method": "s256", "code_challenge": "a" * 43}, "web-app"),
        ({"code_challenge_method": "S256", "code_challenge": "short"}, "web-app"),
        ({}, "spa"),  # a public client without PKCE at all
    ],
)
async def test_pkce_downgrades_are_refused(
    http: httpx.AsyncClient, params: dict[str, str], client: str
) -> None:
    redirect = REDIRECT if client == "web-app" else "https://spa.example/cb"
    resp = await authorize(http, client_id=client, redirect_uri=redirect, scope="openid", **params)
    assert resp.status_code == 302
    assert query(resp)["error"] == "invalid_request"
    assert "code" not in query(resp)


async def test_verifier_mismatches_and_stripping(http: httpx.AsyncClient) -> None:
    code, verifier = await code_for(http)
    assert (await redeem(http, code, None)).json()["error"] == "invalid_grant"
    # The code is burned by the failed attempt.
    assert (await redeem(http, code, verifier)).json()["error"] == "invalid_grant"
    code, verifier = await code_for(http)
    assert (await redeem(http, code, verifier[:-1] + "A")).json()["error"] == "invalid_grant"
    code, verifier = await code_for(http)
    challenge = pkce()[1]
    resp = await redeem(http, code, challenge)  # the challenge itself sent as verifier
    assert resp.json()["error"] == "invalid_grant"
    # A code issued without PKCE must not accept a verifier (downgrade/injection detection).
    code, _ = await code_for(http, pkce=False)
    resp = await redeem(http, code, pkce()[0])
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"


# ----- codes -------------------------------------------------------------------------------


async def test_code_reuse_revokes_what_was_issued(idp: IdP, http: httpx.AsyncClient) -> None:
    code, verifier = await code_for(http)
    first = await redeem(http, code, verifier)
    assert first.status_code == 200
    access = first.json()["access_token"]
    assert idp.introspect(access)["active"] is True
    again = await redeem(http, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert idp.introspect(access)["active"] is False
    refresh = first.json().get("refresh_token")
    if refresh is not None:
        resp = await http.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh},
            auth=("web-app", "web-secret"),
        )
        assert resp.json()["error"] == "invalid_grant"


async def test_stolen_code_cannot_be_redeemed_elsewhere(http: httpx.AsyncClient) -> None:
    code, verifier = await code_for(http)
    resp = await redeem(http, code, verifier, auth=("other-app", "other-secret"))
    assert resp.json()["error"] == "invalid_grant"
    resp = await redeem(http, code, verifier, auth=("web-app", "wrong-secret"))
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
    resp = await redeem(http, code, verifier, redirect_uri="https://app.example/cb/")
    assert resp.json()["error"] == "invalid_grant"
    resp = await redeem(http, code + "x", verifier)
    assert resp.json()["error"] == "invalid_grant"


async def test_expired_code(idp: IdP, http: httpx.AsyncClient) -> None:
    code, verifier = await code_for(http)
    now = idp.clock()
    idp.clock = lambda: now + idp.code_lifetime + 1
    assert (await redeem(http, code, verifier)).json()["error"] == "invalid_grant"


# ----- registration ------------------------------------------------------------------------

BAD_METADATA: list[dict[str, Any]] = [
    {"redirect_uris": ["https://app.example/cb#frag"]},
    {"redirect_uris": ["javascript:alert(1)"]},
    {"redirect_uris": ["data:text/html,hi"]},
    {"redirect_uris": ["http://app.example/cb"]},
    {"redirect_uris": ["/relative"]},
    {"redirect_uris": "https://app.example/cb"},
    {"redirect_uris": [1]},
    {"redirect_uris": [REDIRECT], "grant_types": ["implicit"]},
    {"redirect_uris": [REDIRECT], "grant_types": ["password"]},
    {"redirect_uris": [REDIRECT], "response_types": ["token"]},
    {"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_jwt"},
    {
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "client_credentials"],
    },
    {"redirect_uris": [REDIRECT], "subject_type": "sometimes"},
    {"redirect_uris": [REDIRECT, "https://b.example/cb"], "subject_type": "pairwise"},
    {
        "redirect_uris": [REDIRECT],
        "jwks": {"keys": "x"},
        "token_endpoint_auth_method": "private_key_jwt",
    },
    {"redirect_uris": [REDIRECT], "jwks_uri": "http://keys.example/jwks"},
    {"redirect_uris": [REDIRECT], "scope": ["openid"]},
    {"redirect_uris": [REDIRECT], "client_name": {"x": 1}},
    {"redirect_uris": [REDIRECT], "application_type": "desktop"},
]


@pytest.mark.parametrize("meta", BAD_METADATA, ids=lambda m: json.dumps(m)[:60])
async def test_registration_metadata_abuse(
    http: httpx.AsyncClient, outbound: Outbound, meta: dict[str, Any]
) -> None:
    resp = await http.post("/register", json=meta)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] in ("invalid_client_metadata", "invalid_redirect_uri")
    assert outbound.urls == []


async def test_registration_cannot_choose_or_take_over_an_identity(
    idp: IdP, http: httpx.AsyncClient
) -> None:
    resp = await http.post(
        "/register",
        json={
            "redirect_uris": ["https://attacker.example/cb"],
            "client_id": "web-app",
            "client_secret": "chosen",
            "registration_access_token": "chosen",
            "client_id_issued_at": 1,
        },
    )
    assert resp.status_code == 201
    body = resp.json()
    assert body["client_id"] != "web-app"
    assert body.get("client_secret") != "chosen"
    assert body["registration_access_token"] != "chosen"
    assert idp.clients["web-app"].redirect_uris == [REDIRECT]
    # Managing another client needs its registration access token.
    resp = await http.get(
        "/register/web-app",
        headers={"Authorization": f"Bearer {body['registration_access_token']}"},
    )
    assert resp.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"null",
        b"{",
        b'{"redirect_uris": ["https://a.example/cb"], "redirect_uris": []}',
        b"[" * 5000 + b"]" * 5000,
        b'{"a": "' + b"x" * 200_000 + b'"}',
        b"\xff\xfe",
    ],
    ids=lambda b: repr(b[:20]),
)
async def test_registration_bodies_that_are_not_metadata(
    http: httpx.AsyncClient, body: bytes
) -> None:
    resp = await http.post("/register", content=body, headers={"content-type": "application/json"})
    assert 400 <= resp.status_code < 500, resp.status_code
    assert resp.json()["error"] in (
        "invalid_client_metadata",
        "invalid_redirect_uri",
        "invalid_request",
    )


INTERNAL = [
    "https://127.0.0.1/sector.json",
    "https://127.1/sector.json",
    "https://2130706433/sector.json",
    "https://0x7f000001/sector.json",
    "https://0177.0.0.1/sector.json",
    "https://localhost/sector.json",
    "https://localhost./sector.json",
    "https://api.localhost/sector.json",
    "https://[::1]/sector.json",
    "https://[::ffff:127.0.0.1]/sector.json",
    "https://10.0.0.8/sector.json",
    "https://172.16.0.1/sector.json",
    "https://192.168.1.1/sector.json",
    "https://169.254.169.254/latest/meta-data/",
    "https://100.64.0.1/sector.json",
    "https://0.0.0.0/sector.json",
    "https://[fd00::1]/sector.json",
    "https://[fe80::1]/sector.json",
    "http://sector.example/sector.json",
    "https://user:pw@sector.example/sector.json",
    "file:///etc/passwd",
    "gopher://sector.example/",
]


@pytest.mark.parametrize("uri", INTERNAL)
@pytest.mark.parametrize("member", ["sector_identifier_uri", "jwks_uri", "event_delivery_uri"])
async def test_fetched_uris_aimed_at_internal_addresses(
    http: httpx.AsyncClient, outbound: Outbound, member: str, uri: str
) -> None:
    meta: dict[str, Any] = {"redirect_uris": [REDIRECT], member: uri}
    if member == "sector_identifier_uri":
        meta["subject_type"] = "pairwise"
    if member == "jwks_uri":
        meta["token_endpoint_auth_method"] = "private_key_jwt"
    resp = await http.post("/register", json=meta)
    assert resp.status_code == 400, (member, uri, resp.text)
    assert resp.json()["error"] == "invalid_client_metadata"
    assert outbound.urls == []  # refused before any request


async def test_sector_identifier_must_list_the_redirect_uris(
    http: httpx.AsyncClient, outbound: Outbound
) -> None:
    sector = "https://sector.example/sector.json"
    outbound.documents[sector] = ["https://elsewhere.example/cb"]
    meta = {
        "redirect_uris": [REDIRECT],
        "subject_type": "pairwise",
        "sector_identifier_uri": sector,
    }
    resp = await http.post("/register", json=meta)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_client_metadata"
    outbound.documents[sector] = [REDIRECT]
    resp = await http.post("/register", json=meta)
    assert resp.status_code == 201
    assert outbound.urls == [sector, sector]


async def test_client_id_metadata_documents_on_internal_addresses(
    http: httpx.AsyncClient, outbound: Outbound
) -> None:
    for url in (
        "https://127.0.0.1/client.json",
        "https://2130706433/c.json",
        "https://localhost./c",
    ):
        resp = await authorize(http, client_id=url, redirect_uri="https://x.example/cb")
        assert resp.status_code in (400, 401) and "location" not in resp.headers
    assert outbound.urls == []


# ----- PPID conversion for other clients -------------------------------------------------


@pytest.fixture
def pairwise(idp: IdP) -> IdP:
    for cid in ("a", "b", "c"):
        idp.register_client(
            cid,
            f"{cid}-secret",
            redirect_uris=[f"https://{cid}.example/cb"],
            subject_type="pairwise",
            scope="ppid:convert",
        )
    idp.ppid_policy.allow("b", "a", direction="from")  # b may convert a's PPIDs into its own
    return idp


async def convert(http: httpx.AsyncClient, caller: str, body: Any, **kwargs: Any) -> httpx.Response:
    auth = kwargs.pop("auth", (caller, f"{caller}-secret"))
    return await http.post("/ppid/convert", json=body, auth=auth, **kwargs)


async def test_conversion_needs_the_caller_on_one_side_and_a_rule(
    pairwise: IdP, http: httpx.AsyncClient
) -> None:
    sub_a = pairwise.subject_for("alice", "a")
    ok = await convert(http, "b", {"from_client": "a", "subjects": [sub_a]})
    assert ok.status_code == 200
    assert ok.json()["results"] == [
        {"subject": sub_a, "converted": pairwise.subject_for("alice", "b")}
    ]
    cases = [
        # c is neither side: asking about a and b's namespaces.
        ("c", {"from_client": "a", "to_client": "b", "subjects": [sub_a]}),
        # c is a side, but no rule lets c convert from a.
        ("c", {"from_client": "a", "subjects": [sub_a]}),
        # b's rule is "from a" only, not "to a".
        ("b", {"to_client": "a", "subjects": [pairwise.subject_for("alice", "b")]}),
        # a never got permission to read b's namespace.
        ("a", {"from_client": "b", "subjects": [pairwise.subject_for("alice", "b")]}),
        # An unknown client is denied before its existence is revealed.
        ("c", {"from_client": "no-such-client", "subjects": ["x"]}),
    ]
    for caller, body in cases:
        resp = await convert(http, caller, body)
        assert resp.status_code == 403, (caller, body, resp.text)
        assert resp.json()["error"] == "access_denied"
        assert "results" not in resp.json()
        assert pairwise.subject_for("alice", "b") not in resp.text


async def test_conversion_authentication(pairwise: IdP, http: httpx.AsyncClient) -> None:
    body = {"from_client": "a", "subjects": [pairwise.subject_for("alice", "a")]}
    assert (await convert(http, "b", body, auth=("b", "wrong"))).status_code == 401
    resp = await http.post("/ppid/convert", json=body)
    assert resp.status_code == 401
    user_token = pairwise.issue_access_token("alice", client_id="b", scope="ppid:convert")
    resp = await http.post(
        "/ppid/convert", json=body, headers={"Authorization": f"Bearer {user_token}"}
    )
    assert resp.status_code == 401  # a user's token names a user, not the client
    no_scope = pairwise.issue_access_token(None, client_id="b", scope="items:read")
    resp = await http.post(
        "/ppid/convert", json=body, headers={"Authorization": f"Bearer {no_scope}"}
    )
    assert resp.status_code == 403
    other_aud = pairwise.issue_access_token(
        None, client_id="b", scope="ppid:convert", audience="https://api.example"
    )
    resp = await http.post(
        "/ppid/convert", json=body, headers={"Authorization": f"Bearer {other_aud}"}
    )
    assert resp.status_code == 401
    good = pairwise.issue_access_token(None, client_id="b", scope="ppid:convert")
    resp = await http.post("/ppid/convert", json=body, headers={"Authorization": f"Bearer {good}"})
    assert resp.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"from_client": "a", "subjects": ["x"] * 101},
        {"from_client": "a", "subjects": []},
        {"from_client": "a", "subjects": "x"},
        {"from_client": "a", "subjects": [1]},
        {"from_client": "a", "subjects": ["x" * 513]},
        {"from_client": "a"},
        {"from_client": 7, "subjects": ["x"]},
        {"from_client": "a", "subjects": ["x"], "to_clients": "b"},
        [],
    ],
    ids=lambda b: json.dumps(b)[:50],
)
async def test_conversion_bodies(pairwise: IdP, http: httpx.AsyncClient, body: Any) -> None:
    resp = await convert(http, "b", body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_request"


async def test_conversion_duplicate_members(pairwise: IdP, http: httpx.AsyncClient) -> None:
    raw = b'{"from_client": "a", "from_client": "c", "subjects": ["x"]}'
    resp = await http.post(
        "/ppid/convert",
        content=raw,
        auth=("b", "b-secret"),
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"


# ----- fuzzing: registration metadata and `claims` parameters --------------------------------


META_NAMES = [
    "redirect_uris",
    "grant_types",
    "response_types",
    "token_endpoint_auth_method",
    "scope",
    "subject_type",
    "sector_identifier_uri",
    "jwks",
    "jwks_uri",
    "application_type",
    "client_name",
    "event_delivery_uri",
    "id_token_signed_response_alg",
    "client_id",
]
metadata = st.dictionaries(
    st.sampled_from(META_NAMES),
    junk
    | json_values
    | st.just([REDIRECT])
    | st.just("https://127.1/x")
    | st.sampled_from(["none", "pairwise", "private_key_jwt", "authorization_code"]),
    max_size=6,
)


@fuzz
@given(meta=metadata | json_values)
async def test_fuzz_registration_metadata(
    http: httpx.AsyncClient, outbound: Outbound, meta: Any
) -> None:
    resp = await http.post("/register", json=meta)
    assert resp.status_code in (201, 400), (resp.status_code, resp.text)
    if resp.status_code == 400:
        assert resp.json()["error"] in ("invalid_client_metadata", "invalid_redirect_uri")
    # Nothing internal is ever fetched (the only fetchable documents are not served here).
    assert not any("127." in u for u in outbound.urls)


claims_param = st.one_of(
    st.text(max_size=80),
    json_values.map(json.dumps),
    st.fixed_dictionaries(
        {},
        optional={
            "id_token": st.dictionaries(st.text(max_size=12), junk | json_values, max_size=3)
            | junk,
            "userinfo": st.dictionaries(st.text(max_size=12), junk | json_values, max_size=3)
            | junk,
        },
    ).map(json.dumps),
)


@fuzz
@given(claims=claims_param)
async def test_fuzz_claims_parameter(http: httpx.AsyncClient, claims: str) -> None:
    resp = await authorize(
        http,
        scope="openid",
        claims=claims,
        state="s",
        code_challenge=pkce()[1],
        code_challenge_method="S256",
    )
    # Either a code or an error, always sent back to the registered redirect URI.
    assert resp.status_code == 302, (resp.status_code, resp.text)
    assert resp.headers["location"].startswith(REDIRECT + "?")
    q = query(resp)
    assert ("code" in q) != ("error" in q)
    assert q["state"] == "s"
