"""Walk-through of verified webhook events, everything on loopback:

publisher asks the IdP to sign -> the IdP pushes the event to the receiver (RFC 8935) -> the
receiver verifies it and runs its handler -> the same event posted again is refused as a replay.

    .venv/bin/python examples/webhook_receiver/demo.py

`make demo` calls `await run(print_step)`; `print_step(text)` shows one line of the story.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

from rs_guard.idp import IdP
from rs_guard.testing import loopback_socket, serve, socket_url


def _receiver_module() -> ModuleType:
    """examples/webhook_receiver/app.py, loaded by path under a name no other example uses."""
    name = "rs_guard_examples_webhook_receiver_app"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("app.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    result: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return result


async def run(print_step: Callable[[str], Any] = print) -> None:
    """The whole walk; raises AssertionError if any step does not behave as described."""
    idp_sock, rcv_sock = loopback_socket(), loopback_socket()
    issuer, receiver_url = socket_url(idp_sock), socket_url(rcv_sock)

    # trust_env=False everywhere: a proxy from the environment must never see loopback traffic.
    idp_outbound = httpx.AsyncClient(trust_env=False, timeout=3, follow_redirects=False)
    receiver_outbound = httpx.AsyncClient(trust_env=False, timeout=5, follow_redirects=False)
    idp = IdP(issuer, http_client=idp_outbound)
    idp.add_user("alice", email="alice@example.com")
    # The publisher and the receiver each know alice by their own pairwise subject (PPID).
    idp.register_client(
        "billing",
        "billing-secret",
        redirect_uris=["https://billing.example/cb"],
        subject_type="pairwise",
        scope="events:publish",
    )
    idp.register_client(
        "mailer",
        "mailer-secret",
        redirect_uris=["https://mailer.example/cb"],
        subject_type="pairwise",
        event_delivery_uri=f"{receiver_url}/events",
        event_publishers=["billing"],  # the receiver lets billing publish to it
    )
    receiver = _receiver_module()
    receiver_app = receiver.create_app(issuer, "mailer", http_client=receiver_outbound)

    async with (
        serve(idp.app, sock=idp_sock, lifespan="off"),
        serve(receiver_app, sock=rcv_sock, lifespan="off"),
        idp_outbound,
        receiver_outbound,
        httpx.AsyncClient(base_url=issuer, timeout=5, trust_env=False) as billing,
    ):
        print_step(f"IdP on {issuer}, receiver 'mailer' on {receiver_url}/events")
        tok = await billing.post(
            "/token",
            data={"grant_type": "client_credentials", "scope": "events:publish"},
            auth=("billing", "billing-secret"),
        )
        tok.raise_for_status()
        billing_sub = idp.subject_for("alice", "billing")
        print_step(
            f"billing got an access token (scope events:publish); it knows alice as {billing_sub}"
        )

        resp = await billing.post(
            "/events",
            headers={"Authorization": f"Bearer {tok.json()['access_token']}"},
            json={
                "audience": "mailer",
                "subject": billing_sub,
                "events": {receiver.ACCOUNT_UPDATED: {"fields": ["email"]}},
                "deliver": True,
            },
        )
        resp.raise_for_status()
        answer = resp.json()
        # billing learns the jti and the delivery outcome only: the token's sub is mailer's
        # PPID for alice. The IdP's operator (this script, in-process) may look at the token.
        assert "token" not in answer and set(answer) == {"jti", "delivered", "delivery"}, answer
        token = idp.events.signed(answer["jti"])
        assert token is not None
        claims = _claims(token)
        print_step(f"publish -> billing's answer: jti={answer['jti']}, no token, no subject")
        print_step(
            "the IdP signed a secevent+jwt (operator's view): "
            f"aud={claims['aud']} sub={claims['sub']} azp={claims['azp']} jti={claims['jti']}"
        )
        delivery = answer["delivery"]
        print_step(
            f"IdP delivered it to mailer: HTTP {delivery['status']} after "
            f"{delivery['attempts']} attempt(s)"
        )
        assert answer["delivered"] is True, answer

        received = receiver_app.state.received
        assert len(received) == 1 and received[0]["user"] == claims["sub"], received
        print_step(
            f"mailer verified it and ran its handler: account of {received[0]['user']} "
            f"(mailer's own PPID for alice) updated by {received[0]['from']}"
        )

        async with httpx.AsyncClient(timeout=5, trust_env=False) as attacker:
            replay = await attacker.post(
                f"{receiver_url}/events",
                content=token,  # as captured on its way to mailer
                headers={"Content-Type": "application/secevent+jwt"},
            )
        assert replay.status_code == 400 and replay.json()["err"] == "invalid_request", replay
        assert len(received) == 1
        print_step(
            f"the same event posted again: HTTP {replay.status_code} "
            f"{replay.json()['err']} ({replay.json()['description']}); the handler did not run"
        )


if __name__ == "__main__":
    asyncio.run(run(lambda text: print(f"- {text}")))
