"""The token store: what the IdP issued (codes, grants, access and refresh tokens), by hash.

It is the one owner of that state: endpoints ask it (`access_record`, `find_code`, ...) and
tell it (`revoke`, `revoke_grant`, ...), they never reach into its tables.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._claims import ClaimSpec
from ._keys import KeyStore
from ._records import AccessTokenRecord, AuthorizationCode, Grant, RefreshTokenRecord
from ._util import random_token, token_hash

PRUNE_AT = 10_000


class TokenStore:
    """Codes, grants, access- and refresh-token records, and seen client-assertion ids."""

    def __init__(self, now: Callable[[], int], keys: KeyStore) -> None:
        self._now = now
        self._keys = keys
        self._codes: dict[str, AuthorizationCode] = {}
        self._access: dict[str, AccessTokenRecord] = {}
        self._refresh: dict[str, RefreshTokenRecord] = {}
        self._grants: dict[str, Grant] = {}
        self._assertion_jtis: dict[str, int] = {}
        self._dead_clients: set[str] = set()
        self._prune_at = PRUNE_AT
        self.revocation_listeners: list[Callable[[str | None, str | None], None]] = []
        """Called as (user id, access token jti or None for a whole grant) on each revocation
        (the SSF transmitter tells receivers)."""

    # ----- grants ---------------------------------------------------------------------------

    def new_grant(
        self,
        client_id: str,
        user_id: str | None,
        scope: list[str],
        resources: list[str],
        **kwargs: Any,
    ) -> Grant:
        """Record an authorization from which tokens descend."""
        grant = Grant(random_token(12), client_id, user_id, scope, resources, **kwargs)
        self._grants[grant.grant_id] = grant
        return grant

    def grant(self, grant_id: str | None) -> Grant | None:
        """A grant by id (revoked or not)."""
        return self._grants.get(grant_id or "")

    def revoke_grant(self, grant_id: str) -> None:
        """Revoke a grant: every access and refresh token issued from it becomes inactive."""
        self._revoke_where(lambda grant_id_, _client_id: grant_id_ == grant_id)

    # ----- codes ----------------------------------------------------------------------------

    def store_code(self, code: str, record: AuthorizationCode) -> None:
        """Remember an authorization code by its hash."""
        self._prune()
        self._codes[token_hash(code)] = record

    def find_code(self, code: str) -> AuthorizationCode | None:
        """The authorization code record, used or not."""
        return self._codes.get(token_hash(code))

    # ----- access and refresh tokens --------------------------------------------------------

    def record_access(self, token: str, record: AccessTokenRecord) -> None:
        """Remember a minted access token for introspection and revocation."""
        self._prune()
        self._access[token_hash(token)] = record

    def access_record(self, token: str) -> AccessTokenRecord | None:
        """The record of an access token that is active now (issued here, valid, unrevoked)."""
        rec = self._access.get(token_hash(token))
        if rec is None or rec.revoked or rec.expires_at <= self._now():
            return None
        if rec.client_id in self._dead_clients:
            return None
        if rec.grant_id is not None:
            grant = self._grants.get(rec.grant_id)
            if grant is not None and grant.revoked:
                return None
        # The signature must still verify against a published key (retired keys => inactive).
        if self._keys.verify(token) is None:
            return None
        return rec

    def new_refresh(self, grant: Grant, scope: list[str], lifetime: int) -> str:
        """A new opaque refresh token for `grant`."""
        token = random_token(32)
        now = self._now()
        self._refresh[token_hash(token)] = RefreshTokenRecord(grant, scope, now, now + lifetime)
        return token

    def refresh_record(self, token: str) -> RefreshTokenRecord | None:
        """The record of a refresh token, whatever its state (None when never issued)."""
        return self._refresh.get(token_hash(token))

    def active_refresh(self, token: str) -> RefreshTokenRecord | None:
        """The record of a refresh token that can be used now."""
        refresh = self._refresh.get(token_hash(token))
        if (
            refresh is None
            or refresh.used
            or refresh.revoked
            or refresh.grant.revoked
            or refresh.expires_at <= self._now()
        ):
            return None
        return refresh

    def revoke(self, token: str, *, client_id: str | None = None) -> None:
        """Revoke a token (only one issued to `client_id` when given); a refresh token takes
        its whole grant with it (RFC 7009 §2.1)."""
        key = token_hash(token)
        access = self._access.get(key)
        if access is not None and client_id in (None, access.client_id) and not access.revoked:
            access.revoked = True
            for listener in self.revocation_listeners:
                listener(access.user_id, access.jti)
        refresh = self._refresh.get(key)
        if refresh is not None and client_id in (None, refresh.grant.client_id):
            self.revoke_grant(refresh.grant.grant_id)
            for listener in self.revocation_listeners:
                listener(refresh.grant.user_id, None)

    # ----- clients --------------------------------------------------------------------------

    def revoke_client(self, client_id: str) -> None:
        """A client was deleted: everything issued to it stops being active, for good."""
        self._dead_clients.add(client_id)
        self._revoke_where(lambda _grant_id, client_id_: client_id_ == client_id)

    def reinstate_client(self, client_id: str) -> None:
        """A client id is registered (again): tokens issued to it from now on are active."""
        self._dead_clients.discard(client_id)

    def first_use_of_assertion(self, key: str, expires_at: int) -> bool:
        """Remember a client assertion's id until it expires; False when seen before."""
        if key in self._assertion_jtis:
            return False
        self._assertion_jtis[key] = expires_at
        return True

    def _revoke_where(self, hit: Callable[[str | None, str], bool]) -> None:
        """Revoke every grant, access and refresh token whose (grant id, client id) is hit."""
        for grant in self._grants.values():
            if hit(grant.grant_id, grant.client_id):
                grant.revoked = True
        for rec in self._access.values():
            if hit(rec.grant_id, rec.client_id):
                rec.revoked = True
        for refresh in self._refresh.values():
            if hit(refresh.grant.grant_id, refresh.grant.client_id):
                refresh.revoked = True

    def _prune(self) -> None:
        # Long-running CLI instances would otherwise grow without bound.
        # Amortised: the next prune waits until the live set has doubled again, so minting
        # many long-lived tokens stays O(1) per token.
        if len(self._access) + len(self._codes) + len(self._refresh) < self._prune_at:
            return
        now = self._now()
        self._access = {k: v for k, v in self._access.items() if v.expires_at > now}
        self._codes = {k: v for k, v in self._codes.items() if v.expires_at > now}
        self._refresh = {k: v for k, v in self._refresh.items() if v.expires_at > now}
        self._assertion_jtis = {k: v for k, v in self._assertion_jtis.items() if v > now}
        live = len(self._access) + len(self._codes) + len(self._refresh)
        self._prune_at = max(PRUNE_AT, 2 * live)

    # ----- persistence (see _persistence.py) ------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """What must survive a restart: unexpired access- and refresh-token records (by hash,
        so introspection, refresh and revocation go on), their grants, deleted client ids and
        seen assertion ids. Authorization codes are not kept: they live a minute, and a code
        in flight at a restart fails with invalid_grant (the user signs in again)."""
        now = self._now()
        access = {k: v for k, v in self._access.items() if v.expires_at > now}
        refresh = {k: v for k, v in self._refresh.items() if v.expires_at > now}
        grant_ids = {r.grant.grant_id for r in refresh.values()}
        grant_ids |= {r.grant_id for r in access.values() if r.grant_id is not None}
        return {
            "grants": [_grant_doc(g) for g in self._grants.values() if g.grant_id in grant_ids],
            "access": [{"hash": k, **_plain(v)} for k, v in access.items()],
            "refresh": [
                {
                    "hash": k,
                    "grant_id": r.grant.grant_id,
                    "scope": r.scope,
                    "issued_at": r.issued_at,
                    "expires_at": r.expires_at,
                    "used": r.used,
                    "revoked": r.revoked,
                }
                for k, r in refresh.items()
            ],
            "dead_clients": sorted(self._dead_clients),
            "assertion_ids": {k: v for k, v in self._assertion_jtis.items() if v > now},
        }

    def restore(self, doc: dict[str, Any]) -> None:
        """Replace the records with a snapshot's (ValueError when it is not one)."""
        try:
            grants = {g.grant_id: g for g in map(_grant_from, doc.get("grants") or [])}
            access = {
                e["hash"]: AccessTokenRecord(**{k: v for k, v in e.items() if k != "hash"})
                for e in doc.get("access") or []
            }
            refresh = {
                e["hash"]: RefreshTokenRecord(
                    grants[e["grant_id"]],
                    list(e["scope"]),
                    int(e["issued_at"]),
                    int(e["expires_at"]),
                    bool(e["used"]),
                    bool(e["revoked"]),
                )
                for e in doc.get("refresh") or []
            }
            dead = {str(c) for c in doc.get("dead_clients") or []}
            jtis = {str(k): int(v) for k, v in (doc.get("assertion_ids") or {}).items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"tokens: malformed record ({exc!r})") from None
        self._grants, self._access, self._refresh = grants, access, refresh
        self._dead_clients, self._assertion_jtis = dead, jtis
        self._codes = {}


def _plain(record: AccessTokenRecord) -> dict[str, Any]:
    return {
        "jti": record.jti,
        "claims": record.claims,
        "client_id": record.client_id,
        "user_id": record.user_id,
        "expires_at": record.expires_at,
        "grant_id": record.grant_id,
        "revoked": record.revoked,
        "resource_bound": record.resource_bound,
    }


def _grant_doc(grant: Grant) -> dict[str, Any]:
    claims = grant.claims_request
    return {
        "grant_id": grant.grant_id,
        "client_id": grant.client_id,
        "user_id": grant.user_id,
        "scope": grant.scope,
        "resources": grant.resources,
        "acr": grant.acr,
        "amr": grant.amr,
        "auth_time": grant.auth_time,
        "nonce": grant.nonce,
        "claims_request": {
            "userinfo": {n: _spec_doc(c) for n, c in claims.userinfo.items()},
            "id_token": {n: _spec_doc(c) for n, c in claims.id_token.items()},
        },
        "revoked": grant.revoked,
    }


def _spec_doc(spec: ClaimSpec) -> dict[str, Any]:
    values = list(spec.values) if spec.values is not None else None
    return {
        "essential": spec.essential,
        "value": spec.value,
        "has_value": spec.has_value,
        "values": values,
    }


def _grant_from(doc: dict[str, Any]) -> Grant:
    from ._claims import ClaimsRequest

    def specs(part: dict[str, Any]) -> dict[str, ClaimSpec]:
        out = {}
        for name, spec in part.items():
            values = spec.get("values")
            out[str(name)] = ClaimSpec(
                bool(spec["essential"]),
                spec.get("value"),
                bool(spec["has_value"]),
                tuple(values) if values is not None else None,
            )
        return out

    request = doc["claims_request"]
    return Grant(
        grant_id=str(doc["grant_id"]),
        client_id=str(doc["client_id"]),
        user_id=doc["user_id"],
        scope=list(doc["scope"]),
        resources=list(doc["resources"]),
        acr=doc["acr"],
        amr=doc["amr"],
        auth_time=doc["auth_time"],
        nonce=doc["nonce"],
        claims_request=ClaimsRequest(specs(request["userinfo"]), specs(request["id_token"])),
        revoked=bool(doc["revoked"]),
    )
