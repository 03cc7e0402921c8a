"""The JWS examples of RFC 7515 (Appendix A.3, ES256) and RFC 8037 (Appendix A.4, Ed25519),
verified by the one JWS pipeline (`JWSVerifier`, `VerificationKey`) byte for byte."""

from __future__ import annotations

import pytest

from rs_guard import InvalidToken
from rs_guard._jws import JWSVerifier, b64url_decode
from rs_guard.keys import VerificationKey, parse_jwk

pytestmark = pytest.mark.anyio

# RFC 7515 Appendix A.3: header {"alg":"ES256"}, the A.1 payload (CRLF and spaces inside).
A3_HEADER = "eyJhbGciOiJFUzI1NiJ9"
A3_PAYLOAD = (
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
)
A3_SIGNATURE = (
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
)
A3_JWK = {
    "kty": "EC",
    "crv": "P-256",
    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
    "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
}
# RFC 8037 Appendix A.4: header {"alg":"EdDSA"}, payload "Example of Ed25519 signing".
A4_INPUT = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
A4_SIGNATURE = (
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)
A4_JWK = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}


class OneKey:
    def __init__(self, key: VerificationKey) -> None:
        self.key = key

    async def get_key(self, kid: str | None, alg: str) -> VerificationKey:
        return self.key


def a3_verifier() -> JWSVerifier:
    key = parse_jwk(A3_JWK)
    assert key is not None
    # The example has no `typ`: a verifier that accepts untyped tokens.
    return JWSVerifier(algorithms=["ES256"], types=[None], keys=OneKey(key), max_bytes=4096)


async def test_rfc7515_a3_es256_example_verifies() -> None:
    header, claims, _ = await a3_verifier().verify(f"{A3_HEADER}.{A3_PAYLOAD}.{A3_SIGNATURE}")
    assert header == {"alg": "ES256"}
    assert claims == {"iss": "joe", "exp": 1300819380, "http://example.com/is_root": True}


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        # r changed in its first byte: a valid encoding of another signature.
        (f"{A3_HEADER}.{A3_PAYLOAD}.E{A3_SIGNATURE[1:]}", "bad_signature"),
        (f"{A3_HEADER}.{A3_PAYLOAD}.{A3_SIGNATURE}==", "malformed"),  # padded
        (f"{A3_HEADER}.{A3_PAYLOAD}.{A3_SIGNATURE[:-2]}", "bad_signature"),  # 63 bytes
        (f"{A3_HEADER}.{A3_PAYLOAD[:-1]}.{A3_SIGNATURE}", "malformed"),  # 4n+1 characters
        (f"{A3_HEADER}.{A3_PAYLOAD}", "malformed"),  # two segments
    ],
)
async def test_rfc7515_a3_example_altered_is_refused(token: str, reason: str) -> None:
    check = a3_verifier()
    await check.verify(f"{A3_HEADER}.{A3_PAYLOAD}.{A3_SIGNATURE}")  # header now remembered
    with pytest.raises(InvalidToken) as caught:
        await check.verify(token)
    assert caught.value.reason == reason


def test_rfc8037_a4_ed25519_example_verifies() -> None:
    key = parse_jwk(A4_JWK)
    assert key is not None
    data, signature = A4_INPUT.encode(), b64url_decode(A4_SIGNATURE)
    # EdDSA (RFC 8037) and Ed25519 (RFC 9864) name this same signature.
    assert key.verify("EdDSA", data, signature) and key.verify("Ed25519", data, signature)
    assert not key.verify("EdDSA", data + b"x", signature)
    assert not key.verify("ES256", data, signature)
