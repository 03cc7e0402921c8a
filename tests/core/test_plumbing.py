"""The shared plumbing modules: single flight, strict JSON, body reads, addresses, scopes,
Retry-After."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rs_guard._asgi import (
    BodyTooLarge,
    ClientDisconnected,
    read_body,
    replay,
    send_response,
)
from rs_guard._async import SingleFlight
from rs_guard._http import parse_retry_after
from rs_guard._json import JSONError, dumps, loads, loads_object
from rs_guard._net import ip_literal, is_loopback_host, is_loopback_ip, is_non_public_address
from rs_guard._scopes import join_scope, split_scope

pytestmark = pytest.mark.anyio


# -- SingleFlight ------------------------------------------------------------------------------


async def test_single_flight_shares_one_call_among_many_callers() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    calls = 0
    gate = asyncio.Event()

    async def work() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return 42

    tasks = [asyncio.create_task(flight.run("k", work)) for _ in range(1000)]
    await asyncio.sleep(0)
    assert flight.running("k")
    gate.set()
    assert await asyncio.gather(*tasks) == [42] * 1000
    assert calls == 1
    assert not flight.running("k")


async def test_single_flight_finished_call_is_neither_running_nor_joined() -> None:
    """Right after a call ends (before the loop has run its clean-up callback), a caller that
    wants a fresh outcome starts a new call instead of getting the old one without yielding
    (a loop waiting for a fresh outcome would spin: #12 key rotation under load)."""
    flight: SingleFlight[str, int] = SingleFlight()
    calls = 0

    async def count() -> int:
        nonlocal calls
        calls += 1
        return calls

    assert await flight.run("k", count) == 1
    assert not flight.running("k")  # no loop turn has passed since the call ended
    assert await flight.run("k", count) == 2


async def test_single_flight_keys_are_independent() -> None:
    flight: SingleFlight[str, str] = SingleFlight()

    async def echo(value: str) -> str:
        await asyncio.sleep(0)
        return value

    a, b = await asyncio.gather(
        flight.run("a", lambda: echo("a")), flight.run("b", lambda: echo("b"))
    )
    assert (a, b) == ("a", "b")


async def test_single_flight_does_not_remember_failures() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    calls = 0

    async def flaky() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        if calls == 1:
            raise RuntimeError("down")
        return 7

    results = await asyncio.gather(
        flight.run("k", flaky), flight.run("k", flaky), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert calls == 1  # both waiters saw the one failure
    assert await flight.run("k", flaky) == 7  # the next caller tries again
    assert calls == 2


async def test_a_cancelled_waiter_does_not_cancel_the_shared_call() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    gate = asyncio.Event()
    finished = False

    async def work() -> int:
        nonlocal finished
        await gate.wait()
        finished = True
        return 1

    impatient = asyncio.create_task(flight.run("k", work))
    patient = asyncio.create_task(flight.run("k", work))
    await asyncio.sleep(0)
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    gate.set()
    assert await patient == 1
    assert finished


async def test_a_failure_nobody_waits_for_is_not_reported_as_unretrieved() -> None:
    flight: SingleFlight[str, int] = SingleFlight()

    async def boom() -> int:
        await asyncio.sleep(0)
        raise RuntimeError("x")

    waiter = asyncio.create_task(flight.run("k", boom))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.sleep(0.01)  # the shared call fails with no waiter left: no warning
    assert not flight.running("k")


# -- strict JSON -------------------------------------------------------------------------------


def test_strict_json_parses_ordinary_documents() -> None:
    assert loads(b'{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}
    assert loads('"text"') == "text"
    assert loads_object('{"é": 1}') == {"é": 1}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"a": 1, "a": 2}', "duplicate_member"),
        (b'{"x": {"b": 1, "b": 1}}', "duplicate_member"),
        (b'{"a": NaN}', "constant"),
        (b'{"a": Infinity}', "constant"),
        (b'{"a": -Infinity}', "constant"),
        (b'{"a": "\xff"}', "not_utf8"),
        (b"\xef\xbb\xbf{}", "malformed"),  # a BOM is not JSON text (RFC 8259 §8.1)
        (b'{"a": 1', "malformed"),
        (b"", "malformed"),
        (b"[" * 100_000 + b"]" * 100_000, "malformed"),
    ],
)
def test_strict_json_refuses(data: bytes, reason: str) -> None:
    with pytest.raises(JSONError) as caught:
        loads(data)
    assert caught.value.reason == reason
    assert isinstance(caught.value, ValueError)


def test_duplicate_member_names_the_member() -> None:
    with pytest.raises(JSONError) as caught:
        loads('{"iss": "a", "sub": "x", "iss": "b"}')
    assert caught.value.name == "iss"
    assert "iss" in str(caught.value)


@pytest.mark.parametrize("data", ["[]", "1", '"x"', "null", "true"])
def test_loads_object_wants_an_object(data: str) -> None:
    with pytest.raises(JSONError) as caught:
        loads_object(data)
    assert caught.value.reason == "not_object"


def test_dumps_is_compact_utf8_and_refuses_nan() -> None:
    assert dumps({"a": [1, "é"]}) == b'{"a":[1,"\\u00e9"]}'
    assert loads(dumps({"k": "v"})) == {"k": "v"}
    with pytest.raises(ValueError):
        dumps({"a": float("nan")})


# -- bounded body read -------------------------------------------------------------------------


def _receiver(*messages: dict[str, Any]) -> Any:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    return receive


async def test_read_body_joins_chunks() -> None:
    receive = _receiver(
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
    )
    assert await read_body(receive, limit=4) == b"abcd"


async def test_read_body_refuses_more_than_the_limit() -> None:
    receive = _receiver(
        {"type": "http.request", "body": b"abc", "more_body": True},
        {"type": "http.request", "body": b"de", "more_body": False},
    )
    with pytest.raises(BodyTooLarge):
        await read_body(receive, limit=4)


async def test_read_body_reports_a_disconnect() -> None:
    receive = _receiver({"type": "http.request", "body": b"ab", "more_body": True})
    with pytest.raises(ClientDisconnected):
        await read_body(receive, limit=100)


async def test_replay_yields_the_body_once_then_delegates() -> None:
    receive = replay(b"body", _receiver())
    assert await receive() == {"type": "http.request", "body": b"body", "more_body": False}
    assert await receive() == {"type": "http.disconnect"}


async def test_send_response_sets_the_length() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    await send_response(send, 204, b"", [(b"x", b"y")])
    await send_response(send, 200, b"", content_length=10)
    assert sent[0]["headers"] == [(b"x", b"y"), (b"content-length", b"0")]
    assert sent[2]["headers"] == [(b"content-length", b"10")]


# -- addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("10.0.0.1.", "10.0.0.1"),
    ],
)
def test_ip_literal_reads_every_spelling(host: str, address: str) -> None:
    assert str(ip_literal(host)) == address


@pytest.mark.parametrize("host", ["example.com", "localhost", "", "127.0.0.1 x", "1.2.3.4.5"])
def test_ip_literal_is_none_for_names(host: str) -> None:
    assert ip_literal(host) is None


@pytest.mark.parametrize(
    "host",
    ["localhost", "LOCALHOST", "app.localhost", "127.0.0.1", "127.8.9.10", "[::1]", "::1"],
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host",
    # Plain http is allowed on loopback only in its standard spellings: the odd ones are
    # refused (strict), as are names that merely contain "localhost".
    ["127.1", "0x7f000001", "::ffff:127.0.0.1", "localhost.example", "evil-localhost", "10.0.0.1"],
)
def test_not_loopback_hosts(host: str) -> None:
    assert not is_loopback_host(host)


def test_loopback_ip_excludes_names() -> None:
    assert is_loopback_ip("127.0.0.1") and is_loopback_ip("[::1]")
    assert not is_loopback_ip("localhost")


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "localhost.",
        "x.localhost",
        "127.0.0.1",
        "127.1",
        "0x7f000001",
        "2130706433",
        "0177.0.0.1",
        "[::1]",
        "::ffff:127.0.0.1",
        "[::ffff:10.0.0.1]",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.127.255.254",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "fc00::1",
        "fe80::1",
    ],
)
def test_non_public_addresses(host: str) -> None:
    assert is_non_public_address(host)


@pytest.mark.parametrize("host", ["8.8.8.8", "100.128.0.1", "example.com", "2001:4860::8888"])
def test_public_addresses(host: str) -> None:
    assert not is_non_public_address(host)


# -- scopes ------------------------------------------------------------------------------------


def test_split_scope() -> None:
    assert split_scope("a  b a c") == ("a", "b", "c")
    assert split_scope(["b", "", "a", "b"]) == ("b", "a")
    assert split_scope(None) == ()
    assert split_scope("") == ()


def test_join_scope() -> None:
    assert join_scope(["a", "b", "a", ""]) == "a b"
    assert join_scope(split_scope("x y")) == "x y"


# -- Retry-After -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("5", 5),
        (" 7 ", 7),
        ("0", 1),
        ("100000", 300),
        (None, None),
        ("", None),
        ("-1", None),
        ("1.5", None),
        ("²", None),
        ("٣", None),
        ("5²", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: int | None) -> None:
    assert parse_retry_after(value) == seconds


def test_parse_retry_after_ceiling() -> None:
    assert parse_retry_after("100", ceiling=60) == 60
