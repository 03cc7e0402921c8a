"""Performing a plan: RFC 7591 create, RFC 7592 update and delete, saving the state after each
client, so a failure part-way leaves a state that matches what was done and a rerun converges."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._model import DEFAULT_AUTH_METHOD, SECRET_METHODS, ClientsFile
from ._plan import ClientChange, Plan, answered_fields, follow, make_plan, recovery, same
from ._registrar import Registrar, Registration
from ._secrets import IssuedSecret, SecretSink
from ._state import ClientRecord, State
from .errors import AccessTokenRejected, ApplyError, ClientsError, SecretDeliveryError


@dataclass(frozen=True)
class Outcome:
    """What was done to one client."""

    name: str
    action: str
    client_id: str | None
    message: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApplyResult:
    """Every client done, and every client that failed (with its error, safe to print)."""

    done: tuple[Outcome, ...] = ()
    failed: tuple[tuple[str, ClientsError], ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> dict[str, int]:
        return {
            a: sum(1 for o in self.done if o.action == a) for a in ("create", "update", "delete")
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "done": [
                {
                    "name": o.name,
                    "action": o.action,
                    "client_id": o.client_id,
                    "message": o.message,
                    "notes": list(o.notes),
                }
                for o in self.done
            ],
            "failed": [{"name": name, "error": str(error)} for name, error in self.failed],
        }

    def render(self) -> str:
        from ._render import render_result

        return render_result(self)


def needs_secret_sink(plan: Plan) -> list[str]:
    """Clients of the plan the server will issue a client secret to."""
    return [
        c.name
        for c in plan.changes
        if c.secret_pending
        or (c.action in ("create", "update") and _auth_method(c.metadata) in SECRET_METHODS)
    ]


def _auth_method(metadata: Mapping[str, Any]) -> str:
    return str(metadata.get("token_endpoint_auth_method", DEFAULT_AUTH_METHOD))


async def apply(
    plan: Plan, state: State, server: Registrar, *, secrets: SecretSink | None = None
) -> ApplyResult:
    """Make the server match the plan. Raises `ApplyError` (with the result) when any client
    failed; the others are done and saved. Refuses, before any request, to create or update
    a client that gets a secret when there is nowhere to put it."""
    if secrets is None and (pending := needs_secret_sink(plan)):
        raise SecretDeliveryError(
            f"the server will issue a client secret to {', '.join(pending)}: say where it goes "
            "with --secrets-dir DIR or --secrets-command CMD (a secret is never printed)"
        )
    runner = _Runner(state, server, secrets)
    done, failed = [], []
    for change in plan.changes:
        if change.action == "none" and not change.secret_pending:
            continue
        try:
            done.append(await runner.run(change))
        except ClientsError as exc:
            failed.append((change.name, exc))
    result = ApplyResult(tuple(done), tuple(failed))
    if failed:
        names = ", ".join(name for name, _ in failed)
        raise ApplyError(
            f"apply failed for {names}; every other change was made and saved in the state "
            f"({state.path}), so running apply again continues from there",
            result,
        )
    return result


async def destroy(
    file: ClientsFile, state: State, server: Registrar, *, secrets: SecretSink | None = None
) -> ApplyResult:
    """Delete every client the state holds for `file` (RFC 7592 §2.3)."""
    plan = await make_plan(file, state, server, destroy=True)
    return await apply(plan, state, server, secrets=secrets)


class _Runner:
    def __init__(self, state: State, server: Registrar, secrets: SecretSink | None) -> None:
        self.state = state
        self.server = server
        self.secrets = secrets

    async def run(self, change: ClientChange) -> Outcome:
        if change.action == "create":
            return await self.create(change)
        record = self.state.get(change.name)
        if record is None:
            raise ClientsError(f'client "{change.name}" is no longer in the state')
        if not record.manageable:
            raise ClientsError(
                f'client "{change.name}" ({record.client_id}): the server gave no registration '
                "access token for it (no RFC 7592 management); " + recovery(change.name, record)
            )
        try:
            if change.action == "delete":
                return await self.delete(change, record)
            if change.action == "none":
                return await self.deliver_pending(change, record)
            return await self.update(change, record)
        except AccessTokenRejected as exc:
            raise AccessTokenRejected(
                f"{exc}; {recovery(change.name, record)}", client=change.name, status=exc.status
            ) from None

    async def create(self, change: ClientChange) -> Outcome:
        sent = dict(change.metadata)
        answer = await self.server.create(change.name, sent)
        record = ClientRecord(
            client_id=answer.client_id,
            registration_client_uri=answer.registration_client_uri,
            registration_access_token=answer.registration_access_token,
            applied=sent,
            answered=answered_fields(sent, answer),
        )
        # Saved before anything else can fail: a registered client is never left untracked.
        self.state.put(change.name, record)
        notes = _notes(sent, answer)
        if not record.manageable:
            notes.append(
                "the server gave no registration access token or URI (no RFC 7592): this tool "
                "cannot update or delete the client later"
            )
        notes += await self._secret(change.name, record, answer)
        return Outcome(change.name, "create", answer.client_id, "registered", tuple(notes))

    async def update(self, change: ClientChange, record: ClientRecord) -> Outcome:
        assert record.registration_client_uri and record.registration_access_token
        sent = dict(change.metadata)
        answer = await self.server.update(
            change.name,
            record.registration_client_uri,
            record.registration_access_token,
            record.client_id,
            sent,
        )
        before = record
        record = follow(self.state, change.name, record, answer)
        record = record.with_changes(applied=sent, answered=answered_fields(sent, answer))
        self.state.put(change.name, record)
        notes = _notes(sent, answer)
        if record.client_id != before.client_id:
            notes.append(f"the server changed the client_id from {before.client_id}")
        if record.registration_access_token != before.registration_access_token:
            notes.append("the server rotated the registration access token (saved in the state)")
        notes += await self._secret(change.name, record, answer)
        fields = ", ".join(f.name for f in change.fields)
        return Outcome(change.name, "update", record.client_id, f"updated {fields}", tuple(notes))

    async def deliver_pending(self, change: ClientChange, record: ClientRecord) -> Outcome:
        assert record.registration_client_uri and record.registration_access_token
        answer = await self.server.read(
            change.name, record.registration_client_uri, record.registration_access_token
        )
        record = follow(self.state, change.name, record, answer)
        notes = await self._secret(change.name, record, answer)
        return Outcome(change.name, "secret", record.client_id, "no changes", tuple(notes))

    async def delete(self, change: ClientChange, record: ClientRecord) -> Outcome:
        assert record.registration_client_uri and record.registration_access_token
        existed = await self.server.delete(
            change.name, record.registration_client_uri, record.registration_access_token
        )
        self.state.remove(change.name)
        message = "deleted" if existed else "already gone at the server; removed from the state"
        discard = getattr(self.secrets, "discard", None)
        if discard is not None:
            await discard(change.name)
        return Outcome(change.name, "delete", record.client_id, message)

    async def _secret(self, name: str, record: ClientRecord, answer: Registration) -> list[str]:
        if answer.client_secret is None:
            return []
        issued = IssuedSecret(
            name, record.client_id, answer.client_secret, answer.client_secret_expires_at
        )
        if issued.sha256 == record.secret_sha256:
            return []
        if self.secrets is None:
            raise SecretDeliveryError(
                f'client "{name}": the server issued a new client secret and there is nowhere '
                "to put it (--secrets-dir or --secrets-command)"
            )
        await self.secrets.deliver(issued)
        # Only once delivered: a failed delivery is retried by the next apply (RFC 7592 reads
        # return the secret again).
        self.state.put(name, record.with_changes(secret_sha256=issued.sha256))
        return ["a new client secret was delivered"]


def _notes(sent: Mapping[str, Any], answer: Registration) -> list[str]:
    """RFC 7591 §3.2.1: a server MAY drop or replace requested values; say so once (the plan
    then compares with what it answered, so this is no change on every plan)."""
    notes = []
    dropped = sorted(k for k in sent if k not in answer.metadata)
    if dropped:
        notes.append(f"the server did not keep {', '.join(dropped)} (not supported there?)")
    kept = answer.metadata
    replaced = sorted(k for k in sent if k in kept and not same(k, sent[k], kept[k]))
    if replaced:
        notes.append(f"the server registered other values for {', '.join(replaced)}")
    return notes
