"""RFC 9449's and RFC 7638's printed examples, reproduced byte for byte through the public API."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from rs_guard import AccessToken, ResourceGuard
from rs_guard.dpop import (
    DPoPNonces,
    DPoPVerifier,
    access_token_hash,
    dpop_challenge,
    jwk_thumbprint,
)
from tests.dpop.conftest import bound_token, client, dpop_headers, protected
from tests.support import Clock

pytestmark = pytest.mark.anyio


def unwrap(text: str) -> str:
    """Undo RFC 8792 single-backslash line wrapping ("\\" + newline + leading spaces)."""
    lines = text.strip().split("\n")
    out = ""
    for line in lines:
        line = line.strip()
        out += line[:-1] if line.endswith("\\") else line
    return out


# RFC 9449 Figure 5 (the token request's DPoP header; the same proof as Figure 2).
FIGURE_5_PROOF = unwrap(r"""
eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6Ik\
 VDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCR\
 nMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JE\
 QSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIj\
 oiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwia\
 WF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg\
 4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg
""")

# RFC 9449 Figure 13 (a protected resource request's DPoP header).
FIGURE_13_PROOF = unwrap(r"""
eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6Ik\
 VDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCR\
 nMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JE\
 QSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIj\
 oiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0Z\
 WRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNF\
 c05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9RP35yRqzhrtNP86L-Ey71E\
 OptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA
""")

FIGURE_6_TOKEN = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
EXAMPLE_JWK = {
    "kty": "EC",
    "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
    "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
    "crv": "P-256",
}
EXAMPLE_JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"  # Figures 9 and 11

# RFC 7638 §3.1.
RFC7638_JWK = {
    "kty": "RSA",
    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
    "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2"
    "QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh"
    "6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}


def segment(proof: str, index: int) -> bytes:
    part = proof.split(".")[index]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_rfc7638_thumbprint() -> None:
    assert jwk_thumbprint(RFC7638_JWK) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_rfc9449_example_key_thumbprint() -> None:
    assert jwk_thumbprint(EXAMPLE_JWK) == EXAMPLE_JKT


def test_figure_4_is_the_decoded_figure_5_proof() -> None:
    assert segment(FIGURE_5_PROOF, 0) == (
        b'{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC",'
        b'"x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",'
        b'"y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA","crv":"P-256"}}'
    )
    assert segment(FIGURE_5_PROOF, 1) == (
        b'{"jti":"-BwC3ESc6acc2lTc","htm":"POST",'
        b'"htu":"https://server.example.com/token","iat":1562262616}'
    )


def test_figure_14_ath_is_the_hash_of_the_figure_6_token() -> None:
    assert access_token_hash(FIGURE_6_TOKEN) == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    assert segment(FIGURE_13_PROOF, 1) == (
        b'{"jti":"e1j3V_bKic8-LAEB","htm":"GET",'
        b'"htu":"https://resource.example.org/protectedresource","iat":1562262618,'
        b'"ath":"fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"}'
    )


async def test_figure_5_proof_verifies_at_the_token_endpoint() -> None:
    verifier = DPoPVerifier(clock=lambda: 1562262616)
    proof = await verifier.verify(
        FIGURE_5_PROOF, method="POST", uri="https://server.example.com/token"
    )
    assert proof.jkt == EXAMPLE_JKT
    assert proof.jti == "-BwC3ESc6acc2lTc"


class Figure11:
    """The introspection answer of Figure 11 for the Figure 6 token (an opaque token)."""

    async def validate(self, token: str) -> AccessToken:
        assert token == FIGURE_6_TOKEN
        return AccessToken(
            {
                "active": True,
                "sub": "someone@example.com",
                "iss": "https://server.example.com",
                "nbf": 1562262611,
                "exp": 1562266216,
                "cnf": {"jkt": EXAMPLE_JKT},
            },
            raw=token,
        )


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"{request.auth.subject} {request.auth.jkt}")


def figure_13_service(**dpop: Any) -> ResourceGuard:
    app = Starlette(routes=[Route("/protectedresource", hello)])
    return ResourceGuard(
        app,
        issuer="https://server.example.com",
        resource="https://resource.example.org/protectedresource",
        validator=Figure11(),
        serve_metadata=False,
        dpop=DPoPVerifier(clock=lambda: 1562262618, **dpop),
    )


async def test_figure_13_request_is_accepted_once() -> None:
    guard = figure_13_service()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=guard), base_url="https://resource.example.org"
    ) as http:
        headers = {"Authorization": f"DPoP {FIGURE_6_TOKEN}", "DPoP": FIGURE_13_PROOF}
        first = await http.get("/protectedresource", headers=headers)
        assert first.status_code == 200
        assert first.text == f"someone@example.com {EXAMPLE_JKT}"
        again = await http.get("/protectedresource", headers=headers)
        assert again.status_code == 401
        assert again.headers["www-authenticate"] == (
            'Bearer, DPoP error="invalid_dpop_proof", '
            'error_description="The DPoP proof was already used", '
            'algs="ES256 ES384 PS256 RS256 EdDSA"'
        )


async def test_figure_15_challenge_without_authentication() -> None:
    guard = figure_13_service(policy="required", algorithms=("ES256", "PS256"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=guard), base_url="https://resource.example.org"
    ) as http:
        answer = await http.get("/protectedresource")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'DPoP algs="ES256 PS256"'


async def test_figure_16_invalid_key_binding(idp: Any, clock: Clock) -> None:
    from rs_guard.dpop import DPoPKey

    guard = protected(
        idp,
        clock,
        serve_metadata=False,
        dpop=DPoPVerifier(policy="required", algorithms=("ES256",), clock=clock),
    )
    holder, thief = DPoPKey(), DPoPKey()
    token = bound_token(idp, holder.jkt)
    async with client(guard) as http:
        answer = await http.get("/whoami", headers=dpop_headers(thief, token, clock))
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == (
        'DPoP error="invalid_token", error_description="Invalid DPoP key binding", algs="ES256"'
    )


@pytest.fixture
def both(idp: Any, clock: Clock) -> ResourceGuard:
    """A resource taking Bearer and DPoP (Figures 17 to 19)."""
    return protected(
        idp,
        clock,
        serve_metadata=False,
        dpop=DPoPVerifier(algorithms=("ES256", "PS256"), clock=clock),
    )


async def test_figure_17_both_schemes_without_authentication(both: ResourceGuard) -> None:
    async with client(both) as http:
        answer = await http.get("/whoami")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Bearer, DPoP algs="ES256 PS256"'


async def test_figure_18_invalid_bearer_token(both: ResourceGuard) -> None:
    async with client(both) as http:
        answer = await http.get("/whoami", headers={"Authorization": "Bearer INVALID_TOKEN"})
    assert answer.status_code == 401
    # Figure 18's shape; the description is rs_guard's own (the RFC's is an example).
    assert answer.headers["www-authenticate"] == (
        'Bearer error="invalid_token", error_description="The access token is invalid", '
        'DPoP algs="ES256 PS256"'
    )


async def test_figure_19_ambiguous_authentication(both: ResourceGuard) -> None:
    async with client(both) as http:
        answer = await http.get(
            "/whoami",
            headers=[
                ("Authorization", f"Bearer {FIGURE_6_TOKEN}"),
                ("Authorization", f"DPoP {FIGURE_6_TOKEN}"),
            ],
        )
    assert answer.status_code == 400
    # Figure 19's shape, with rs_guard's own description.
    assert answer.headers["www-authenticate"] == (
        'Bearer error="invalid_request", '
        'error_description="More than one Authorization header", '
        'DPoP algs="ES256 PS256", error="invalid_request", '
        'error_description="More than one Authorization header"'
    )


async def test_figure_24_nonce_required(idp: Any, clock: Clock) -> None:
    from rs_guard.dpop import DPoPKey

    nonces = DPoPNonces(b"0123456789abcdef", clock=clock)
    guard = protected(
        idp,
        clock,
        serve_metadata=False,
        dpop=DPoPVerifier(policy="required", nonces=nonces, clock=clock),
    )
    key = DPoPKey()
    token = bound_token(idp, key.jkt)
    async with client(guard) as http:
        answer = await http.get("/whoami", headers=dpop_headers(key, token, clock))
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == (
            'DPoP error="use_dpop_nonce", '
            'error_description="Resource server requires nonce in DPoP proof"'
        )
        nonce = answer.headers["dpop-nonce"]
        assert nonce == nonces.current()
        retried = await http.get("/whoami", headers=dpop_headers(key, token, clock, nonce=nonce))
        assert retried.status_code == 200


def test_dpop_challenge_renders_figure_16_order() -> None:
    assert dpop_challenge("invalid_token", "Invalid DPoP key binding", algs="ES256") == (
        'DPoP error="invalid_token", error_description="Invalid DPoP key binding", algs="ES256"'
    )
