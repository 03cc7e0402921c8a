"""The one JWS verify pipeline, for access tokens (RFC 9068) and event tokens (RFC 8417).

`JWSVerifier` runs, in order: size, strict compact syntax (base64url, strict JSON), header
checks (`alg` in the allow-list, `typ`, no `crit`, no embedded keys, no JWE members, `kid`
shape), then, once the caller has checked the claims it cares about, the key look-up and one
`cryptography` verify. Failures raise `InvalidToken` with a stable `reason`; a caller with its
own error type (the event receiver) translates the reason.

PyJWT stays the library for JWK parsing and for signing; this module re-does only what every
request pays for (split, base64url, JSON, one `cryptography` verify) with the same strictness
and without PyJWT's per-call overhead.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ._json import JSONError, loads_object
from .errors import ConfigurationError, InvalidToken

if TYPE_CHECKING:
    from .keys import VerificationKey

PublicKey = (
    ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)

# Three base64url segments, no padding, nothing else (JWE has five; JSON serialisation has braces).
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

# The last character of a segment may only carry zero bits past the data (RFC 4648 §3.5):
# anything else is a second spelling of the same bytes, which a strict parser refuses.
_LAST_CHAR = {2: frozenset("AQgw"), 3: frozenset("AEIMQUYcgkosw048")}

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}

_EC_CURVES: dict[str, tuple[type[ec.EllipticCurve], int]] = {
    "ES256": (ec.SECP256R1, 32),
    "ES384": (ec.SECP384R1, 48),
    "ES512": (ec.SECP521R1, 66),
}

ASYMMETRIC_ALGORITHMS = frozenset(
    {
        "ES256",
        "ES384",
        "ES512",
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
        "EdDSA",
        "Ed25519",
    }
)


# Header members that would let a token choose its own key: never honoured (RFC 8725 §3.10).
KEY_HEADERS = frozenset({"jku", "jwk", "x5u", "x5c"})


class MalformedJWS(ValueError):
    """The input is not a well-formed compact JWS; the message is a stable reason code."""


def b64url_decode(segment: str) -> bytes:
    """Decode one unpadded, canonical base64url segment or raise MalformedJWS."""
    rem = len(segment) % 4
    if rem == 1 or (rem and segment[-1] not in _LAST_CHAR[rem]):
        raise MalformedJWS("malformed")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise MalformedJWS("malformed") from None


def b64url_encode(data: bytes) -> str:
    """Encode bytes as unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def parse_json_object(data: bytes) -> dict[str, Any]:
    """Strict JSON (see `_json`) that must be an object; MalformedJWS (a reason code) if not."""
    try:
        return loads_object(data)
    except JSONError as exc:
        raise MalformedJWS(_json_reason(exc)) from None


def _json_reason(exc: JSONError) -> str:
    # Only a duplicate member keeps its own code: it is an attack signal, not noise.
    return "duplicate_member" if exc.reason == "duplicate_member" else "malformed"


def is_numeric_date(value: Any) -> TypeGuard[float]:
    """Whether a claim value is a NumericDate (RFC 7519 §2): a finite JSON number, not a bool."""
    # JSON true/false are bools, which Python counts as ints.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # a JSON integer beyond float range ("exp": 1000...0) is no date
        return False


def audience_matches(aud: Any, accepted: frozenset[str]) -> bool:
    """Whether an `aud` claim (a string, or a non-empty string array) names one of `accepted`."""
    if isinstance(aud, str):
        return aud in accepted
    if isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        return not accepted.isdisjoint(aud)
    return False


def refused_algorithms(algorithms: Iterable[str]) -> list[str]:
    """The members of a verification allow-list that are unknown or symmetric (never allowed)."""
    return [a for a in algorithms if a not in ASYMMETRIC_ALGORITHMS]


# The token's own alphabet (RFC 7515 §7.1: three base64url segments joined by dots).
_COMPACT_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
# base64url -> base64 for `binascii`, done once for the whole token (dots stay dots).
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_LAST_BYTE = {2: frozenset(b"AQgw"), 3: frozenset(b"AEIMQUYcgkosw048")}
_PADDING = (b"", b"", b"==", b"=")


def _segment(raw: bytes, standard: bytes, start: int, end: int) -> bytes:
    """Decode raw[start:end], a canonical unpadded base64url segment (checked by the caller's
    alphabet pass), from its already translated copy in `standard`."""
    rem = (end - start) % 4
    if rem == 1 or (rem and raw[end - 1] not in _LAST_BYTE[rem]):
        raise MalformedJWS("malformed")
    try:
        return binascii.a2b_base64(standard[start:end] + _PADDING[rem])
    except (binascii.Error, ValueError):  # pragma: no cover - the alphabet pass rules it out
        raise MalformedJWS("malformed") from None


def split_compact(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Split a compact JWS into (header, payload, signing_input, signature), strictly.

    One pass each over the token's bytes: the ASCII encode, the alphabet check (whatever
    `translate` leaves after deleting the allowed bytes is foreign), the base64url->base64
    translation; the signing input is a slice of those bytes, never re-joined.
    """
    try:
        raw = token.encode("ascii")
    except UnicodeEncodeError:
        raise MalformedJWS("malformed") from None
    if raw.translate(None, _COMPACT_ALPHABET):
        raise MalformedJWS("malformed")
    first = raw.find(b".")
    second = raw.find(b".", first + 1)
    # Exactly two dots and three non-empty segments (JWE has five; JSON serialisation braces).
    if first <= 0 or second <= first + 1 or second == len(raw) - 1 or raw.count(b".") != 2:
        raise MalformedJWS("malformed")
    standard = raw.translate(_TO_STANDARD)
    try:
        header = loads_object(_segment(raw, standard, 0, first))
        payload = loads_object(_segment(raw, standard, first + 1, second))
    except JSONError as exc:
        raise MalformedJWS(_json_reason(exc)) from None
    signature = _segment(raw, standard, second + 1, len(raw))
    return header, payload, raw[:second], signature


def key_fits_alg(key: PublicKey, alg: str) -> bool:
    """Whether `alg` is one that this key type can verify (the alg/key confusion guard)."""
    if alg in _EC_CURVES:
        curve, _ = _EC_CURVES[alg]
        return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, curve)
    if alg[:2] in ("RS", "PS") and alg[2:] in _HASHES:
        return isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048
    if alg == "EdDSA":
        return isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
    if alg == "Ed25519":
        return isinstance(key, ed25519.Ed25519PublicKey)
    return False


SignatureCheck = Callable[[bytes, bytes], bool]
"""(signing_input, signature) -> whether the signature holds, for one key and one alg."""

# The padding, hash and ECDSA objects hold no state: built once per algorithm, not per call.
_HASH = {size: cls() for size, cls in _HASHES.items()}
_ECDSA = {alg: ec.ECDSA(_HASH[alg[2:]]) for alg in _EC_CURVES}
_PKCS1 = padding.PKCS1v15()
_PSS = {
    size: padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
    for size, digest in _HASH.items()
}


def signature_check(key: PublicKey, alg: str) -> SignatureCheck | None:
    """The verify function of `key` for `alg`, or None when the key cannot verify `alg`.

    Built once per key and algorithm (a `VerificationKey` keeps them), so a request pays for
    one call into `cryptography` and nothing else: the key-fit test, the curve's signature
    width and the padding objects are settled here.
    """
    if not key_fits_alg(key, alg):
        return None
    # One bound method per key; the per-alg closures below only pass their prebuilt parts.
    verify: Callable[..., object] = key.verify
    if alg in _EC_CURVES:
        _, size = _EC_CURVES[alg]
        scheme = _ECDSA[alg]

        def check_ec(signing_input: bytes, signature: bytes) -> bool:
            # JWS carries raw r||s of fixed width (RFC 7518 §3.4), never DER.
            if len(signature) != 2 * size:
                return False
            r = int.from_bytes(signature[:size], "big")
            s = int.from_bytes(signature[size:], "big")
            if r == 0 or s == 0:
                return False
            try:
                verify(encode_dss_signature(r, s), signing_input, scheme)
            except (InvalidSignature, ValueError):
                return False
            return True

        return check_ec
    if alg[:2] in ("RS", "PS"):
        digest = _HASH[alg[2:]]
        scheme_rsa = _PKCS1 if alg[0] == "R" else _PSS[alg[2:]]

        def check_rsa(signing_input: bytes, signature: bytes) -> bool:
            try:
                verify(signature, signing_input, scheme_rsa, digest)
            except (InvalidSignature, ValueError):
                return False
            return True

        return check_rsa

    def check_ed(signing_input: bytes, signature: bytes) -> bool:
        try:
            verify(signature, signing_input)
        except (InvalidSignature, ValueError):
            return False
        return True

    return check_ed


def verify_signature(key: PublicKey, alg: str, signing_input: bytes, signature: bytes) -> bool:
    """Verify a JWS signature with a ready key object; False on any mismatch (or misfit)."""
    check = signature_check(key, alg)
    return check is not None and check(signing_input, signature)


def header_typ(header: Mapping[str, Any]) -> str | None:
    """`typ` lower-cased and without an `application/` prefix (RFC 7515 §4.1.9)."""
    typ = header.get("typ")
    if not isinstance(typ, str):
        return None
    typ = typ.lower()
    return typ[12:] if typ.startswith("application/") else typ


MAX_KID_LENGTH = 256
# Header members RFC 7515 §4.1 defines as strings (alg and kid have their own checks).
_STRING_MEMBERS = frozenset({"typ", "cty", "x5u", "jku", "x5t", "x5t#S256"})

Parsed = tuple[dict[str, Any], dict[str, Any], bytes, bytes, str, "str | None"]
"""(header, claims, signing_input, signature, alg, kid) of a token whose syntax and header
passed; nothing in it is trusted until the signature holds."""


class KeySource(Protocol):
    """Where verification keys come from (a `JWKSCache`)."""

    async def get_key(self, kid: str | None, alg: str) -> VerificationKey: ...


class JWSVerifier:
    """Strict verification of compact JWS for one kind of token (one `typ` family)."""

    __slots__ = ("algorithms", "keys", "max_bytes", "types")

    def __init__(
        self,
        *,
        algorithms: Iterable[str],
        types: Iterable[str | None],
        keys: KeySource,
        max_bytes: int,
    ) -> None:
        algorithms = tuple(algorithms)
        bad = refused_algorithms(algorithms)
        if bad or not algorithms:
            raise ConfigurationError(
                f"unsupported or symmetric algorithms in allow-list: {bad or 'empty'}"
            )
        self.algorithms = frozenset(algorithms)
        # None in `types`: a token without `typ` is accepted (a relaxed token profile).
        self.types = frozenset(
            None if t is None else t.lower().removeprefix("application/") for t in types
        )
        self.keys = keys
        self.max_bytes = max_bytes

    def parse(self, token: str) -> Parsed:
        """Size, syntax and header checks; InvalidToken (with a reason) on the first failure."""
        if len(token) > self.max_bytes:
            raise InvalidToken(reason="token_too_large")
        try:
            header, claims, signing_input, signature = split_compact(token)
        except MalformedJWS as exc:
            raise InvalidToken(
                reason="duplicate_member" if str(exc) == "duplicate_member" else "malformed"
            ) from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise InvalidToken(reason="bad_alg")
        if header_typ(header) not in self.types:
            raise InvalidToken(reason="bad_typ")
        if "crit" in header:
            # No extension is understood here: a critical one must be refused (RFC 7515 §4.1.11).
            raise InvalidToken(reason="crit")
        if KEY_HEADERS & header.keys():
            raise InvalidToken(reason="embedded_key")
        if "enc" in header or "zip" in header:
            raise InvalidToken(reason="malformed")
        # Present means present: `"kid": null` is a malformed kid, not "no kid" (RFC 7515
        # §4.1.4); the other string members (typ, cty) are held to their type the same way.
        kid = header.get("kid")
        if "kid" in header and (not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH):
            raise InvalidToken(reason="bad_kid")
        if any(not isinstance(header[name], str) for name in _STRING_MEMBERS & header.keys()):
            raise InvalidToken(reason="malformed")
        return header, claims, signing_input, signature, alg, kid

    async def verified_key(
        self, kid: str | None, alg: str, signing_input: bytes, signature: bytes
    ) -> VerificationKey:
        """The key that made `signature`; InvalidToken / KeysUnavailable otherwise."""
        key = await self.keys.get_key(kid, alg)
        if not key.verify(alg, signing_input, signature):
            raise InvalidToken(reason="bad_signature")
        return key

    async def verify(
        self,
        token: str,
        check_claims: Callable[[dict[str, Any]], Awaitable[None] | None] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any], VerificationKey]:
        """(header, claims, key) of a token that passed every check.

        `check_claims` runs between the header checks and the key look-up, so a token that
        its claims refuse never triggers a key fetch nor costs a signature verify.
        """
        header, claims, signing_input, signature, alg, kid = self.parse(token)
        if check_claims is not None:
            pending = check_claims(claims)
            if pending is not None:
                await pending
        key = await self.verified_key(kid, alg, signing_input, signature)
        return header, claims, key
