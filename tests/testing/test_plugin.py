"""The pytest plugin, used the way a user tests their own service with it."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from rs_guard import AuthorizationServer, ResourceGuard
from rs_guard.testing import TestIdP

from .myservice import ISSUER, RESOURCE, create_app

pytestmark = pytest.mark.anyio
pytest_plugins = ["pytester"]


def www_authenticate(response: httpx.Response) -> str:
    return response.headers.get("www-authenticate", "")


# -- the example from the README: scope denied, step-up challenged, success -------------------


async def test_scope_denied(rs_guard_idp: TestIdP, rs_guard_app_client) -> None:
    async with rs_guard_app_client(create_app) as client:
        response = await client.get("/items", headers=rs_guard_idp.auth_headers("alice", "profile"))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in www_authenticate(response)
    assert 'scope="items:read"' in www_authenticate(response)


async def test_step_up_challenged(rs_guard_idp: TestIdP, rs_guard_app_client) -> None:
    async with rs_guard_app_client(create_app) as client:
        response = await client.post(
            "/payments", headers=rs_guard_idp.auth_headers("alice", "payments:write", acr="pwd")
        )
    assert response.status_code == 401
    assert response.json()["error"] == "insufficient_user_authentication"
    assert 'acr_values="mf phr"' in www_authenticate(response)


async def test_success(rs_guard_idp: TestIdP, rs_guard_app_client) -> None:
    async with rs_guard_app_client(create_app) as client:
        items = await client.get("/items", headers=rs_guard_idp.auth_headers("alice", "items:read"))
        paid = await client.post(
            "/payments", headers=rs_guard_idp.auth_headers("alice", "payments:write", acr="mf")
        )
    assert items.status_code == 200
    assert items.json() == {"items": ["teapot"], "sub": "alice"}
    assert paid.status_code == 200


# -- tokens ------------------------------------------------------------------------------------


async def test_token_claims_follow_the_arguments(rs_guard_idp: TestIdP) -> None:
    claims = rs_guard_idp.introspect(rs_guard_idp.token("bob", ["a", "b"], acr="mf", auth_age=120))
    assert claims["active"] is True
    assert claims["iss"] == ISSUER
    assert claims["aud"] == RESOURCE
    assert claims["sub"] == "bob"
    assert claims["scope"] == "a b"
    assert claims["acr"] == "mf"
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert abs(claims["auth_time"] - (rs_guard_idp.now() - 120)) <= 1
    assert claims["client_id"] == rs_guard_idp.client_id


async def test_token_without_user_or_with_claims_left_out(rs_guard_idp: TestIdP) -> None:
    machine = rs_guard_idp.introspect(rs_guard_idp.token(None, "jobs:run"))
    assert machine["sub"] == rs_guard_idp.client_id
    assert "acr" not in machine and "auth_time" not in machine
    bare = rs_guard_idp.introspect(rs_guard_idp.token("alice", acr=None, auth_time=None, amr=None))
    assert "acr" not in bare and "auth_time" not in bare and "amr" not in bare


async def test_max_age_uses_auth_age(rs_guard_idp: TestIdP, rs_guard_app_client) -> None:
    async with rs_guard_app_client(create_app) as client:
        fresh = await client.get("/profile", headers=rs_guard_idp.auth_headers(auth_age=10))
        stale = await client.get("/profile", headers=rs_guard_idp.auth_headers(auth_age=3600))
        missing = await client.get("/profile", headers=rs_guard_idp.auth_headers(auth_time=None))
    assert fresh.status_code == 200
    assert fresh.json() == {"greeting": "hello"}  # the app's lifespan state reached the request
    assert stale.status_code == 401
    assert 'max_age="300"' in www_authenticate(stale)
    assert missing.status_code == 401


async def test_token_for_another_audience_is_rejected(
    rs_guard_idp: TestIdP, rs_guard_app_client
) -> None:
    async with rs_guard_app_client(create_app) as client:
        response = await client.get(
            "/items",
            headers=rs_guard_idp.auth_headers(
                scopes="items:read", audience="https://other.example"
            ),
        )
    assert response.status_code == 401
    assert 'error="invalid_token"' in www_authenticate(response)


async def test_default_token_on_the_client(rs_guard_idp: TestIdP, rs_guard_app_client) -> None:
    async with rs_guard_app_client(
        create_app, token=rs_guard_idp.token("carol", "items:read")
    ) as client:
        response = await client.get("/items")
        anonymous = await client.get("/items", headers={"Authorization": ""})
    assert response.json()["sub"] == "carol"
    assert anonymous.status_code == 401


# -- keys and outages --------------------------------------------------------------------------


def with_jwks(**jwks_options: Any) -> Callable[..., Starlette]:
    """`create_app` whose guard uses an AuthorizationServer with these JWKS cache settings."""

    def factory(*, http_client: httpx.AsyncClient | None = None, **options: Any) -> Starlette:
        server = AuthorizationServer(ISSUER, http_client=http_client, **jwks_options)
        return create_app(server=server, **options)

    return factory


async def test_key_rotation(rs_guard_idp: TestIdP, rs_guard_app_client) -> None:
    old = rs_guard_idp.token(scopes="items:read")
    # jwks_cooldown=0: the guard may refetch the JWKS as soon as it sees an unknown kid.
    async with rs_guard_app_client(with_jwks(jwks_cooldown=0)) as client:
        assert (await client.get("/items", headers={"Authorization": f"Bearer {old}"})).is_success
        kid = rs_guard_idp.rotate_keys()
        new = rs_guard_idp.token(scopes="items:read")
        assert kid in {k["kid"] for k in rs_guard_idp.jwks()["keys"]}
        for token in (new, old):  # old keys stay published: tokens they signed stay valid
            response = await client.get("/items", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200


async def test_key_rotation_with_retirement(rs_guard_idp: TestIdP, rs_guard_app_client) -> None:
    old = rs_guard_idp.token(scopes="items:read")
    kid = rs_guard_idp.rotate_keys(retire_old=True)
    assert [k["kid"] for k in rs_guard_idp.jwks()["keys"]] == [kid]
    async with rs_guard_app_client(create_app) as client:
        rejected = await client.get("/items", headers={"Authorization": f"Bearer {old}"})
        accepted = await client.get(
            "/items", headers=rs_guard_idp.auth_headers(scopes="items:read")
        )
    assert rejected.status_code == 401
    assert accepted.status_code == 200


async def test_outage_before_keys_are_known_is_a_503(
    rs_guard_idp: TestIdP, rs_guard_app_client
) -> None:
    async with rs_guard_app_client(create_app) as client:
        with rs_guard_idp.outage():
            down = await client.get(
                "/items", headers=rs_guard_idp.auth_headers(scopes="items:read")
            )
        up = await client.get("/items", headers=rs_guard_idp.auth_headers(scopes="items:read"))
    assert down.status_code == 503
    assert down.headers["retry-after"].isdigit()
    assert up.status_code == 200


@pytest.mark.parametrize(
    ("endpoints", "mode"),
    [((), "down"), ((), "unreachable"), ((), "garbage"), (("jwks",), "down")],
)
async def test_known_keys_survive_an_outage(
    rs_guard_idp: TestIdP, rs_guard_app_client, endpoints: tuple[str, ...], mode: str
) -> None:
    headers = rs_guard_idp.auth_headers(scopes="items:read")
    async with rs_guard_app_client(with_jwks(jwks_max_age=0)) as client:
        assert (await client.get("/items", headers=headers)).status_code == 200
        outage = rs_guard_idp.outage(*endpoints, mode=mode)  # type: ignore[arg-type]
        # The JWKS is due for a refresh (max_age 0) and the IdP fails: stale keys serve.
        during = await client.get("/items", headers=headers)
        outage.end()
    assert during.status_code == 200


async def test_outage_switches_the_faults_and_restore_ends_them(rs_guard_idp: TestIdP) -> None:
    rs_guard_idp.outage("jwks", "introspection", mode="slow")
    assert (
        rs_guard_idp.faults.jwks,
        rs_guard_idp.faults.introspection,
        rs_guard_idp.faults.token,
    ) == ("slow", "slow", None)
    rs_guard_idp.outage(mode="unreachable")
    async with rs_guard_idp.http_client() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("/jwks")
        rs_guard_idp.restore()
        assert (await http.get("/jwks")).status_code == 200
    assert rs_guard_idp.faults.jwks is None


async def test_a_whole_outage_is_the_idps_own_fault_switch(rs_guard_idp: TestIdP) -> None:
    # One fault model: what outage() does is what `idp.faults` says, and the switches it takes
    # by name are the IdP route table's.
    from rs_guard import idp as idp_package
    from rs_guard import testing

    assert testing.FAULT_SWITCHES is idp_package.FAULT_SWITCHES == rs_guard_idp.faults.names
    with rs_guard_idp.outage(mode="garbage"):
        assert rs_guard_idp.faults.whole == "garbage"
        async with rs_guard_idp.http_client() as http:
            answer = await http.get("/.well-known/openid-configuration")
        assert answer.status_code == 200
        with pytest.raises(ValueError):
            answer.json()
    assert rs_guard_idp.faults.whole is None
    rs_guard_idp.faults.whole = "down"  # set directly, ended by restore() all the same
    async with rs_guard_idp.http_client() as http:
        down = await http.get("/jwks")
        assert down.status_code == 503 and down.headers["retry-after"] == "1"
        rs_guard_idp.restore()
        assert (await http.get("/jwks")).status_code == 200


async def test_outage_rejects_unknown_switches(rs_guard_idp: TestIdP) -> None:
    with pytest.raises(ValueError, match="unknown IdP endpoints"):
        rs_guard_idp.outage("jwsk")
    with pytest.raises(ValueError, match="whole IdP"):
        rs_guard_idp.outage("jwks", mode="unreachable")


# -- wiring ------------------------------------------------------------------------------------


async def test_guard_settings_wire_a_guard_by_hand(rs_guard_idp: TestIdP) -> None:
    async def hello(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["auth"].subject.encode()})

    app = ResourceGuard(hello, **rs_guard_idp.guard_settings())
    async with rs_guard_idp.app_client(app, token=rs_guard_idp.token("dave")) as client:
        response = await client.get("/")
    assert response.text == "dave"


async def test_factory_without_http_client_is_explained(rs_guard_app_client) -> None:
    def create(*, debug: bool = False):
        raise AssertionError("not called")

    with pytest.raises(TypeError, match="http_client"):
        rs_guard_app_client(create)


async def test_failed_lifespan_startup_is_reported(rs_guard_idp: TestIdP) -> None:
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette

    @asynccontextmanager
    async def broken(app):
        raise RuntimeError("database unavailable")
        yield

    with pytest.raises(RuntimeError, match="lifespan startup failed"):
        async with rs_guard_idp.app_client(Starlette(lifespan=broken)):
            pass


async def test_fresh_idp_per_test_part_one(rs_guard_idp: TestIdP) -> None:
    rs_guard_idp.register_client("leftover", "secret")
    rs_guard_idp.outage()
    assert rs_guard_idp.get_client("leftover") is not None


async def test_fresh_idp_per_test_part_two(rs_guard_idp: TestIdP) -> None:
    assert rs_guard_idp.get_client("leftover") is None
    async with rs_guard_idp.http_client() as http:
        assert (await http.get("/.well-known/openid-configuration")).status_code == 200


# -- the loopback server -----------------------------------------------------------------------


async def test_idp_server_has_a_real_url(rs_guard_idp_server: TestIdP) -> None:
    assert rs_guard_idp_server.issuer.startswith("http://127.0.0.1:")
    async with httpx.AsyncClient() as http:
        doc = (
            await http.get(f"{rs_guard_idp_server.issuer}/.well-known/openid-configuration")
        ).json()
        assert doc["issuer"] == rs_guard_idp_server.issuer
        token = await http.post(
            doc["token_endpoint"],
            data={"grant_type": "client_credentials", "scope": "items:read"},
            auth=(rs_guard_idp_server.client_id, rs_guard_idp_server.client_secret),
        )
    assert token.status_code == 200
    assert rs_guard_idp_server.introspect(token.json()["access_token"])["active"] is True


async def test_idp_server_with_a_guard_that_makes_its_own_client(
    rs_guard_idp_server: TestIdP,
) -> None:
    settings = rs_guard_idp_server.guard_settings()
    assert "http_client" not in settings  # the guard reaches the IdP over the socket
    app = create_app(**settings)
    async with rs_guard_idp_server.app_client(app) as client:
        ok = await client.get(
            "/items", headers=rs_guard_idp_server.auth_headers(scopes="items:read")
        )
        with rs_guard_idp_server.outage():
            async with httpx.AsyncClient() as http:
                down = await http.get(f"{rs_guard_idp_server.issuer}/jwks")
    assert ok.status_code == 200
    assert down.status_code == 503


async def test_idp_server_is_fresh_per_test(rs_guard_idp_server: TestIdP) -> None:
    assert rs_guard_idp_server.get_client("leftover") is None
    rs_guard_idp_server.register_client("leftover", "secret")


async def test_idp_server_is_fresh_per_test_again(rs_guard_idp_server: TestIdP) -> None:
    assert rs_guard_idp_server.get_client("leftover") is None
    rs_guard_idp_server.register_client("leftover", "secret")


async def test_idp_server_keeps_the_issuer_path(rs_guard_idp_options, request) -> None:
    rs_guard_idp_options["issuer"] = "https://login.example.com/tenant-a"
    server: TestIdP = request.getfixturevalue("rs_guard_idp_server")
    assert server.issuer.endswith("/tenant-a")
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{server.issuer}/.well-known/openid-configuration")
    assert response.json()["issuer"] == server.issuer


# -- as installed in someone else's project (pytester) ------------------------------------------

USER_TEST = """
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from rs_guard import ResourceGuard, require

pytestmark = pytest.mark.anyio
pytest_plugins = ["pytester"]


@pytest.fixture
def anyio_backend():
    return "asyncio"


@require("orders:read")
async def orders(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.auth.subject)


def create_app(http_client=None):
    return Starlette(
        routes=[Route("/orders", orders)],
        middleware=[Middleware(ResourceGuard, issuer="https://idp.test",
                               resource="https://api.test", http_client=http_client)],
    )


async def test_orders(rs_guard_idp, rs_guard_app_client):
    async with rs_guard_app_client(create_app) as client:
        ok = await client.get("/orders", headers=rs_guard_idp.auth_headers("erin", "orders:read"))
        denied = await client.get("/orders", headers=rs_guard_idp.auth_headers("erin", "other"))
    assert ok.text == "erin"
    assert denied.status_code == 403


def test_sync_tests_get_tokens_too(rs_guard_idp):
    assert rs_guard_idp.token("erin").count(".") == 2
"""


OPT_IN = 'pytest_plugins = ["rs_guard.pytest_plugin"]\n'


def test_a_project_that_opts_in_gets_the_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(OPT_IN)
    pytester.makepyfile(test_user=USER_TEST)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_opting_in_from_the_command_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TEST)
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "rs_guard.pytest_plugin")
    result.assert_outcomes(passed=2)


def test_the_fixtures_are_listed(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(OPT_IN)
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest("--fixtures")
    names = ("rs_guard_idp", "rs_guard_idp_server", "rs_guard_app_client", "rs_guard_idp_options")
    for name in names:
        result.stdout.fnmatch_lines([f"{name}*"])


def test_installing_rs_guard_injects_nothing_into_a_project(pytester: pytest.Pytester) -> None:
    # A subprocess: this session has the plugin loaded, a fresh interpreter shows what an
    # unrelated project that has rs_guard installed gets.
    pytester.makepyfile(
        test_plain=textwrap.dedent(
            """
            import sys

            def test_the_plugin_is_not_loaded():
                assert "rs_guard.pytest_plugin" not in sys.modules
                assert "rs_guard" not in sys.modules

            def test_a_fixture_of_the_plugin_is_unknown(rs_guard_idp):
                pass

            def test_the_projects_own_idp_fixture_is_not_shadowed(idp):
                assert idp == "mine"
            """
        )
    )
    pytester.makeconftest("import pytest\n\n@pytest.fixture\ndef idp():\n    return 'mine'\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*fixture 'rs_guard_idp' not found*"])


def test_this_project_opts_in_like_a_user() -> None:
    assert "rs_guard.pytest_plugin" in sys.modules
