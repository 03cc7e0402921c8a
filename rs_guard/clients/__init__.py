"""OAuth / OIDC clients as code: a reviewed TOML file of clients, a plan, and an apply through
Dynamic Client Registration (RFC 7591) and its management protocol (RFC 7592).

```python
import asyncio
from rs_guard import clients

async def main() -> None:
    spec = clients.load("clients.toml")          # validated: ClientsFileError lists problems
    state = clients.State.of(spec)
    async with clients.Registrar(spec.server,
                                 initial_access_token=spec.server.initial_access_token()) as server:
        plan = await clients.plan(spec, state, server)
        print(plan.render())                      # or plan.to_json() for CI
        await clients.apply(plan, state, server, secrets=clients.SecretsDir("secrets"))

asyncio.run(main())
```

The command line is the same: `rs-guard clients plan|apply|destroy|validate|import|forget`.
Every error is a `ClientsError` (under `rs_guard.errors.RSGuardError`); see `.errors`.
"""

from ._apply import ApplyResult, Outcome, apply, destroy
from ._load import load, parse
from ._manage import forget, import_client
from ._model import ClientsFile, ClientSpec, ServerSpec
from ._plan import ClientChange, FieldChange, Plan
from ._plan import make_plan as plan
from ._registrar import Registrar, Registration
from ._secrets import IssuedSecret, SecretsCommand, SecretsDir, SecretSink
from ._state import ClientRecord, State
from .errors import (
    AccessTokenRejected,
    ApplyError,
    ClientsError,
    ClientsFileError,
    DiscoveryError,
    InitialAccessTokenError,
    RegistrationError,
    RegistrationRefused,
    SecretDeliveryError,
    StateError,
)

__all__ = [
    "AccessTokenRejected",
    "ApplyError",
    "ApplyResult",
    "ClientChange",
    "ClientRecord",
    "ClientSpec",
    "ClientsError",
    "ClientsFile",
    "ClientsFileError",
    "DiscoveryError",
    "FieldChange",
    "InitialAccessTokenError",
    "IssuedSecret",
    "Outcome",
    "Plan",
    "Registrar",
    "Registration",
    "RegistrationError",
    "RegistrationRefused",
    "SecretDeliveryError",
    "SecretSink",
    "SecretsCommand",
    "SecretsDir",
    "ServerSpec",
    "State",
    "StateError",
    "apply",
    "destroy",
    "forget",
    "import_client",
    "load",
    "parse",
    "plan",
]
