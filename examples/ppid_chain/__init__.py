"""PPID chain: client -> service A -> (token exchange) -> service B, each in its own PPIDs.

`await run(print_step)` walks it in-process against the bundled IdP; `print_step` receives one
line of text per step. `python -m examples.ppid_chain` prints the same walk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from rs_guard.idp import IdP

from . import client, service_a, service_b

ISSUER = "https://idp.example"


def make_idp() -> IdP:
    """The IdP: three pairwise clients in three sectors, and who may convert what."""
    idp = IdP(ISSUER)
    idp.register_client(
        client.CLIENT_ID,
        client.CLIENT_SECRET,
        redirect_uris=[client.REDIRECT_URI],
        subject_type="pairwise",
        scope="openid a:read b:read",
    )
    for svc in (service_a, service_b):
        idp.register_client(
            svc.CLIENT_ID,
            svc.CLIENT_SECRET,
            subject_type="pairwise",
            sector_identifier_uri=f"https://{svc.CLIENT_ID}.example/sector.json",
            # The resource it serves: tokens addressed to it are tokens it may exchange.
            served_resources=[svc.RESOURCE],
        )
    # A translates from its callers and answers them; B translates from A and answers A.
    idp.ppid_policy.allow(service_a.CLIENT_ID, client.CLIENT_ID)
    idp.ppid_policy.allow(service_b.CLIENT_ID, service_a.CLIENT_ID)
    idp.add_user("alice", name="Alice")
    idp.login_as("alice")
    return idp


async def run(print_step: Callable[[str], Any] = print) -> dict[str, Any]:
    """Walk the chain and report each step; returns what each party saw (for tests)."""
    idp = make_idp()
    store = service_b.Store()
    async with idp.http_client() as idp_http:
        b_app = service_b.build(ISSUER, idp_http, store)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=b_app), base_url="https://b.example"
        ) as b_http:
            a_seen: list[str] = []
            a_app = service_a.build(ISSUER, idp_http, b_http, a_seen)
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=a_app), base_url="https://a.example"
            ) as a_http:
                print_step("alice signs in to the web app (authorization code + PKCE)")
                # The token may later be exchanged for B, hence b:read (exchange only narrows).
                tokens = await client.sign_in(idp_http, service_a.RESOURCE, "a:read b:read")
                web_sub = client.id_token_subject(tokens)
                print_step(f"  the web app knows alice as         {web_sub}")
                print_step("the web app calls service A with its access token")
                resp = await a_http.get(
                    "/dashboard", headers={"Authorization": f"Bearer {tokens['access_token']}"}
                )
                resp.raise_for_status()
                body = resp.json()
                a_sub = a_seen[-1]
                print_step(f"  A translated the token's sub to    {a_sub}")
                print_step("  A exchanged the token at the IdP (RFC 8693) and called service B")
                b_sub = next(iter(store.users))
                print_step(f"  B translated A's PPID to its own   {b_sub}")
                print_step(f"  B answered in A's PPID; A answered in the web app's: {body['user']}")
                print_step(f"  favourites: {', '.join(body['favourites'])}")
                print_step(
                    f"  A also called B on its own behalf (client credentials): "
                    f"B has {body['b_users']} user account(s)"
                )
                same = body["user"] == web_sub
                print_step("the web app recognises its user: " + ("yes" if same else "NO (bug!)"))
                distinct = len({web_sub, a_sub, b_sub}) == 3
                print_step(
                    "three services, three unlinkable identifiers for alice: "
                    + ("yes" if distinct else "NO (bug!)")
                )
    if not (same and distinct):
        raise RuntimeError("the PPID chain did not keep its promises (see the steps above)")
    return {
        "web_sub": web_sub,
        "a_sub": a_sub,
        "b_sub": b_sub,
        "answer": body,
        "b_users": dict(store.users),
    }
