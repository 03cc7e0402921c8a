"""`make demo`: the bundled IdP and example services on loopback, walked through by a real client.

Every step prints the request and the answer. Nothing leaves 127.0.0.1, and everything stops
when the walk is over (exit status 0 when every step behaved as expected).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import secrets
import sys
import textwrap
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from examples.items_service.app import create_app
from rs_guard import AuthorizationServer
from rs_guard.idp import IdP
from rs_guard.testing import loopback_socket, serve, socket_url

CALLBACK = "http://127.0.0.1:53682/callback"  # a native app's loopback redirect (RFC 8252)


class DemoFailure(Exception):
    """A step did not behave as documented."""


# One line for each term a step uses, printed where it first appears.
TERMS = {
    "resource indicator": "RFC 8707 `resource=`: the client names the API it wants a token "
    "for; it becomes the token's audience (`aud`), so a token for one API is refused by another",
    "client metadata document": "a Client ID Metadata Document: the client_id is an https URL "
    "whose JSON describes the client (name, redirect URIs), so no registration step is needed",
    "acr values": "Authentication Context Class Reference: how the user signed in; here `pwd` "
    "(password) < `mf` (multi-factor) < `phr` (phishing-resistant)",
    "PPID": "pairwise pseudonymous identifier: each service sees its own `sub` for the same "
    "user, so services cannot join their records without asking the IdP",
}


def section(title: str, guide: str | None = None) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)))
    if guide is not None:
        print(f"    explained in docs/{guide}")


def term(name: str) -> None:
    print(f"    ({name}: {TERMS[name]})")


def step(text: str) -> None:
    print(f"--> {text}")


def show(response: httpx.Response, *, headers: tuple[str, ...] = ("www-authenticate",)) -> None:
    req = response.request
    print(f"    {req.method} {req.url}")
    print(f"    <- {response.status_code} {response.reason_phrase}")
    for name in headers:
        if name in response.headers:
            value = response.headers[name]
            print(textwrap.indent(textwrap.fill(f"{name}: {value}", 96), "       "))
    body = response.text
    if body and response.headers.get("content-type", "").startswith("application/json"):
        print(f"       {body[:200]}")


def expect(response: httpx.Response, status: int) -> httpx.Response:
    if response.status_code != status:
        raise DemoFailure(f"expected {status}, got {response.status_code}: {response.text[:200]}")
    return response


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def authorize(
    http: httpx.AsyncClient,
    issuer: str,
    client_id: str,
    redirect_uri: str,
    resource: str,
    scope: str,
    **extra: str,
) -> dict[str, Any]:
    """Authorization code + PKCE (S256) with `resource`; checks RFC 9207 `iss`; returns tokens."""
    verifier, challenge = pkce()
    state = secrets.token_urlsafe(12)
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "resource": resource,
        **extra,
    }
    r = await http.get(f"{issuer}/authorize?{urlencode(params)}")
    location = r.headers.get("location", "")
    print(f"    GET {issuer}/authorize?…{urlencode(extra) and '&' + urlencode(extra)}")
    print(f"    <- {r.status_code} redirect to {location.split('?')[0]}?code=…&state=…&iss=…")
    expect(r, 302)
    answer = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    if answer.get("iss") != issuer or answer.get("state") != state:
        raise DemoFailure("authorization response iss/state mismatch (RFC 9207)")
    r = await http.post(
        f"{issuer}/token",
        data={
            "grant_type": "authorization_code",
            "code": answer["code"],
            "redirect_uri": redirect_uri,
            "client_id": client_id,
            "code_verifier": verifier,
            "resource": resource,
        },
    )
    print(f"    POST {issuer}/token (code + code_verifier)  <- {r.status_code}")
    return dict(expect(r, 200).json())


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


@contextlib.asynccontextmanager
async def loopback_world() -> AsyncIterator[tuple[IdP, str, str, str]]:
    """The IdP, the items service and a client-metadata host, each on its own loopback port."""
    idp_sock, rs_sock, cimd_sock = loopback_socket(), loopback_socket(), loopback_socket()
    issuer = socket_url(idp_sock)
    resource = f"{socket_url(rs_sock)}/items"
    cimd_base = socket_url(cimd_sock)
    # dev=True: http and loopback client metadata documents are acceptable (never in production).
    idp = IdP(issuer, dev=True)
    idp.add_user("alice", name="Alice", email="alice@example.com")
    # A short JWKS cooldown so the rotation step does not wait 30 s.
    service = create_app(issuer, resource, server=AuthorizationServer(issuer, jwks_cooldown=1))

    async def client_document(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "client_id": f"{cimd_base}/client.json",
                "client_name": "Demo CLI (metadata document)",
                "redirect_uris": [CALLBACK],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            }
        )

    cimd_host = Starlette(routes=[Route("/client.json", client_document)])
    async with (
        serve(idp.app, sock=idp_sock),
        serve(service, sock=rs_sock),
        serve(cimd_host, sock=cimd_sock),
    ):
        yield idp, issuer, resource, cimd_base


async def foundation(http: httpx.AsyncClient, idp: IdP, issuer: str, resource: str) -> None:
    section(
        "1. A protected service: challenge, token, scope, key rotation",
        "tutorial.md and docs/guides/key-rotation.md",
    )
    step("register a confidential client by Dynamic Client Registration (RFC 7591)")
    r = await http.post(
        f"{issuer}/register",
        json={
            "client_name": "demo backend",
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": "items:read items:write",
        },
    )
    show(r)
    reg = expect(r, 201).json()
    auth = (reg["client_id"], reg["client_secret"])

    step("call the API without a token: 401 with a bare Bearer challenge")
    r = await http.get(resource)
    show(r)
    expect(r, 401)

    step("the challenge points at Protected Resource Metadata (RFC 9728)")
    meta_url = r.headers["www-authenticate"].split('resource_metadata="')[1].split('"')[0]
    r = await http.get(meta_url)
    show(r)
    expect(r, 200)

    async def client_credentials(scope: str) -> str:
        r = await http.post(
            f"{issuer}/token",
            data={"grant_type": "client_credentials", "scope": scope, "resource": resource},
            auth=auth,
        )
        return str(expect(r, 200).json()["access_token"])

    step("client credentials grant for items:read, audience = this resource (RFC 8707)")
    term("resource indicator")
    token = await client_credentials("items:read")
    print(f"       access token claims: {claims_of(token)}")
    r = await http.get(resource, headers={"Authorization": f"Bearer {token}"})
    show(r)
    expect(r, 200)

    step("the read-only token cannot write: 403 insufficient_scope naming the scope")
    r = await http.post(
        resource, json={"name": "cup"}, headers={"Authorization": f"Bearer {token}"}
    )
    show(r)
    expect(r, 403)

    step("a tampered token: 401 invalid_token")
    head, body, sig = token.split(".")
    forged = f"{head}.{body}.{sig[:-4]}AAAA"
    r = await http.get(resource, headers={"Authorization": f"Bearer {forged}"})
    show(r)
    expect(r, 401)

    step("the IdP rotates its signing key; the guard refetches the JWKS on the unknown kid")
    kid = idp.rotate()
    await asyncio.sleep(1.1)  # the demo service's refetch cooldown (30 s by default)
    token = await client_credentials("items:read items:write")
    print(f"       new kid {kid}")
    r = await http.post(
        resource, json={"name": "cup"}, headers={"Authorization": f"Bearer {token}"}
    )
    show(r)
    expect(r, 201)


async def user_login(
    http: httpx.AsyncClient, idp: IdP, issuer: str, resource: str, cimd_base: str
) -> str:
    section("2. A user logs in: authorization code + PKCE", "tutorial.md")
    step("register a native public client by Dynamic Client Registration")
    r = await http.post(
        f"{issuer}/register",
        json={
            "client_name": "demo native app",
            "application_type": "native",
            "redirect_uris": ["http://127.0.0.1/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
            "scope": "openid items:read payments",
        },
    )
    show(r)
    client_id = expect(r, 201).json()["client_id"]
    step("alice signs in with a password (scripted login: no browser needed)")
    idp.login_as("alice", acr="pwd")
    tokens = await authorize(
        http,
        issuer,
        client_id,
        CALLBACK,
        resource,
        "openid items:read payments",
    )
    access = tokens["access_token"]
    print(f"       access token: sub={claims_of(access)['sub']} acr={claims_of(access)['acr']}")
    r = await http.get(resource, headers={"Authorization": f"Bearer {access}"})
    show(r)
    expect(r, 200)

    step("the same login with a Client ID Metadata Document (client_id is an https/loopback URL)")
    term("client metadata document")
    cimd_client = f"{cimd_base}/client.json"
    tokens2 = await authorize(http, issuer, cimd_client, CALLBACK, resource, "openid items:read")
    r = await http.get(resource, headers={"Authorization": f"Bearer {tokens2['access_token']}"})
    show(r)
    expect(r, 200)
    return client_id


async def step_up(
    http: httpx.AsyncClient, idp: IdP, issuer: str, resource: str, client_id: str
) -> None:
    section("3. Step-up authentication (RFC 9470)", "guides/step-up.md")
    term("acr values")
    payments = resource.replace("/items", "/payments")

    async def login(acr: str, **extra: str) -> str:
        idp.login_as("alice", acr=acr)
        tokens = await authorize(
            http, issuer, client_id, CALLBACK, resource, "openid payments", **extra
        )
        return str(tokens["access_token"])

    async def pay(token: str, amount: int, status: int) -> None:
        r = await http.post(
            payments, json={"amount": amount}, headers={"Authorization": f"Bearer {token}"}
        )
        show(r)
        expect(r, status)

    token = await login("pwd")
    step("pay with a password-level token: 401 insufficient_user_authentication, acr_values")
    await pay(token, 20, 401)
    step("the client re-authorizes with acr_values=mf; alice completes multi-factor")
    token = await login("mf", acr_values="mf")
    await pay(token, 20, 200)
    step("a large payment: the handler itself asks for a phishing-resistant login")
    await pay(token, 5000, 401)
    token = await login("phr", acr_values="phr mf")
    await pay(token, 5000, 200)


async def other_examples() -> None:
    """The walk-throughs of the other examples, each self-contained."""
    walks: list[tuple[str, str, str, str]] = [
        (
            "4. Pairwise subjects: client -> service A -> token exchange -> service B",
            "guides/ppid.md",
            "examples.ppid_chain",
            "run",
        ),
        (
            "5. Webhook events signed by the IdP (RFC 8417 / RFC 8935)",
            "guides/webhook-events.md",
            "examples.webhook_receiver.demo",
            "run",
        ),
        (
            "6. An MCP server: discovery, registration, code + PKCE, tools, step-up",
            "guides/mcp.md",
            "examples.mcp_server.client",
            "run",
        ),
    ]
    import importlib

    for title, guide, module_name, attr in walks:
        section(title, guide)
        if module_name == "examples.ppid_chain":
            term("PPID")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:  # an optional extra (e.g. `mcp`) not installed
            print(f"    skipped: {exc}")
            continue
        result = getattr(module, attr)(lambda line: print(f"--> {line}"))
        if asyncio.iscoroutine(result):
            await result


async def main() -> int:
    print("rs_guard demo: everything below runs on 127.0.0.1 and stops at the end.")
    failure: DemoFailure | None = None
    async with loopback_world() as (idp, issuer, resource, cimd_base):
        print(f"    IdP (issuer)     {issuer}")
        print(f"    items service    {resource}")
        async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
            try:
                await foundation(http, idp, issuer, resource)
                client_id = await user_login(http, idp, issuer, resource, cimd_base)
                await step_up(http, idp, issuer, resource, client_id)
            except DemoFailure as exc:
                failure = exc
    if failure is None:
        try:
            await other_examples()
        except DemoFailure as exc:
            failure = exc
    if failure is not None:
        print(f"\nDEMO FAILED: {failure}")
        return 1
    print("\nAll steps behaved as expected. Everything is stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
