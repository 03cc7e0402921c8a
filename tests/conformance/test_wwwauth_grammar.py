"""The strict RFC 9110 challenge parser used by this suite, and rs_guard's renderer and reader
checked against it (examples from RFC 6750, RFC 9470, RFC 9728, RFC 9110 and MCP)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import WWWAuthenticate

from rs_guard.challenge import bearer_challenge, parse_challenges

from . import wwwauth

PRM = "https://resource.example.com/.well-known/oauth-protected-resource"
RFC_EXAMPLES = {
    # RFC 6750 §3
    'Bearer realm="example"': {"realm": "example"},
    'Bearer realm="example",\r\n error="invalid_token",\r\n'
    ' error_description="The access token expired"'.replace("\r\n", ""): {
        "realm": "example",
        "error": "invalid_token",
        "error_description": "The access token expired",
    },
    # RFC 9470 §3
    'Bearer error="insufficient_user_authentication", '
    'error_description="A different authentication level is required", acr_values="myACR"': {
        "error": "insufficient_user_authentication",
        "error_description": "A different authentication level is required",
        "acr_values": "myACR",
    },
    # RFC 9728 §5.1
    f'Bearer resource_metadata="{PRM}"': {"resource_metadata": PRM},
}


@pytest.mark.parametrize("header", sorted(RFC_EXAMPLES))
def test_rfc_examples_parse(header: str) -> None:
    (ch,) = wwwauth.parse(header)
    assert ch.scheme == "Bearer"
    assert ch.params == RFC_EXAMPLES[header]
    assert parse_challenges(header) == [("bearer", RFC_EXAMPLES[header])]


def test_rfc9110_example_with_several_challenges() -> None:
    # RFC 9110 §11.6.1's example: a token68-less scheme, quoted escapes, two challenges.
    header = 'Basic realm="simple", Newauth realm="apps", type=1, title="Login to \\"apps\\""'
    basic, newauth = wwwauth.parse(header)
    assert (basic.scheme, basic.params) == ("Basic", {"realm": "simple"})
    assert newauth.scheme == "Newauth"
    assert newauth.params == {"realm": "apps", "type": "1", "title": 'Login to "apps"'}
    assert newauth.quoted == {"realm": True, "type": False, "title": True}
    assert parse_challenges(header) == [
        ("basic", {"realm": "simple"}),
        ("newauth", {"realm": "apps", "type": "1", "title": 'Login to "apps"'}),
    ]


def test_token68_and_bws() -> None:
    header = 'Negotiate YIIB9wYGKwYBBQUCoIIB6zCC==, Bearer realm = "x" ,error="invalid_token"'
    neg, bearer = wwwauth.parse(header)
    assert neg.token68 == "YIIB9wYGKwYBBQUCoIIB6zCC=="
    assert bearer.params == {"realm": "x", "error": "invalid_token"}


@pytest.mark.parametrize(
    "header",
    [
        'Bearer realm="unterminated',
        'Bearer realm="a", realm="b"',  # a parameter occurs once per challenge
        'Bearer realm="bad \\\x01 escape"',
        'Bearer error="x"junk',
        'Bearer realm="a"\r\nSet-Cookie: x=1',
        "Bearer =value",
        "Bearer =",
        'Bearer realm="ctl \x7f"',
        "Bear(er",
    ],
)
def test_malformed_is_refused(header: str) -> None:
    with pytest.raises(wwwauth.Malformed):
        wwwauth.parse(header)


printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
scope_tok = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='"\\'),
    min_size=1,
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(
    realm=st.none() | printable,
    error=st.sampled_from([None, "invalid_token", "invalid_request", "insufficient_scope"]),
    description=st.none() | printable,
    scopes=st.lists(scope_tok, max_size=4),
    acr=st.lists(scope_tok, max_size=3),
    max_age=st.none() | st.integers(0, 10**6),
    rm=st.none() | printable,
)
def test_rendered_challenges_always_parse(
    realm: str | None,
    error: str | None,
    description: str | None,
    scopes: list[str],
    acr: list[str],
    max_age: int | None,
    rm: str | None,
) -> None:
    """Whatever goes in (quotes, backslashes, commas), a grammatical challenge comes out and
    rs_guard's own reader agrees with the independent one."""
    header = bearer_challenge(
        realm=realm,
        error=error,
        error_description=description,
        scope=scopes,
        acr_values=acr,
        max_age=max_age,
        resource_metadata=rm,
    )
    challenges = wwwauth.parse(header)
    assert len(challenges) == 1
    (ch,) = challenges
    assert ch.scheme == "Bearer"
    assert all(ch.quoted.values())
    assert parse_challenges(header) == [("bearer", ch.params)]
    theirs = WWWAuthenticate.from_header(header)  # werkzeug, a third reader
    assert theirs is not None and dict(theirs.parameters) == ch.params
    if scopes and "scope" in ch.params:
        assert ch.params["scope"].split(" ") == list(dict.fromkeys(scopes))
    if max_age is not None:
        assert ch.params["max_age"] == str(max_age)
