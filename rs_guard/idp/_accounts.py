"""The users-and-sessions part of the IdP's Python API (`IdP` inherits it): users, the
scripted login, logout, and the account changes the SSF transmitter tells receivers about.

Kept apart so the facade in `app.py` stays one screen of wiring per concern; the state itself
lives in the `UserDirectory` and `Sessions` services.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import _ssf as ssf_events
from ._sessions import Session
from ._users import User

if TYPE_CHECKING:
    from ._services import Services
    from ._ssf import SignalTransmitter


class AccountsAPI:
    """Users and sessions, from Python (see `IdP`)."""

    services: Services
    ssf: SignalTransmitter

    @property
    def users(self) -> Mapping[str, User]:
        """Every known user by id (read-only; `add_user` changes it)."""
        return self.services.users.view()

    def add_user(self, user_id: str, *, phone_verification: bool = False, **claims: Any) -> User:
        """Create or update a user with OIDC profile claims (email, phone_number, ...)."""
        return self.services.users.add(user_id, phone_verification=phone_verification, **claims)

    def user(self, user_id: str) -> User:
        """The user, created empty when unknown (a test IdP accepts any user name)."""
        return self.services.users.user(user_id)

    @property
    def session(self) -> Session | None:
        """Who is signed in, how and when: the scripted session (`login_as`), else the latest
        login through the form (which only its own browser's cookie uses); None: nobody."""
        sessions = self.services.sessions
        return sessions.session or sessions.latest()

    @session.setter
    def session(self, session: Session | None) -> None:
        self.services.sessions.session = session

    def login_as(
        self, user_id: str, acr: str = "pwd", amr: Sequence[str] | None = None, **options: Any
    ) -> Session:
        """Sign `user_id` in now with method `acr`; later re-authentications use the same method.

        With `consent=False` the user refuses every authorization request; `auth_time`
        backdates the login (see `Sessions.login_as`).
        """
        return self.services.sessions.login_as(user_id, acr, amr, **options)

    def logout(self) -> None:
        """End the session and the login script: the next authorization shows the login form.

        SSF receivers are sent a CAEP session-revoked event about the signed-in user.
        """
        session = self.services.sessions.session
        self.services.sessions.logout()
        if session is not None:
            self.ssf.emit(ssf_events.SESSION_REVOKED, session.user_id)

    def disable_user(self, user_id: str, reason: str | None = None) -> None:
        """RISC account-disabled to SSF receivers (`reason`: hijacking, bulk-account)."""
        if self.session is not None and self.session.user_id == user_id:
            self.services.sessions.logout()
        self.ssf.emit(ssf_events.ACCOUNT_DISABLED, user_id, {"reason": reason} if reason else {})

    def change_credential(self, user_id: str, credential_type: str = "password") -> None:
        """CAEP credential-change (`change_type` update) to SSF receivers."""
        self.ssf.credential_changed(user_id, credential_type)

    def change_assurance_level(self, user_id: str, current: str, previous: str) -> None:
        """CAEP assurance-level-change (decrease, namespace RFC8176) to SSF receivers."""
        self.ssf.assurance_lowered(user_id, current, previous)

    def script_phone_verification(self, user_id: str, succeeds: bool = True) -> None:
        """Decide whether `user_id` passes an in-flow phone verification when one is demanded.

        A request with `"phone_number_verified": {"value": true}` for a user whose phone is not
        verified triggers it: success marks the phone verified, failure ends in access_denied.
        """
        self.user(user_id).phone_verification = succeeds
