"""The one error the IdP's services and endpoints raise: an OAuth error answer."""

from __future__ import annotations

import re
from collections.abc import Mapping

from starlette.responses import JSONResponse

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_NOT_IN_DESCRIPTION = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


class OAuthError(Exception):
    """An OAuth error answer (RFC 6749 §5.2 shape) raised anywhere inside an endpoint."""

    def __init__(
        self,
        error: str,
        description: str = "",
        status_code: int = 400,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        # RFC 6749 §5.2 / §4.1.2.1: error_description is limited to %x20-21 / %x23-5B /
        # %x5D-7E; descriptions quote request values, which may hold anything.
        description = _NOT_IN_DESCRIPTION.sub("?", description)
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status_code = status_code
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        """Render this error as the JSON body of RFC 6749 §5.2, never cached."""
        body: dict[str, str] = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        headers = {**NO_STORE, **self.headers}
        if self.status_code == 401 and not any(k.lower() == "www-authenticate" for k in headers):
            # RFC 9110 §15.5.2: a 401 always names a scheme; client authentication here
            # is HTTP Basic (RFC 6749 §5.2), also when the client tried client_secret_post.
            headers["WWW-Authenticate"] = 'Basic realm="rs_guard-idp"'
        return JSONResponse(body, status_code=self.status_code, headers=headers)
