"""Provider-shaped tokens and JWK Sets, as each vendor documents them, and an ASGI app serving
their discovery documents and key sets (reached in-process through httpx.ASGITransport).

Each Vendor cites the documentation its header, claims and JWK Set shapes follow.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import RSAAlgorithm
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

RESOURCE = "https://api.example/items"
NOW = int(time.time())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class SigningKey:
    """An RSA key with a self-signed certificate, for JWKs that carry `x5c` / `x5t`."""

    kid: str
    private: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def certificate_der(self) -> bytes:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.kid)])
        start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=30))
            .sign(self.private, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.DER)

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {"kty": "RSA", "n": jwk["n"], "e": jwk["e"], "kid": self.kid}

    def x509_members(self, *, sha256: bool = False) -> dict[str, Any]:
        der = self.certificate_der()
        members = {
            "x5c": [base64.b64encode(der).decode()],
            "x5t": b64(hashlib.sha1(der).digest()),  # noqa: S324 - the JWK member is SHA-1
        }
        if sha256:
            members["x5t#S256"] = b64(hashlib.sha256(der).digest())
        return members


@dataclass
class Vendor:
    """One provider: its issuer, profile, documented token shapes and JWK Set shape."""

    name: str
    profile: str
    issuer: str
    audience: str
    docs: tuple[str, ...]
    header: dict[str, Any]
    access_claims: dict[str, Any]
    id_claims: dict[str, Any]
    jwks: Callable[[SigningKey], dict[str, Any]]
    expect_client: str
    expect_scopes: list[str]
    expect_roles: list[str]
    jwks_uri: str | None = None
    key: SigningKey = field(default_factory=lambda: SigningKey("k1"))
    # A wrong `typ` header for the ID token when the vendor sets one.
    id_header: dict[str, Any] | None = None

    def sign(self, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        headers = dict(header if header is not None else self.header)
        headers["kid"] = self.key.kid
        headers.setdefault("typ", None)  # PyJWT drops a falsy typ: "no typ" as Okta sends it
        return jwt.encode(claims, self.key.private, algorithm="RS256", headers=headers)

    def access_token(self, **changes: Any) -> str:
        return self.sign({**self.access_claims, **changes})

    def id_token(self, **changes: Any) -> str:
        return self.sign({**self.id_claims, **changes}, self.id_header)


TIMES = {"iat": NOW - 10, "exp": NOW + 600}
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"
ENTRA_API_ID = "6e74172b-be56-4843-9ff4-e66a39bb12e3"  # the API's application (client) id
ENTRA_CLIENT = "e4c9ab4e-bd27-40d5-8459-230ba2a757fb"


def keycloak_jwks(key: SigningKey) -> dict[str, Any]:
    # Keycloak publishes each realm key with alg, use, x5c, x5t and x5t#S256, and an
    # encryption key (use: enc, RSA-OAEP) beside the signing one.
    enc = SigningKey("enc-key")
    return {
        "keys": [
            {**enc.public_jwk(), "alg": "RSA-OAEP", "use": "enc", **enc.x509_members(sha256=True)},
            {**key.public_jwk(), "alg": "RS256", "use": "sig", **key.x509_members(sha256=True)},
        ]
    }


def auth0_jwks(key: SigningKey) -> dict[str, Any]:
    return {"keys": [{**key.public_jwk(), "alg": "RS256", "use": "sig", **key.x509_members()}]}


def entra_jwks(key: SigningKey) -> dict[str, Any]:
    # No `alg`; kid equals x5t; an `issuer` member with the {tenantid} template (v2 keys).
    members = key.x509_members()
    return {
        "keys": [
            {
                **key.public_jwk(),
                "use": "sig",
                **members,
                "issuer": "https://login.microsoftonline.com/{tenantid}/v2.0",
            }
        ]
    }


def plain_jwks(key: SigningKey) -> dict[str, Any]:
    # Okta and Cognito: kty, alg, kid, use, e, n only.
    return {"keys": [{**key.public_jwk(), "alg": "RS256", "use": "sig"}]}


def vendors() -> list[Vendor]:
    keycloak_iss = "https://keycloak.example/realms/demo"
    auth0_iss = "https://dev-tenant.eu.auth0.com/"
    okta_iss = "https://dev-123456.okta.com/oauth2/default"
    cognito_iss = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc123XyZ"
    entra_v1_iss = f"https://sts.windows.net/{TENANT}/"
    entra_v2_iss = f"https://login.microsoftonline.com/{TENANT}/v2.0"
    return [
        Vendor(
            name="keycloak",
            profile="keycloak",
            issuer=keycloak_iss,
            audience=RESOURCE,
            docs=(
                "https://www.keycloak.org/docs/latest/server_admin/#audience-support",
                "https://www.keycloak.org/docs-api/latest/javadocs/org/keycloak/representations/AccessToken.html",
            ),
            header={"alg": "RS256", "typ": "JWT"},
            access_claims={
                **TIMES,
                "jti": "onrtac:0c1d5f1a-62a4-4d26-bb5c-0d2ad3c8d2e4",
                "iss": keycloak_iss,
                "aud": [RESOURCE, "account"],  # an audience mapper adds the API
                "sub": "f1b5c2a0-7e0f-4b5e-9d8a-1a2b3c4d5e6f",
                "typ": "Bearer",
                "azp": "web-app",
                "sid": "3f0e0c4e-1c55-4c0e-9a4c-5d0d2f1b7a11",
                "acr": "1",
                "realm_access": {"roles": ["offline_access", "items-reader"]},
                "resource_access": {"account": {"roles": ["manage-account"]}},
                "scope": "openid profile email items:read",
                "preferred_username": "alice",
            },
            id_claims={
                **TIMES,
                "jti": "ab3c8f2e-5a0d-4c3e-8f1b-2d4e6f8a0b1c",
                "iss": keycloak_iss,
                "aud": RESOURCE,  # a client whose id is the API's own identifier
                "sub": "f1b5c2a0-7e0f-4b5e-9d8a-1a2b3c4d5e6f",
                "typ": "ID",
                "azp": "web-app",
                "sid": "3f0e0c4e-1c55-4c0e-9a4c-5d0d2f1b7a11",
                "preferred_username": "alice",
            },
            jwks=keycloak_jwks,
            expect_client="web-app",
            expect_scopes=["openid", "profile", "email", "items:read"],
            expect_roles=["offline_access", "items-reader"],
        ),
        Vendor(
            name="auth0",
            profile="auth0",
            issuer=auth0_iss,
            audience=RESOURCE,
            docs=(
                "https://auth0.com/docs/secure/tokens/access-tokens/access-token-profiles",
                "https://auth0.com/docs/secure/tokens/id-tokens/id-token-structure",
            ),
            header={"alg": "RS256", "typ": "JWT"},
            access_claims={
                **TIMES,
                "iss": auth0_iss,
                "sub": "auth0|123456",
                "aud": [RESOURCE, "https://dev-tenant.eu.auth0.com/userinfo"],
                "azp": "my_client_id",
                "scope": "openid profile items:read",
                "permissions": ["items:read", "items:write"],
            },
            id_claims={
                **TIMES,
                "iss": auth0_iss,
                "sub": "auth0|123456",
                "aud": "my_client_id",
                "nonce": "n-0S6_WzA2Mj",
                "sid": "abc",
                "name": "Alice",
            },
            jwks=auth0_jwks,
            expect_client="my_client_id",
            expect_scopes=["openid", "profile", "items:read"],
            expect_roles=["items:read", "items:write"],
        ),
        Vendor(
            name="entra-v1",
            profile="entra-v1",
            issuer=entra_v1_iss,
            audience="api://items-api",
            jwks_uri="https://login.microsoftonline.com/common/discovery/keys",
            docs=(
                "https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference",
                "https://learn.microsoft.com/en-us/entra/identity-platform/id-token-claims-reference",
            ),
            header={"alg": "RS256", "typ": "JWT", "x5t": "k1"},
            access_claims={
                **TIMES,
                "nbf": NOW - 10,
                "aud": "api://items-api",
                "iss": entra_v1_iss,
                "appid": ENTRA_CLIENT,
                "appidacr": "1",
                "idp": entra_v1_iss,
                "oid": "00000000-0000-0000-0000-00000000a11c",
                "sub": "l3_roISQU222bULS9yi2k0XpqpOiMz5H3ZACo1GeXA",
                "tid": TENANT,
                "scp": "items.read user_impersonation",
                "ver": "1.0",
            },
            id_claims={
                **TIMES,
                "nbf": NOW - 10,
                "aud": "api://items-api",
                "iss": entra_v1_iss,
                "oid": "00000000-0000-0000-0000-00000000a11c",
                "sub": "l3_roISQU222bULS9yi2k0XpqpOiMz5H3ZACo1GeXA",
                "tid": TENANT,
                "unique_name": "alice@contoso.example",
                "ver": "1.0",
            },
            jwks=entra_jwks,
            expect_client=ENTRA_CLIENT,
            expect_scopes=["items.read", "user_impersonation"],
            expect_roles=[],
        ),
        Vendor(
            name="entra-v2",
            profile="entra",
            issuer=entra_v2_iss,
            audience=ENTRA_API_ID,
            jwks_uri="https://login.microsoftonline.com/common/discovery/v2.0/keys",
            docs=(
                "https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference",
                "https://learn.microsoft.com/en-us/entra/identity-platform/id-token-claims-reference",
            ),
            header={"alg": "RS256", "typ": "JWT"},
            access_claims={
                **TIMES,
                "nbf": NOW - 10,
                "aud": ENTRA_API_ID,
                "iss": entra_v2_iss,
                "azp": ENTRA_CLIENT,
                "azpacr": "0",
                "oid": "00000000-0000-0000-0000-00000000a11c",
                "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
                "tid": TENANT,
                "scp": "items.read",
                "roles": ["Items.Admin"],
                "ver": "2.0",
            },
            id_claims={
                # The same app registration as client and API: aud is the same GUID.
                **TIMES,
                "nbf": NOW - 10,
                "aud": ENTRA_API_ID,
                "iss": entra_v2_iss,
                "oid": "00000000-0000-0000-0000-00000000a11c",
                "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
                "tid": TENANT,
                "roles": ["Items.Admin"],
                "preferred_username": "alice@contoso.example",
                "ver": "2.0",
            },
            jwks=entra_jwks,
            expect_client=ENTRA_CLIENT,
            expect_scopes=["items.read"],
            expect_roles=["Items.Admin"],
        ),
        Vendor(
            name="okta",
            profile="okta",
            issuer=okta_iss,
            audience="api://default",
            docs=(
                "https://developer.okta.com/docs/api/openapi/okta-oauth/guides/overview/#access-token-payload",
                "https://developer.okta.com/docs/api/openapi/okta-oauth/guides/overview/#id-token-payload",
            ),
            header={"alg": "RS256"},
            access_claims={
                **TIMES,
                "ver": 1,
                "jti": "AT.MNAoEQ_jbKqoinrQo1D0XKjMX28U5d7ZszBceot7-Ts",
                "iss": okta_iss,
                "aud": "api://default",
                "sub": "alice@example.com",
                "cid": "0oa1b2c3d4EXAMPLE",
                "uid": "00u1b2c3d4EXAMPLE",
                "scp": ["openid", "items:read"],
                "auth_time": NOW - 60,
                "groups": ["Everyone", "Items"],
            },
            id_claims={
                **TIMES,
                "ver": 1,
                "jti": "ID.radCQMOQUmyvcTBmmIL0J6BaS60apUEiC7-vI7pOmkw",
                "iss": okta_iss,
                "aud": "api://default",
                "sub": "00u1b2c3d4EXAMPLE",
                "amr": ["pwd"],
                "idp": "00o1b2c3d4EXAMPLE",
                "auth_time": NOW - 60,
            },
            jwks=plain_jwks,
            expect_client="0oa1b2c3d4EXAMPLE",
            expect_scopes=["openid", "items:read"],
            expect_roles=["Everyone", "Items"],
        ),
        Vendor(
            name="cognito",
            profile="cognito",
            issuer=cognito_iss,
            audience="1example23456789",  # the app client id: Cognito access tokens have no aud
            docs=(
                "https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-the-access-token.html",
                "https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-the-id-token.html",
            ),
            header={"alg": "RS256"},
            access_claims={
                **TIMES,
                "sub": "aaaaaaaa-bbbb-cccc-dddd-example",
                "cognito:groups": ["admin"],
                "iss": cognito_iss,
                "version": 2,
                "client_id": "1example23456789",
                "origin_jti": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
                "event_id": "bbbbbbbb-cccc-dddd-eeee-ffffffffffff",
                "token_use": "access",
                "scope": "phone openid profile items/read email",
                "auth_time": NOW - 60,
                "jti": "cccccccc-dddd-eeee-ffff-aaaaaaaaaaaa",
                "username": "alice",
            },
            id_claims={
                **TIMES,
                "sub": "aaaaaaaa-bbbb-cccc-dddd-example",
                "cognito:groups": ["admin"],
                "email_verified": True,
                "iss": cognito_iss,
                "cognito:username": "alice",
                "origin_jti": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
                "aud": "1example23456789",
                "event_id": "bbbbbbbb-cccc-dddd-eeee-ffffffffffff",
                "token_use": "id",
                "auth_time": NOW - 60,
                "jti": "dddddddd-eeee-ffff-aaaa-bbbbbbbbbbbb",
                "email": "alice@example.com",
            },
            jwks=plain_jwks,
            expect_client="1example23456789",
            expect_scopes=["phone", "openid", "profile", "items/read", "email"],
            expect_roles=["admin"],
        ),
    ]


class VendorApp:
    """Serves each vendor's OpenID discovery document and JWK Set, counting requests."""

    def __init__(self, served: list[Vendor]) -> None:
        self.calls: Counter[str] = Counter()
        self.failing: set[str] = set()  # issuers whose documents answer 503
        self._docs: dict[str, tuple[Vendor, dict[str, Any]]] = {}
        for vendor in served:
            jwks_uri = vendor.jwks_uri or vendor.issuer.rstrip("/") + "/protocol/keys"
            self._docs[vendor.issuer.rstrip("/") + "/.well-known/openid-configuration"] = (
                vendor,
                {"issuer": vendor.issuer, "jwks_uri": jwks_uri},
            )
            self._docs[jwks_uri] = (vendor, vendor.jwks(vendor.key))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        url = f"https://{request.headers['host']}{request.url.path}"
        self.calls[url] += 1
        found = self._docs.get(url)
        response: Response
        if found is None:
            response = JSONResponse({"error": "not_found"}, status_code=404)
        elif found[0].issuer in self.failing:
            response = JSONResponse({"error": "temporarily_unavailable"}, status_code=503)
        else:
            response = JSONResponse(found[1])
        await response(scope, receive, send)

    @property
    def total(self) -> int:
        return sum(self.calls.values())
