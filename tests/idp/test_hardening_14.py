"""Issue #14: the bundled IdP and its clients, hardened (each test fails on the code before it).

Server items run over loopback (`rs_guard.testing.serve`, real uvicorn); the rest through the
public Python API.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import resource
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from rs_guard import AuthorizationServer, JWTValidator
from rs_guard.errors import InvalidToken
from rs_guard.idp import IdP
from rs_guard.testing import loopback_socket, serve, socket_url
from tests.support import free_port

REDIRECT = "https://app.example/cb"

pytestmark = pytest.mark.anyio


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@asynccontextmanager
async def served(**options: Any) -> AsyncIterator[tuple[IdP, httpx.AsyncClient]]:
    """A bundled IdP served by uvicorn on a loopback port, and a client for it (no cookies
    are shared with other clients made here: each is one "browser")."""
    sock = loopback_socket()
    url = socket_url(sock)
    idp = IdP(url, **options)
    async with serve(idp.app, sock=sock), httpx.AsyncClient(base_url=url) as http:
        yield idp, http


async def code_for(
    http: httpx.AsyncClient, client_id: str = "web", **params: str
) -> tuple[httpx.Response, dict[str, str], str]:
    verifier, challenge = pkce()
    base = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    base.update(params)
    resp = await http.get("/authorize", params=base)
    return resp, query(resp.headers.get("location", "")), verifier


async def redeem(
    http: httpx.AsyncClient, code: str, verifier: str, auth: tuple[str, str] | str = ("web", "s")
) -> httpx.Response:
    """Redeem a code; `auth` is a confidential client's (id, secret) or a public client's id."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    if isinstance(auth, str):
        return await http.post("/token", data={**form, "client_id": auth})
    return await http.post("/token", data=form, auth=auth)


# ----- keys and headers ---------------------------------------------------------------------


async def test_every_signing_key_is_published_before_its_first_use() -> None:
    async with served() as (idp, http):
        idp.register_client(
            "web", "s", redirect_uris=[REDIRECT], id_token_signed_response_alg="RS256"
        )
        idp.login_as("alice")
        published = {k["kid"] for k in (await http.get("/jwks")).json()["keys"]}
        resp, q, verifier = await code_for(http)
        tokens = (await redeem(http, q["code"], verifier)).json()
        header = jwt.get_unverified_header(tokens["id_token"])
        assert header["alg"] == "RS256"
        assert header["kid"] in published


def forged(idp: IdP, header: dict[str, Any]) -> str:
    """An access token signed with the IdP's real key under a hand-written header (PyJWT
    refuses to write `"kid": null`)."""
    key = idp.keys.active()
    good = idp.issue_access_token("alice", client_id="c")
    payload = good.split(".")[1]
    head = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    signing_input = f"{head}.{payload}".encode()
    algorithm = jwt.get_algorithm_by_name(key.alg)
    signature = algorithm.sign(signing_input, key.private_key)
    return f"{head}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


async def test_a_null_kid_is_refused_not_taken_for_no_kid() -> None:
    idp = IdP("https://idp.example")
    async with idp.http_client() as http:
        validator = JWTValidator(
            server=AuthorizationServer(idp.issuer, http_client=http), audience=idp.default_audience
        )
        kid = idp.keys.active().kid
        base = {"alg": "ES256", "typ": "at+jwt"}
        assert (await validator.validate(forged(idp, {**base, "kid": kid}))).subject == "alice"
        # Without a kid the single key is found: only a present-but-wrong kid is refused.
        assert (await validator.validate(forged(idp, base))).subject == "alice"
        for bad in ({"kid": None}, {"kid": kid, "cty": None}, {"kid": kid, "cty": 7}):
            with pytest.raises(InvalidToken):
                await validator.validate(forged(idp, {**base, **bad}))


def test_signing_keys_file_never_exists_readable_by_others_nor_half_written(
    tmp_path: Path,
) -> None:
    """A write that fails half-way (the file size limit) leaves no partial, world-readable key."""
    keys = tmp_path / "keys.json"

    def limit() -> None:
        os.umask(0o022)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    args = [sys.executable, "-m", "rs_guard", "idp", "--port", str(free_port())]
    proc = subprocess.run(
        [*args, "--signing-keys", str(keys)],
        env=env,
        preexec_fn=limit,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert list(tmp_path.iterdir()) == []
    assert b"cannot write signing keys file" in proc.stderr


# ----- clients and PKCE ---------------------------------------------------------------------


def test_repr_of_a_client_hides_its_secret() -> None:
    idp = IdP("https://idp.example")
    client = idp.register_client("web", "very-secret-value", redirect_uris=[REDIRECT])
    assert "very-secret-value" not in repr(client)
    assert "very-secret-value" not in str(client)
    assert "web" in repr(client)


async def test_pkce_verifier_with_a_trailing_newline_is_refused() -> None:
    async with served() as (idp, http):
        idp.register_client("web", "s", redirect_uris=[REDIRECT])
        idp.login_as("alice")
        verifier = secrets.token_urlsafe(48) + "\n"
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        resp, q, _ = await code_for(http, code_challenge=challenge)
        answer = await redeem(http, q["code"], verifier)
        assert answer.status_code == 400
        assert answer.json()["error"] == "invalid_grant"


# ----- no 500s ------------------------------------------------------------------------------


async def test_unicode_digits_in_max_age_are_invalid_request() -> None:
    async with served() as (idp, http):
        idp.register_client("web", "s", redirect_uris=[REDIRECT])
        idp.login_as("alice")
        for value in ("²", "٣", "1²"):
            resp, q, _ = await code_for(http, max_age=value)
            assert resp.status_code == 302, resp.text
            assert q["error"] == "invalid_request"


def random_hosts(n: int, seed: int = 14) -> list[str]:
    """Hosts a URL parser or IDNA codec chokes on: NUL and control bytes, invalid A-labels,
    bidi and combining marks, over-long labels, empty labels, mixed with plausible names."""
    rng = random.Random(seed)
    pieces = [
        "\x00", "\x01", "\x7f", "xn--", "xn--zz", "xn--a-", "-", ".", "..", "a" * 64, "ß",
        "\u0301", "\u202e", "\u200d", "\ufffd", "٣", "²", "example", "com", "%00", "%", "[",
        "]", ":", "\\", " ", "\t", "\u3002", "ﬀ", "İ", "\ud7ff", "xn--ls8h", "💩", "0x7f",
    ]  # fmt: skip
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 6))) for _ in range(n)]


async def test_bad_url_hosts_never_give_a_500() -> None:
    """800 random hosts at /authorize, /token, /register and event delivery: no 500."""
    async with served() as (idp, http):
        idp.register_client("web", "s", redirect_uris=[REDIRECT])
        idp.register_client("publisher", "p", scope="events:publish")
        idp.login_as("alice")
        statuses: list[int] = []
        for i, host in enumerate(random_hosts(800)):
            url = f"https://{host}/client"
            resp, _, _ = await code_for(http, client_id=url)
            statuses.append(resp.status_code)
            resp, _, _ = await code_for(http, redirect_uri=f"https://{host}/cb")
            statuses.append(resp.status_code)
            meta = {
                "redirect_uris": [f"https://{host}/cb"],
                ["jwks_uri", "sector_identifier_uri", "event_delivery_uri"][i % 3]: url,
            }
            statuses.append((await http.post("/register", json=meta)).status_code)
            form = {"grant_type": "client_credentials", "client_id": url, "client_secret": "x"}
            statuses.append((await http.post("/token", data=form)).status_code)
        assert statuses.count(500) == 0
        assert set(statuses) <= {200, 201, 302, 400, 401}


async def test_event_delivery_to_a_bad_host_is_an_outcome_not_a_500() -> None:
    async with served() as (idp, http):
        idp.register_client(
            "publisher", "p", scope="events:publish", grant_types=["client_credentials"]
        )
        idp.events.max_attempts = 1
        for i, host in enumerate(random_hosts(40, seed=8)):
            receiver = f"receiver-{i}"
            client = idp.register_client(receiver, "r")
            client.event_delivery_uri = f"https://{host}/events"
            idp.events.allow("publisher", receiver)
            idp.add_user("alice")
            resp = await http.post(
                "/events",
                json={
                    "audience": receiver,
                    "subject": "alice",
                    "events": {"https://schemas.example/e": {}},
                    "deliver": True,
                },
                auth=("publisher", "p"),
            )
            assert resp.status_code == 200, resp.text
            assert resp.json()["delivered"] is False


# ----- pairwise privacy, bounded work ---------------------------------------------------------


async def test_ppid_convert_of_unknown_subjects_scans_no_users(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """5,000 users, 100 unknown subjects: no user is scanned, and nothing is remembered."""
    from rs_guard.idp._users import UserDirectory

    scanned = 0
    iterate = UserDirectory.__iter__

    def counting(self: UserDirectory) -> Any:
        nonlocal scanned
        for user_id in iterate(self):
            scanned += 1
            yield user_id

    async with served() as (idp, http):
        pairwise = {"redirect_uris": [REDIRECT], "subject_type": "pairwise"}
        idp.register_client("rs", "r", scope="ppid:convert", grant_types=["client_credentials"])
        idp.register_client("web", "s", **pairwise)
        idp.ppid_policy.allow("rs", "web")
        for i in range(5_000):
            idp.add_user(f"user-{i}")
        known = idp.subject_for("user-42", "web")
        monkeypatch.setattr(UserDirectory, "__iter__", counting)
        body = {"from_client": "web", "subjects": [known] + [f"nobody-{i}" for i in range(99)]}
        resp = await http.post("/ppid/convert", json=body, auth=("rs", "r"))
        assert resp.status_code == 200
        results = resp.json()["results"]
        assert results[0]["converted"] == "user-42"
        assert all(r["error"] == "unknown_subject" for r in results[1:])
        assert scanned == 0
        # Values minted for many sectors leave no per-sector table behind: a fresh IdP with
        # the same secret reads a value back without having minted it.
        twin = IdP("https://idp.example", pairwise_secret=b"k" * 32)
        other = IdP("https://idp.example", pairwise_secret=b"k" * 32)
        for c in (twin, other):
            c.register_client("web", "s", **pairwise)
        assert other.user_for_subject(twin.subject_for("zoe", "web"), "web") == "zoe"


def document_server(documents: dict[str, Any]) -> Any:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def serve_doc(request: Any) -> Any:
        return JSONResponse(documents[request.url.path])

    return Starlette(routes=[Route(p, serve_doc) for p in documents])


async def test_metadata_document_clients_cannot_claim_a_sector() -> None:
    sock = loopback_socket()
    base = socket_url(sock)
    victim_sector = f"{base}/sector.json"
    docs: dict[str, Any] = {
        "/sector.json": [REDIRECT, f"{base}/cb"],
        "/client": {
            "client_id": f"{base}/client",
            "redirect_uris": [f"{base}/cb"],
            "subject_type": "pairwise",
            "sector_identifier_uri": victim_sector,
        },
        "/plain": {"client_id": f"{base}/plain", "redirect_uris": [f"{base}/cb"]},
    }
    async with serve(document_server(docs), sock=sock), served(dev=True) as (idp, http):
        idp.login_as("alice")
        resp, _, _ = await code_for(http, client_id=f"{base}/client", redirect_uri=f"{base}/cb")
        assert resp.status_code == 400
        assert "pairwise" in resp.text
        resp, q, _ = await code_for(http, client_id=f"{base}/plain", redirect_uri=f"{base}/cb")
        assert resp.status_code == 302 and "code" in q


async def test_one_deadline_for_the_whole_document_fetch() -> None:
    """A server trickling its document a byte at a time cannot hold /authorize."""
    import anyio
    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    async def trickle(request: Any) -> Any:
        async def body() -> AsyncIterator[bytes]:
            for _ in range(200):
                yield b" "
                await anyio.sleep(0.1)

        return StreamingResponse(body(), media_type="application/json")

    sock = loopback_socket()
    base = socket_url(sock)
    app = Starlette(routes=[Route("/client", trickle)])
    async with serve(app, sock=sock), served(dev=True) as (idp, http):
        idp.fetch_deadline = 0.5
        start = anyio.current_time()
        resp, _, _ = await code_for(http, client_id=f"{base}/client", redirect_uri=f"{base}/cb")
        elapsed = anyio.current_time() - start
        assert resp.status_code == 400
        assert elapsed < 5  # the document would take 20 s; the deadline is 0.5 s


# ----- sessions and logout --------------------------------------------------------------------


async def form_login(
    http: httpx.AsyncClient, user: str = "carol"
) -> tuple[httpx.Response, dict[str, str], str]:
    """Sign in through the HTML form in browser `http`; returns the redirect and verifier."""
    resp, _, verifier = await code_for(http)
    assert resp.status_code == 200 and "<form" in resp.text
    form_id = resp.text.split('name="form_id" value="')[1].split('"')[0]
    done = await http.post(
        "/authorize",
        data={"form_id": form_id, "login_user": user, "login_acr": "pwd", "decision": "approve"},
    )
    assert done.status_code == 303
    return done, query(done.headers["location"]), verifier


async def test_a_form_login_belongs_to_its_browser_only() -> None:
    async with served() as (idp, browser):
        idp.register_client("web", "s", redirect_uris=[REDIRECT])
        done, q, verifier = await form_login(browser)
        assert "code" in q
        cookie = done.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
        assert "domain=" not in cookie  # host-only: bound to the issuer's host
        # The same browser is signed in; another one (no cookies) is not.
        resp, q, _ = await code_for(browser, prompt="none")
        assert "code" in q, resp.text
        async with httpx.AsyncClient(base_url=str(browser.base_url)) as other:
            resp, q, _ = await code_for(other, prompt="none")
            assert resp.status_code == 302 and q["error"] == "login_required"
            resp, _, _ = await code_for(other)
            assert resp.status_code == 200 and "<form" in resp.text
        # prompt=login asks again even though the browser is signed in.
        resp, _, _ = await code_for(browser, prompt="login")
        assert resp.status_code == 200 and "<form" in resp.text


async def test_max_age_counts_from_that_browsers_login() -> None:
    clock = [1_800_000_000.0]
    async with served(clock=lambda: clock[0]) as (idp, first):
        idp.register_client("web", "s", redirect_uris=[REDIRECT])
        await form_login(first, "carol")
        clock[0] += 100
        async with httpx.AsyncClient(base_url=str(first.base_url)) as second:
            await form_login(second, "dave")
            clock[0] += 50
            # The first browser logged in 150 s ago, the second 50 s ago.
            assert (await code_for(second, prompt="none", max_age="100"))[1].get("code")
            q = (await code_for(first, prompt="none", max_age="100"))[1]
            assert q["error"] == "login_required"
            assert (await code_for(first, prompt="none", max_age="200"))[1].get("code")


async def test_rp_initiated_logout_ends_the_session_and_can_revoke_its_grants() -> None:
    async with served() as (idp, browser):
        logout_to = "https://app.example/bye"
        idp.register_client(
            "web", "s", redirect_uris=[REDIRECT], post_logout_redirect_uris=[logout_to]
        )
        idp.logout_revokes_grants = True
        endpoint = (await browser.get("/.well-known/openid-configuration")).json()[
            "end_session_endpoint"
        ]
        assert endpoint == idp.endpoint("logout")
        _, q, verifier = await form_login(browser)
        tokens = (await redeem(browser, q["code"], verifier)).json()
        assert idp.introspect(tokens["access_token"])["active"] is True
        # An unregistered target is refused, and the session survives it.
        bad = await browser.get(
            endpoint,
            params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": REDIRECT},
        )
        assert bad.status_code == 400
        assert "code" in (await code_for(browser, prompt="none"))[1]
        out = await browser.get(
            endpoint,
            params={
                "id_token_hint": tokens["id_token"],
                "post_logout_redirect_uri": logout_to,
                "state": "s1",
            },
        )
        assert out.status_code == 302
        assert out.headers["location"] == f"{logout_to}?state=s1"
        assert (await code_for(browser, prompt="none"))[1]["error"] == "login_required"
        assert idp.introspect(tokens["access_token"])["active"] is False


# ----- registration and scopes ----------------------------------------------------------------


async def test_dcr_clients_get_sensitive_scopes_only_when_the_operator_says_so() -> None:
    async with served() as (idp, http):
        reg = await http.post(
            "/register",
            json={
                "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "client_secret_basic",
            },
        )
        assert reg.status_code == 201
        auth = (reg.json()["client_id"], reg.json()["client_secret"])
        form = {"grant_type": "client_credentials"}
        for sensitive in ("ppid:convert", "events:publish"):
            resp = await http.post("/token", data={**form, "scope": sensitive}, auth=auth)
            assert resp.status_code == 400 and resp.json()["error"] == "invalid_scope"
        # Nor through HTTP Basic straight at the endpoint.
        convert = await http.post("/ppid/convert", json={"subjects": ["x"]}, auth=auth)
        assert convert.status_code == 403
        assert (
            await http.post("/token", data={**form, "scope": "items:read"}, auth=auth)
        ).status_code == 200
        # The operator's ceiling, sensitive scopes listed explicitly.
        idp.dcr_scopes = ["items:read", "ppid:convert"]
        assert (
            await http.post("/token", data={**form, "scope": "ppid:convert"}, auth=auth)
        ).status_code == 200
        resp = await http.post("/token", data={**form, "scope": "items:write"}, auth=auth)
        assert resp.json()["error"] == "invalid_scope"


async def test_a_dcr_clients_registered_scope_is_its_default_not_a_cage() -> None:
    async with served() as (idp, http):
        idp.login_as("alice")
        reg = await http.post(
            "/register",
            json={
                "redirect_uris": [REDIRECT],
                "scope": "files:read",
                "token_endpoint_auth_method": "none",
            },
        )
        client_id = reg.json()["client_id"]
        resp, q, verifier = await code_for(
            http, client_id=client_id, scope="files:read files:write"
        )
        assert "code" in q, q
        tok = await redeem(http, q["code"], verifier, client_id)
        assert tok.json()["scope"].split() == ["files:read", "files:write"]
        # Without `scope`, the registered one is what the client gets.
        verifier, challenge = pkce()
        resp = await http.get(
            "/authorize",
            params={
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": REDIRECT,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
        code = query(resp.headers["location"])["code"]
        tok = await redeem(http, code, verifier, client_id)
        assert tok.json()["scope"] == "files:read"
        # Still within the ceiling.
        idp.dcr_scopes = ["files:read"]
        resp, q, _ = await code_for(http, client_id=client_id, scope="files:read files:write")
        assert q["error"] == "invalid_scope"


# ----- the service's own clients --------------------------------------------------------------


async def test_a_denial_evicts_cached_translations_for_the_pair_at_once() -> None:
    import asyncio

    from rs_guard.ppid import PPIDTranslator

    now = [1_000.0]
    async with served() as (idp, http):
        idp.register_client("rs", "r", scope="ppid:convert", grant_types=["client_credentials"])
        idp.register_client("web", "s", redirect_uris=[REDIRECT], subject_type="pairwise")
        idp.ppid_policy.allow("rs", "web")
        sub = idp.subject_for("alice", "web")
        translator = PPIDTranslator(
            issuer=idp.issuer, client_id="rs", client_secret="r", clock=lambda: now[0]
        )
        try:
            assert await translator.to_local("web", sub) == "alice"
            idp.ppid_policy.deny("rs", "web")
            now[0] += 3_601  # past the TTL, well inside the stale window
            assert await translator.to_local("web", sub) == "alice"  # stale, refreshed behind
            for _ in range(200):  # the background refresh learns the denial
                try:
                    await translator.to_local("web", sub)
                except InvalidToken as exc:
                    assert exc.reason == "conversion_denied"
                    break
                await asyncio.sleep(0.01)
            else:
                pytest.fail("the denied pair is still translated")
            with pytest.raises(Exception):  # noqa: B017 - denied or unavailable, never served
                await translator.to_client("web", "alice")
        finally:
            await translator.aclose()


# ----- token exchange -------------------------------------------------------------------------


async def test_token_exchange_keeps_the_allow_list_and_the_subject_tokens_lifetime() -> None:
    clock = [1_800_000_000.0]
    api = "https://api.example/"
    async with served(clock=lambda: clock[0], resource_allowlist=[api]) as (idp, http):
        idp.register_client("svc", "s")
        subject = idp.issue_access_token("alice", client_id="svc", audience=api, lifetime=300)
        form = {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": subject,
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        }
        outside = await http.post(
            "/token", data={**form, "audience": "https://internal.example/"}, auth=("svc", "s")
        )
        assert outside.status_code == 400 and outside.json()["error"] == "invalid_target"
        clock[0] += 200
        # Exchanging again and again never outlives the first token.
        token = subject
        for _ in range(3):
            resp = await http.post(
                "/token", data={**form, "subject_token": token, "audience": api}, auth=("svc", "s")
            )
            assert resp.status_code == 200, resp.text
            token = resp.json()["access_token"]
            assert resp.json()["expires_in"] <= 100
            claims = jwt.decode(token, options={"verify_signature": False})
            assert claims["exp"] <= 1_800_000_300
        clock[0] += 101
        resp = await http.post(
            "/token", data={**form, "subject_token": token, "audience": api}, auth=("svc", "s")
        )
        assert resp.status_code == 400
