"""RFC 9728 (OAuth 2.0 Protected Resource Metadata): §2 the document, §3 its well-known URL,
§5 `resource_metadata` in challenges, and the discovery walk a client does from a 401."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from rs_guard import ProtectedResourceMetadata
from rs_guard.resource_metadata import metadata_path, metadata_url

from .conftest import ISSUER, RESOURCE, bearer, challenge_of

pytestmark = pytest.mark.anyio

RFC_DOCUMENT = {
    "resource": "https://resource.example.com",
    "authorization_servers": ["https://as1.example.com", "https://as2.example.net"],
    "bearer_methods_supported": ["header", "body"],
    "scopes_supported": ["profile", "email", "phone"],
    "resource_documentation": "https://resource.example.com/resource_documentation.html",
}


async def test_the_rfc_example_document() -> None:
    """§3.2's example response, member for member, served as application/json."""
    prm = ProtectedResourceMetadata(
        "https://resource.example.com",
        ["https://as1.example.com", "https://as2.example.net"],
        bearer_methods_supported=["header", "body"],
        scopes_supported=["profile", "email", "phone"],
        resource_documentation="https://resource.example.com/resource_documentation.html",
    )
    assert prm.url == "https://resource.example.com/.well-known/oauth-protected-resource"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=prm), base_url="https://resource.example.com"
    ) as client:
        resp = await client.get("/.well-known/oauth-protected-resource")
        head = await client.head("/.well-known/oauth-protected-resource")
        post = await client.post("/.well-known/oauth-protected-resource")
    assert resp.status_code == 200
    assert resp.headers["content-type"].split(";")[0] == "application/json"
    assert json.loads(resp.content) == RFC_DOCUMENT
    assert head.status_code == 200 and head.content == b""
    assert post.status_code == 405


@pytest.mark.parametrize(
    ("resource", "url"),
    [
        # §3.1: inserted between host and path; a terminating slash after the host removed first.
        (
            "https://resource.example.com",
            "https://resource.example.com/.well-known/oauth-protected-resource",
        ),
        (
            "https://resource.example.com/",
            "https://resource.example.com/.well-known/oauth-protected-resource",
        ),
        (
            "https://resource.example.com/resource1",
            "https://resource.example.com/.well-known/oauth-protected-resource/resource1",
        ),
        (
            "https://resource.example.com:8443/a/b",
            "https://resource.example.com:8443/.well-known/oauth-protected-resource/a/b",
        ),
        # Only the slash right after the host goes: one ending a path is part of it.
        (
            "https://resource.example.com/api/",
            "https://resource.example.com/.well-known/oauth-protected-resource/api/",
        ),
        (
            "http://127.0.0.1:8000/mcp",
            "http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp",
        ),
    ],
)
def test_well_known_url_construction(resource: str, url: str) -> None:
    assert metadata_url(resource) == url
    assert url.endswith(metadata_path(resource))


async def test_challenge_is_the_rfc_example(idp_http: httpx.AsyncClient) -> None:
    """§5.1's example header, byte for byte, for resource https://resource.example.com."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from rs_guard import ResourceGuard

    async def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse("hi")

    app = Starlette(
        routes=[Route("/", hello)],
        middleware=[
            Middleware(
                ResourceGuard,
                issuer=ISSUER,
                resource="https://resource.example.com",
                http_client=idp_http,
            )
        ],
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://resource.example.com"
    ) as client:
        resp = await client.get("/")
        doc = await client.get("/.well-known/oauth-protected-resource")
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == (
        'Bearer resource_metadata="https://resource.example.com/.well-known/oauth-protected-resource"'
    )
    assert doc.json()["resource"] == "https://resource.example.com"


async def test_client_discovery_walk_from_a_401(
    api: Callable[..., httpx.AsyncClient], idp_http: httpx.AsyncClient
) -> None:
    """What an MCP / RFC 9728 client does: 401 -> resource_metadata -> check `resource`
    (§3.3) -> authorization server -> its RFC 8414 metadata whose `issuer` matches."""
    async with api(scopes_supported=["items:read", "items:write", "offline_access"]) as client:
        resp = await client.get("/items")
        ch = challenge_of(resp)
        url = ch.params["resource_metadata"]
        assert url == "https://api.example/.well-known/oauth-protected-resource/items"
        assert ch.params["scope"] == "items:read"  # what the route needs, up front
        doc_resp = await client.get(url)
    assert doc_resp.status_code == 200
    doc = doc_resp.json()
    assert doc["resource"] == RESOURCE  # identical, not merely equivalent
    assert doc["authorization_servers"] == [ISSUER]
    assert doc["bearer_methods_supported"] == ["header"]
    assert doc["scopes_supported"] == ["items:read", "items:write"]  # never offline_access
    (server,) = doc["authorization_servers"]
    as_meta = (await idp_http.get(f"{server}/.well-known/oauth-authorization-server")).json()
    assert as_meta["issuer"] == server


async def test_resource_metadata_rides_along_with_every_error(
    api: Callable[..., httpx.AsyncClient], mint: Callable[..., str]
) -> None:
    """§5.1: the parameter may be combined with RFC 6750 error parameters."""
    rm = "https://api.example/.well-known/oauth-protected-resource/items"
    async with api() as client:
        cases = [
            await client.get("/items"),
            await client.get("/items", headers=bearer("garbage")),
            await client.get("/items", headers=bearer(mint(scope="other"))),
            await client.get("/items", headers={"Authorization": "Bearer a b"}),
        ]
    assert [r.status_code for r in cases] == [401, 401, 403, 400]
    for resp in cases:
        assert challenge_of(resp).params["resource_metadata"] == rm
    scope_error = challenge_of(cases[2]).params
    assert scope_error["error"] == "insufficient_scope"
    assert scope_error["scope"] == "items:read"


async def test_trailing_slash_resource_keeps_its_identity(
    api: Callable[..., httpx.AsyncClient],
) -> None:
    async with api(resource="https://api.example/") as client:
        resp = await client.get("/whoami")
        url = challenge_of(resp).params["resource_metadata"]
        assert url == "https://api.example/.well-known/oauth-protected-resource"
        doc = (await client.get(url)).json()
    assert doc["resource"] == "https://api.example/"


async def test_signed_metadata(api: Callable[..., httpx.AsyncClient]) -> None:
    """§2.2: `signed_metadata` is a JWS whose claims (with `iss`) repeat the metadata values."""
    key = ec.generate_private_key(ec.SECP256R1())
    metadata = ProtectedResourceMetadata(
        RESOURCE, [ISSUER], signing_key=key, signing_alg="ES256", signing_kid="prm-1"
    )
    async with api(metadata=metadata) as client:
        doc = (await client.get("/.well-known/oauth-protected-resource/items")).json()
    signed = doc.pop("signed_metadata")
    assert jwt.get_unverified_header(signed)["kid"] == "prm-1"
    claims = jwt.decode(signed, key.public_key(), algorithms=["ES256"])
    assert isinstance(claims.pop("iss"), str)
    claims.pop("iat", None)
    assert claims == doc
