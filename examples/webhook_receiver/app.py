"""A webhook receiver for IdP-signed events: verify, run the handler once, answer per RFC 8935.

Run it by hand against the bundled IdP on loopback (`--dev` lets the IdP push to http):

    python -m rs_guard idp --port 9000 --dev --auto-login alice &
    # register a publisher, then this receiver (note the client_ids and the publisher's secret)
    curl -s http://127.0.0.1:9000/register -H 'Content-Type: application/json' \
        -d '{"grant_types": ["client_credentials"], "scope": "events:publish"}'
    curl -s http://127.0.0.1:9000/register -H 'Content-Type: application/json' \
        -d '{"grant_types": ["client_credentials"], "event_publishers": ["PUBLISHER_ID"],
             "event_delivery_uri": "http://127.0.0.1:8001/events"}'
    python examples/webhook_receiver/app.py --issuer http://127.0.0.1:9000 \
        --client-id RECEIVER_ID --port 8001 [--redis redis://127.0.0.1:6379/0] &
    curl -s -u PUBLISHER_ID:PUBLISHER_SECRET http://127.0.0.1:9000/events \
        -H 'Content-Type: application/json' -d '{"audience": "RECEIVER_ID", "subject": "alice",
        "events": {"https://schemas.example/event/account-updated": {"fields": ["email"]}},
        "deliver": true}'
    curl -s http://127.0.0.1:8001/received       # what the handler saw

Several replicas behind a load balancer share one Redis replay store (`--redis`), so each event
is handled exactly once whichever replica it reaches.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rs_guard.events import (
    EventReceiver,
    EventVerifier,
    RedisReplayStore,
    ReplayStore,
    SecurityEvent,
)

ACCOUNT_UPDATED = "https://schemas.example/event/account-updated"
LOGGED_OUT = "https://schemas.example/event/logged-out"

log = logging.getLogger("webhook_receiver")


def create_app(
    issuer: str,
    client_id: str,
    *,
    http_client: httpx.AsyncClient | None = None,
    replay_store: ReplayStore | None = None,
    publishers: list[str] | None = None,
) -> Starlette:
    """The receiver service: POST /events (the webhook) and GET /received (what it handled)."""
    verifier = EventVerifier(
        issuer=issuer,
        audience=client_id,  # events are addressed to this service's client id
        http_client=http_client,
        replay_store=replay_store,  # None: the bounded in-memory store (one replica)
        publishers=publishers,  # None: any publisher the IdP allowed to publish to us
    )
    receiver = EventReceiver(verifier)
    received: list[dict[str, Any]] = []

    @receiver.on(ACCOUNT_UPDATED)
    async def account_updated(event: SecurityEvent, payload: Mapping[str, Any]) -> None:
        # `event.subject` is this service's own PPID for the user: look it up locally.
        received.append(
            {
                "type": "account-updated",
                "user": event.subject,
                "from": event.publisher,
                "fields": list(payload.get("fields", [])),
            }
        )
        log.info("account of %s updated by %s", event.subject, event.publisher)

    @receiver.on(LOGGED_OUT)
    async def logged_out(event: SecurityEvent, payload: Mapping[str, Any]) -> None:
        received.append({"type": "logged-out", "user": event.subject, "from": event.publisher})

    async def show(request: Request) -> JSONResponse:
        return JSONResponse(received)

    app = Starlette(routes=[receiver.route("/events"), Route("/received", show)])
    app.state.received = received
    app.state.receiver = receiver
    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--redis", help="redis:// URL of a replay store shared by replicas")
    args = parser.parse_args()
    store = RedisReplayStore(url=args.redis) if args.redis else None
    logging.basicConfig(level=logging.INFO)
    uvicorn.run(
        create_app(args.issuer, args.client_id, replay_store=store), host=args.host, port=args.port
    )


if __name__ == "__main__":
    main()
