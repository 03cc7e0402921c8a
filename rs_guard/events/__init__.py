"""Receiving IdP-signed webhook events: Security Event Tokens verified and answered per RFC 8935.

`EventVerifier` (verifier.py) checks one token: RFC 8417 shape, the signature with the IdP's
keys through the same `JWKSCache` as access tokens, issuer, audience, freshness, and replay
through a `ReplayStore` (replay.py: in memory, or Redis shared by replicas). `EventReceiver`
(receiver.py) is the Starlette/ASGI endpoint a sender POSTs to.
"""

from __future__ import annotations

from ..errors import EventError, EventInProgress, ReplayStoreUnavailable
from ..jwt import DEFAULT_ALGORITHMS
from .receiver import SET_MEDIA_TYPE, EventHandler, EventReceiver
from .replay import MemoryReplayStore, RedisReplayStore, ReplayState, ReplayStore
from .verifier import SET_TYPE, EventVerifier, SecurityEvent

__all__ = [
    "DEFAULT_ALGORITHMS",
    "SET_MEDIA_TYPE",
    "SET_TYPE",
    "EventError",
    "EventHandler",
    "EventInProgress",
    "EventReceiver",
    "EventVerifier",
    "MemoryReplayStore",
    "RedisReplayStore",
    "ReplayState",
    "ReplayStore",
    "ReplayStoreUnavailable",
    "SecurityEvent",
]
