"""RFC 6750 §2 credential extraction on its own (rs_guard.credentials.BearerCredentials)."""

from __future__ import annotations

from typing import Any

import pytest

from rs_guard import ConfigurationError, InvalidRequest
from rs_guard.credentials import BearerCredentials, bearer_token

pytestmark = pytest.mark.anyio

FORM = (b"content-type", b"application/x-www-form-urlencoded")


def http(headers: list[tuple[bytes, bytes]] = (), query: bytes = b"", method: str = "POST") -> Any:
    return {"type": "http", "method": method, "headers": list(headers), "query_string": query}


def receiver(*messages: dict[str, Any]) -> Any:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    return receive


def test_header_and_query() -> None:
    creds = BearerCredentials(["header", "query"])
    assert creds.find(http([(b"authorization", b"Bearer abc")])) == "abc"
    assert creds.find(http(query=b"access_token=xyz")) == "xyz"
    with pytest.raises(InvalidRequest, match="More than one"):
        creds.find(http([(b"authorization", b"Bearer abc")], query=b"access_token=xyz"))


def test_query_refused_unless_accepted() -> None:
    with pytest.raises(InvalidRequest) as caught:
        BearerCredentials().find(http(query=b"access_token=xyz"))
    assert caught.value.reason == "token_in_query"


def test_unknown_or_no_methods_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        BearerCredentials(["cookie"])
    with pytest.raises(ConfigurationError):
        BearerCredentials([])


def test_bearer_token_shapes() -> None:
    assert bearer_token(b"Basic Zm9v") is None
    assert bearer_token(b"bEaReR   tok==") == "tok=="
    with pytest.raises(InvalidRequest):
        bearer_token(b"Bearer a b")


async def test_body_token_is_found_and_the_body_replayed() -> None:
    creds = BearerCredentials(["header", "body"])
    receive = receiver(
        {"type": "http.request", "body": b"note=hi&access_", "more_body": True},
        {"type": "http.request", "body": b"token=tok", "more_body": False},
    )
    token, replayed = await creds.find_in_body(http([FORM]), receive, None)
    assert token == "tok"
    assert (await replayed())["body"] == b"note=hi&access_token=tok"


async def test_a_disconnect_reaches_the_app_as_a_disconnect() -> None:
    creds = BearerCredentials(["header", "body"])
    receive = receiver({"type": "http.request", "body": b"access_token=tok&no", "more_body": True})
    token, replayed = await creds.find_in_body(http([FORM]), receive, "from-header")
    # The truncated body is never taken for a complete one, nor searched for a token.
    assert token == "from-header"
    assert await replayed() == {"type": "http.disconnect"}


async def test_an_oversized_body_is_refused() -> None:
    creds = BearerCredentials(["body"])
    receive = receiver({"type": "http.request", "body": b"x" * (64 * 1024 + 1)})
    with pytest.raises(InvalidRequest) as caught:
        await creds.find_in_body(http([FORM]), receive, None)
    assert caught.value.reason == "body_too_large"


async def test_only_form_posts_are_read() -> None:
    creds = BearerCredentials(["body"])
    receive = receiver()
    assert await creds.find_in_body(http([FORM], method="GET"), receive, None) == (None, receive)
    json_post = http([(b"content-type", b"application/json")])
    assert await creds.find_in_body(json_post, receive, None) == (None, receive)
