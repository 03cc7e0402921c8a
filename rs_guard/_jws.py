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
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ._json import JSONError, loads_object
from ._memo import remember
from .errors import ConfigurationError, InvalidToken

if TYPE_CHECKING:
    from .keys import VerificationKey

PublicKey = (
    ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)

# Three base64url segments, no padding, nothing else (JWE has five; JSON serialisation has
# braces). For DPoP proofs; access and event tokens go through `_segments`.

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
    try:
        data = segment.encode("ascii")
    except UnicodeEncodeError:
        raise MalformedJWS("malformed") from None
    return _decode_segment(data.translate(_TO_STANDARD))


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


# base64url -> base64 for `binascii` (strict mode), done once for the whole token: `-` and
# `_` become `+` and `/`, while a `+`, `/` or `=` in the token (not base64url, or padding)
# becomes `!`, which strict decoding refuses like any other byte outside the alphabet.
_TO_STANDARD = bytes.maketrans(b"-_+/=", b"+/!!!")
_LAST_BYTE = {2: frozenset(b"AQgw"), 3: frozenset(b"AEIMQUYcgkosw048")}
_PADDING = (b"", b"", b"==", b"=")


def _decode_segment(segment: bytes) -> bytes:
    """Decode one segment of a token already passed through `_TO_STANDARD`: canonical and
    unpadded base64url, or MalformedJWS."""
    rem = len(segment) % 4
    # The last character may only carry zero bits past the data (RFC 4648 §3.5), and a
    # length of 4n+1 is no base64 at all.
    if rem == 1 or (rem and segment[-1] not in _LAST_BYTE[rem]):
        raise MalformedJWS("malformed")
    try:
        return binascii.a2b_base64(segment + _PADDING[rem], strict_mode=True)
    except binascii.Error:
        raise MalformedJWS("malformed") from None


def _segments(token: str) -> tuple[bytes, list[bytes]]:
    """(the token's bytes, its three segments translated for `_decode_segment`), strictly:
    ASCII, exactly two dots, no empty segment (JWE has five; JSON serialisation has braces)."""
    try:
        raw = token.encode("ascii")
    except UnicodeEncodeError:
        raise MalformedJWS("malformed") from None
    parts = raw.translate(_TO_STANDARD).split(b".")
    if len(parts) != 3 or not (parts[0] and parts[1] and parts[2]):
        raise MalformedJWS("malformed")
    return raw, parts


def split_compact(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Split a compact JWS into (header, payload, signing_input, signature), strictly.

    The signing input is a slice of the token's bytes, never re-joined.
    """
    raw, (h, p, s) = _segments(token)
    try:
        header = loads_object(_decode_segment(h))
        payload = loads_object(_decode_segment(p))
    except JSONError as exc:
        raise MalformedJWS(_json_reason(exc)) from None
    signature = _decode_segment(s)
    return header, payload, raw[: len(h) + 1 + len(p)], signature


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


def header_typ(header: Mapping[str, Any]) -> str | None:
    """`typ` lower-cased and without an `application/` prefix (RFC 7515 §4.1.9)."""
    typ = header.get("typ")
    if not isinstance(typ, str):
        return None
    typ = typ.lower()
    return typ[12:] if typ.startswith("application/") else typ


MAX_KID_LENGTH = 256
# Checked headers remembered per verifier: an issuer uses a few (one per key and alg).
_MAX_HEADERS = 64
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

    __slots__ = ("_headers", "algorithms", "keys", "max_bytes", "types")

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
        self._headers: dict[bytes, tuple[dict[str, Any], str, str | None]] = {}

    def parse(self, token: str) -> Parsed:
        """Size, syntax and header checks; InvalidToken (with a reason) on the first failure.

        An issuer signs every token with one of a few keys, so the header segment repeats
        byte for byte: a header that passed every check is remembered under its segment
        (up to `_MAX_HEADERS` of them) and not decoded or checked again. The refusals are the
        same, in the same order: the payload and signature are decoded before the header's
        checks run, whether or not the header was remembered.
        """
        if len(token) > self.max_bytes:
            raise InvalidToken(reason="token_too_large")
        try:
            raw, (h, p, s) = _segments(token)
            checked = self._headers.get(h)
            header = None if checked is not None else loads_object(_decode_segment(h))
            claims = loads_object(_decode_segment(p))
            signature = _decode_segment(s)
        except JSONError as exc:
            raise InvalidToken(reason=_json_reason(exc)) from None
        except MalformedJWS:
            raise InvalidToken(reason="malformed") from None
        if checked is None:
            assert header is not None
            checked = self._check_header(header)
            remember(self._headers, h, checked, _MAX_HEADERS)
        header, alg, kid = checked
        # A copy: the remembered header is shared by every token that carries it.
        return dict(header), claims, raw[: len(h) + 1 + len(p)], signature, alg, kid

    def _check_header(self, header: dict[str, Any]) -> tuple[dict[str, Any], str, str | None]:
        """(header, alg, kid) of a header that passes every check; InvalidToken otherwise."""
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
        return header, alg, kid

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
