"""Requirement and challenge building blocks: configuration checks, quoting, reading back."""

from __future__ import annotations

import base64
import json

import pytest

from rs_guard import ConfigurationError, Requirement, ScopeHierarchy
from rs_guard.challenge import (
    authorization_params,
    bearer_challenge,
    claims_value,
    decode_claims,
    parse_bearer_challenge,
    parse_challenges,
)


def test_rfc9470_examples_from_the_renderer() -> None:
    assert bearer_challenge(
        error="insufficient_user_authentication",
        error_description="A different authentication level is required",
        acr_values=["myACR"],
    ) == (
        'Bearer error="insufficient_user_authentication", '
        'error_description="A different authentication level is required", acr_values="myACR"'
    )
    assert bearer_challenge(
        error="insufficient_user_authentication",
        error_description="More recent authentication is required",
        max_age=5,
    ) == (
        'Bearer error="insufficient_user_authentication", '
        'error_description="More recent authentication is required", max_age="5"'
    )


def test_values_stay_inside_the_rfc6750_charset() -> None:
    challenge = bearer_challenge(
        error="invalid_token",
        error_description='bad "quote" \\ back\r\nInjected: yes é',
        resource_metadata='https://x.example/"',
    )
    assert "\r" not in challenge and "\n" not in challenge and "\\" not in challenge
    assert challenge == (
        'Bearer error="invalid_token", error_description="bad quote  backInjected: yes ", '
        'resource_metadata="https://x.example/"'
    )


def test_scope_values_drop_offline_access_duplicates_and_bad_tokens() -> None:
    assert bearer_challenge(scope=["a", "offline_access", "a b", 'c"d', "e"]) == (
        'Bearer scope="a b e"'
    )
    assert bearer_challenge(scope=["offline_access"]) == "Bearer"


def test_parse_challenges_reads_several_schemes_and_escapes() -> None:
    header = (
        'Basic realm="x", Bearer realm="a \\"b\\"", error=invalid_token, '
        'scope="s1 s2", DPoP algs="ES256 PS256"'
    )
    assert parse_challenges(header) == [
        ("basic", {"realm": "x"}),
        ("bearer", {"realm": 'a "b"', "error": "invalid_token", "scope": "s1 s2"}),
        ("dpop", {"algs": "ES256 PS256"}),
    ]
    assert parse_bearer_challenge("Basic realm=x") is None
    assert parse_bearer_challenge("Bearer") == {}
    assert parse_bearer_challenge('Bearer error="unterminated') == {}


def test_authorization_params_from_a_step_up_challenge() -> None:
    claims = {"id_token": {"phone_number_verified": {"value": True}}}
    challenge = bearer_challenge(
        error="insufficient_user_authentication",
        acr_values=["mf", "phr"],
        max_age=300,
        claims=claims_value(claims),
    )
    params = authorization_params(challenge)
    assert params["acr_values"] == "mf phr"
    assert params["max_age"] == "300"
    assert json.loads(params["claims"]) == claims
    assert authorization_params('Bearer max_age="soon", claims="%%%"') == {}


def test_claims_value_is_padded_base64_and_decoder_accepts_base64url() -> None:
    claims = {"id_token": {"phone_number_verified": {"value": True}}}
    value = claims_value(claims)
    assert base64.b64decode(value) == b'{"id_token":{"phone_number_verified":{"value":true}}}'
    assert decode_claims(value) == claims
    assert decode_claims(base64.urlsafe_b64encode(b'{"a":"??>>"}').decode().rstrip("=")) == {
        "a": "??>>"
    }
    for bad in ("%7B%7D", "W10=", "bm90IGpzb24="):
        with pytest.raises(ValueError):
            decode_claims(bad)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scopes": ('files"read',)},
        {"scopes": ("offline_access",)},
        {"acr_values": ("m f x\\",)},
        {"max_age": -1},
        {"max_age": True},
        {"max_age": 1.5},
        {"claims": {"": True}},
    ],
    ids=str,
)
def test_requirement_refuses_bad_configuration(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        Requirement(**kwargs)  # type: ignore[arg-type]


def test_requirement_splits_strings() -> None:
    req = Requirement(scopes="a b a", acr_values="mf phr")  # type: ignore[arg-type]
    assert req.scopes == ("a", "b")
    assert req.acr_values == ("mf", "phr")


def test_scope_hierarchy_is_transitive_with_wildcards() -> None:
    h = ScopeHierarchy(
        {"admin": ["files:*", "users:admin"], "users:admin": ["users:read"], "files:write": []}
    )
    assert h.satisfies(["admin"], "files:anything")
    assert h.satisfies(["admin"], "users:read")
    assert not h.satisfies(["admin"], "billing:read")
    assert h.missing(["users:admin"], ["users:read", "files:read"]) == ("files:read",)
    assert h.effective(["admin"]) == ("admin", "users:admin", "users:read")
    with pytest.raises(ConfigurationError):
        ScopeHierarchy({"a": ["b*c"]})
    with pytest.raises(ConfigurationError):
        ScopeHierarchy({"a b": ["c"]})
