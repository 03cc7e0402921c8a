"""The SSF 1.0 transmitter endpoints: metadata, stream management, status, verification, poll.

Receivers authenticate as themselves (a client-credentials Bearer token with scope `ssf`, or
HTTP Basic); each sees only its own stream. The transmitter service (`idp.ssf`) holds the
streams and signs and sends the events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from .._errors import OAuthError
from .._ssf import POLL, PUSH, SCOPE, StreamRecord
from ._client_auth import authenticate_caller
from ._wire import json_ok, read_json_object

if TYPE_CHECKING:
    from ._context import SSFContext

MAX_BODY_BYTES = 64 * 1024
_MAX_TYPES = 64
_MAX_STRING = 2048
_RECEIVER_MEMBERS = frozenset({"delivery", "events_requested", "description"})
_NO_STORE = {"Cache-Control": "no-store"}


async def configuration(ctx: SSFContext, request: Request) -> Response:
    """GET /.well-known/ssf-configuration: the transmitter metadata (SSF 1.0 §7.1)."""
    return json_ok(ctx.ssf.metadata(), no_store=False)


async def stream(ctx: SSFContext, request: Request) -> Response:
    """The configuration endpoint: POST creates, GET reads, PATCH / PUT update, DELETE."""
    client = await authenticate_caller(ctx, request, scope=SCOPE, endpoint="ssf/stream")
    method = request.method
    if method == "POST":
        body = await read_json_object(request, MAX_BODY_BYTES, members=_RECEIVER_MEMBERS)
        fields = _receiver_fields(body)
        try:
            record = ctx.ssf.create(client.client_id, **fields)
        except ValueError:
            raise OAuthError("invalid_request", "this receiver already has a stream", 409) from None
        return json_ok(ctx.ssf.config(record), 201)
    if method == "GET" and "stream_id" not in request.query_params:
        own = ctx.ssf.stream_of(client.client_id)
        return json_ok([ctx.ssf.config(own)] if own is not None else [])
    if method in ("PATCH", "PUT"):
        body = await read_json_object(
            request, MAX_BODY_BYTES, members=_RECEIVER_MEMBERS | {"stream_id"}
        )
        record = _own(ctx, client.client_id, body.get("stream_id"))
        fields = _receiver_fields(body)
        if method == "PUT" or "events_requested" in body:
            record.events_requested = fields["events_requested"]
        if method == "PUT" or "delivery" in body:
            delivery = _delivery(fields["delivery"], record) or {"method": POLL}
            if delivery["method"] == POLL and "endpoint_url" not in delivery:
                delivery["endpoint_url"] = ctx.urls.url(f"ssf/poll/{record.stream_id}")
            record.delivery = delivery
        if method == "PUT" or "description" in body:
            record.description = fields["description"]
        return json_ok(ctx.ssf.config(record))
    record = _own(ctx, client.client_id, request.query_params.get("stream_id"))
    if method == "DELETE":
        del ctx.ssf.streams[record.stream_id]
        return Response(status_code=204, headers=_NO_STORE)
    return json_ok(ctx.ssf.config(record))


async def status(ctx: SSFContext, request: Request) -> Response:
    """GET reads a stream's status; POST sets it (enabled, paused, disabled)."""
    client = await authenticate_caller(ctx, request, scope=SCOPE, endpoint="ssf/status")
    if request.method == "GET":
        record = _own(ctx, client.client_id, request.query_params.get("stream_id"))
    else:
        body = await read_json_object(
            request, MAX_BODY_BYTES, members=frozenset({"stream_id", "status", "reason"})
        )
        record = _own(ctx, client.client_id, body.get("stream_id"))
        if body.get("status") not in ("enabled", "paused", "disabled"):
            raise OAuthError("invalid_request", "status must be enabled, paused or disabled")
        record.status = body["status"]
    return json_ok({"stream_id": record.stream_id, "status": record.status})


async def verify(ctx: SSFContext, request: Request) -> Response:
    """POST: send a verification event on the caller's stream (SSF 1.0 §8.1.4.2), 204."""
    client = await authenticate_caller(ctx, request, scope=SCOPE, endpoint="ssf/verify")
    body = await read_json_object(
        request, MAX_BODY_BYTES, members=frozenset({"stream_id", "state"})
    )
    record = _own(ctx, client.client_id, body.get("stream_id"))
    state = body.get("state")
    if state is not None and (not isinstance(state, str) or len(state) > _MAX_STRING):
        raise OAuthError("invalid_request", "state must be a string")
    ctx.ssf.verification(record, state)
    return Response(status_code=204, headers=_NO_STORE)


async def poll(ctx: SSFContext, request: Request) -> Response:
    """POST /ssf/poll/{stream_id}: RFC 8936 §2.4, acknowledge and fetch SETs."""
    client = await authenticate_caller(ctx, request, scope=SCOPE, endpoint="ssf/stream")
    record = _own(ctx, client.client_id, request.path_params.get("stream_id"))
    if record.delivery.get("method") != POLL:
        raise OAuthError("invalid_request", "this stream is delivered by push")
    body = await read_json_object(
        request,
        MAX_BODY_BYTES,
        members=frozenset({"ack", "setErrs", "maxEvents", "returnImmediately"}),
    )
    ack = body.get("ack", [])
    errors = body.get("setErrs", {})
    max_events = body.get("maxEvents", 100)
    if not isinstance(ack, list) or not all(isinstance(j, str) for j in ack):
        raise OAuthError("invalid_request", "ack must be an array of strings")
    if not isinstance(errors, dict) or not all(isinstance(v, dict) for v in errors.values()):
        raise OAuthError("invalid_request", "setErrs must be an object of objects")
    if not isinstance(max_events, int) or isinstance(max_events, bool) or max_events < 0:
        raise OAuthError("invalid_request", "maxEvents must be a non-negative integer")
    sets, more = ctx.ssf.poll(record, ack, errors, min(max_events, 1000))
    return json_ok({"sets": sets, "moreAvailable": more})


def _own(ctx: SSFContext, client_id: str, stream_id: Any) -> StreamRecord:
    if not isinstance(stream_id, str) or not stream_id:
        raise OAuthError("invalid_request", "stream_id is required")
    record = ctx.ssf.streams.get(stream_id)
    if record is None or record.client_id != client_id:
        # Another receiver's stream is as absent as one that never existed.
        raise OAuthError("not_found", "no such stream", 404)
    return record


def _receiver_fields(body: dict[str, Any]) -> dict[str, Any]:
    events = body.get("events_requested", [])
    if (
        not isinstance(events, list)
        or len(events) > _MAX_TYPES
        or not all(isinstance(e, str) and 0 < len(e) <= _MAX_STRING for e in events)
    ):
        raise OAuthError("invalid_request", "events_requested must be an array of URIs")
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        raise OAuthError("invalid_request", "description must be a string")
    delivery = body.get("delivery")
    if delivery is not None:
        delivery = _delivery(delivery, None)
    return {"delivery": delivery, "events_requested": events, "description": description}


def _delivery(value: Any, record: StreamRecord | None) -> dict[str, Any] | None:
    if value is None:
        return record.delivery if record is not None else None
    if not isinstance(value, dict) or value.get("method") not in (PUSH, POLL):
        raise OAuthError("invalid_request", f"delivery.method must be {PUSH} or {POLL}")
    if value["method"] == POLL:
        # The transmitter supplies the poll URL (SSF 1.0 §6.1.2).
        if record is not None and record.delivery.get("method") == POLL:
            return record.delivery
        return {"method": POLL}
    url = value.get("endpoint_url")
    if not isinstance(url, str) or not url.startswith("https://") or len(url) > _MAX_STRING:
        raise OAuthError("invalid_request", "a push stream needs an https endpoint_url")
    header = value.get("authorization_header")
    if header is not None and (not isinstance(header, str) or len(header) > _MAX_STRING):
        raise OAuthError("invalid_request", "authorization_header must be a string")
    return {
        k: v for k, v in value.items() if k in ("method", "endpoint_url", "authorization_header")
    }
