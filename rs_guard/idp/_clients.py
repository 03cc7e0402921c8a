"""The client registry: every client the IdP knows, registered or described by a document."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .._net import is_loopback_ip
from .._scopes import split_scope
from ._resources import audiences, canonical
from ._util import safe_split

if TYPE_CHECKING:
    from ._cimd import ClientDocuments
    from ._keys import KeyStore
    from ._store import TokenStore


@dataclass
class Client:
    """A client known to the IdP, registered from Python, by DCR, or from a metadata document."""

    client_id: str
    # Kept out of repr(): a client logged or shown in a traceback must not leak its secret.
    client_secret: str | None = field(repr=False)
    redirect_uris: list[str]
    grant_types: list[str]
    response_types: list[str]
    scope: str | None
    token_endpoint_auth_method: str
    subject_type: str = "public"
    sector_identifier_uri: str | None = None
    application_type: str = "web"
    id_token_signed_response_alg: str | None = None
    event_delivery_uri: str | None = None
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    default_max_age: int | None = None
    require_auth_time: bool = False
    default_acr_values: list[str] | None = None
    client_name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    client_id_issued_at: int = 0
    client_secret_expires_at: int = 0
    registration_access_token_hash: str | None = field(default=None, repr=False)
    from_metadata_document: bool = False
    dynamic: bool = False
    """Registered by the client itself (RFC 7591): the operator's scope ceiling applies."""
    sector: str = ""
    served_resources: list[str] = field(default_factory=list)
    """Resource identifiers this client serves as a resource server. Set by the operator
    (`register_client(served_resources=...)`, a clients file), never by the client itself:
    introspection answers it about access tokens whose `aud` names one of them, and it may
    exchange them (RFC 8693, see `_exchange_policy`)."""
    introspects_any: bool = False
    """Operator-designated introspector (a gateway, an audit service): introspection answers
    it about every access token, whatever its audience."""
    exchange_audiences: list[str] | None = None
    """Operator-set: the audiences a token exchange may name (None: any the allow-list admits;
    self-registered clients get `IdP.dcr_exchange_audiences` instead)."""

    @property
    def is_public(self) -> bool:
        """True for clients without credentials (token_endpoint_auth_method none)."""
        return self.token_endpoint_auth_method == "none"

    def allowed_scopes(self) -> set[str] | None:
        """Registered scopes, or None when the client may ask for any scope."""
        return None if self.scope is None else set(split_scope(self.scope))

    def is_audience(self, aud: object) -> bool:
        """True when a token's `aud` (string or array) names this client or a resource it
        serves (resources compared as RFC 8707 audiences: scheme and host case-insensitive)."""
        served = {canonical(r) for r in self.served_resources}
        return any(n == self.client_id or canonical(n) in served for n in audiences(aud))

    def check_secret(self, secret: str) -> bool:
        """Constant-time comparison of a presented client secret."""
        if self.client_secret is None:
            return False
        return hmac.compare_digest(secret.encode("utf-8"), self.client_secret.encode("utf-8"))

    def redirect_uri_matches(self, uri: str) -> bool:
        """Exact match, except RFC 8252 §7.3 port flexibility for loopback redirect URIs."""
        if uri in self.redirect_uris:
            return True
        got = safe_split(uri)
        if got is None or got[0] != "http" or not is_loopback_ip(got[1]):
            return False
        for registered in self.redirect_uris:
            reg = safe_split(registered)
            if reg is None or reg[0] != "http" or not is_loopback_ip(reg[1]):
                continue
            # Native apps pick an ephemeral port; a registered loopback URI without a port is a
            # port wildcard for every client type.
            if self.application_type != "native" and reg[2] is not None:
                continue
            if (reg[1], reg[3], reg[4]) == (got[1], got[3], got[4]) and not got[5]:
                return True
        return False

    def registration_response(self, issuer: str) -> dict[str, Any]:
        """The client information response (RFC 7591 §3.2.1) without the access token."""
        out = dict(self.metadata)
        out["client_id"] = self.client_id
        out["client_id_issued_at"] = self.client_id_issued_at
        if self.client_secret is not None:
            out["client_secret"] = self.client_secret
            out["client_secret_expires_at"] = self.client_secret_expires_at
        out["registration_client_uri"] = f"{issuer}/register/{self.client_id}"
        return out


class ClientRegistry:
    """Registered clients by id; metadata-document clients come from `documents` (cached)."""

    def __init__(self, tokens: TokenStore, documents: ClientDocuments, keys: KeyStore) -> None:
        self._clients: dict[str, Client] = {}
        self._tokens = tokens
        self._documents = documents
        self._keys = keys

    def _publish_keys(self, client: Client) -> None:
        # A client's signing algorithm gets its key when the client becomes known, so the key
        # is in the JWK Set before the first token it signs (never published "just in time").
        for alg in (client.id_token_signed_response_alg,):
            if alg is not None:
                self._keys.active(alg)

    def add(self, client: Client) -> None:
        """Register (or replace) a client; tokens issued to its id from now on are active."""
        self._publish_keys(client)
        self._clients[client.client_id] = client
        self._tokens.reinstate_client(client.client_id)

    def registered(self, client_id: str) -> Client | None:
        """A client registered here (from Python or by DCR), not a metadata document."""
        return self._clients.get(client_id)

    def get(self, client_id: str) -> Client | None:
        """A registered (or cached metadata-document) client."""
        return self._clients.get(client_id) or self._documents.cached(client_id)

    async def resolve(self, client_id: str) -> Client | None:
        """A registered client, or one described by a Client ID Metadata Document URL."""
        client = self._clients.get(client_id)
        if client is not None:
            return client
        client = await self._documents.resolve(client_id)
        if client is not None:
            self._publish_keys(client)
        return client

    def sector_held(self, sector: str, *, besides: str) -> bool:
        """True when a client other than `besides` has the pairwise sector `sector`."""
        return any(c.sector == sector and c.client_id != besides for c in self._clients.values())

    def delete(self, client_id: str) -> None:
        """Forget a client; every token issued to it stops being active."""
        self._clients.pop(client_id, None)
        self._documents.forget(client_id)
        self._tokens.revoke_client(client_id)

    def view(self) -> Mapping[str, Client]:
        """A read-only view of client id -> registered Client."""
        return MappingProxyType(self._clients)

    # ----- persistence (see _persistence.py) ------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Every registered client (secrets as issued, registration access tokens by hash);
        metadata-document clients are a cache and are fetched again."""
        return {"clients": [asdict(c) for c in self._clients.values()]}

    def restore(self, doc: dict[str, Any]) -> None:
        """Replace the registered clients with a snapshot's (ValueError when it is not one)."""
        names = {f.name for f in fields(Client)}
        clients: dict[str, Client] = {}
        for entry in doc.get("clients") or []:
            if not isinstance(entry, dict) or not isinstance(entry.get("client_id"), str):
                raise ValueError("clients: each entry needs a client_id")
            unknown = set(entry) - names
            if unknown:
                raise ValueError(f"clients: unknown member(s) {', '.join(sorted(unknown))}")
            try:
                client = Client(**entry)
            except TypeError as exc:
                raise ValueError(f"clients: {entry['client_id']!r}: {exc}") from None
            clients[client.client_id] = client
        self._clients = clients
