"""rs_guard against a certified OpenID Provider it did not write: panva's node-oidc-provider.

Everything runs on loopback and nothing is mocked: the provider is the npm package, started by
the launcher (tests/interop/node/), and rs_guard reaches it only through its public API and its
own HTTP client, discovering the provider's metadata and keys as it would in production.
"""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

import rs_guard
from rs_guard import AccessToken, IntrospectionValidator, InvalidToken
from rs_guard.dpop import DPoPKey, DPoPVerifier
from rs_guard.introspection import Introspection

from .conftest import (
    ALGORITHMS,
    ED25519_RESOURCE,
    JWT_RESOURCES,
    OPAQUE_RESOURCE,
    OTHER_RESOURCE,
    REDIRECT_URI,
    RS_CLIENT,
    SCOPES,
    SERVICE,
    SHORT_RESOURCE,
    WEBAPP,
    GuardClient,
    ProviderFactory,
    provider_config,
)
from .nodejs import MIN_NODE_MAJOR, NODE_DIR
from .oidc_provider import (
    OidcProvider,
    client_credentials,
    code_flow,
    jws_header,
    jwt_claims,
    private_jwk,
    revoke,
)

pytestmark = pytest.mark.anyio


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def challenge_error(answer: httpx.Response) -> str | None:
    """The `error` of a Bearer challenge (enough for the codes RFC 6750 §3.1 defines)."""
    header: str = answer.headers.get("www-authenticate", "")
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower().endswith("error"):
            return value.strip().strip('"')
    return None


# ----- the provider itself ------------------------------------------------------------------------


def test_provider_runs_the_pinned_versions(oidc_provider: OidcProvider) -> None:
    """The suite's Node is 22+ whatever the system has, and the OP is the locked release."""
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    assert (
        oidc_provider.info["oidc_provider"]
        == (lock["packages"]["node_modules/oidc-provider"]["version"])
    )
    assert int(oidc_provider.info["node"].lstrip("v").split(".")[0]) >= MIN_NODE_MAJOR


async def test_discovery_of_the_real_metadata(
    oidc_provider: OidcProvider, guarded: GuardClient, http: httpx.AsyncClient
) -> None:
    """rs_guard reads the OP's own discovery document (RFC 8414 / OIDC Discovery): its issuer
    matches exactly, and the JWKS and introspection endpoints it names are the ones used."""
    meta = oidc_provider.metadata()
    assert meta["issuer"] == oidc_provider.issuer
    for name in ("jwks_uri", "token_endpoint", "introspection_endpoint", "revocation_endpoint"):
        assert meta[name].startswith(oidc_provider.issuer + "/"), name
    server_class = getattr(rs_guard, "AuthorizationServer", None)
    if server_class is not None:  # the shared discovery object of issue #11, once merged
        async with server_class(oidc_provider.issuer, http_client=http) as server:
            assert await server.endpoint("jwks_uri") == meta["jwks_uri"]
            assert (
                await server.endpoint("introspection_endpoint") == (meta["introspection_endpoint"])
            )
    # The guard was given the issuer only: the accepted token proves it found the keys.
    resource = JWT_RESOURCES["ES256"]
    client = guarded(oidc_provider.issuer, resource)
    token = client_credentials(oidc_provider, *SERVICE, resource=resource, scope="items:read")
    answer = await client.get("/whoami", headers=bearer(token["access_token"]))
    assert answer.status_code == 200, answer.headers
    # RFC 9728: the resource's metadata names the real OP as its authorization server.
    prm = await client.get("/.well-known/oauth-protected-resource")
    assert prm.status_code == 200
    assert prm.json()["authorization_servers"] == [oidc_provider.issuer]
    assert prm.json()["resource"] == resource


# ----- RFC 9068 JWT access tokens via resource indicators -----------------------------------------


@pytest.mark.parametrize("alg", ALGORITHMS)
async def test_client_credentials_jwt_accepted(
    oidc_provider: OidcProvider, guarded: GuardClient, op_keys: dict[str, Any], alg: str
) -> None:
    resource = JWT_RESOURCES[alg]
    token = client_credentials(oidc_provider, *SERVICE, resource=resource, scope=SCOPES)
    access = token["access_token"]
    # What the OP sent: an RFC 9068 token signed with this algorithm's key.
    assert jws_header(access) == {"alg": alg, "typ": "at+jwt", "kid": op_keys[alg]["kid"]}
    client = guarded(oidc_provider.issuer, resource)
    answer = await client.get("/whoami", headers=bearer(access))
    assert answer.status_code == 200, answer.headers
    assert answer.json() == {
        "sub": SERVICE[0],  # RFC 9068 §2.2: no resource owner, so `sub` names the client
        "client_id": SERVICE[0],
        "scopes": SCOPES.split(),
        "issuer": oidc_provider.issuer,
        "audience": [resource],
    }
    written = await client.post("/write", headers=bearer(access))
    assert written.status_code == 200


@pytest.mark.parametrize("alg", ALGORITHMS)
async def test_code_flow_with_pkce_jwt_accepted(
    oidc_provider: OidcProvider, guarded: GuardClient, op_keys: dict[str, Any], alg: str
) -> None:
    resource = JWT_RESOURCES[alg]
    token = code_flow(
        oidc_provider,
        WEBAPP,
        REDIRECT_URI,
        resource=resource,
        scope="openid items:read",
        user=f"alice-{alg.lower()}",
    )
    access = token["access_token"]
    assert jws_header(access)["alg"] == alg
    client = guarded(oidc_provider.issuer, resource)
    answer = await client.get("/whoami", headers=bearer(access))
    assert answer.status_code == 200, answer.headers
    body = answer.json()
    assert body["sub"] == f"alice-{alg.lower()}"
    assert body["client_id"] == WEBAPP
    # The OP keeps only the resource's own scopes in its token (`openid` is for userinfo).
    assert body["scopes"] == ["items:read"]
    # Read-only: the write endpoint answers 403 insufficient_scope, as RFC 6750 §3.1 says.
    written = await client.post("/write", headers=bearer(access))
    assert written.status_code == 403
    assert challenge_error(written) == "insufficient_scope"


async def test_id_token_of_the_real_op_refused(
    oidc_provider: OidcProvider, guarded: GuardClient
) -> None:
    """The ID token from the same login is not an access token (RFC 9068 §4, RFC 8725 §3.11)."""
    resource = JWT_RESOURCES["ES256"]
    token = code_flow(
        oidc_provider, WEBAPP, REDIRECT_URI, resource=resource, scope="openid", user="bob"
    )
    id_token = token["id_token"]
    assert jws_header(id_token).get("typ") != "at+jwt"
    client = guarded(oidc_provider.issuer, resource)
    answer = await client.get("/whoami", headers=bearer(id_token))
    assert answer.status_code == 401
    assert challenge_error(answer) == "invalid_token"


@pytest.mark.parametrize("other", [OTHER_RESOURCE, JWT_RESOURCES["RS256"]])
async def test_token_for_another_resource_refused(
    oidc_provider: OidcProvider, guarded: GuardClient, other: str
) -> None:
    """A token the OP issued, correctly signed, but for another audience: 401 invalid_token."""
    token = client_credentials(oidc_provider, *SERVICE, resource=other, scope="items:read")
    assert jwt_claims(token["access_token"])["aud"] == other
    client = guarded(oidc_provider.issuer, JWT_RESOURCES["ES256"])
    answer = await client.get("/whoami", headers=bearer(token["access_token"]))
    assert answer.status_code == 401
    assert challenge_error(answer) == "invalid_token"


async def test_fully_specified_ed25519_accepted_when_allowed(
    oidc_provider: OidcProvider, guarded: GuardClient
) -> None:
    """The OP signs with `alg: Ed25519` (RFC 9864) when told to; a guard allowing it accepts."""
    token = client_credentials(
        oidc_provider, *SERVICE, resource=ED25519_RESOURCE, scope="items:read"
    )
    assert jws_header(token["access_token"])["alg"] == "Ed25519"
    client = guarded(
        oidc_provider.issuer, ED25519_RESOURCE, algorithms=("ES256", "EdDSA", "Ed25519")
    )
    answer = await client.get("/whoami", headers=bearer(token["access_token"]))
    assert answer.status_code == 200, answer.headers


async def test_fully_specified_ed25519_accepted_by_default(
    oidc_provider: OidcProvider, guarded: GuardClient
) -> None:
    token = client_credentials(
        oidc_provider, *SERVICE, resource=ED25519_RESOURCE, scope="items:read"
    )
    assert jws_header(token["access_token"])["alg"] == "Ed25519"
    client = guarded(oidc_provider.issuer, ED25519_RESOURCE)
    answer = await client.get("/whoami", headers=bearer(token["access_token"]))
    assert answer.status_code == 200, answer.headers


async def test_expired_token_refused(oidc_provider: OidcProvider, guarded: GuardClient) -> None:
    """The OP's `exp` is honoured, by the verified-token cache too: accepted while the token
    runs, 401 invalid_token once it has expired (no leeway)."""
    token = client_credentials(oidc_provider, *SERVICE, resource=SHORT_RESOURCE, scope=SCOPES)
    claims = jwt_claims(token["access_token"])
    # `iat` is whole seconds, so a two-second token has more than one second left here.
    assert claims["exp"] - claims["iat"] == 2
    client = guarded(oidc_provider.issuer, SHORT_RESOURCE, leeway=0)
    first = await client.get("/whoami", headers=bearer(token["access_token"]))
    assert time.time() < claims["exp"], "too slow to test expiry"
    await anyio.sleep(max(0.0, claims["exp"] - time.time()) + 0.1)
    late = await client.get("/whoami", headers=bearer(token["access_token"]))
    assert first.status_code == 200, first.headers
    assert late.status_code == 401
    assert challenge_error(late) == "invalid_token"


# ----- opaque tokens through RFC 7662 introspection ---------------------------------------------


def introspection_options() -> dict[str, Any]:
    return {"introspection": Introspection(*RS_CLIENT)}


async def test_opaque_client_credentials_token_introspected(
    oidc_provider: OidcProvider, guarded: GuardClient
) -> None:
    token = client_credentials(oidc_provider, *SERVICE, resource=OPAQUE_RESOURCE, scope=SCOPES)
    access = token["access_token"]
    assert access.count(".") != 2  # opaque: only the OP can say what it means
    client = guarded(oidc_provider.issuer, OPAQUE_RESOURCE, **introspection_options())
    answer = await client.get("/whoami", headers=bearer(access))
    assert answer.status_code == 200, answer.headers
    assert answer.json()["client_id"] == SERVICE[0]
    assert answer.json()["scopes"] == SCOPES.split()
    assert answer.json()["audience"] == [OPAQUE_RESOURCE]


async def test_opaque_code_flow_token_introspected(
    oidc_provider: OidcProvider, guarded: GuardClient
) -> None:
    token = code_flow(
        oidc_provider, WEBAPP, REDIRECT_URI, resource=OPAQUE_RESOURCE, scope=SCOPES, user="carol"
    )
    client = guarded(oidc_provider.issuer, OPAQUE_RESOURCE, **introspection_options())
    answer = await client.get("/whoami", headers=bearer(token["access_token"]))
    assert answer.status_code == 200, answer.headers
    assert answer.json()["sub"] == "carol"
    assert answer.json()["client_id"] == WEBAPP


async def test_introspection_validator_directly(
    oidc_provider: OidcProvider, http: httpx.AsyncClient
) -> None:
    """IntrospectionValidator on its own, pointed at the endpoint the OP advertises."""
    meta = oidc_provider.metadata()
    validator = IntrospectionValidator(
        issuer=oidc_provider.issuer,
        audience=OPAQUE_RESOURCE,
        client_id=RS_CLIENT[0],
        client_secret=RS_CLIENT[1],
        introspection_endpoint=meta["introspection_endpoint"],
        http_client=http,
        cache_ttl=0,  # every validation asks the OP, so revocation shows at once
    )
    token = client_credentials(oidc_provider, *SERVICE, resource=OPAQUE_RESOURCE, scope=SCOPES)
    access = await validator.validate(token["access_token"])
    assert isinstance(access, AccessToken)
    assert access.client_id == SERVICE[0]
    assert access.issuer == oidc_provider.issuer
    assert access.audience == (OPAQUE_RESOURCE,)
    revoke(oidc_provider, *SERVICE, token["access_token"])
    with pytest.raises(InvalidToken) as info:
        await validator.validate(token["access_token"])
    assert info.value.reason == "inactive"


async def test_revoked_token_refused_through_introspection(
    oidc_provider: OidcProvider, guarded: GuardClient
) -> None:
    token = client_credentials(oidc_provider, *SERVICE, resource=OPAQUE_RESOURCE, scope=SCOPES)
    revoke(oidc_provider, *SERVICE, token["access_token"])
    client = guarded(oidc_provider.issuer, OPAQUE_RESOURCE, **introspection_options())
    answer = await client.get("/whoami", headers=bearer(token["access_token"]))
    assert answer.status_code == 401
    assert challenge_error(answer) == "invalid_token"


async def test_opaque_token_for_another_resource_refused(
    oidc_provider: OidcProvider, guarded: GuardClient
) -> None:
    """Introspection says `active` but names another audience: the guard still refuses."""
    token = client_credentials(oidc_provider, *SERVICE, resource=OPAQUE_RESOURCE, scope=SCOPES)
    client = guarded(oidc_provider.issuer, "https://api.test/elsewhere", **introspection_options())
    answer = await client.get("/whoami", headers=bearer(token["access_token"]))
    assert answer.status_code == 401
    assert challenge_error(answer) == "invalid_token"


async def test_one_guard_for_jwt_and_opaque_tokens(
    oidc_provider: OidcProvider, guarded: GuardClient
) -> None:
    """A resource known to the OP under two indicators (JWT and opaque) behind one guard."""
    client = guarded(
        oidc_provider.issuer,
        JWT_RESOURCES["ES256"],
        audience=[JWT_RESOURCES["ES256"], OPAQUE_RESOURCE],
        **introspection_options(),
    )
    for resource in (JWT_RESOURCES["ES256"], OPAQUE_RESOURCE):
        token = client_credentials(oidc_provider, *SERVICE, resource=resource, scope=SCOPES)
        answer = await client.get("/whoami", headers=bearer(token["access_token"]))
        assert answer.status_code == 200, (resource, answer.headers)
        assert answer.json()["audience"] == [resource]


async def test_userinfo_token_refused(
    oidc_provider: OidcProvider, guarded: GuardClient, http: httpx.AsyncClient
) -> None:
    """Without a resource indicator the OP issues a token for its own userinfo endpoint; it is
    active at introspection but names no audience of this resource: 401 invalid_token."""
    token = code_flow(
        oidc_provider, WEBAPP, REDIRECT_URI, resource=None, scope="openid", user="dave"
    )
    userinfo = await http.get(
        oidc_provider.metadata()["userinfo_endpoint"], headers=bearer(token["access_token"])
    )
    assert userinfo.status_code == 200 and userinfo.json()["sub"] == "dave"
    client = guarded(oidc_provider.issuer, OPAQUE_RESOURCE, **introspection_options())
    answer = await client.get("/whoami", headers=bearer(token["access_token"]))
    assert answer.status_code == 401
    assert challenge_error(answer) == "invalid_token"


# ----- key rotation -------------------------------------------------------------------------------


def rotation_config(keys: list[dict[str, Any]]) -> dict[str, Any]:
    config = provider_config(keys)
    config["resources"] = {JWT_RESOURCES["ES256"]: {"scope": SCOPES, "alg": "ES256"}}
    # Only EC keys here: the OP's default ID token algorithm (RS256) would have no key.
    config["provider"] = {"clientDefaults": {"id_token_signed_response_alg": "ES256"}}
    return config


class RotationRefused(AssertionError):
    """The token signed with the new key was refused."""


async def _rotate(
    fresh_provider: ProviderFactory, guarded: GuardClient, **guard_options: Any
) -> None:
    """The OP restarts with a new key first in its JWKS (it signs) and the old one still
    published (RFC 7517 §5; the rotation order the oidc-provider docs recommend)."""
    old_key, new_key = private_jwk("ES256", "es-old"), private_jwk("ES256", "es-new")
    op = fresh_provider(rotation_config([old_key]))
    resource = JWT_RESOURCES["ES256"]
    client = guarded(op.issuer, resource, **guard_options)
    before = client_credentials(op, *SERVICE, resource=resource, scope="items:read")
    assert jws_header(before["access_token"])["kid"] == "es-old"
    assert (await client.get("/whoami", headers=bearer(before["access_token"]))).status_code == 200

    op.restart(rotation_config([new_key, old_key]))
    after = client_credentials(op, *SERVICE, resource=resource, scope="items:read")
    assert jws_header(after["access_token"])["kid"] == "es-new"
    answer = await client.get("/whoami", headers=bearer(after["access_token"]))
    if answer.status_code != 200:
        raise RotationRefused(f"{answer.status_code} {answer.headers.get('www-authenticate')}")
    # The token signed before the rotation is still good: its key is still published.
    again = await client.get("/whoami", headers=bearer(before["access_token"]))
    assert again.status_code == 200


async def test_key_rotation_accepted(fresh_provider: ProviderFactory, guarded: GuardClient) -> None:
    """With the unknown-kid refetch allowed at once, the new key is fetched and used."""
    await _rotate(fresh_provider, guarded, jwks_cooldown=0)


async def test_key_rotation_accepted_within_default_cooldown(
    fresh_provider: ProviderFactory, guarded: GuardClient
) -> None:
    """#12: the guard's first fetch starts no cooldown, so the OP's new key is fetched at once."""
    await _rotate(fresh_provider, guarded)


# ----- sender-constrained tokens (RFC 9449, issue #17) -----------------------------------------


async def test_dpop_bound_token_as_bearer_refused(
    oidc_provider: OidcProvider, guarded: GuardClient
) -> None:
    resource = JWT_RESOURCES["ES256"]
    token = client_credentials(
        oidc_provider,
        *SERVICE,
        resource=resource,
        scope="items:read",
        dpop_key=ec.generate_private_key(ec.SECP256R1()),
    )
    assert token["token_type"] == "DPoP"
    assert "jkt" in jwt_claims(token["access_token"])["cnf"]
    client = guarded(oidc_provider.issuer, resource)
    answer = await client.get("/whoami", headers=bearer(token["access_token"]))
    assert answer.status_code == 401


def _dpop_token(op: OidcProvider, key: DPoPKey, resource: str) -> str:
    """A DPoP-bound token from the OP, asked for with `key`'s proof (RFC 9449 §5)."""
    token = client_credentials(
        op, *SERVICE, resource=resource, scope="items:read", dpop_key=key.private_key
    )
    assert token["token_type"] == "DPoP"
    access: str = token["access_token"]
    return access


def _with_proof(key: DPoPKey, token: str, method: str = "GET", url: str = "") -> dict[str, str]:
    return {
        "Authorization": f"DPoP {token}",
        "DPoP": key.proof(method, url or "https://api.test/whoami", access_token=token),
    }


async def test_dpop_bound_token_accepted_with_its_proof_only(
    oidc_provider: OidcProvider, guarded: GuardClient
) -> None:
    resource = JWT_RESOURCES["ES256"]
    key = DPoPKey()
    token = _dpop_token(oidc_provider, key, resource)
    assert jwt_claims(token)["cnf"]["jkt"] == key.jkt
    client = guarded(oidc_provider.issuer, resource, dpop=DPoPVerifier())
    answer = await client.get("/whoami", headers=_with_proof(key, token))
    assert answer.status_code == 200, answer.headers
    refused = {
        "no proof": {"Authorization": f"DPoP {token}"},
        "as bearer": bearer(token),
        "another key": _with_proof(DPoPKey(), token),
        "another URL": _with_proof(key, token, url="https://api.test/write"),
        "another method": _with_proof(key, token, method="POST"),
    }
    for what, headers in refused.items():
        answer = await client.get("/whoami", headers=headers)
        assert answer.status_code == 401, what
        assert "DPoP" in answer.headers["www-authenticate"], what


async def test_opaque_dpop_bound_token_binding_from_introspection(
    oidc_provider: OidcProvider, guarded: GuardClient
) -> None:
    key = DPoPKey()
    token = _dpop_token(oidc_provider, key, OPAQUE_RESOURCE)
    assert token.count(".") != 2
    client = guarded(
        oidc_provider.issuer, OPAQUE_RESOURCE, dpop=DPoPVerifier(), **introspection_options()
    )
    assert (await client.get("/whoami", headers=_with_proof(key, token))).status_code == 200
    answer = await client.get("/whoami", headers=_with_proof(DPoPKey(), token))
    assert answer.status_code == 401
    assert 'error_description="Invalid DPoP key binding"' in answer.headers["www-authenticate"]
