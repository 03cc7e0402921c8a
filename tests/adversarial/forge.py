"""The attacker's toolbox: hand-made JWS pieces, raw signing, and signature mangling."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from rs_guard.idp import IdP

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def seg(value: Any) -> str:
    """A JSON object (or raw JSON text / bytes) as a base64url segment."""
    if isinstance(value, bytes):
        return b64(value)
    if isinstance(value, str):
        return b64(value.encode())
    return b64(json.dumps(value, separators=(",", ":")).encode())


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    h, p, s = token.split(".")
    return json.loads(unb64(h)), json.loads(unb64(p)), s


def raw_sign(key: Any, alg: str, signing_input: bytes) -> bytes:
    """Sign exactly `signing_input` the way JWS does (raw r||s for ECDSA)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        digest = {
            "ES256": hashes.SHA256(),
            "ES384": hashes.SHA384(),
            "ES512": hashes.SHA512(),
        }[alg]
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(digest)))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if isinstance(key, rsa.RSAPrivateKey):
        digest = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[alg[2:]]
        if alg.startswith("PS"):
            pad: Any = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
        else:
            pad = padding.PKCS1v15()
        return key.sign(signing_input, pad, digest)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(signing_input)
    raise TypeError(type(key))


def sign_segments(key: Any, alg: str, header_seg: str, payload_seg: str) -> str:
    signing_input = f"{header_seg}.{payload_seg}".encode()
    return f"{header_seg}.{payload_seg}.{b64(raw_sign(key, alg, signing_input))}"


def idp_sign(
    idp: IdP, header: Any, payload: Any, *, alg: str = "ES256", key_alg: str | None = None
) -> str:
    """Sign arbitrary header/payload JSON (objects or raw text) with the IdP's real key."""
    key = idp.keys.active(key_alg or alg)
    if isinstance(header, dict):
        header = {"kid": key.kid, **header}
    return sign_segments(key.private_key, alg, seg(header), seg(payload))


def resign(idp: IdP, token: str, header: dict[str, Any] | None = None, **claims: Any) -> str:
    """Re-sign a token with the IdP's key after replacing header members or claims."""
    h, p, _ = parts(token)
    h.update(header or {})
    p.update(claims)
    for name, value in list(p.items()):
        if value is DROP:
            del p[name]
    for name, value in list(h.items()):
        if value is DROP:
            del h[name]
    return idp_sign(idp, h, p, alg=str(h.get("alg", "ES256")), key_alg="ES256")


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP: Any = _Drop()


def with_signature(token: str, signature: bytes | str) -> str:
    h, p, _ = token.split(".")
    sig = signature if isinstance(signature, str) else b64(signature)
    return f"{h}.{p}.{sig}"


def ecdsa_rs(token: str) -> tuple[int, int]:
    raw = unb64(token.split(".")[2])
    half = len(raw) // 2
    return int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")


def rs_bytes(r: int, s: int, size: int = 32) -> bytes:
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def der_signature(token: str) -> bytes:
    r, s = ecdsa_rs(token)
    return encode_dss_signature(r, s)


def hmac_token(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    alg = header["alg"]
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    h, p = seg(header), seg(payload)
    mac = hmac.new(secret, f"{h}.{p}".encode(), digest).digest()
    return f"{h}.{p}.{b64(mac)}"


def public_key_encodings(idp: IdP) -> dict[str, bytes]:
    """Every way an attacker might spell the IdP's public key as an HMAC secret."""
    signing = idp.keys.active("ES256")
    pub = signing.public_key
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    jwk = signing.public_jwk
    pem = pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    numbers = pub.public_numbers()
    return {
        "pem": pem,
        "pem-no-newline": pem.rstrip(b"\n"),
        "pem-crlf": pem.replace(b"\n", b"\r\n"),
        "der": pub.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "uncompressed-point": pub.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        ),
        "compressed-point": pub.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
        ),
        "openssh": pub.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ),
        "jwk-json": json.dumps(jwk).encode(),
        "jwk-json-compact": json.dumps(jwk, separators=(",", ":")).encode(),
        "jwk-json-sorted": json.dumps(jwk, sort_keys=True).encode(),
        "jwks-json": json.dumps(idp.jwks()).encode(),
        "x": unb64(jwk["x"]),
        "y": unb64(jwk["y"]),
        "x||y": unb64(jwk["x"]) + unb64(jwk["y"]),
        "x-b64url": jwk["x"].encode(),
        "x-int-decimal": str(numbers.x).encode(),
        "kid": signing.kid.encode(),
        "empty": b"",
    }
