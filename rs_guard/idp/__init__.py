"""The bundled test IdP: a complete OpenID Provider for tests and local development."""

from .._http import AddressRefused, PublicAddressTransport
from ._claims import ClaimSpec, ClaimsRequest
from ._clients import Client
from ._events import Delivery, EventService
from ._faults import Faults
from ._routes import FAULT_SWITCHES
from ._sessions import Session
from ._subjects import ConversionPolicy
from ._users import ACR_AMR, User
from .app import IdP

__all__ = [
    "ACR_AMR",
    "FAULT_SWITCHES",
    "AddressRefused",
    "ClaimSpec",
    "ClaimsRequest",
    "Client",
    "ConversionPolicy",
    "Delivery",
    "EventService",
    "Faults",
    "IdP",
    "PublicAddressTransport",
    "Session",
    "User",
]
