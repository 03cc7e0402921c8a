"""The browser side of logging in: the session, the scripted login, consents, pending forms."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ._users import ACR_AMR, UserDirectory
from ._util import random_token

PENDING_SECONDS = 600
SESSION_COOKIE = "rs_guard_idp_session"
MAX_BROWSER_SESSIONS = 10_000


@dataclass
class Session:
    """The browser session: who is signed in, how, and when (auth_time)."""

    user_id: str
    acr: str
    amr: list[str]
    auth_time: int
    grants: list[str] = field(default_factory=list)
    """Grants issued through this session (what logout revokes when asked)."""


@dataclass
class LoginScript:
    """How the next (re-)authentication goes, set by `IdP.login_as` or `--auto-login`."""

    user_id: str
    acr: str
    amr: list[str]
    consent: bool = True


class Sessions:
    """Who is signed in, how the next login goes, who approved which client, open forms."""

    def __init__(self, users: UserDirectory, now: Callable[[], int]) -> None:
        self._users = users
        self._now = now
        self.session: Session | None = None
        self.login_script: LoginScript | None = None
        self.consents: set[tuple[str, str]] = set()
        self._pending: dict[str, tuple[int, dict[str, list[str]]]] = {}
        # Logins through the form belong to the browser that made them (its cookie), never to
        # the process: another browser, or a client without cookies, is not signed in.
        self._browsers: OrderedDict[str, Session] = OrderedDict()

    def browser(self, handle: str | None) -> Session | None:
        """The session of the browser presenting cookie value `handle`, if any."""
        if not handle:
            return None
        return self._browsers.get(handle)

    def latest(self) -> Session | None:
        """The most recent login through the form (for the Python API's `IdP.session`)."""
        return next(reversed(self._browsers.values()), None)

    def current(self, handle: str | None) -> Session | None:
        """The session an authorization request sees: its browser's, else the scripted one
        (`login_as` / `--auto-login`, which stands for every browser on purpose)."""
        return self.browser(handle) or self.session

    def sign_in_browser(self, user_id: str, acr: str, amr: Sequence[str]) -> tuple[str, Session]:
        """A login through the form: a new session and the cookie value naming it (a fresh
        value at each login, so a handle seen before the login is worth nothing after)."""
        handle = random_token(32)
        session = Session(user_id, acr, list(amr), self._now())
        self._browsers[handle] = session
        while len(self._browsers) > MAX_BROWSER_SESSIONS:
            self._browsers.popitem(last=False)
        return handle, session

    def end(self, handle: str | None) -> Session | None:
        """End the browser's session (or, without one, the scripted session); returns it."""
        session = self._browsers.pop(handle, None) if handle else None
        if session is None and self.session is not None:
            session, self.session, self.login_script = self.session, None, None
        return session

    def login_as(
        self,
        user_id: str,
        acr: str = "pwd",
        amr: Sequence[str] | None = None,
        *,
        consent: bool = True,
        auth_time: int | None = None,
    ) -> Session:
        """Sign `user_id` in now with method `acr`; later re-authentications use the same
        method. With `consent=False` the user refuses every authorization request."""
        if acr not in ACR_AMR:
            raise ValueError(f"acr must be one of {sorted(ACR_AMR)}")
        self._users.user(user_id)
        methods = list(amr) if amr is not None else list(ACR_AMR[acr])
        self.login_script = LoginScript(user_id, acr, methods, consent)
        self.session = Session(
            user_id, acr, methods, auth_time if auth_time is not None else self._now()
        )
        return self.session

    def logout(self) -> None:
        """End the session and the login script: the next authorization shows the login form."""
        self.session = None
        self.login_script = None
        self._browsers.clear()

    def sign_in(self, user_id: str, acr: str, amr: Sequence[str]) -> Session:
        """A login that happened now (the form, or the script at a re-authentication)."""
        self.session = Session(user_id, acr, list(amr), self._now())
        return self.session

    def approve(self, user_id: str, client_id: str) -> None:
        """Remember that the user approved the client (the form's "allow")."""
        self.consents.add((user_id, client_id))

    def approved(self, user_id: str, client_id: str) -> bool:
        """True when the user approved the client before."""
        return (user_id, client_id) in self.consents

    def park(self, params: dict[str, list[str]]) -> str:
        """Keep an authorization request server-side while the login form is shown; returns
        the opaque handle the form carries."""
        now = self._now()
        for key in [k for k, (t, _) in self._pending.items() if t < now]:
            del self._pending[key]
        form_id = random_token(24)
        self._pending[form_id] = (now + PENDING_SECONDS, params)
        return form_id

    def claim(self, form_id: str) -> dict[str, list[str]] | None:
        """The parked request for a submitted form (once), or None when unknown or expired."""
        entry = self._pending.pop(form_id, None)
        if entry is None or entry[0] < self._now():
            return None
        return entry[1]

    # ----- persistence (see _persistence.py) ------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The scripted session, the login script and the consents. Browser sessions (their
        cookie values are bearer secrets) and open login forms are not kept: after a restart a
        browser simply signs in again."""
        return {
            "session": asdict(self.session) if self.session is not None else None,
            "login_script": asdict(self.login_script) if self.login_script is not None else None,
            "consents": sorted([user, client] for user, client in self.consents),
        }

    def restore(self, doc: dict[str, Any]) -> None:
        """Replace the sessions with a snapshot's (ValueError when it is not one)."""
        try:
            session = doc.get("session")
            script = doc.get("login_script")
            consents = {(str(u), str(c)) for u, c in doc.get("consents") or []}
            self.session = Session(**session) if session is not None else None
            self.login_script = LoginScript(**script) if script is not None else None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"sessions: {exc}") from None
        self.consents = consents
