"""RFC 9493 subject identifiers, and SSF 1.0 §3 subjects, as keys of the revocation table.

A subject names a user (`iss_sub`, `opaque`, `email`, `phone_number`...), a session, a token
(`jwt_id`) or a combination (`complex`: `user`, `session`, `device`, `tenant`...). Only what
can match a token this resource accepts becomes a `Target`; the rest is ignored, as SSF §3.6
lets a receiver do with subjects it cannot map.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import EventError
from .revocations import EMAIL

_MAX_MEMBER = 1024


@dataclass(frozen=True, slots=True)
class Target:
    """What an event is about, in the transmitter's namespace."""

    subject: str | None = None
    """A user's subject (`sub`), or `email:<address>`."""
    session: str | None = None
    """A session id (`sid`), when the event names one."""
    jti: str | None = None
    """One token (`jwt_id` format)."""


def _string(doc: Mapping[str, Any], name: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not value or len(value) > _MAX_MEMBER:
        raise EventError(description=f"The subject needs a string {name}", reason="bad_subject")
    return value


def _simple(doc: Any, issuer: str) -> Target | None:
    """One simple identifier; None when it cannot name anything this resource knows."""
    if not isinstance(doc, dict):
        raise EventError(description="A subject identifier is an object", reason="bad_subject")
    fmt = doc.get("format", doc.get("subject_type"))  # subject_type: pre-RFC 9493 senders
    if fmt in ("iss_sub", "iss-sub"):
        sub, iss = _string(doc, "sub"), _string(doc, "iss")
        # A subject issued by someone else is another namespace: it matches nothing here.
        return Target(subject=sub) if iss.rstrip("/") == issuer.rstrip("/") else None
    if fmt == "opaque":
        return Target(subject=_string(doc, "id"))
    if fmt == "email":
        return Target(subject=EMAIL + _string(doc, "email").lower())
    if fmt == "jwt_id":
        jti, iss = _string(doc, "jti"), _string(doc, "iss")
        return Target(jti=jti) if iss.rstrip("/") == issuer.rstrip("/") else None
    if not isinstance(fmt, str):
        raise EventError(description="A subject identifier needs a format", reason="bad_subject")
    return None  # phone_number, account, did, uri, saml_assertion_id, ip-addresses...


def targets(
    claims: Mapping[str, Any],
    payload: Mapping[str, Any],
    issuer: str,
    *,
    opaque_is_session: bool = False,
) -> list[Target]:
    """The targets of one event: `sub_id` (SSF 1.0), else the payload's `subject` (older
    CAEP/RISC drafts), else `sub`. Malformed subjects raise EventError (400).

    `opaque_is_session`: a simple `opaque` subject names a session (CAEP session-revoked).
    """
    doc = claims.get("sub_id")
    if doc is None:
        doc = payload.get("subject")
    if doc is None:
        sub = claims.get("sub")
        return [Target(subject=sub)] if isinstance(sub, str) and sub else []
    if not isinstance(doc, dict):
        raise EventError(description="sub_id must be an object", reason="bad_subject")
    fmt = doc.get("format", doc.get("subject_type"))
    if fmt == "aliases":
        aliases = doc.get("identifiers")
        if not isinstance(aliases, list) or not aliases or len(aliases) > 16:
            raise EventError(description="aliases needs identifiers", reason="bad_subject")
        return [t for t in (_simple(a, issuer) for a in aliases) if t is not None]
    if fmt != "complex":
        target = _simple(doc, issuer)
        if target is not None and opaque_is_session and fmt == "opaque":
            return [Target(session=target.subject)]
        return [target] if target is not None else []
    user = _simple(doc["user"], issuer) if "user" in doc else None
    session = _simple(doc["session"], issuer) if "session" in doc else None
    sid = None
    if session is not None:
        # A session is named by an opaque id (or, by some senders, as iss_sub).
        sid = session.subject
    if user is None or user.subject is None:
        # A session without a user, or only device / tenant: nothing to match safely.
        return []
    return [Target(subject=user.subject, session=sid)]
