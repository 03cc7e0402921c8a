"""Which scopes a client may obtain (docs/explanation/choices.md, "Scopes of registered clients").

- Clients the operator registered from Python (`IdP.register_client`): their registered
  `scope` is the list they may ask for (None: any scope), as the operator wrote it.
- Clients that registered themselves (DCR, RFC 7591) or describe themselves (a Client ID
  Metadata Document): the operator's ceiling decides (`IdP.dcr_scopes`; None: every scope
  except the sensitive ones), and their registered `scope` is only the default asked for when
  a request names none — so a client that registered the scope of its first challenge can still
  step up. Sensitive scopes (`IdP.sensitive_scopes`: ppid:convert, events:publish by default)
  reach such a client only when the operator lists them in `dcr_scopes` explicitly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ._users import SCOPE_CLAIMS

if TYPE_CHECKING:
    from ._clients import Client
    from ._settings import Settings

OIDC_SCOPES = frozenset({"openid", "offline_access", *SCOPE_CLAIMS})
SENSITIVE_SCOPES = frozenset({"ppid:convert", "events:publish"})


def refused_scopes(settings: Settings, client: Client, scope: Iterable[str]) -> list[str]:
    """The scopes of `scope` that `client` may not obtain (empty: all allowed)."""
    if client.dynamic or client.from_metadata_document:
        ceiling = settings.dcr_scopes
        if ceiling is None:
            return [s for s in scope if s in settings.sensitive_scopes]
        return [s for s in scope if s not in ceiling and s not in OIDC_SCOPES]
    allowed = client.allowed_scopes()
    if allowed is None:
        return []
    return [s for s in scope if s not in allowed and s not in OIDC_SCOPES]
