"""Sender-constrained access tokens: DPoP (RFC 9449), resource-server side and client side.

A DPoP-bound token (`cnf.jkt`, RFC 9449 §6) is only good together with a fresh proof, a JWT
signed by the key the token is bound to, for exactly this request (method and URI) and this
token (`ath`). `DPoPVerifier` checks such a proof as §4.3 lists, every step;
`ResourceGuard(dpop=DPoPVerifier(...))` runs it on every request, after the token is validated
(the verified-token cache still answers a reused token; the proof changes every request and is
always checked). Without `dpop=`, a DPoP-bound token is refused outright (§7.2: presenting it as
a bearer token is a downgrade).

`DPoPKey` is the client side: a key pair that signs proofs; `DPoPAuth` is an httpx `Auth` that
sends a fresh proof with every request and answers a `use_dpop_nonce` challenge once.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import json
import math
import re
import secrets
import time
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import httpx
from cachetools import LRUCache
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from starlette.datastructures import URL
from starlette.types import Scope

from ._jws import (
    ASYMMETRIC_ALGORITHMS,
    MalformedJWS,
    _decode_segment,
    _segments,
    b64url_encode,
    header_typ,
    is_numeric_date,
    parse_json_object,
)
from ._memo import remember
from .access_token import AccessToken
from .challenge import bearer_challenge, parse_bearer_challenge
from .errors import (
    ConfigurationError,
    InvalidDPoPProof,
    InvalidRequest,
    InvalidToken,
    RSGuardError,
    UseDPoPNonce,
)
from .events.replay import MemoryReplayStore, ReplayState, ReplayStore
from .keys import _PRIVATE_MEMBERS, VerificationKey, parse_jwk

__all__ = [
    "DEFAULT_DPOP_ALGORITHMS",
    "DPoPAuth",
    "DPoPKey",
    "DPoPNonces",
    "DPoPPolicy",
    "DPoPProof",
    "DPoPVerifier",
    "InvalidDPoPProof",
    "UseDPoPNonce",
    "access_token_hash",
    "dpop_challenge",
    "jwk_thumbprint",
]

DEFAULT_DPOP_ALGORITHMS = ("ES256", "ES384", "PS256", "RS256", "EdDSA")
MAX_PROOF_BYTES = 8192
MAX_JTI_LENGTH = 256
# RFC 7638 §3.2: the required members of each key type, in lexicographic order.
_THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
}
# RFC 9110 §11.2 token68, the DPoP credentials syntax (RFC 9449 §7.1, Figure 12).
_TOKEN68 = re.compile(rb"[A-Za-z0-9\-._~+/]+=*")
_NQCHAR = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 9449 §8.1 nonce syntax
_DEFAULT_PORTS = {"http": 80, "https": 443}


class DPoPPolicy(StrEnum):
    """Whether a route takes DPoP: required, allowed (beside Bearer), or off."""

    REQUIRED = "required"
    ALLOWED = "allowed"
    OFF = "off"


# -- the primitives: thumbprints and token hashes -----------------------------------------------


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK, base64url (the `jkt` of RFC 9449 §6.1).

    ValueError when the key type is unknown or a required member is missing or not a string.
    """
    members = _THUMBPRINT_MEMBERS.get(jwk.get("kty"))  # type: ignore[arg-type]
    if members is None:
        raise ValueError("unsupported kty")
    values = {m: jwk.get(m) for m in members}
    if not all(isinstance(v, str) and v for v in values.values()):
        raise ValueError("a required JWK member is missing")
    canonical = json.dumps(values, separators=(",", ":"), ensure_ascii=False)
    return b64url_encode(hashlib.sha256(canonical.encode("utf-8")).digest())


@lru_cache(maxsize=256)  # a client sends one token with many proofs: hashed once
def access_token_hash(token: str) -> str:
    """`ath`: base64url of the SHA-256 of the access token's ASCII value (RFC 9449 §4.2)."""
    return b64url_encode(hashlib.sha256(token.encode("ascii")).digest())


def dpop_token(value: bytes) -> str | None:
    """The token of an `Authorization: DPoP <token68>` value (RFC 9449 §7.1), or None for another
    scheme; InvalidRequest when the DPoP credentials are malformed."""
    if value[:4].lower() != b"dpop" or value[4:5] != b" ":
        return None
    token = value[5:].lstrip(b" ")
    if not _TOKEN68.fullmatch(token):
        raise InvalidRequest("The Authorization header is malformed", reason="malformed_header")
    return token.decode("ascii")


def normalize_uri(uri: str) -> str | None:
    """An absolute http(s) URI without query and fragment, normalised per RFC 3986 §6.2.2 and
    §6.2.3 (case of scheme and host, default port, percent-encoding case), or None."""
    # A pure function of a string that repeats (a client's `htu`, the request URI): short
    # ones are remembered; `htu` comes from unverified proofs, so the memory stays small.
    return _normalize_short(uri) if len(uri) <= _SHORT_URI else _normalize(uri)


_SHORT_URI = 512


def _normalize(uri: str) -> str | None:
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    path = re.sub(r"%[0-9a-fA-F]{2}", _percent, parts.path) or "/"
    return f"{scheme}://{netloc}{path}"


_normalize_short = lru_cache(maxsize=1024)(_normalize)


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _percent(match: re.Match[str]) -> str:
    char = chr(int(match.group(0)[1:], 16))
    return char if char in _UNRESERVED else match.group(0).upper()


def request_uri(scope: Scope) -> str:
    """The request's target URI as the client addressed it (Starlette's view, root_path
    included), normalised for comparison with `htu`."""
    # Starlette's URL(scope=...) costs more than the rest of a proof's non-crypto checks: the
    # answer is remembered under everything it reads (scheme, server, Host, path, root_path).
    host = None
    for k, v in scope["headers"]:
        if k == b"host":
            host = v
            break
    server = scope.get("server")
    key = (
        scope.get("scheme", "http"),
        None if server is None else tuple(server),
        host,
        scope.get("path", ""),
        scope.get("root_path", ""),
    )
    uri = _request_uris.get(key)
    if uri is None:
        uri = _request_uri(scope)
        if len(uri) <= _SHORT_URI:  # a long Host or path is computed, never kept
            remember(_request_uris, key, uri, _REQUEST_URIS_KEPT)
    return uri


_REQUEST_URIS_KEPT = 1024
_request_uris: dict[tuple[Any, ...], str] = {}


def _request_uri(scope: Scope) -> str:
    url = URL(scope=scope)
    scheme = {"ws": "http", "wss": "https"}.get(url.scheme, url.scheme)
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and not path.startswith(root):
        path = root + path  # a server that strips root_path from path (older ASGI servers)
    raw = f"{scheme}://{url.netloc}{path}"
    return normalize_uri(raw) or raw


# -- server nonces (RFC 9449 §8, §9) -------------------------------------------------------------


class DPoPNonces:
    """Stateless server nonces: an HMAC of the current time step, so every replica that shares
    `secret` accepts every other's nonces without shared storage.

    A nonce is good during its step and the next one (`lifetime` seconds each), so rotation
    never strands a client mid-flight; after that the client is told `use_dpop_nonce` with a
    fresh one.
    """

    def __init__(
        self,
        secret: bytes | None = None,
        *,
        lifetime: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if lifetime <= 0:
            raise ConfigurationError("DPoPNonces lifetime must be positive")
        if secret is not None and len(secret) < 16:
            raise ConfigurationError("DPoPNonces secret needs at least 16 bytes")
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self.lifetime = lifetime
        self._clock = clock

    def _for_step(self, step: int) -> str:
        mac = hmac.new(self._secret, str(step).encode(), hashlib.sha256).digest()[:18]
        return f"{step:x}.{b64url_encode(mac)}"

    def current(self) -> str:
        """The nonce to hand out now."""
        return self._for_step(int(self._clock() // self.lifetime))

    def valid(self, nonce: Any) -> bool:
        """Whether a proof's `nonce` is one this server (or a sibling replica) handed out lately."""
        if not isinstance(nonce, str) or len(nonce) > 64:
            return False
        step = int(self._clock() // self.lifetime)
        return any(hmac.compare_digest(nonce, self._for_step(s)) for s in (step, step - 1))


# -- checking proofs (RFC 9449 §4.3) -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DPoPProof:
    """A proof that passed every check: its key's thumbprint and its claims."""

    jkt: str
    jti: str
    iat: float
    claims: Mapping[str, Any]


class DPoPVerifier:
    """Checks DPoP proofs as RFC 9449 §4.3 lists them, and applies the DPoP policy of a resource.

    - `policy`: "allowed" (DPoP or Bearer; the default), "required" (DPoP only), "off";
      `routes` maps path prefixes to another policy (longest prefix wins).
    - `algorithms`: the asymmetric `alg` values accepted for proofs (advertised as `algs`).
    - `max_age` / `leeway`: a proof's `iat` may be at most `max_age` + `leeway` seconds old and
      `leeway` seconds ahead; its `jti` is remembered for that long in `replay_store`
      (in memory by default; a `RedisReplayStore` shares it across replicas).
    - `nonces`: a `DPoPNonces` to demand server nonces (RFC 9449 §9), off by default.
    """

    def __init__(
        self,
        *,
        policy: DPoPPolicy | str = DPoPPolicy.ALLOWED,
        routes: Mapping[str, DPoPPolicy | str] | None = None,
        algorithms: Sequence[str] = DEFAULT_DPOP_ALGORITHMS,
        max_age: float = 300.0,
        leeway: float = 30.0,
        replay_store: ReplayStore | None = None,
        nonces: DPoPNonces | None = None,
        key_cache_size: int = 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        bad = [a for a in algorithms if a not in ASYMMETRIC_ALGORITHMS]
        if bad or not algorithms:
            raise ConfigurationError(
                f"DPoP algorithms must be asymmetric JWS algs: {bad or 'none'}"
            )
        if max_age <= 0 or leeway < 0:
            raise ConfigurationError("DPoP max_age must be positive and leeway not negative")
        self.policy = DPoPPolicy(policy)
        self.routes = sorted(
            ((prefix, DPoPPolicy(p)) for prefix, p in (routes or {}).items()),
            key=lambda item: -len(item[0]),
        )
        self.algorithms = tuple(dict.fromkeys(algorithms))
        self._algorithms = frozenset(self.algorithms)
        self.max_age, self.leeway = max_age, leeway
        self.replay_store: ReplayStore = replay_store or MemoryReplayStore()
        self.nonces = nonces
        self.clock = clock
        # Parsing a JWK costs more than the verify itself; a client reuses its key.
        self._keys: LRUCache[str, VerificationKey] = LRUCache(maxsize=max(1, key_cache_size))
        self._headers: LRUCache[bytes, tuple[str, VerificationKey, str]] = LRUCache(
            maxsize=max(1, key_cache_size)
        )

    @property
    def retention(self) -> float:
        """How long a `jti` is remembered: as long as a proof with it could be accepted."""
        return self.max_age + 2 * self.leeway

    def policy_for(self, path: str) -> DPoPPolicy:
        """The policy of a path: the longest matching `routes` prefix, else `policy`."""
        for prefix, policy in self.routes:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return policy
        return self.policy

    @property
    def required_everywhere(self) -> bool:
        """Whether every route requires DPoP (RFC 9728 `dpop_bound_access_tokens_required`)."""
        return self.policy is DPoPPolicy.REQUIRED and all(
            p is DPoPPolicy.REQUIRED for _, p in self.routes
        )

    async def verify(
        self,
        proof: str,
        *,
        method: str,
        uri: str,
        access_token: str | None = None,
        replay_key: str = "",
    ) -> DPoPProof:
        """Check one proof for a request (`method`, normalised `uri`) and, at a resource, the
        `access_token` it accompanies. InvalidDPoPProof (or UseDPoPNonce) on the first failure."""
        if len(proof) > MAX_PROOF_BYTES:
            raise InvalidDPoPProof(reason="dpop_too_large")
        try:  # §4.3 (2): the one strict compact-JWS split and base64url of `_jws`
            raw, (h, p, s) = _segments(proof)
            # A client signs every proof with one key, so the header segment repeats byte
            # for byte: its checks, thumbprint and parsed key are remembered under it.
            checked = self._headers.get(h)
            header = None if checked is not None else parse_json_object(_decode_segment(h))
            claims = parse_json_object(_decode_segment(p))
            signature = _decode_segment(s)
        except MalformedJWS:
            raise _malformed() from None
        if checked is None:
            assert header is not None
            checked = self._headers[h] = self._check_header(header)
        alg, key, jkt = checked
        signing_input = raw[: len(h) + 1 + len(p)]
        _check_claims(claims, access_token is not None)  # (3)
        if claims["htm"] != method:  # (8)
            raise InvalidDPoPProof("The DPoP proof htm does not match", reason="dpop_htm_mismatch")
        if normalize_uri(claims["htu"]) != uri:  # (9)
            raise InvalidDPoPProof("The DPoP proof htu does not match", reason="dpop_htu_mismatch")
        now = self.clock()
        iat = float(claims["iat"])
        if iat > now + self.leeway or iat < now - self.max_age - self.leeway:  # (11)
            raise InvalidDPoPProof("The DPoP proof iat is out of range", reason="dpop_iat_window")
        if access_token is not None and not hmac.compare_digest(  # (12), first half
            str(claims["ath"]), access_token_hash(access_token)
        ):
            raise InvalidDPoPProof("The DPoP proof ath does not match", reason="dpop_ath_mismatch")
        if not key.verify(alg, signing_input, signature):  # (6), with its prebuilt verifier
            raise InvalidDPoPProof(
                "The DPoP proof signature is invalid", reason="dpop_bad_signature"
            )
        nonces = self.nonces
        if nonces is not None and not nonces.valid(claims.get("nonce")):  # (10)
            reason = "dpop_nonce_required" if "nonce" not in claims else "dpop_nonce_invalid"
            raise UseDPoPNonce(nonces.current(), reason=reason)
        # Last, and only for a signed proof: an unsigned one must not burn a client's jti.
        state = await self.replay_store.reserve(
            "dpop:" + replay_key + jkt, claims["jti"], "dpop", self.retention
        )
        if state is not ReplayState.RESERVED:
            raise InvalidDPoPProof("The DPoP proof was already used", reason="dpop_replayed")
        return DPoPProof(jkt=jkt, jti=claims["jti"], iat=iat, claims=claims)

    def _check_header(self, header: dict[str, Any]) -> tuple[str, VerificationKey, str]:
        """(alg, key, jkt) of a proof header passing §4.3 (4), (5) and (7)."""
        if header.get("typ") != "dpop+jwt" and header_typ(header) != "dpop+jwt":  # (4)
            raise InvalidDPoPProof("The DPoP proof typ is not dpop+jwt", reason="dpop_bad_typ")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:  # (5)
            raise InvalidDPoPProof("The DPoP proof alg is not accepted", reason="dpop_bad_alg")
        if "crit" in header or {"jku", "x5u", "x5c"} & header.keys():
            raise InvalidDPoPProof(
                "The DPoP proof header is not accepted", reason="dpop_bad_header"
            )
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise InvalidDPoPProof("The DPoP proof has no jwk", reason="dpop_bad_key")
        if _PRIVATE_MEMBERS & jwk.keys():  # (7)
            raise InvalidDPoPProof("The DPoP proof jwk is a private key", reason="dpop_private_key")
        key, jkt = self._key(jwk, alg)
        return alg, key, jkt

    def _key(self, jwk: dict[str, Any], alg: str) -> tuple[VerificationKey, str]:
        try:
            jkt = jwk_thumbprint(jwk)
        except ValueError:
            raise InvalidDPoPProof(
                "The DPoP proof jwk is not usable", reason="dpop_bad_key"
            ) from None
        key = self._keys.get(jkt)
        if key is None:
            parsed = parse_jwk(jwk)
            if parsed is None:
                raise InvalidDPoPProof("The DPoP proof jwk is not usable", reason="dpop_bad_key")
            key = self._keys[jkt] = parsed
        if not key.fits(alg):
            raise InvalidDPoPProof("The DPoP proof jwk does not fit its alg", reason="dpop_bad_key")
        return key, jkt

    # -- the resource-server hook (ResourceGuard calls this once per authenticated request) --

    def settle_bearer(self, scope: Scope, access: AccessToken) -> bool:
        """The request without DPoP credentials, decided without an await: True when it is
        settled (a Bearer token where Bearer is accepted), False when it carries
        `Authorization: DPoP` (the caller then awaits `check`). Refuses as `check` does."""
        for k, v in scope["headers"]:
            if k == b"authorization" and v[:5].lower() == b"dpop ":
                return False
        if "cnf" in access.claims and access.jkt is not None:
            raise bound_as_bearer()  # §7.2 (the `in` keeps an unbound token one lookup)
        if not self.routes:
            required = self.policy is DPoPPolicy.REQUIRED
        else:
            required = self.policy_for(scope["path"]) is DPoPPolicy.REQUIRED
        if required:
            raise InvalidToken("DPoP is required", reason="dpop_required")
        return True

    async def check(self, scope: Scope, token: str, access: AccessToken) -> AccessToken:
        """Apply the route's policy to a validated token: verify the proof of a DPoP request,
        refuse a bound token sent as Bearer (§7.2) and a Bearer token where DPoP is required."""
        scheme, proofs = _scheme_and_proofs(scope)
        policy = self.policy_for(scope["path"])
        if scheme != "dpop":
            if access.jkt is not None:
                raise bound_as_bearer()
            if policy is DPoPPolicy.REQUIRED:
                raise InvalidToken("DPoP is required", reason="dpop_required")
            return access
        if policy is DPoPPolicy.OFF:
            raise InvalidToken("DPoP is not accepted here", reason="dpop_not_accepted")
        if not proofs:  # §7.1
            raise InvalidDPoPProof("A DPoP proof is required", reason="dpop_missing_proof")
        if len(proofs) > 1:  # §4.3 (1)
            raise InvalidDPoPProof("More than one DPoP proof", reason="dpop_multiple_proofs")
        if access.jkt is None:
            raise InvalidToken("The access token is not DPoP-bound", reason="dpop_token_not_bound")
        method = "GET" if scope["type"] == "websocket" else scope["method"]
        proof = await self.verify(
            proofs[0], method=method, uri=request_uri(scope), access_token=token
        )
        if not hmac.compare_digest(proof.jkt, access.jkt):  # (12), second half; §6
            raise InvalidToken("Invalid DPoP key binding", reason="dpop_key_mismatch")
        return access

    # -- metadata and challenges (RFC 9728 §2, RFC 9449 §7.1, §7.2, §9) ------------------------

    def metadata(self) -> dict[str, Any]:
        """The RFC 9728 members this resource advertises."""
        return {
            "dpop_signing_alg_values_supported": list(self.algorithms),
            "dpop_bound_access_tokens_required": self.required_everywhere,
        }

    def refusal_headers(
        self, exc: RSGuardError, scope: Scope, bearer: str
    ) -> list[tuple[bytes, bytes]]:
        """The challenge headers of a refusal, with a fresh `DPoP-Nonce` when one is needed."""
        headers = [(b"www-authenticate", self.challenges(exc, scope, bearer).encode("latin-1"))]
        if isinstance(exc, UseDPoPNonce):
            headers.append((b"dpop-nonce", exc.nonce.encode("ascii")))
        return headers

    def challenges(self, exc: RSGuardError, scope: Scope, bearer: str) -> str:
        """The WWW-Authenticate value for a refused request, given the Bearer challenge."""
        policy = self.policy_for(scope.get("path", ""))
        if policy is DPoPPolicy.OFF:
            return bearer
        scheme, _ = _scheme_and_proofs(scope)
        algs = " ".join(self.algorithms)
        dpop_error = isinstance(exc, InvalidDPoPProof) or (scheme == "dpop" and exc.error)
        if policy is DPoPPolicy.REQUIRED:
            # The only challenge: it carries the resource_metadata pointer too (RFC 9728 §5.1).
            meta = _param(bearer, "resource_metadata")
            if exc.error:
                return dpop_challenge(
                    exc.error, exc.description, algs=_algs_for(exc, algs), resource_metadata=meta
                )
            return dpop_challenge(algs=algs, resource_metadata=meta)
        if scheme == "ambiguous" or exc.reason == "multiple_credentials":
            # The scheme cannot be told: both challenges carry the error (Figure 19).
            return f"{bearer}, " + dpop_challenge(
                exc.error, exc.description, algs=algs, algs_first=True
            )
        if dpop_error:
            plain = bearer_challenge(resource_metadata=_param(bearer, "resource_metadata"))
            return f"{plain}, " + dpop_challenge(
                exc.error, exc.description, algs=_algs_for(exc, algs)
            )
        return f"{bearer}, " + dpop_challenge(algs=algs)


def _malformed() -> InvalidDPoPProof:
    return InvalidDPoPProof("The DPoP proof is not a well-formed JWT", reason="dpop_malformed")


def bound_as_bearer() -> InvalidToken:
    """The refusal of a DPoP-bound token presented as a bearer token (RFC 9449 §7.2)."""
    return InvalidToken(
        "The access token is DPoP-bound and needs a DPoP proof",
        reason="dpop_bound_token_as_bearer",
    )


def _algs_for(exc: RSGuardError, algs: str) -> str | None:
    # A client told to use a nonce already has an accepted alg (RFC 9449 Figure 24).
    return None if isinstance(exc, UseDPoPNonce) else algs


def _param(challenge: str, name: str) -> str | None:
    params = parse_bearer_challenge(challenge) or {}
    return params.get(name)


def dpop_challenge(
    error: str | None = None,
    error_description: str | None = None,
    *,
    algs: str | None = None,
    algs_first: bool = False,
    resource_metadata: str | None = None,
) -> str:
    """One `DPoP` challenge (RFC 9449 §7.1): error, error_description, then algs (Figure 16),
    or algs first when the challenge only echoes an error shared with Bearer (Figure 19)."""
    params: list[tuple[str, str]] = []
    if error is not None:
        params.append(("error", _clean(error)))
        if error_description:
            params.append(("error_description", _clean(error_description)))
    if algs:
        params.insert(0, ("algs", algs)) if algs_first else params.append(("algs", algs))
    if resource_metadata is not None:
        params.append(("resource_metadata", _clean(resource_metadata)))
    if not params:
        return "DPoP"
    return "DPoP " + ", ".join(f'{n}="{v}"' for n, v in params)


_NOT_ALLOWED = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


def _clean(value: str) -> str:
    return _NOT_ALLOWED.sub("", value)


def _scheme_and_proofs(scope: Scope) -> tuple[str | None, list[str]]:
    """("dpop" / "bearer" / None, the DPoP header values) of a request, in one header scan."""
    scheme: str | None = None
    proofs: list[str] = []
    for k, v in scope["headers"]:
        if k == b"authorization":
            head = v[:6].lower()
            this = "dpop" if head[:5] == b"dpop " else "bearer" if head == b"bearer" else None
            scheme = this if scheme is None or scheme == this else "ambiguous"
        elif k == b"dpop":
            proofs.append(v.decode("latin-1"))
    return scheme, proofs


def _check_claims(claims: Mapping[str, Any], with_token: bool) -> None:
    """RFC 9449 §4.2's required claims, each of the right type."""
    jti, htm, htu, iat = (claims.get(n) for n in ("jti", "htm", "htu", "iat"))
    if not (isinstance(jti, str) and 0 < len(jti) <= MAX_JTI_LENGTH):
        raise InvalidDPoPProof("The DPoP proof has no valid jti", reason="dpop_missing_claim")
    if not isinstance(htm, str) or not isinstance(htu, str) or not is_numeric_date(iat):
        raise InvalidDPoPProof("The DPoP proof lacks htm, htu or iat", reason="dpop_missing_claim")
    if with_token and not isinstance(claims.get("ath"), str):
        raise InvalidDPoPProof("The DPoP proof has no ath", reason="dpop_missing_claim")
    if not math.isfinite(iat):
        raise InvalidDPoPProof(reason="dpop_missing_claim")


# -- the client side ---------------------------------------------------------------------------


class DPoPKey:
    """A client's DPoP key pair (ES256 on P-256 by default) that signs proofs (RFC 9449 §4.2).

    Keep one per client instance (or per authorization, RFC 9449 §10); it never leaves memory.
    """

    def __init__(
        self,
        private_key: ec.EllipticCurvePrivateKey | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock  # what `iat` says: the servers' clock, in tests
        self._key = private_key or ec.generate_private_key(ec.SECP256R1())
        if not isinstance(self._key.curve, ec.SECP256R1):
            raise ConfigurationError("DPoPKey signs ES256: give it a P-256 key")
        numbers = self._key.public_key().public_numbers()
        self.public_jwk: dict[str, str] = {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url_encode(numbers.x.to_bytes(32, "big")),
            "y": b64url_encode(numbers.y.to_bytes(32, "big")),
        }
        self.jkt = jwk_thumbprint(self.public_jwk)
        self.alg = "ES256"
        self._header = b64url_encode(
            json.dumps(
                {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.public_jwk}, separators=(",", ":")
            ).encode()
        )

    def __repr__(self) -> str:
        return f"DPoPKey(jkt={self.jkt!r})"

    @property
    def private_key(self) -> ec.EllipticCurvePrivateKey:
        """The private key (to hand to a library that signs its own proofs)."""
        return self._key

    def proof(self, method: str, url: str, *, access_token: str | None = None, **fixed: Any) -> str:
        """A fresh proof for one request: `htu` is `url` without query and fragment.

        `access_token` adds `ath`; `nonce=` the server's nonce; other keywords set a claim as
        given instead of fresh (`jti=`, `iat=`: tests replaying or back-dating a proof).
        """
        parts = urlsplit(url)
        nonce = fixed.pop("nonce", None)
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method.upper(),
            "htu": f"{parts.scheme}://{parts.netloc}{parts.path}",
            "iat": int(self.clock()),
            **fixed,
        }
        claims["iat"] = int(claims["iat"])
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        if nonce is not None:
            claims["nonce"] = nonce
        payload = b64url_encode(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{self._header}.{payload}".encode("ascii")
        der = self._key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = b64url_encode(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        return f"{self._header}.{payload}.{signature}"


class DPoPAuth(httpx.Auth):
    """httpx authentication with a DPoP-bound token: `Authorization: DPoP <token>` plus a fresh
    proof on every request; a `use_dpop_nonce` answer (401 at a resource, 400 at a token
    endpoint) is retried once with the server's nonce, and the latest nonce of each origin is
    remembered (RFC 9449 §8.2, §9).

    `token` may be None (the proof alone), a string, or a callable returning the current token
    (with an `httpx.AsyncClient`, also an async one). With `invalidate`, a 401 that is not about
    the nonce forgets the token and retries once with a fresh one (as `BearerAuth` does).
    """

    def __init__(
        self,
        key: DPoPKey,
        token: str | Callable[[], str] | Callable[[], Awaitable[str]] | None = None,
        *,
        invalidate: Callable[[str], None] | None = None,
    ) -> None:
        self.key = key
        self._token = token
        self._invalidate = invalidate
        self._nonces: dict[str, str] = {}

    def _origin(self, request: httpx.Request) -> str:
        return f"{request.url.scheme}://{request.url.netloc.decode('ascii')}"

    def _sign(self, request: httpx.Request, token: str | None) -> None:
        url = str(request.url.copy_with(query=None, fragment=None))
        nonce = self._nonces.get(self._origin(request))
        request.headers["DPoP"] = self.key.proof(
            request.method, url, access_token=token, nonce=nonce
        )
        if token is not None:
            request.headers["Authorization"] = f"DPoP {token}"

    def _remember(self, request: httpx.Request, response: httpx.Response) -> bool:
        """Store a DPoP-Nonce; True when the answer asks to retry with it."""
        nonce = response.headers.get("dpop-nonce")
        if nonce is None or not _NQCHAR.fullmatch(nonce):
            return False
        origin = self._origin(request)
        changed = self._nonces.get(origin) != nonce
        self._nonces[origin] = nonce
        asks = response.status_code == 400 or (
            response.status_code == 401
            and "use_dpop_nonce" in response.headers.get("www-authenticate", "")
        )
        return asks and changed

    def _current(self) -> str | None:
        token = self._token() if callable(self._token) else self._token
        if inspect.isawaitable(token):
            raise RuntimeError("an async token source needs httpx.AsyncClient")
        return token

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        token = self._current()
        self._sign(request, token)
        response = yield request
        if self._remember(request, response):
            self._sign(request, token)  # a new proof: a resent one would be a replay
            yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._acurrent()
        self._sign(request, token)
        response = yield request
        if self._remember(request, response):
            self._sign(request, token)
            response = yield request
            self._remember(request, response)
        if response.status_code == 401 and self._invalidate is not None and token is not None:
            # The token may have been revoked or the keys rotated: one fresh try, no loop.
            self._invalidate(token)
            token = await self._acurrent()
            self._sign(request, token)
            yield request

    async def _acurrent(self) -> str | None:
        token = self._token() if callable(self._token) else self._token
        if inspect.isawaitable(token):
            token = await token
        return token


def dpop_nonce_retry(
    client: Any, status: int, headers: Mapping[str, str], body: Mapping[str, Any] | None
) -> bool:
    """At a token endpoint (RFC 9449 §8): remember a `DPoP-Nonce` on `client.dpop_nonce`; True
    when the answer is `use_dpop_nonce` with a new nonce, so the request is sent once more."""
    nonce = headers.get("dpop-nonce")
    if nonce is None or not _NQCHAR.fullmatch(nonce):
        return False
    changed = client.dpop_nonce != nonce
    client.dpop_nonce = nonce
    return status == 400 and (body or {}).get("error") == "use_dpop_nonce" and changed


def proof_for(key: DPoPKey | None, method: str, url: str) -> dict[str, str]:
    """The `DPoP` header of a token request made with `key` (none without a key)."""
    return {} if key is None else {"DPoP": key.proof(method, url)}


def algorithms_of(verifier: DPoPVerifier | None) -> Iterable[str]:
    """The algs a resource advertises (RFC 9728 `dpop_signing_alg_values_supported`)."""
    return verifier.algorithms if verifier is not None else ()
