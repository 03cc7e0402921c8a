"""Tokens a service obtains for its own outbound calls: client credentials and RFC 8693 exchange.

A resource server that calls another one never forwards the token it received. For a call made
for the user it exchanges that token at the IdP (RFC 8693) for one addressed to the downstream
resource (`TokenExchanger`); for a call on its own behalf it uses the client-credentials grant
(`ClientCredentials`). Both cache what they obtain until shortly before it expires, make one
IdP request for many concurrent callers, and plug into httpx as `auth=` (`BearerAuth`).
"""

from __future__ import annotations

from ..errors import TokenRequestRefused, TokenServiceUnavailable
from ._token_endpoint import BearerAuth, IssuedToken
from .client_credentials import ClientCredentials
from .token_exchange import TokenExchanger

__all__ = [
    "BearerAuth",
    "ClientCredentials",
    "IssuedToken",
    "TokenExchanger",
    "TokenRequestRefused",
    "TokenServiceUnavailable",
]
