"""DPoP end to end: the bundled IdP binds tokens (RFC 9449 §5, §6, §8, §10), and the service's
own outbound clients request DPoP-bound tokens and call a DPoP-protected service with proofs."""

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

from rs_guard import AccessToken
from rs_guard.dpop import DPoPAuth, DPoPKey, DPoPNonces, DPoPVerifier
from rs_guard.idp import IdP
from rs_guard.outbound import ClientCredentials, TokenExchanger
from tests.dpop.conftest import BASE, RESOURCE, client, protected
from tests.support import ISSUER, Clock

pytestmark = pytest.mark.anyio
SPA_REDIRECT = "https://spa.example/cb"


def setup(idp: IdP) -> None:
    idp.register_client(
        "service", "service-secret", scope="items:read", served_resources=[RESOURCE]
    )
    idp.register_client(
        "spa", redirect_uris=[SPA_REDIRECT], token_endpoint_auth_method="none", scope="items:read"
    )
    idp.add_user("alice")


@pytest.fixture
def idp_setup() -> Callable[[IdP], None]:
    return setup


@pytest.fixture
async def http(idp: IdP) -> AsyncIterator[httpx.AsyncClient]:
    async with idp.http_client() as c:
        yield c


def claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    result: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return result


def token_proof(key: DPoPKey, clock: Clock, **kw: Any) -> dict[str, str]:
    return {"DPoP": key.proof("POST", f"{ISSUER}/token", iat=clock(), **kw)}


async def test_idp_metadata_advertises_dpop(http: httpx.AsyncClient) -> None:
    meta = (await http.get("/.well-known/oauth-authorization-server")).json()
    assert "ES256" in meta["dpop_signing_alg_values_supported"]


async def test_client_credentials_with_a_proof_is_bound(
    http: httpx.AsyncClient, clock: Clock
) -> None:
    key = DPoPKey()
    answer = await http.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": RESOURCE},
        auth=("service", "service-secret"),
        headers=token_proof(key, clock),
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "DPoP"
    assert claims(body["access_token"])["cnf"] == {"jkt": key.jkt}
    plain = await http.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": RESOURCE},
        auth=("service", "service-secret"),
    )
    assert plain.json()["token_type"] == "Bearer"
    assert "cnf" not in claims(plain.json()["access_token"])


@pytest.mark.parametrize(
    ("proof", "description"),
    [
        ("garbage", "The DPoP proof is not a well-formed JWT"),
        ("wrong-url", "The DPoP proof htu does not match"),
    ],
)
async def test_token_endpoint_refuses_a_bad_proof(
    http: httpx.AsyncClient, clock: Clock, proof: str, description: str
) -> None:
    key = DPoPKey()
    value = "a.b" if proof == "garbage" else key.proof("POST", f"{ISSUER}/other", iat=clock())
    answer = await http.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=("service", "service-secret"),
        headers={"DPoP": value},
    )
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_dpop_proof", "error_description": description}


async def test_token_endpoint_nonce(idp: IdP, http: httpx.AsyncClient, clock: Clock) -> None:
    idp.dpop.nonces = DPoPNonces(b"0123456789abcdef", clock=clock)
    key = DPoPKey()
    form = {"grant_type": "client_credentials"}
    first = await http.post(
        "/token", data=form, auth=("service", "service-secret"), headers=token_proof(key, clock)
    )
    assert first.status_code == 400
    assert first.json() == {
        "error": "use_dpop_nonce",
        "error_description": "Authorization server requires nonce in DPoP proof",
    }
    nonce = first.headers["dpop-nonce"]
    second = await http.post(
        "/token",
        data=form,
        auth=("service", "service-secret"),
        headers=token_proof(key, clock, nonce=nonce),
    )
    assert second.status_code == 200
    assert second.json()["token_type"] == "DPoP"


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def _code(idp: IdP, http: httpx.AsyncClient, **extra: str) -> tuple[str, str]:
    idp.login_as("alice")
    verifier, challenge = _pkce()
    params = {
        "response_type": "code",
        "client_id": "spa",
        "redirect_uri": SPA_REDIRECT,
        "scope": "items:read",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    answer = await http.get("/authorize", params=params)
    assert answer.status_code == 302, answer.text
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    return code, verifier


def _code_form(code: str, verifier: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "client_id": "spa",
        "code": code,
        "redirect_uri": SPA_REDIRECT,
        "code_verifier": verifier,
    }


async def test_public_client_refresh_token_is_bound_to_the_key(
    idp: IdP, http: httpx.AsyncClient, clock: Clock
) -> None:
    key = DPoPKey()
    code, verifier = await _code(idp, http)
    issued = await http.post(
        "/token", data=_code_form(code, verifier), headers=token_proof(key, clock)
    )
    assert issued.status_code == 200, issued.text
    body = issued.json()
    assert body["token_type"] == "DPoP"
    assert claims(body["access_token"])["cnf"]["jkt"] == key.jkt
    refresh = {
        "grant_type": "refresh_token",
        "client_id": "spa",
        "refresh_token": body["refresh_token"],
    }
    without = await http.post("/token", data=refresh)
    assert without.status_code == 400
    assert without.json()["error"] == "invalid_grant"
    other = await http.post("/token", data=refresh, headers=token_proof(DPoPKey(), clock))
    assert other.status_code == 400
    good = await http.post("/token", data=refresh, headers=token_proof(key, clock))
    assert good.status_code == 200, good.text
    assert good.json()["token_type"] == "DPoP"


async def test_dpop_jkt_binds_the_authorization_code(
    idp: IdP, http: httpx.AsyncClient, clock: Clock
) -> None:
    key = DPoPKey()
    code, verifier = await _code(idp, http, dpop_jkt=key.jkt)
    wrong = await http.post(
        "/token", data=_code_form(code, verifier), headers=token_proof(DPoPKey(), clock)
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    code, verifier = await _code(idp, http, dpop_jkt=key.jkt)
    right = await http.post(
        "/token", data=_code_form(code, verifier), headers=token_proof(key, clock)
    )
    assert right.status_code == 200, right.text
    malformed = await http.get(
        "/authorize",
        params={
            "response_type": "code",
            "client_id": "spa",
            "redirect_uri": SPA_REDIRECT,
            "dpop_jkt": "x",
        },
    )
    assert "invalid_request" in malformed.headers.get("location", "")


async def test_a_refused_redemption_leaves_the_code_bound_to_its_dpop_jkt(
    idp: IdP, http: httpx.AsyncClient, clock: Clock
) -> None:
    # RFC 9449 §10: a first try with another key must not unbind the code, so that a second
    # try without a proof (or with yet another key) gets it redeemed.
    key = DPoPKey()
    code, verifier = await _code(idp, http, dpop_jkt=key.jkt)
    for headers in (token_proof(DPoPKey(), clock), {}, token_proof(DPoPKey(), clock)):
        refused = await http.post("/token", data=_code_form(code, verifier), headers=headers)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"] == "invalid_grant"
    right = await http.post(
        "/token", data=_code_form(code, verifier), headers=token_proof(key, clock)
    )
    assert right.status_code == 200, right.text
    assert claims(right.json()["access_token"])["cnf"] == {"jkt": key.jkt}


async def test_key_bindings_fail_closed_when_their_table_is_full(
    idp: IdP, http: httpx.AsyncClient, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The IdP keeps a bounded number of key bindings (100,000; 2 here, so that a test can fill
    # it). A full table never means an unbound code or refresh token for a bound request.
    monkeypatch.setattr("rs_guard.idp._dpop._MAX_BINDINGS", 2)
    key = DPoPKey()
    for _ in range(2):
        await _code(idp, http, dpop_jkt=key.jkt)
    idp.login_as("alice")
    verifier, challenge = _pkce()
    full = await http.get(
        "/authorize",
        params={
            "response_type": "code",
            "client_id": "spa",
            "redirect_uri": SPA_REDIRECT,
            "scope": "items:read",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "dpop_jkt": key.jkt,
        },
    )
    assert full.status_code == 302
    location = parse_qs(urlsplit(full.headers["location"]).query)
    assert location["error"] == ["temporarily_unavailable"] and "code" not in location
    clock.now += 61  # the pending codes expire (code_lifetime 60): their bindings make room
    code, verifier = await _code(idp, http, dpop_jkt=key.jkt)
    unbound = await http.post("/token", data=_code_form(code, verifier))
    assert unbound.status_code == 400, unbound.text
    # Refresh tokens of a public client: with no room for the binding, none is issued.
    for room in (True, True, False):
        code, verifier = await _code(idp, http)
        issued = await http.post(
            "/token", data=_code_form(code, verifier), headers=token_proof(key, clock)
        )
        assert issued.status_code == 200, issued.text
        assert issued.json()["token_type"] == "DPoP"
        assert ("refresh_token" in issued.json()) is room
    clock.now += 86_401  # the refresh tokens expire (a day): their bindings make room
    code, verifier = await _code(idp, http)
    issued = await http.post(
        "/token", data=_code_form(code, verifier), headers=token_proof(key, clock)
    )
    assert issued.status_code == 200, issued.text
    refresh = {"grant_type": "refresh_token", "client_id": "spa"}
    refresh["refresh_token"] = issued.json()["refresh_token"]
    unbound = await http.post("/token", data=refresh)
    assert unbound.status_code == 400, unbound.text


# ----- outbound: ClientCredentials / TokenExchanger with dpop= ------------------------------


def service_credentials(http: httpx.AsyncClient, key: DPoPKey, clock: Clock) -> ClientCredentials:
    """The "service" client's DPoP-bound client-credentials source for RESOURCE."""
    return ClientCredentials(
        issuer=ISSUER,
        client_id="service",
        client_secret="service-secret",
        http_client=http,
        resource=RESOURCE,
        dpop=key,
        clock=clock,
    )


async def test_client_credentials_calls_a_dpop_protected_service(
    idp: IdP, http: httpx.AsyncClient, clock: Clock
) -> None:
    key = DPoPKey(clock=clock)
    source = service_credentials(http, key, clock)
    token = await source.token()
    assert claims(token)["cnf"]["jkt"] == key.jkt
    guard = protected(idp, clock, dpop=DPoPVerifier(policy="required", clock=lambda: clock()))
    transport = httpx.ASGITransport(app=guard)
    async with httpx.AsyncClient(transport=transport, base_url=BASE, auth=source.auth()) as api:
        for _ in range(3):  # a fresh proof every call: none is a replay
            answer = await api.get("/whoami")
            assert answer.status_code == 200, answer.headers
            assert answer.json()["jkt"] == key.jkt


async def test_outbound_nonce_retry_at_the_idp_and_at_the_resource(
    idp: IdP, http: httpx.AsyncClient, clock: Clock
) -> None:
    idp.dpop.nonces = DPoPNonces(b"0123456789abcdef", clock=clock)
    key = DPoPKey(clock=clock)
    source = service_credentials(http, key, clock)
    nonces = DPoPNonces(b"fedcba9876543210", clock=clock)
    guard = protected(idp, clock, dpop=DPoPVerifier(nonces=nonces, clock=clock))
    async with client(guard) as api:
        api.auth = source.auth()
        answer = await api.get("/whoami")
        assert answer.status_code == 200
        again = await api.get("/whoami")  # the nonce is remembered: no second retry
        assert again.status_code == 200


async def test_dpop_auth_with_a_fixed_token(idp: IdP, clock: Clock) -> None:
    key = DPoPKey(clock=clock)
    token = idp.issue_access_token(
        None, client_id="service", audience=RESOURCE, claims={"cnf": {"jkt": key.jkt}}
    )
    guard = protected(idp, clock)
    async with client(guard) as api:
        api.auth = DPoPAuth(key, token)
        assert (await api.post("/whoami")).status_code == 200


async def test_token_exchanger_requests_dpop_bound_tokens(
    idp: IdP, http: httpx.AsyncClient, clock: Clock
) -> None:
    key = DPoPKey(clock=clock)
    subject = idp.issue_access_token(
        "alice", client_id="spa", audience=RESOURCE, scope="items:read"
    )
    exchanger = TokenExchanger(
        issuer=ISSUER,
        client_id="service",
        client_secret="service-secret",
        http_client=http,
        dpop=key,
        clock=clock,
    )
    token = await exchanger.exchange(AccessToken(claims(subject), raw=subject), resource=RESOURCE)
    assert claims(token)["cnf"]["jkt"] == key.jkt
