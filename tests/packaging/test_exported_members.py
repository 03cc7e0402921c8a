"""The names the root package exports, pinned (as httpx's test_exported_members does)."""

from __future__ import annotations

import inspect

import rs_guard

CORE = {
    "AccessToken",
    "AuthorizationServer",
    "ConfigurationError",
    "Counters",
    "InsufficientScope",
    "InsufficientUserAuthentication",
    "IntrospectionUnavailable",
    "IntrospectionValidator",
    "Issuer",
    "InvalidRequest",
    "InvalidToken",
    "JWTValidator",
    "KeysUnavailable",
    "MissingToken",
    "Observer",
    "ProtectedResourceMetadata",
    "RSGuardError",
    "Requirement",
    "ResourceGuard",
    "ScopeHierarchy",
    "ServerError",
    "TokenProfile",
    "TokenUser",
    "TokenValidator",
    "__version__",
    "public",
    "require",
}

# Feature names that still ride along at the root until their namespaces take them (#11).
FEATURES = {
    "ClientCredentials",
    "EventError",
    "EventReceiver",
    "EventVerifier",
    "MemoryReplayStore",
    "PPIDTranslator",
    "PPIDUnavailable",
    "RedisReplayStore",
    "ReplayStore",
    "ReplayStoreUnavailable",
    "SecurityEvent",
    "TokenExchanger",
}


def test_all_is_exactly_the_core_names() -> None:
    assert set(rs_guard.__all__) - FEATURES == CORE
    assert len(rs_guard.__all__) == len(set(rs_guard.__all__))


def test_every_exported_name_exists_and_comes_from_rs_guard() -> None:
    for name in rs_guard.__all__:
        value = getattr(rs_guard, name)
        if isinstance(value, type) or inspect.isfunction(value):  # not aliases like Observer
            assert value.__module__.startswith("rs_guard."), name


def test_no_public_name_outside_all() -> None:
    # Submodules are attributes of a package once imported; other public names must be in
    # __all__, so that each is reachable by one documented path.
    import types

    public = {
        name
        for name, value in vars(rs_guard).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public <= set(rs_guard.__all__), public - set(rs_guard.__all__)


def test_errors_module_exports_every_error_raised_to_users() -> None:
    from rs_guard import errors

    for name in (
        "RSGuardError",
        "MissingToken",
        "InvalidRequest",
        "InvalidToken",
        "InsufficientScope",
        "InsufficientUserAuthentication",
        "ServerError",
        "KeysUnavailable",
        "IntrospectionUnavailable",
        "ConfigurationError",
        "FetchError",
    ):
        error = getattr(errors, name)
        assert issubclass(error, Exception)
        assert name in (errors.__doc__ or ""), f"{name} missing from the tree in the docstring"


def test_version_lives_in_one_place() -> None:
    from rs_guard._version import __version__

    assert rs_guard.__version__ == __version__
