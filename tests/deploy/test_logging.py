"""Every refusal explained: the facts in the log line, and misconfiguration reaching the console
of a plain `uvicorn app:app` (no logging set up) at WARNING, rate-limited, with no handler
installed by rs_guard; per-request noise (an expired token) stays below WARNING."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from rs_guard import Requirement, ResourceGuard, observe
from rs_guard.testing import TestIdP, loopback_socket, serve, socket_url
from tests.support import free_port

APP = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from rs_guard import AuthorizationServer, ResourceGuard

async def hello(request):
    return PlainTextResponse("hello")

def notes():
    return Starlette(routes=[Route("/items", hello)])

app = Starlette(routes=[
    Mount("/good", app=ResourceGuard(notes(), issuer={issuer!r}, resource={resource!r})),
    # A JWKS URL nobody answers at: the IdP's keys are unreachable.
    Mount("/down", app=ResourceGuard(
        notes(),
        server=AuthorizationServer({issuer!r}, jwks_uri={down!r}),
        resource={resource!r},
    )),
])
"""


def wait_for(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("uvicorn did not start")


def test_plain_uvicorn_prints_misconfiguration_once_and_never_a_token(tmp_path: Path) -> None:
    sock = loopback_socket()
    idp = TestIdP(socket_url(sock), in_process=False)
    port, down_port = free_port(), free_port()
    resource = f"http://127.0.0.1:{port}"
    (tmp_path / "guarded.py").write_text(
        APP.format(issuer=idp.issuer, resource=resource, down=f"http://127.0.0.1:{down_port}/jwks")
    )
    wrong_aud = [idp.token("alice", audience="https://other.test") for _ in range(3)]
    expired = idp.token("alice", audience=resource, lifetime=-120)
    good = idp.token("alice", audience=resource)
    with serve(idp.app, sock=sock):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "guarded:app",
                "--port",
                str(port),
                "--no-access-log",
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(base + "/good/items", proc)
            with httpx.Client(base_url=base) as client:

                def get(path: str, token: str) -> int:
                    return client.get(
                        path, headers={"Authorization": f"Bearer {token}"}
                    ).status_code

                assert get("/good/items", good) == 200  # control
                assert [get("/good/items", t) for t in wrong_aud] == [401, 401, 401]
                assert get("/good/items", expired) == 401
                assert get("/down/items", good) == 503
                assert get("/down/items", good) == 503
        finally:
            proc.terminate()
            _, stderr = proc.communicate(timeout=10)
    lines = stderr.splitlines()
    audience = [line for line in lines if "reason=bad_audience" in line]
    # Once, not once per request; with what was expected and what arrived.
    assert len(audience) == 1, stderr
    assert f"expected_aud={resource}" in audience[0]
    assert "received_aud=https://other.test" in audience[0]
    # The IdP unreachable: once, naming the URL tried and what happened.
    jwks = [line for line in lines if "jwks_refresh_failed" in line]
    assert len(jwks) == 1, stderr
    assert "reason=unreachable" in jwks[0] and f"url=http://127.0.0.1:{down_port}/jwks" in jwks[0]
    # Per-request noise stays below WARNING; no token ever reaches the console.
    assert "reason=expired" not in stderr
    for token in (*wrong_aud, expired, good):
        assert token not in stderr
        assert token.split(".")[2] not in stderr


# -- the facts in a refusal's log record (in-process) -------------------------------------------


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


@pytest.mark.anyio
async def test_refusal_records_name_the_requirement_that_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    idp = TestIdP()
    guard = ResourceGuard(
        Starlette(routes=[Route("/pay", hello)]),
        **idp.guard_settings(
            requirements={"/pay": Requirement(scopes=("payments",), acr_values=("mf",))}
        ),
    )
    caplog.set_level(logging.INFO, "rs_guard")
    async with idp.app_client(guard, base_url=idp.resource) as client:
        r = await client.get("/pay", headers=idp.auth_headers("alice", "payments"))
        assert r.status_code == 401
    (record,) = [r for r in caplog.records if r.getMessage().startswith("token_rejected")]
    fields = record.rs_guard  # type: ignore[attr-defined]
    assert fields["reason"] == "insufficient_user_authentication"
    assert fields["required_acr"] == "mf" and fields["required_scopes"] == "payments"
    assert record.levelno == logging.INFO  # a client's problem, not the operator's


@pytest.mark.anyio
async def test_bad_issuer_refusal_names_expected_and_received(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(observe, "WARNING_INTERVAL", 0.0)  # other tests' warnings do not count
    idp = TestIdP()
    guard = ResourceGuard(Starlette(routes=[Route("/items", hello)]), **idp.guard_settings())
    token = idp.token("alice", claims={"iss": "https://evil.test"})
    async with idp.app_client(guard, base_url=idp.resource) as client:
        r = await client.get("/items", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401
    (record,) = [r for r in caplog.records if "reason=bad_issuer" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "expected_iss=https://idp.test" in record.getMessage()
    assert "received_iss=https://evil.test" in record.getMessage()
    assert token not in record.getMessage()
