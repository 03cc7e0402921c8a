"""The IdP's signing keys: generation, import of a private JWK Set, rotation, JWKS, sign/verify."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from ._util import b64url

SUPPORTED_ALGS: tuple[str, ...] = ("ES256", "RS256", "PS256", "EdDSA")

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


@dataclass
class SigningKey:
    """One private key with its algorithm, kid and public JWK."""

    kid: str
    alg: str
    private_key: PrivateKey
    public_jwk: dict[str, Any]
    created_at: float

    @property
    def public_key(self) -> PublicKey:
        """The public half, for verification."""
        return self.private_key.public_key()


def _generate(alg: str) -> PrivateKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg in ("RS256", "PS256"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported signing algorithm {alg!r}; use one of {SUPPORTED_ALGS}")


def _to_jwk(key: PrivateKey | PublicKey) -> dict[str, Any]:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        out = ECAlgorithm.to_jwk(key, as_dict=True)
    elif isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        out = RSAAlgorithm.to_jwk(key, as_dict=True)
    else:
        out = OKPAlgorithm.to_jwk(key, as_dict=True)
    return dict(out)


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256), used as the kid of generated keys."""
    members = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
    required = members.get(str(jwk.get("kty")), ())
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def _infer_alg(jwk: dict[str, Any]) -> str:
    kty = jwk.get("kty")
    if kty == "EC" and jwk.get("crv") == "P-256":
        return "ES256"
    if kty == "RSA":
        return "RS256"
    if kty == "OKP" and jwk.get("crv") == "Ed25519":
        return "EdDSA"
    raise ValueError(f"cannot infer a supported alg for key {jwk.get('kid')!r}")


def _alg_fits(alg: str, key: PrivateKey) -> bool:
    if alg == "ES256":
        return isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    if alg in ("RS256", "PS256"):
        return isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048
    return alg == "EdDSA" and isinstance(key, ed25519.Ed25519PrivateKey)


class KeyStore:
    """Published keys (kid -> key) plus the active signing key for each algorithm."""

    def __init__(
        self,
        default_alg: str,
        private_jwks: dict[str, Any] | None = None,
        *,
        clock: Callable[[], float],
    ) -> None:
        if default_alg not in SUPPORTED_ALGS:
            raise ValueError(f"unsupported signing algorithm {default_alg!r}")
        self.default_alg = default_alg
        self._clock = clock
        self._keys: dict[str, SigningKey] = {}
        self._active: dict[str, str] = {}
        if private_jwks is not None:
            self._load(private_jwks)
        if default_alg not in self._active:
            self.rotate(default_alg)

    def _load(self, jwks: dict[str, Any]) -> None:
        keys = jwks.get("keys") if isinstance(jwks, dict) else None
        if not isinstance(keys, list):
            raise ValueError("signing_keys must be a JWK Set: {'keys': [...]}")
        for raw in keys:
            if not isinstance(raw, dict) or "d" not in raw:
                raise ValueError("signing_keys must contain private keys (with 'd')")
            alg = str(raw.get("alg") or _infer_alg(raw))
            if alg not in SUPPORTED_ALGS:
                raise ValueError(f"unsupported alg {alg!r} in signing_keys")
            private = jwt.PyJWK(raw, algorithm=alg).key
            if not _alg_fits(alg, private):
                raise ValueError(f"key {raw.get('kid')!r} does not fit alg {alg}")
            public = _to_jwk(private.public_key())
            kid = str(raw.get("kid") or thumbprint(public))
            public.update({"kid": kid, "alg": alg, "use": "sig"})
            self._keys[kid] = SigningKey(kid, alg, private, public, self._clock())
            # The last key listed for an algorithm is the active one, like after rotate().
            self._active[alg] = kid

    def rotate(self, alg: str | None = None, *, activate: bool = True) -> str:
        """Create a new key for `alg`, published at once and active unless `activate=False`.

        Older keys stay published until retired. Publishing a key some time before signing
        with it (`activate=False`, then `activate(kid)`) is how a careful IdP rotates:
        resource servers have it in their cache before the first token needs it.
        """
        alg = alg or self.default_alg
        private = _generate(alg)
        public = _to_jwk(private.public_key())
        kid = thumbprint(public)
        public.update({"kid": kid, "alg": alg, "use": "sig"})
        self._keys[kid] = SigningKey(kid, alg, private, public, self._clock())
        if activate:
            self._active[alg] = kid
        return kid

    def activate(self, kid: str) -> None:
        """Start signing with a published key."""
        key = self._keys[kid]
        self._active[key.alg] = kid

    def retire(self, kid: str) -> None:
        """Remove a key from the JWKS; tokens signed with it stop verifying."""
        key = self._keys.pop(kid, None)
        if key is None:
            raise KeyError(kid)
        if self._active.get(key.alg) == kid:
            del self._active[key.alg]

    def active(self, alg: str | None = None) -> SigningKey:
        """The signing key for `alg`, generated on first use of that algorithm."""
        alg = alg or self.default_alg
        kid = self._active.get(alg)
        if kid is None:
            kid = self.rotate(alg)
        return self._keys[kid]

    def get(self, kid: str) -> SigningKey | None:
        """A published key by kid."""
        return self._keys.get(kid)

    def jwks(self) -> dict[str, Any]:
        """The public JWK Set."""
        return {"keys": [dict(k.public_jwk) for k in self._keys.values()]}

    def private_jwks(self) -> dict[str, Any]:
        """The private JWK Set (to persist keys across CLI runs)."""
        out = []
        for k in self._keys.values():
            jwk = _to_jwk(k.private_key)
            jwk.update({"kid": k.kid, "alg": k.alg, "use": "sig"})
            out.append(jwk)
        return {"keys": out}

    def sign(
        self,
        payload: dict[str, Any],
        *,
        typ: str,
        alg: str | None = None,
        headers: dict[str, Any] | None = None,
    ) -> str:
        """Sign `payload` with the active key of `alg`; `headers` override header members."""
        key = self.active(alg)
        header: dict[str, Any] = {"typ": typ, "kid": key.kid}
        if headers:
            header.update(headers)
        return jwt.encode(payload, key.private_key, algorithm=key.alg, headers=header)

    def verify(self, token: str) -> dict[str, Any] | None:
        """Claims of a token signed by one of our published keys, else None (no time checks)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        kid = header.get("kid")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None or header.get("alg") != key.alg:
            return None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.public_key,
                algorithms=[key.alg],
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_sub": False,
                    "verify_jti": False,
                },
            )
        except (jwt.PyJWTError, ValueError):
            return None
        return claims
