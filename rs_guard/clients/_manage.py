"""Bringing a client under management (`import`) or letting go of it (`forget`)."""

from __future__ import annotations

from ._model import ClientsFile
from ._plan import follow
from ._registrar import Registrar
from ._state import ClientRecord, State
from ._validate import check_web_url
from .errors import AccessTokenRejected, ClientsError, StateError


async def import_client(
    file: ClientsFile,
    state: State,
    server: Registrar,
    name: str,
    client_id: str,
    registration_access_token: str,
    *,
    registration_client_uri: str | None = None,
) -> ClientRecord:
    """Record an existing registration under the local `name` after checking, with an RFC 7592
    read, that the token works. Without `registration_client_uri`, the URI is taken to be
    `REGISTRATION_ENDPOINT/CLIENT_ID` (what most servers use; RFC 7592 leaves it open).
    For a client new to the state, the next plan compares the file with the client as it is
    (nothing counts as drift) and the next apply delivers its secret; for the client the state
    already tracks (a token replaced after a 401), only the token and URI change."""
    if name not in file.clients:
        raise ClientsError(
            f'{file.display_name}: no client "{name}" is declared; declare it first (an '
            "imported client the file does not declare would be deleted by the next apply)"
        )
    if not client_id or not registration_access_token:
        raise ClientsError("import needs a client_id and a registration access token")
    if registration_client_uri is None:
        endpoint = await server.registration_endpoint()
        registration_client_uri = f"{endpoint.rstrip('/')}/{client_id}"
    elif (why := check_web_url(registration_client_uri)) is not None:
        raise ClientsError(f"registration client URI {registration_client_uri!r}: {why}")
    try:
        answer = await server.read(name, registration_client_uri, registration_access_token)
    except AccessTokenRejected as exc:
        raise AccessTokenRejected(
            f"{exc}; check the client_id, the token and the registration client URI "
            f"({registration_client_uri})",
            client=name,
            status=exc.status,
        ) from None
    if answer.client_id != client_id:
        raise ClientsError(
            f'client "{name}": the server answered for client_id {answer.client_id}, '
            f"not {client_id}"
        )
    old = state.get(name)
    if old is not None and old.client_id == client_id:
        # A new token for the client the state already tracks: its history stays, so drift
        # and secrets are judged as before.
        record = old.with_changes(
            registration_client_uri=registration_client_uri,
            registration_access_token=registration_access_token,
        )
    else:
        record = ClientRecord(
            client_id=client_id,
            registration_client_uri=registration_client_uri,
            registration_access_token=registration_access_token,
        )
    state.put(name, record)
    return follow(state, name, record, answer)


def forget(state: State, name: str) -> ClientRecord:
    """Drop `name` from the state without touching the server (the next apply registers it
    anew if the file still declares it). Returns the record that was dropped."""
    record = state.get(name)
    if record is None:
        raise StateError(f'{state.path}: no client "{name}" in the state')
    state.remove(name)
    return record
