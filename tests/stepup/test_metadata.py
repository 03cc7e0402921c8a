"""RFC 9728 Protected Resource Metadata through HTTP: URLs, byte-identical resource, signing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from rs_guard import ConfigurationError, ProtectedResourceMetadata, ResourceGuard
from rs_guard.challenge import parse_bearer_challenge
from rs_guard.idp import IdP
from rs_guard.resource_metadata import metadata_routes, metadata_url

from .conftest import ISSUER, bearer

pytestmark = pytest.mark.anyio
WELL_KNOWN = "/.well-known/oauth-protected-resource"


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"aud": list(request.auth.audience)})


@pytest.fixture
def idp_options() -> dict[str, Any]:
    return {}  # the IdP runs on wall time, as the guards here do


@pytest.fixture
async def idp_http(idp: IdP) -> AsyncIterator[httpx.AsyncClient]:
    async with idp.http_client() as client:
        yield client


def guarded(idp_http: httpx.AsyncClient, resource: str, **options: Any) -> Starlette:
    app = Starlette(routes=[Route("/{path:path}", hello)])
    return Starlette(
        routes=[
            Mount(
                "/",
                app=ResourceGuard(
                    app, issuer=ISSUER, resource=resource, http_client=idp_http, **options
                ),
            )
        ]
    )


def client_for(app: Any, base_url: str = "https://api.example") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


@pytest.mark.parametrize(
    ("resource", "path", "url"),
    [
        ("https://api.example", WELL_KNOWN, f"https://api.example{WELL_KNOWN}"),
        # A terminating slash right after the host is removed from the URL, kept in `resource`.
        ("https://api.example/", WELL_KNOWN, f"https://api.example{WELL_KNOWN}"),
        ("https://api.example/mcp", f"{WELL_KNOWN}/mcp", f"https://api.example{WELL_KNOWN}/mcp"),
        (
            "https://api.example/v1/mcp/",
            f"{WELL_KNOWN}/v1/mcp/",
            f"https://api.example{WELL_KNOWN}/v1/mcp/",
        ),
        (
            "https://api.example:8443/tenant",
            f"{WELL_KNOWN}/tenant",
            f"https://api.example:8443{WELL_KNOWN}/tenant",
        ),
    ],
)
async def test_well_known_url_and_byte_identical_resource(
    idp_http: httpx.AsyncClient, resource: str, path: str, url: str
) -> None:
    assert metadata_url(resource) == url
    app = guarded(idp_http, resource, scopes_supported=["notes:read", "offline_access"])
    async with client_for(app) as c:
        r = await c.get(path)
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        doc = r.json()
        assert doc["resource"] == resource  # no trailing-slash drift either way
        assert doc["authorization_servers"] == [ISSUER]
        assert doc["bearer_methods_supported"] == ["header"]
        assert doc["scopes_supported"] == ["notes:read"]  # offline_access never advertised
        # And every challenge points at exactly that document.
        challenge = (await c.get("/anything")).headers["www-authenticate"]
        assert parse_bearer_challenge(challenge) == {"resource_metadata": url}


async def test_document_members_and_http_methods(idp_http: httpx.AsyncClient) -> None:
    metadata = ProtectedResourceMetadata(
        "https://api.example/mcp",
        ["https://idp.example", "https://idp2.example"],
        scopes_supported=["notes:read", "notes:write"],
        resource_documentation="https://api.example/docs",
        resource_name="Notes",
    )
    app = guarded(idp_http, "https://api.example/mcp", metadata=metadata)
    async with client_for(app) as c:
        r = await c.get(f"{WELL_KNOWN}/mcp")
        assert r.json() == {
            "resource": "https://api.example/mcp",
            "authorization_servers": ["https://idp.example", "https://idp2.example"],
            "bearer_methods_supported": ["header"],
            "scopes_supported": ["notes:read", "notes:write"],
            "resource_documentation": "https://api.example/docs",
            "resource_name": "Notes",
        }
        assert r.headers["access-control-allow-origin"] == "*"
        head = await c.head(f"{WELL_KNOWN}/mcp")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == r.headers["content-length"]
        post = await c.post(f"{WELL_KNOWN}/mcp")
        assert post.status_code == 405
        assert "GET" in post.headers["allow"]
        # The metadata is public: no token needed, none of the guard's challenges.
        assert "www-authenticate" not in r.headers


async def test_forged_host_header_changes_nothing(idp: IdP, idp_http: httpx.AsyncClient) -> None:
    resource = "https://api.example/mcp"
    app = guarded(idp_http, resource)
    forged = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "Forwarded": "host=evil"}
    async with client_for(app, base_url="https://evil.example") as c:
        doc = (await c.get(f"{WELL_KNOWN}/mcp", headers=forged)).json()
        assert doc["resource"] == resource
        r = await c.get("/mcp", headers=forged)
        assert parse_bearer_challenge(r.headers["www-authenticate"]) == {
            "resource_metadata": f"https://api.example{WELL_KNOWN}/mcp"
        }
        # The expected audience is the configured resource, whatever the Host says.
        for_evil = idp.issue_access_token(
            "alice", client_id="c", audience="https://evil.example/mcp"
        )
        r = await c.get("/mcp", headers={**forged, **bearer(for_evil)})
        assert r.status_code == 401
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
        good = idp.issue_access_token("alice", client_id="c", audience=resource)
        r = await c.get("/mcp", headers={**forged, **bearer(good)})
        assert r.status_code == 200


async def test_signed_metadata_verifies_and_matches_the_document(
    idp_http: httpx.AsyncClient,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    resource = "https://api.example/mcp"
    metadata = ProtectedResourceMetadata(
        resource,
        [ISSUER],
        scopes_supported=["notes:read"],
        signing_key=key,
        signing_alg="ES256",
        signing_kid="rs-1",
    )
    app = guarded(idp_http, resource, metadata=metadata)
    async with client_for(app) as c:
        doc = (await c.get(f"{WELL_KNOWN}/mcp")).json()
    signed = doc.pop("signed_metadata")
    assert jwt.get_unverified_header(signed)["kid"] == "rs-1"
    claims = jwt.decode(signed, key.public_key(), algorithms=["ES256"])
    assert claims["iss"] == resource
    for name, value in doc.items():
        assert claims[name] == value  # the signed values are the served ones
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(signed, other.public_key(), algorithms=["ES256"])


async def test_several_mounted_resources_each_get_their_own_document(
    idp: IdP, idp_http: httpx.AsyncClient
) -> None:
    inner = Starlette(routes=[Route("/{path:path}", hello)])
    guards = {
        name: ResourceGuard(
            inner,
            issuer=ISSUER,
            resource=f"https://api.example/{name}",
            http_client=idp_http,
            scopes_supported=[f"{name}:read"],
        )
        for name in ("notes", "calendar")
    }
    app = Starlette(
        routes=[
            *metadata_routes(*(g.metadata for g in guards.values() if g.metadata)),
            *(Mount(f"/{name}", app=guard) for name, guard in guards.items()),
        ]
    )
    async with client_for(app) as c:
        for name in guards:
            resource = f"https://api.example/{name}"
            doc = (await c.get(f"{WELL_KNOWN}/{name}")).json()
            assert doc["resource"] == resource
            assert doc["scopes_supported"] == [f"{name}:read"]
            r = await c.get(f"/{name}/x")
            assert parse_bearer_challenge(r.headers["www-authenticate"]) == {
                "resource_metadata": f"https://api.example{WELL_KNOWN}/{name}"
            }
        # A token for one mounted resource is refused by the other (RFC 8707 audience).
        notes = idp.issue_access_token("alice", client_id="c", audience="https://api.example/notes")
        assert (await c.get("/notes/x", headers=bearer(notes))).status_code == 200
        r = await c.get("/calendar/x", headers=bearer(notes))
        assert r.status_code == 401
        assert 'error="invalid_token"' in r.headers["www-authenticate"]


async def test_metadata_routes_serve_documents_with_their_own_keys() -> None:
    doc = ProtectedResourceMetadata(
        "https://api.example/files",
        ["https://idp.example"],
        jwks_uri="https://api.example/files/jwks",
        extra={"resource_policy_uri": "https://api.example/policy"},
    )
    app = Starlette(routes=metadata_routes(doc))
    async with client_for(app) as c:
        body = (await c.get(f"{WELL_KNOWN}/files")).json()
    assert body["jwks_uri"] == "https://api.example/files/jwks"
    assert body["resource_policy_uri"] == "https://api.example/policy"


@pytest.mark.parametrize(
    "resource",
    [
        "http://api.example/mcp",  # http only on loopback
        "https://api.example/mcp#frag",
        "https://api.example/mcp?tenant=1",
        "api.example/mcp",
        "https://user@api.example/mcp",
        'https://api.example/m"cp',
    ],
)
def test_bad_resource_identifiers_are_refused(resource: str) -> None:
    with pytest.raises(ConfigurationError):
        ProtectedResourceMetadata(resource, [ISSUER])


def test_loopback_http_resource_allowed_for_development() -> None:
    doc = ProtectedResourceMetadata("http://127.0.0.1:8000/mcp", [ISSUER])
    assert doc.url == f"http://127.0.0.1:8000{WELL_KNOWN}/mcp"


def test_extra_members_cannot_override_the_resource() -> None:
    with pytest.raises(ConfigurationError):
        ProtectedResourceMetadata(
            "https://api.example", [ISSUER], extra={"resource": "https://evil.example"}
        )
    with pytest.raises(ConfigurationError):
        ProtectedResourceMetadata("https://api.example", [ISSUER], extra={"scopes_supported": []})
