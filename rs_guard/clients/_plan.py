"""The plan: which clients to create, update or delete, field by field, with drift marked.

The comparison rule (documented in docs/guides/clients-as-code.md):

* only the members the file declares, plus those the last apply set, are compared; members the
  server adds by itself (defaults such as `id_token_signed_response_alg`) are not;
* a member is in sync when the server's value equals the file's, or when neither moved since
  the last apply: the file still says what was applied and the server still answers what it
  answered then (so a server's own normalisation of a value is not a perpetual change);
* it is *drift* when the server's value differs from what the server answered at the last
  apply: someone changed the client behind the tool's back; apply puts the file's value back;
* lists whose order carries no meaning (grant types, URIs, contacts) compare as sets, and
  `scope` as a set of scope tokens.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import AccessTokenRejected, StateError
from ._model import ClientsFile
from ._registrar import Registrar, Registration
from ._secrets import secret_hash
from ._state import ClientRecord, State

Action = Literal["create", "update", "delete", "none"]
FieldAction = Literal["add", "change", "remove"]
PLAN_FORMAT = "rs_guard.clients.plan/1"
UNORDERED = frozenset(
    {
        "redirect_uris",
        "post_logout_redirect_uris",
        "request_uris",
        "grant_types",
        "response_types",
        "contacts",
        "default_acr_values",
    }
)
_MISSING: Any = object()


@dataclass(frozen=True)
class FieldChange:
    """One member of one client: its value at the server (`before`) and in the file (`after`;
    None when the file no longer declares it); `drift` when the server's value moved since
    the last apply."""

    name: str
    action: FieldAction
    before: Any = None
    after: Any = None
    drift: bool = False

    def to_dict(self) -> dict[str, Any]:
        # The JSON plan names the field "field"; the other members keep their names.
        return {"field": self.name} | {
            k: getattr(self, k) for k in ("action", "before", "after", "drift")
        }


@dataclass(frozen=True)
class ClientChange:
    """What the plan does to one client, by its local name."""

    name: str
    action: Action
    client_id: str | None = None
    fields: tuple[FieldChange, ...] = ()
    # The full metadata to register (create) or to PUT (update); none for delete.
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # The server holds a client secret this tool has not delivered yet (a failed delivery,
    # or an imported client): apply reads it again and delivers it.
    secret_pending: bool = False

    @property
    def drift(self) -> bool:
        return any(f.drift for f in self.fields)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "action": self.action,
            "client_id": self.client_id,
            "drift": self.drift,
            "secret_pending": self.secret_pending,
            "fields": [f.to_dict() for f in self.fields],
        }


@dataclass(frozen=True)
class Plan:
    """A plan for one clients file against one server; `render()` for a terminal, `to_json()`
    for CI. It never holds a token or a secret."""

    file: str
    issuer: str
    changes: tuple[ClientChange, ...]
    destroy: bool = False

    @property
    def has_changes(self) -> bool:
        return any(c.action != "none" or c.secret_pending for c in self.changes)

    def count(self, action: Action) -> int:
        return sum(1 for c in self.changes if c.action == action)

    def summary(self) -> dict[str, int]:
        return {
            "create": self.count("create"),
            "update": self.count("update"),
            "delete": self.count("delete"),
            "unchanged": self.count("none"),
            "secrets_to_deliver": sum(1 for c in self.changes if c.secret_pending),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "file": self.file,
            "issuer": self.issuer,
            "destroy": self.destroy,
            "has_changes": self.has_changes,
            "summary": self.summary(),
            "clients": [c.to_dict() for c in self.changes],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    def render(self) -> str:
        from ._render import render_plan

        return render_plan(self)


# ----- comparing --------------------------------------------------------------------------


def _normal(name: str, value: Any) -> str:
    if name == "scope" and isinstance(value, str):
        value = sorted(set(value.split()))
    elif name == "response_types" and isinstance(value, list):
        value = sorted(" ".join(sorted(str(v).split())) for v in value)
    elif name in UNORDERED and isinstance(value, list):
        value = sorted(json.dumps(v, sort_keys=True) for v in value)
    return json.dumps(value, sort_keys=True)


def same(name: str, a: Any, b: Any) -> bool:
    """Equal for the purpose of a plan (see the module docstring)."""
    if a is _MISSING or b is _MISSING:
        return a is b
    return _normal(name, a) == _normal(name, b)


def diff_fields(
    desired: Mapping[str, Any], record: ClientRecord, current: Mapping[str, Any]
) -> tuple[FieldChange, ...]:
    """Field changes turning the server's `current` metadata into the file's `desired`."""
    out = []
    for name in sorted(set(desired) | set(record.applied)):
        want = desired.get(name, _MISSING)
        have = current.get(name, _MISSING)
        applied = record.applied.get(name, _MISSING)
        answered = record.answered.get(name, _MISSING)
        quiet = applied is not _MISSING and same(name, want, applied) and same(name, have, answered)
        if same(name, want, have) or quiet:
            continue
        drift = applied is not _MISSING and not same(name, have, answered)
        if want is _MISSING:
            action: FieldAction = "remove"
        elif have is _MISSING:
            action = "add"
        else:
            action = "change"
        out.append(
            FieldChange(
                name=name,
                action=action,
                before=None if have is _MISSING else have,
                after=None if want is _MISSING else want,
                drift=drift,
            )
        )
    return tuple(out)


def answered_fields(sent: Mapping[str, Any], registration: Registration) -> dict[str, Any]:
    """What the server answered for the members that were sent (those it kept)."""
    return {k: registration.metadata[k] for k in sent if k in registration.metadata}


def follow(state: State, name: str, record: ClientRecord, answer: Registration) -> ClientRecord:
    """Take in what the server's answer changed (RFC 7592 §2.1/§2.2: a new registration access
    token replaces the old at once; a new client_id or registration URI, too), saving it."""
    changes: dict[str, Any] = {}
    if answer.client_id != record.client_id:
        changes["client_id"] = answer.client_id
    if answer.registration_client_uri and answer.registration_client_uri != (
        record.registration_client_uri
    ):
        changes["registration_client_uri"] = answer.registration_client_uri
    token = answer.registration_access_token
    if token and token != record.registration_access_token:
        changes["registration_access_token"] = token
    if not changes:
        return record
    record = record.with_changes(**changes)
    state.put(name, record)
    return record


def recovery(name: str, record: ClientRecord) -> str:
    """How to get a client back under management when its token is refused."""
    return (
        f"to recover: if the client still exists and you have a valid registration access "
        f"token for it, run `rs-guard clients import FILE {name} --token-env VAR -- "
        f"{record.client_id}` with the token in $VAR (`--`: a client_id may begin with "
        f"'-'); if the client is gone or to start over, "
        f"run `rs-guard clients forget FILE {name}` and apply to register it anew (then delete "
        f"the old client {record.client_id} at the server by its admin means)"
    )


async def make_plan(
    file: ClientsFile, state: State, server: Registrar, *, destroy: bool = False
) -> Plan:
    """Compare the file with the server (RFC 7592 reads) and the state; see the module doc."""
    changes = []
    wanted = {} if destroy else dict(file.clients)
    if not destroy:
        # Even a plan of creates only asks the server: a plan that passes shows that the
        # registration endpoint is there to apply it.
        await server.registration_endpoint()
    for name in sorted(set(wanted) | set(state)):
        spec, record = wanted.get(name), state.get(name)
        if record is None:
            assert spec is not None
            fields = tuple(
                FieldChange(name=k, action="add", after=v) for k, v in sorted(spec.body().items())
            )
            changes.append(ClientChange(name, "create", None, fields, spec.body()))
            continue
        if spec is None:
            changes.append(ClientChange(name, "delete", record.client_id))
            continue
        if not record.manageable:
            raise StateError(
                f'client "{name}" ({record.client_id}) has no registration access token or '
                "URI: the server did not offer RFC 7592 management for it; "
                + recovery(name, record)
            )
        assert record.registration_client_uri and record.registration_access_token
        try:
            current = await server.read(
                name, record.registration_client_uri, record.registration_access_token
            )
        except AccessTokenRejected as exc:
            raise AccessTokenRejected(
                f"{exc}; {recovery(name, record)}", client=name, status=exc.status
            ) from None
        record = follow(state, name, record, current)
        fields = diff_fields(spec.metadata, record, current.metadata)
        action: Action = "update" if fields else "none"
        secret = current.client_secret
        pending = secret is not None and secret_hash(secret) != record.secret_sha256
        changes.append(ClientChange(name, action, record.client_id, fields, spec.body(), pending))
    return Plan(
        file=file.display_name, issuer=file.server.issuer, changes=tuple(changes), destroy=destroy
    )
