"""DPoP at the bundled IdP's token endpoint (RFC 9449 §5, §8, §10).

A token request with a valid `DPoP` proof gets access tokens bound to the proof's key
(`cnf.jkt`, §6.1) and `token_type` `DPoP`; a refresh token issued to a public client is bound to
the key too, and must be presented with a proof by that key (§5); an authorization code asked for
with `dpop_jkt` (§10) is only redeemed with a proof by that key. Proofs are checked by the
resource-server `DPoPVerifier` (one implementation of §4.3). Nonces (§8) are off unless
`idp.dpop.nonces` is set.

`DPoPAtIdP` is one of the IdP's services (`Services.dpop`, the only owner of this state). The
token endpoint calls its `bind_request` before minting and `finish_response` after; the minter
reads the binding of the request in flight (`current_cnf`, a context variable scoped to that
request), so every grant handler binds its access tokens without knowing about DPoP.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from starlette.requests import Request

from ..dpop import DPoPNonces, DPoPVerifier, InvalidDPoPProof, UseDPoPNonce, request_uri
from ..events.replay import MemoryReplayStore
from ._errors import OAuthError
from ._util import token_hash

_CNF: contextvars.ContextVar[str | None] = contextvars.ContextVar("rs_guard_idp_dpop", default=None)
_JKT = re.compile(r"[A-Za-z0-9_-]{43}")
_MAX_BINDINGS = 100_000


class DPoPAtIdP:
    """The DPoP state of one IdP: its proof verifier, optional nonces, and key bindings.

    Bindings are kept under `token_hash` (as the token store keeps tokens): neither this
    table nor `dpop.json` ever holds a usable code or refresh token.
    """

    def __init__(
        self, clock: Callable[[], int], refresh_lifetime: Callable[[], int] = lambda: 86_400
    ) -> None:
        self.verifier = DPoPVerifier(clock=clock, replay_store=MemoryReplayStore())
        self.nonces: DPoPNonces | None = None
        self._clock = clock
        self._refresh_lifetime = refresh_lifetime
        self._refresh: dict[str, tuple[str, int]] = {}  # digest -> (jkt, token expiry)
        self._codes: dict[str, tuple[str, int]] = {}  # digest -> (dpop_jkt, code expiry)

    def bind_code(self, code: str, dpop_jkt: str | None, expires_at: int) -> None:
        """Remember the `dpop_jkt` of an authorization request for its code (§10), until the
        code expires. OAuthError when the binding cannot be kept: never an unbound code for a
        request that asked for a bound one."""
        if dpop_jkt is None:
            return
        if len(self._codes) >= _MAX_BINDINGS:
            # Codes live for seconds: the bindings of expired (or never redeemed) ones go.
            now = self._clock()
            self._codes = {k: v for k, v in self._codes.items() if v[1] > now}
            if len(self._codes) >= _MAX_BINDINGS:
                raise OAuthError("temporarily_unavailable", "too many DPoP-bound codes pending")
        self._codes[token_hash(code)] = (dpop_jkt, expires_at)

    def snapshot(self) -> dict[str, Any]:
        """The refresh-token key bindings (under their hashes): without them a restart
        (`state_dir`) would let a public client's refresh token be used without its key.
        Codes are not kept across a restart, nor are their bindings."""
        return {"refresh": {k: [jkt, exp] for k, (jkt, exp) in self._refresh.items()}}

    def restore(self, doc: dict[str, Any]) -> None:
        """Take the bindings of a snapshot (ValueError when it is not one)."""
        refresh = doc.get("refresh")
        if not isinstance(refresh, dict):
            raise ValueError("dpop: refresh token bindings missing")
        restored: dict[str, tuple[str, int]] = {}
        for key, value in refresh.items():
            if not (
                isinstance(value, list)
                and len(value) == 2
                and isinstance(value[0], str)
                and type(value[1]) is int
            ):
                raise ValueError("dpop: a refresh token binding is not [jkt, expires_at]")
            restored[key] = (value[0], value[1])
        self._refresh = restored

    async def proof_key(self, request: Request) -> str | None:
        """The thumbprint of a token request's valid proof, None without one; OAuthError
        `invalid_dpop_proof` / `use_dpop_nonce` (400, RFC 9449 §5, §8) otherwise."""
        proofs = [v.decode("latin-1") for k, v in request.scope["headers"] if k == b"dpop"]
        if not proofs:
            return None
        if len(proofs) > 1:
            raise OAuthError("invalid_dpop_proof", "more than one DPoP header")
        self.verifier.nonces = self.nonces
        try:
            proof = await self.verifier.verify(
                proofs[0], method=request.method, uri=request_uri(request.scope)
            )
        except UseDPoPNonce as exc:
            raise OAuthError(
                "use_dpop_nonce",
                "Authorization server requires nonce in DPoP proof",
                headers={"DPoP-Nonce": exc.nonce},
            ) from None
        except InvalidDPoPProof as exc:
            raise OAuthError("invalid_dpop_proof", exc.description or "") from None
        return proof.jkt

    async def bind_request(
        self, request: Request, form: dict[str, list[str]], grant_type: str
    ) -> str | None:
        """Check the proof of a token request and the bindings it must honour; the key to
        bind the tokens to (None: a plain Bearer request)."""
        jkt = await self.proof_key(request)
        code = form.get("code", [None])[0] if grant_type == "authorization_code" else None
        key = token_hash(code) if code else ""
        held = self._codes.get(key) if key else None
        if held is not None:
            if held[0] != jkt:
                # The binding stays: the code is not redeemed here, and a retry without the
                # key (or with another one) must meet the same refusal.
                raise OAuthError(
                    "invalid_grant", "the code is bound to another DPoP key (dpop_jkt)"
                )
            self._codes.pop(key, None)  # only the key holder gets here; the grant uses the code
        refresh = form.get("refresh_token", [None])[0] if grant_type == "refresh_token" else None
        bound = self._refresh.get(token_hash(refresh)) if refresh else None
        if bound is not None and bound[0] != jkt:
            raise OAuthError("invalid_grant", "the refresh token is bound to another DPoP key")
        return jkt

    def finish_response(self, public_client: bool, body: dict[str, Any], jkt: str | None) -> None:
        """`token_type` DPoP, and the refresh token of a public client bound to the key (§5)."""
        if jkt is None:
            return
        body["token_type"] = "DPoP"
        refresh = body.get("refresh_token")
        if public_client and isinstance(refresh, str):
            now = self._clock()
            if len(self._refresh) >= _MAX_BINDINGS:
                # The bindings of expired refresh tokens go first (they expire together).
                self._refresh = {k: v for k, v in self._refresh.items() if v[1] > now}
            if len(self._refresh) >= _MAX_BINDINGS:
                # No room for the binding: no refresh token either, rather than an unbound
                # one a thief could use without the key (§5).
                del body["refresh_token"]
                return
            self._refresh[token_hash(refresh)] = (jkt, now + self._refresh_lifetime())


@contextmanager
def binding(jkt: str | None) -> Iterator[None]:
    """Access tokens minted inside carry `cnf.jkt` (RFC 9449 §6.1)."""
    reset = _CNF.set(jkt)
    try:
        yield
    finally:
        _CNF.reset(reset)


def current_cnf() -> dict[str, Any] | None:
    """The `cnf` claim for an access token minted now, if the request is DPoP-bound."""
    jkt = _CNF.get()
    return {"cnf": {"jkt": jkt}} if jkt is not None else None


def dpop_jkt_param(value: str | None) -> str | None:
    """A `dpop_jkt` authorization request parameter (§10); OAuthError if malformed."""
    if value is not None and not _JKT.fullmatch(value):
        raise OAuthError("invalid_request", "dpop_jkt is not a JWK SHA-256 thumbprint")
    return value
