"""Bearer credentials in a request (RFC 6750 §2): header, form body or query, exactly one."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope

from ._asgi import BodyTooLarge, ClientDisconnected, disconnected, read_body, replay
from ._memo import remember
from .dpop import dpop_token
from .errors import ConfigurationError, InvalidRequest

__all__ = ["BEARER_METHODS", "BearerCredentials", "bearer_token"]

BEARER_METHODS = frozenset({"header", "body", "query"})
# RFC 6750 §2.1 b64token characters; "=" only as trailing padding.
_B64TOKEN_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/"
# RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token; the scheme is case-insensitive.
_BEARER_PREFIXES = frozenset({b"Bearer ", b"bearer ", b"BEARER "})
_MAX_FORM_BYTES = 64 * 1024
_MEMO_SIZE = 1024  # Authorization values remembered (about 1.2 MB with 600-byte tokens)
_MEMO_VALUE_BYTES = 4096  # longer values are parsed every time (bounds the memo at ~8 MB)


class BearerCredentials:
    """Finds the one access token of a request, in the places this resource accepts.

    `methods` names them: "header" (RFC 6750 §2.1), "body" (§2.2, form-encoded POSTs) and
    "query" (§2.3). A token where it is not accepted, or two tokens, is an InvalidRequest.
    """

    __slots__ = ("_memo", "body", "dpop", "methods", "query")

    def __init__(self, methods: Iterable[str] = ("header",), *, dpop: bool = False) -> None:
        self.dpop = dpop  # also accept `Authorization: DPoP <token>` (RFC 9449 §7.1)
        self.methods = frozenset(methods)
        unknown = self.methods - BEARER_METHODS
        if unknown or not self.methods:
            raise ConfigurationError(f"unknown bearer methods: {sorted(unknown)}")
        self.body = "body" in self.methods
        self.query = "query" in self.methods
        # Authorization value -> its Bearer token, for values seen before: a reused token
        # costs one bytes hash here instead of a parse, and the same `str` object each time
        # (its hash cached, compared by identity in the verified-token cache). Only what
        # `bearer_token` accepted is kept, up to `_MEMO_SIZE` values.
        self._memo: dict[bytes, str] = {}

    def find(self, scope: Scope) -> str | None:
        """The token of the Authorization header or (when accepted) the query string."""
        value: bytes | None = None
        for k, v in scope["headers"]:
            if k == b"authorization":
                if value is not None:
                    raise InvalidRequest(
                        "More than one Authorization header", reason="multiple_credentials"
                    )
                value = v
        token: str | None = None
        if value is not None:
            memo = self._memo
            token = memo.get(value)
            if token is None:
                token = bearer_token(value)
                if token is None:
                    if self.dpop:
                        token = dpop_token(value)
                elif len(value) <= _MEMO_VALUE_BYTES:
                    remember(memo, value, token, _MEMO_SIZE)
        qs: bytes = scope.get("query_string", b"")
        if qs and b"access_token" in qs:
            query_tokens = _tokens_in(qs)
            if query_tokens:
                if not self.query:
                    raise InvalidRequest(
                        "Access tokens are not accepted in the query string",
                        reason="token_in_query",
                    )
                if token is not None or len(query_tokens) > 1:
                    raise _several()
                token = query_tokens[0]
        return token

    async def find_in_body(
        self, scope: Scope, receive: Receive, token: str | None
    ) -> tuple[str | None, Receive]:
        """Add a form-body token (RFC 6750 §2.2) to the one found so far; the returned
        `receive` gives the app the body again (or the client's disconnect)."""
        if not _is_form_post(scope):
            return token, receive
        try:
            body = await read_body(receive, limit=_MAX_FORM_BYTES)
        except BodyTooLarge:
            raise InvalidRequest("The request body is too large", reason="body_too_large") from None
        except ClientDisconnected:
            return token, disconnected()
        body_tokens = _tokens_in(body)
        if body_tokens:
            if token is not None or len(body_tokens) > 1:
                raise _several()
            token = body_tokens[0]
        return token, replay(body, receive)


def bearer_token(value: bytes) -> str | None:
    """The token of an `Authorization: Bearer <b64token>` value (RFC 6750 §2.1).

    None for another scheme; InvalidRequest for a Bearer value that is not well formed.
    """
    if value[:7] in _BEARER_PREFIXES:
        # The usual shape, "Bearer <token>": one slice and one translate.
        token = value[7:]
        if token and token[:1] != b" " and token[-1:] != b" " and token[-1:] != b"=":
            if token.translate(None, _B64TOKEN_CHARS):
                raise InvalidRequest(
                    "The Authorization header is malformed", reason="malformed_header"
                )
            return token.decode("ascii")
    if value[:6].lower() != b"bearer":
        return None
    rest = value[6:]
    if rest and rest[:1] != b" " and not rest[:1].isspace():
        return None  # a different scheme that merely starts with "bearer"
    token = rest.strip(b" ")
    if (
        not rest.startswith(b" ")
        or not token.rstrip(b"=")  # b64token needs one character before any "="
        or token.rstrip(b"=").translate(None, _B64TOKEN_CHARS)
    ):
        raise InvalidRequest("The Authorization header is malformed", reason="malformed_header")
    return token.decode("ascii")


def _several() -> InvalidRequest:
    return InvalidRequest(
        "More than one access token in the request", reason="multiple_credentials"
    )


def _tokens_in(form: bytes) -> list[str]:
    return [
        v
        for k, v in parse_qsl(form.decode("latin-1"), keep_blank_values=True)
        if k == "access_token"
    ]


def _is_form_post(scope: Scope) -> bool:
    if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
        return False
    for k, v in scope["headers"]:
        if k == b"content-type":
            media_type: bytes = v.split(b";")[0].strip().lower()
            return media_type == b"application/x-www-form-urlencoded"
    return False
