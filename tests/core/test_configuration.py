"""ResourceGuard's collaborators, and the option combinations it refuses at construction."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from rs_guard import (
    AuthorizationServer,
    ConfigurationError,
    JWTValidator,
    ProtectedResourceMetadata,
    ResourceGuard,
)
from rs_guard.access_token import Limits
from rs_guard.introspection import Introspection, IntrospectionValidator

from .conftest import ISSUER, RESOURCE


async def app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("not reached")


def guard(**options: Any) -> ResourceGuard:
    options.setdefault("resource", RESOURCE)
    if "server" not in options:
        options.setdefault("issuer", ISSUER)
    return ResourceGuard(app, **options)


def some_validator() -> JWTValidator:
    return JWTValidator(server=AuthorizationServer(ISSUER), audience=RESOURCE)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"algorithms": ["ES256"]}, "algorithms="),
        ({"leeway": 5}, "leeway="),
        ({"limits": Limits(cache_size=1)}, "limits="),
        ({"introspection": Introspection("rs", "secret")}, "introspection="),
    ],
)
def test_validator_refuses_the_options_it_would_ignore(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=f"validator=.*{named}"):
        guard(validator=some_validator(), **options)


def test_validator_with_several_ignored_options_names_them_all() -> None:
    with pytest.raises(ConfigurationError) as caught:
        guard(validator=some_validator(), algorithms=["ES256"], leeway=0)
    assert "algorithms=" in str(caught.value) and "leeway=" in str(caught.value)


def test_validator_alone_is_fine() -> None:
    validator = some_validator()
    assert guard(validator=validator).validator is validator


def test_an_issuer_or_a_server_is_needed() -> None:
    with pytest.raises(ConfigurationError, match="issuer= or server="):
        ResourceGuard(app, resource=RESOURCE)


def test_server_and_a_different_issuer_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="issuer"):
        guard(server=AuthorizationServer(ISSUER), issuer="https://other.example")


def test_server_and_the_same_issuer_are_fine() -> None:
    server = AuthorizationServer(ISSUER)
    built = guard(server=server, issuer=ISSUER)
    assert built.server is server and built.keys is server.keys


@pytest.mark.anyio
async def test_server_and_http_client_are_refused() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(ConfigurationError, match="server=.*http_client="):
            guard(server=AuthorizationServer(ISSUER), http_client=client)


def test_metadata_refuses_options_it_replaces() -> None:
    document = ProtectedResourceMetadata(RESOURCE, [ISSUER])
    with pytest.raises(ConfigurationError, match="metadata=.*scopes_supported="):
        guard(metadata=document, scopes_supported=["a"])
    with pytest.raises(ConfigurationError, match="serve_metadata=False"):
        guard(metadata=document, serve_metadata=False)


def test_metadata_must_describe_this_resource() -> None:
    with pytest.raises(ConfigurationError, match="another resource"):
        guard(metadata=ProtectedResourceMetadata("https://api.example/other", [ISSUER]))


def test_metadata_must_advertise_the_accepted_bearer_methods() -> None:
    document = ProtectedResourceMetadata(RESOURCE, [ISSUER])  # header only
    with pytest.raises(ConfigurationError, match="bearer_methods"):
        guard(metadata=document, bearer_methods=["header", "body"])
    both = ProtectedResourceMetadata(
        RESOURCE, [ISSUER], bearer_methods_supported=["body", "header"]
    )
    assert guard(metadata=both, bearer_methods=["header", "body"]).metadata is both


def test_metadata_given_is_served() -> None:
    document = ProtectedResourceMetadata(RESOURCE, [ISSUER], resource_name="Items")
    built = guard(metadata=document)
    assert built.metadata is document
    assert built.resource_metadata_url == document.url


def test_the_simple_keyword_path_builds_one_server() -> None:
    built = guard()
    assert isinstance(built.server, AuthorizationServer)
    assert built.server.issuer == ISSUER == built.issuer


def test_limits_reach_the_built_validator() -> None:
    built = guard(limits=Limits(cache_size=3, max_token_bytes=100))
    jwt = built.validator.jwt  # type: ignore[attr-defined]
    assert jwt.max_token_bytes == 100 and jwt._cache._maxsize == 3


def test_an_empty_algorithm_list_is_still_refused() -> None:
    with pytest.raises(ConfigurationError, match="algorithms"):
        guard(algorithms=[])


def test_limits_are_checked() -> None:
    with pytest.raises(ConfigurationError):
        Limits(cache_size=-1)
    with pytest.raises(ConfigurationError):
        Limits(max_token_bytes=0)


def test_introspection_is_built_on_the_same_server() -> None:
    built = guard(introspection=Introspection("rs", "secret", cache_ttl=5))
    opaque = built.validator.opaque  # type: ignore[attr-defined]
    assert isinstance(opaque, IntrospectionValidator)
    assert opaque.target.metadata is built.server.metadata
    assert opaque.cache_ttl == 5
    assert "secret" not in repr(Introspection("rs", "secret"))


def test_validators_take_a_server_or_an_issuer_with_keys() -> None:
    server = AuthorizationServer(ISSUER)
    assert JWTValidator(server=server, audience=RESOURCE).keys is server.keys
    with pytest.raises(ConfigurationError):
        JWTValidator(audience=RESOURCE, issuer=ISSUER)  # no keys
    with pytest.raises(ConfigurationError):
        JWTValidator(server=server, audience=RESOURCE, keys=server.keys)
    with pytest.raises(ConfigurationError):
        IntrospectionValidator(
            server=server,
            issuer="https://x.example",
            audience="a",
            client_id="c",
            client_secret="s",
        )


def test_guard_has_no_dead_leeway_attribute() -> None:
    assert not hasattr(guard(), "leeway")
