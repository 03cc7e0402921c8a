"""Continuous access evaluation: OpenID Shared Signals (SSF 1.0), CAEP 1.0 and RISC events.

A `SignalReceiver` turns a transmitter's events (pushed to its RFC 8935 endpoint or fetched
by RFC 8936 poll) into *revocations*: cut-off times per subject that `ResourceGuard` checks
after authenticating every request (`ResourceGuard(..., revocations=...)`), a cached token
included. `MemoryRevocations` serves one process; `RedisRevocations` shares them between
replicas (publish/subscribe, and a key set with TTL read back on start). `Transmitter`
discovers a transmitter and manages the stream with the receiver's own client credentials.
"""

from __future__ import annotations

from ..errors import TransmitterUnavailable
from .receiver import (
    ACCOUNT_CREDENTIAL_CHANGE_REQUIRED,
    ACCOUNT_DISABLED,
    ACCOUNT_PURGED,
    ASSURANCE_LEVEL_CHANGE,
    CREDENTIAL_CHANGE,
    DEFAULT_REACTIONS,
    SESSION_REVOKED,
    STREAM_UPDATED,
    TOKEN_CLAIMS_CHANGE,
    VERIFICATION,
    Reaction,
    SignalReceiver,
)
from .redis import RedisRevocations
from .revocations import MemoryRevocations, Revocation, Revocations
from .subjects import Target, targets
from .transmitter import POLL, PUSH, PollAnswer, Stream, Transmitter, configuration_url

__all__ = [
    "ACCOUNT_CREDENTIAL_CHANGE_REQUIRED",
    "ACCOUNT_DISABLED",
    "ACCOUNT_PURGED",
    "ASSURANCE_LEVEL_CHANGE",
    "CREDENTIAL_CHANGE",
    "DEFAULT_REACTIONS",
    "POLL",
    "PUSH",
    "SESSION_REVOKED",
    "STREAM_UPDATED",
    "TOKEN_CLAIMS_CHANGE",
    "VERIFICATION",
    "MemoryRevocations",
    "PollAnswer",
    "Reaction",
    "RedisRevocations",
    "Revocation",
    "Revocations",
    "SignalReceiver",
    "Stream",
    "Target",
    "Transmitter",
    "TransmitterUnavailable",
    "configuration_url",
    "targets",
]
