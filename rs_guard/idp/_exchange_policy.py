"""Who may exchange which tokens for which audiences (RFC 8693 §2.1 leaves it to the AS;
docs/explanation/choices.md, "Token exchange policy").

- The grant: a client uses token exchange only when registered with that grant type. Clients
  that registered themselves (DCR) or describe themselves (a Client ID Metadata Document) may
  hold only the grant types of `IdP.dcr_grant_types`, which leaves token exchange out unless
  the operator adds it: an open registration endpoint must not hand out a way to turn other
  parties' tokens into new ones.
- The subject token: the caller must be entitled to it: it is the token's own client, one of
  its audiences (its client id, or a resource the operator registered it as serving with
  `served_resources`, as for introspection), or the party the token's `may_act` names.
  Holding a token is not enough: a token can leak, and an exchange needs no browser.
- The actor token, when sent, must have been issued to the caller: another party's token
  would let the caller pass for the party a `may_act` names.
- The target: every `audience` / `resource` the caller names must be in its
  `exchange_audiences` (operator-registered clients: None means any audience the resource
  allow-list admits); a self-registered client gets the operator's `IdP.dcr_exchange_audiences`
  (empty by default: it may only narrow a token for its own audiences). The subject token's
  own audiences are always allowed: naming them widens nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._resources import audiences, canonical

if TYPE_CHECKING:
    from ._clients import Client
    from ._records import AccessTokenRecord
    from ._settings import Settings


def self_registered(client: Client) -> bool:
    """True for clients the operator did not write down (DCR, metadata documents)."""
    return client.dynamic or client.from_metadata_document


def refused_to_self_registered(settings: Settings, grants: Iterable[str]) -> list[str]:
    """The grant types of `grants` a self-registered client may not hold (`dcr_grant_types`)."""
    return [g for g in grants if g not in settings.dcr_grant_types]


def may_use(settings: Settings, client: Client, grant_type: str) -> bool:
    """Whether `client` may use `grant_type` now: registered with it and, for a self-registered
    client, still within the operator's `dcr_grant_types` (which may have narrowed since)."""
    if grant_type not in client.grant_types:
        return False
    return not self_registered(client) or grant_type in settings.dcr_grant_types


def audiences_of(record: AccessTokenRecord) -> list[str]:
    """The `aud` of an issued token as a list of strings."""
    return audiences(record.claims.get("aud"))


def names_party(may_act: Any, party: dict[str, Any]) -> bool | None:
    """RFC 8693 §4.4: None without a `may_act`; else whether it names `party`."""
    if not isinstance(may_act, dict):
        return None
    named = [m for m in ("sub", "client_id") if m in may_act]
    return bool(named) and all(may_act[m] == party.get(m) for m in named)


def entitled(client: Client, subject: AccessTokenRecord) -> bool:
    """Whether `client` received the subject token or is its own client."""
    return subject.client_id == client.client_id or client.is_audience(subject.claims.get("aud"))


def refused_targets(
    settings: Settings, client: Client, targets: Iterable[str], subject: AccessTokenRecord
) -> list[str]:
    """The audiences of `targets` that `client` may not obtain by exchange."""
    allowed = (
        settings.dcr_exchange_audiences if self_registered(client) else client.exchange_audiences
    )
    if allowed is None:
        return []
    # Compared as RFC 8707 audiences (scheme and host case-insensitive), as `resource` is.
    ok = {canonical(a) for a in (*allowed, *audiences_of(subject))}
    return [t for t in targets if canonical(t) not in ok]
