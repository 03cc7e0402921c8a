"""The public names of the feature namespaces, pinned (as httpx's test_exported_members does).

Features keep their own namespaces (`rs_guard.ppid`, `rs_guard.events`, `rs_guard.outbound`);
none of these names is re-exported at the root, and their errors are the classes of
`rs_guard.errors` (one hierarchy), not copies.
"""

from __future__ import annotations

import importlib

import pytest

import rs_guard
import rs_guard.errors

EXPORTS = {
    "rs_guard.ppid": {
        "MAX_BATCH",
        "SCOPE",
        "ClientTokens",
        "ConversionDenied",
        "PPIDTranslator",
        "PPIDUnavailable",
        "UnknownSubject",
    },
    "rs_guard.events": {
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
    },
    "rs_guard.ssf": {
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
    },
    "rs_guard.outbound": {
        "BearerAuth",
        "ClientCredentials",
        "IssuedToken",
        "TokenExchanger",
        "TokenRequestRefused",
        "TokenServiceUnavailable",
    },
}


@pytest.mark.parametrize("module_name", sorted(EXPORTS))
def test_feature_namespace_exports_exactly_its_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert set(module.__all__) == EXPORTS[module_name]
    for name in module.__all__:
        value = getattr(module, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert getattr(rs_guard.errors, name) is value, f"{name} is defined outside errors.py"
            assert name in rs_guard.errors.__all__, name
            assert name in (rs_guard.errors.__doc__ or ""), f"{name} missing from the error tree"


def test_feature_names_are_not_at_the_root() -> None:
    feature_names = set().union(*EXPORTS.values()) - {"DEFAULT_ALGORITHMS"}
    assert not feature_names & set(rs_guard.__all__)
    for name in feature_names:
        assert not hasattr(rs_guard, name), name
