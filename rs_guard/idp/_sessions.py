"""The browser side of logging in: the session, the scripted login, consents, pending forms."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ._users import ACR_AMR, UserDirectory
from ._util import random_token

PENDING_SECONDS = 600


@dataclass
class Session:
    """The browser session: who is signed in, how, and when (auth_time)."""

    user_id: str
    acr: str
    amr: list[str]
    auth_time: int


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
