"""Token minting: access tokens (RFC 9068), ID tokens (OIDC Core §2), refresh tokens and
Security Event Tokens (RFC 8417), each signed with the IdP's keys and recorded where needed."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from .._scopes import join_scope, split_scope
from ._dpop import current_cnf
from ._records import AccessTokenRecord, Grant
from ._util import b64url, random_token

if TYPE_CHECKING:
    from ._clients import Client, ClientRegistry
    from ._keys import KeyStore
    from ._settings import Settings
    from ._store import TokenStore
    from ._subjects import SubjectMapper
    from ._users import UserDirectory

SET_TYPE = "secevent+jwt"
EVENT_LIFETIME = 300


def half_hash(token: str, alg: str) -> str:
    """OIDC at_hash: left half of the hash matching the signing algorithm."""
    digest = hashlib.sha512 if alg == "EdDSA" else hashlib.sha256
    raw = digest(token.encode("ascii")).digest()
    return b64url(raw[: len(raw) // 2])


class TokenOptions(TypedDict, total=False):
    """What a test may set on any token it mints: the authentication event it reports (`acr`,
    `auth_time`, `amr`), its `lifetime` (default: the IdP's), extra `claims` (they win over the
    minted ones), extra JOSE `headers` and the signing `alg`."""

    acr: str | None
    auth_time: int | None
    amr: Sequence[str] | None
    lifetime: int | None
    claims: dict[str, Any] | None
    headers: dict[str, Any] | None
    alg: str | None


class IDTokenOptions(TokenOptions, total=False):
    """An ID token's own: the authorization request's `nonce`, and the `access_token` issued
    with it (for `at_hash`)."""

    nonce: str | None
    access_token: str | None


def _add_authentication(payload: dict[str, Any], options: TokenOptions) -> None:
    """Add the authentication event's members that were given (RFC 9068 §2.2.1, OIDC §2)."""
    acr, auth_time, amr = options.get("acr"), options.get("auth_time"), options.get("amr")
    if acr is not None:
        payload["acr"] = acr
    if auth_time is not None:
        payload["auth_time"] = int(auth_time)
    if amr is not None:
        payload["amr"] = list(amr)


@dataclass(eq=False)
class TokenMinter:
    """Builds and signs every token the IdP hands out, from the services it reads."""

    _settings: Settings
    _keys: KeyStore
    _tokens: TokenStore
    _subjects: SubjectMapper
    _users: UserDirectory
    _clients: ClientRegistry

    def access_token(
        self,
        user_id: str | None,
        *,
        client_id: str,
        audience: str | Sequence[str] | None = None,
        scope: str | Sequence[str] = "",
        grant_id: str | None = None,
        **options: Unpack[TokenOptions],
    ) -> str:
        """Mint an RFC 9068 access token (typ at+jwt), recorded for introspection/revocation.

        `user_id=None` means a client acting for itself (sub = client_id).
        """
        settings = self._settings
        if user_id is not None and user_id not in self._users:
            # A user a test mints tokens for exists, so every endpoint (PPID conversion,
            # userinfo, events) knows the subject the token carries.
            self._users.add(user_id)
        now = settings.now()
        lifetime = options.get("lifetime")
        lifetime = settings.access_token_lifetime if lifetime is None else lifetime
        if audience is None:
            aud: str | list[str] = settings.default_audience
        elif isinstance(audience, str):
            aud = audience
        else:
            auds = list(audience)
            aud = auds[0] if len(auds) == 1 else auds
        sub = client_id if user_id is None else self._subjects.subject_for(user_id, client_id)
        payload: dict[str, Any] = {
            "iss": settings.issuer,
            "sub": sub,
            "aud": aud,
            "exp": now + lifetime,
            "iat": now,
            "nbf": now,
            "jti": random_token(16),
            "client_id": client_id,
            "scope": join_scope(split_scope(scope)),
        }
        _add_authentication(payload, options)
        payload.update(options.get("claims") or {})
        payload.update(current_cnf() or {})  # a DPoP token request binds the token (RFC 9449)
        token = self._keys.sign(
            payload, typ="at+jwt", alg=options.get("alg"), headers=options.get("headers")
        )
        exp = payload.get("exp")
        record = AccessTokenRecord(
            jti=str(payload.get("jti")),
            claims=payload,
            client_id=client_id,
            user_id=user_id,
            expires_at=exp if isinstance(exp, int) else now + lifetime,
            grant_id=grant_id,
            resource_bound=audience is not None or "aud" in (options.get("claims") or {}),
        )
        self._tokens.record_access(token, record)
        return token

    def id_token(self, user_id: str, *, client_id: str, **options: Unpack[IDTokenOptions]) -> str:
        """Mint an OIDC ID token (typ JWT, aud = azp = client_id), signed with the client's alg."""
        settings = self._settings
        if user_id not in self._users:
            self._users.add(user_id)
        now = settings.now()
        client = self._clients.get(client_id)
        alg = options.get("alg")
        if alg is None and client is not None:
            alg = client.id_token_signed_response_alg
        alg = alg or self._keys.default_alg
        lifetime = options.get("lifetime")
        payload: dict[str, Any] = {
            "iss": settings.issuer,
            "sub": self._subjects.subject_for(user_id, client_id),
            "aud": client_id,
            "azp": client_id,
            "exp": now + (settings.access_token_lifetime if lifetime is None else lifetime),
            "iat": now,
        }
        nonce, access_token = options.get("nonce"), options.get("access_token")
        if nonce is not None:
            payload["nonce"] = nonce
        _add_authentication(payload, options)
        if access_token is not None:
            payload["at_hash"] = half_hash(access_token, alg)
        payload.update(options.get("claims") or {})
        return self._keys.sign(payload, typ="JWT", alg=alg, headers=options.get("headers"))

    def refresh_token(self, grant: Grant, scope: list[str]) -> str:
        """A new opaque refresh token for `grant`."""
        return self._tokens.new_refresh(grant, scope, self._settings.refresh_token_lifetime)

    def for_grant(
        self,
        grant: Grant,
        client: Client,
        scope: list[str],
        resources: list[str],
        *,
        id_token: bool,
        refresh: bool,
    ) -> dict[str, Any]:
        """The token response for a user grant: access token, ID token, refresh token."""
        claims_request = grant.claims_request
        user = self._users.get(grant.user_id or "")
        profile = user.claims if user is not None else {}
        # Claims requested for the ID token also go into the access token (issue #3).
        extra = {name: profile[name] for name in claims_request.id_token if name in profile}
        access = self.access_token(
            grant.user_id,
            client_id=client.client_id,
            audience=resources or None,
            scope=scope,
            acr=grant.acr,
            auth_time=grant.auth_time,
            amr=grant.amr,
            claims=extra or None,
            grant_id=grant.grant_id,
        )
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self._settings.access_token_lifetime,
            "scope": " ".join(scope),
        }
        if id_token and grant.user_id is not None:
            body["id_token"] = self.id_token(
                grant.user_id,
                client_id=client.client_id,
                nonce=grant.nonce,
                acr=grant.acr,
                auth_time=grant.auth_time,
                amr=grant.amr,
                claims=dict(extra) or None,
                access_token=access,
            )
        if refresh:
            body["refresh_token"] = self.refresh_token(grant, grant.scope)
        return body

    def event_token(
        self,
        receiver: str,
        events: Mapping[str, Mapping[str, Any]],
        *,
        user: str | None,
        subject: str | None,
        publisher: str | None,
        txn: str | None = None,
        lifetime: int = EVENT_LIFETIME,
        claims: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        alg: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """A Security Event Token for `receiver` about `user` (an IdP user id) or `subject`
        (the publisher's PPID for the user), and its claims; ValueError when it cannot be."""
        client = self._clients.get(receiver)
        if client is None:
            raise ValueError(f"unknown receiver client {receiver!r}")
        if (user is None) == (subject is None):
            raise ValueError("give exactly one of user (a user id) or subject (a publisher PPID)")
        if subject is not None:
            if publisher is None:
                raise ValueError("a subject is a publisher's PPID: give the publisher too")
            user = self._subjects.user_for_subject(subject, publisher)
            if user is None:
                raise ValueError("the subject is unknown to the IdP")
        assert user is not None
        now = self._settings.now()
        payload: dict[str, Any] = {
            "iss": self._settings.issuer,
            "aud": receiver,
            "sub": self._subjects.subject_for(user, receiver),
            "iat": now,
            "exp": now + lifetime,
            "jti": random_token(16),
            "events": {name: dict(body) for name, body in events.items()},
        }
        if publisher is not None:
            # `azp`: the party that asked for this token (see the README for the choice).
            payload["azp"] = publisher
        if txn is not None:
            payload["txn"] = txn
        if claims:
            payload.update(claims)
        alg = alg or client.id_token_signed_response_alg or self._keys.default_alg
        token = self._keys.sign(payload, typ=SET_TYPE, alg=alg, headers=dict(headers or {}))
        return token, payload
