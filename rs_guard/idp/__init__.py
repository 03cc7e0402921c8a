"""The bundled test IdP: a complete OpenID Provider for tests and local development."""

from ._claims import ClaimSpec, ClaimsRequest
from ._clients import Client
from ._faults import Faults
from ._users import ACR_AMR, Session, User
from .app import IdP

__all__ = ["ACR_AMR", "ClaimSpec", "ClaimsRequest", "Client", "Faults", "IdP", "Session", "User"]
