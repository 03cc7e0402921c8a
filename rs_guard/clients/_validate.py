"""Client metadata rules of RFC 7591 §2 and OpenID Connect Dynamic Client Registration §2,
checked before any network call. Every problem is collected (not just the first), each with the
path of the member it is about (`redirect_uris[1]`, `jwks.keys[0].d`)."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from ._model import DEFAULT_AUTH_METHOD

Problems = list[tuple[str, str]]  # (member path, what is wrong)

AUTH_METHODS = frozenset(
    {
        "none",
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
        "tls_client_auth",  # RFC 8705
        "self_signed_tls_client_auth",
    }
)
GRANT_TYPES = frozenset(
    {
        "authorization_code",
        "implicit",
        "password",
        "client_credentials",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "urn:ietf:params:oauth:grant-type:saml2-bearer",
        "urn:ietf:params:oauth:grant-type:token-exchange",
        "urn:ietf:params:oauth:grant-type:device_code",
        "urn:openid:params:grant-type:ciba",
    }
)
RESPONSE_PARTS = frozenset({"code", "token", "id_token"})
# Members issued by the server (RFC 7591 §3.2.1, RFC 7592 §3): never declared in the file.
SERVER_ISSUED = frozenset(
    {
        "client_id",
        "client_secret",
        "client_id_issued_at",
        "client_secret_expires_at",
        "registration_access_token",
        "registration_client_uri",
    }
)
# RFC 7591 §2.2: human-readable members may carry a BCP 47 language tag after '#'.
LOCALIZABLE = frozenset({"client_name", "client_uri", "logo_uri", "tos_uri", "policy_uri"})
WEB_URI_MEMBERS = frozenset(
    {
        "client_uri",
        "logo_uri",
        "tos_uri",
        "policy_uri",
        "jwks_uri",
        "sector_identifier_uri",
        "initiate_login_uri",
        "frontchannel_logout_uri",
        "backchannel_logout_uri",
    }
)
URI_LIST_MEMBERS = frozenset({"post_logout_redirect_uris", "request_uris"})
STRING_MEMBERS = frozenset(
    {
        "client_name",
        "software_id",
        "software_version",
        "software_statement",
        "tls_client_auth_subject_dn",
        "tls_client_auth_san_dns",
        "tls_client_auth_san_uri",
        "tls_client_auth_san_ip",
        "tls_client_auth_san_email",
    }
)
STRING_LIST_MEMBERS = frozenset({"contacts", "default_acr_values"})
BOOL_MEMBERS = frozenset(
    {
        "require_auth_time",
        "frontchannel_logout_session_required",
        "backchannel_logout_session_required",
        "tls_client_certificate_bound_access_tokens",
        "require_pushed_authorization_requests",
        "require_signed_request_object",
    }
)
ALG_MEMBERS = frozenset(
    {
        "id_token_signed_response_alg",
        "id_token_encrypted_response_alg",
        "userinfo_signed_response_alg",
        "userinfo_encrypted_response_alg",
        "request_object_signing_alg",
        "request_object_encryption_alg",
        "token_endpoint_auth_signing_alg",
        "introspection_signed_response_alg",
        "authorization_signed_response_alg",
    }
)
ENC_MEMBERS = {
    "id_token_encrypted_response_enc": "id_token_encrypted_response_alg",
    "userinfo_encrypted_response_enc": "userinfo_encrypted_response_alg",
    "request_object_encryption_enc": "request_object_encryption_alg",
}
OTHER_MEMBERS = frozenset(
    {
        "redirect_uris",
        "grant_types",
        "response_types",
        "application_type",
        "token_endpoint_auth_method",
        "jwks",
        "scope",
        "subject_type",
        "default_max_age",
    }
)
KNOWN_MEMBERS = (
    WEB_URI_MEMBERS
    | URI_LIST_MEMBERS
    | STRING_MEMBERS
    | STRING_LIST_MEMBERS
    | BOOL_MEMBERS
    | ALG_MEMBERS
    | frozenset(ENC_MEMBERS)
    | OTHER_MEMBERS
    | LOCALIZABLE
)
# Private JWK members (RFC 7518 §6.2.2, §6.3.2, §6.4): a registration publishes public keys.
PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
# RFC 3986 §3.1 scheme.
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


def is_loopback(host: str) -> bool:
    """localhost names and loopback IP literals (RFC 8252 §7.3, RFC 6761 §6.3)."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_web_url(value: str, *, require_https: bool = True) -> str | None:
    """Why `value` is not an absolute http(s) URL (https unless on loopback), or None."""
    if any(c.isspace() for c in value) or "\\" in value:
        return "must not contain whitespace or backslashes"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an absolute https URL"
    if parts.fragment or "#" in value:
        return "fragment not allowed"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials"
    if require_https and parts.scheme == "http" and not is_loopback(parts.hostname):
        return "must use https (http only on a loopback host)"
    return None


class MetadataRules:
    """Checks one client's metadata; `problems` gathers (member path, message) pairs."""

    def __init__(self, metadata: dict[str, Any], extensions: frozenset[str]) -> None:
        self.meta = metadata
        self.extensions = extensions
        self.problems: Problems = []

    def add(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def run(self) -> Problems:
        for name, value in self.meta.items():
            self._member(name, value)
        self._grants_and_responses()
        self._redirect_uris()
        self._auth_and_keys()
        self._subject()
        return self.problems

    # ----- one member at a time: names and types --------------------------------------------

    def _member(self, name: str, value: Any) -> None:
        json_problem = _json_problem(value, name)
        if json_problem is not None:
            self.add(*json_problem)
            return
        if name in self.extensions:
            return
        base, _, tag = name.partition("#")
        if tag:
            if base not in LOCALIZABLE:
                self.add(name, f"only {', '.join(sorted(LOCALIZABLE))} take a language tag")
            elif not re.fullmatch(r"[A-Za-z0-9]{1,8}(-[A-Za-z0-9]{1,8})*", tag):
                self.add(name, "the language tag after '#' is not a BCP 47 tag")
        checker = _CHECKS.get(base)
        if checker is not None:
            checker(self, name, value)

    def _string(self, path: str, value: Any) -> bool:
        if not isinstance(value, str) or not value:
            self.add(path, "must be a non-empty string")
            return False
        return True

    def _string_list(self, path: str, value: Any) -> list[str]:
        if not isinstance(value, list):
            self.add(path, "must be an array of strings")
            return []
        good = []
        for i, item in enumerate(value):
            if self._string(f"{path}[{i}]", item):
                good.append(item)
        duplicates = sorted({v for v in good if good.count(v) > 1})
        if duplicates:
            self.add(path, f"duplicate value {duplicates[0]!r}")
        return good

    def _web_url(self, path: str, value: Any) -> None:
        if self._string(path, value):
            why = check_web_url(value)
            if why is not None:
                self.add(path, why)

    def _uri_list(self, path: str, value: Any) -> None:
        for i, uri in enumerate(self._string_list(path, value)):
            why = _absolute_uri_problem(uri)
            if why is not None:
                self.add(f"{path}[{i}]", why)

    def _bool(self, path: str, value: Any) -> None:
        if not isinstance(value, bool):
            self.add(path, "must be true or false")

    def _scope(self, path: str, value: Any) -> None:
        if not self._string(path, value):
            return
        tokens = value.split(" ")
        if any(not SCOPE_TOKEN.fullmatch(t) for t in tokens):
            self.add(path, "must be scope tokens separated by single spaces (RFC 6749 §3.3)")

    def _choice(self, path: str, value: Any, allowed: tuple[str, ...]) -> None:
        if value not in allowed:
            self.add(path, f"must be one of {', '.join(allowed)}")

    def _max_age(self, path: str, value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            self.add(path, "must be a non-negative integer (seconds)")

    def _alg(self, path: str, value: Any) -> None:
        # OIDC Registration §2: the token endpoint must not accept unsigned assertions.
        if self._string(path, value) and (path, value) == (
            "token_endpoint_auth_signing_alg",
            "none",
        ):
            self.add(path, "'none' is not allowed")

    def _jwks(self, path: str, value: Any) -> None:
        keys = value.get("keys") if isinstance(value, dict) else None
        if not isinstance(keys, list):
            self.add(path, 'must be a JWK Set: a table with a "keys" array')
            return
        for i, key in enumerate(keys):
            where = f"{path}.keys[{i}]"
            if not isinstance(key, dict) or not isinstance(key.get("kty"), str):
                self.add(where, 'must be a JWK with a "kty" member')
                continue
            for member in PRIVATE_JWK_MEMBERS:
                if member in key:
                    self.add(f"{where}.{member}", "private key material must not be registered")

    # ----- rules across members -----------------------------------------------------------

    def _list(self, name: str) -> list[str] | None:
        value = self.meta.get(name)
        if not isinstance(value, list):
            return None
        return [v for v in value if isinstance(v, str)]

    def _grants_and_responses(self) -> None:
        grants = self._list("grant_types")
        responses = self._list("response_types")
        # RFC 7591 §2: the defaults when a member is absent.
        grants = ["authorization_code"] if grants is None else grants
        responses = ["code"] if responses is None else responses
        for i, grant in enumerate(grants):
            if grant not in GRANT_TYPES and not _is_absolute_uri(grant):
                self.add(f"grant_types[{i}]", f"unknown grant type {grant!r}")
        parts: set[str] = set()
        for i, response in enumerate(responses):
            words = response.split(" ")
            if response == "none":
                continue
            if any(w not in RESPONSE_PARTS for w in words) or len(set(words)) != len(words):
                self.add(f"response_types[{i}]", f"unknown response type {response!r}")
                continue
            parts.update(words)
        # RFC 7591 §2.1: grant_types and response_types must agree.
        if "code" in parts and "authorization_code" not in grants:
            self.add("grant_types", "response type 'code' needs the authorization_code grant")
        if parts & {"token", "id_token"} and "implicit" not in grants:
            self.add("grant_types", "response types 'token'/'id_token' need the implicit grant")
        if "authorization_code" in grants and "code" not in parts:
            self.add("response_types", "the authorization_code grant needs response type 'code'")
        if "implicit" in grants and not parts & {"token", "id_token"}:
            self.add("response_types", "the implicit grant needs response type 'token'/'id_token'")
        if self.meta.get("token_endpoint_auth_method") == "none" and "client_credentials" in grants:
            self.add(
                "grant_types", "a public client (auth method none) cannot use client_credentials"
            )

    def _redirect_uris(self) -> None:
        uris = self._list("redirect_uris")
        grants = self._list("grant_types")
        grants = ["authorization_code"] if grants is None else grants
        if uris is None:
            if {"authorization_code", "implicit"} & set(grants):
                self.add("redirect_uris", "required by the authorization_code / implicit grants")
            return
        app = self.meta.get("application_type", "web")
        implicit = "implicit" in grants
        for i, uri in enumerate(uris):
            why = _redirect_problem(uri, app if app in ("web", "native") else "web", implicit)
            if why is not None:
                self.add(f"redirect_uris[{i}]", why)

    def _auth_and_keys(self) -> None:
        method = self.meta.get("token_endpoint_auth_method", DEFAULT_AUTH_METHOD)
        has_jwks, has_uri = "jwks" in self.meta, "jwks_uri" in self.meta
        if has_jwks and has_uri:
            self.add("jwks", "jwks and jwks_uri are mutually exclusive (RFC 7591 §2)")
        if method == "private_key_jwt" and not (has_jwks or has_uri):
            self.add("token_endpoint_auth_method", "private_key_jwt needs jwks or jwks_uri")

    def _subject(self) -> None:
        if self.meta.get("subject_type") != "pairwise" or "sector_identifier_uri" in self.meta:
            return
        hosts = set()
        for uri in self._list("redirect_uris") or []:
            try:
                hosts.add(urlsplit(uri).hostname)
            except ValueError:
                continue
        if len(hosts) > 1:  # OIDC Core §8.1
            self.add(
                "sector_identifier_uri",
                "required for a pairwise client with redirect URIs on several hosts",
            )


def _check_auth_method(rules: MetadataRules, path: str, value: Any) -> None:
    if rules._string(path, value) and value not in AUTH_METHODS:
        rules.add(path, f"unknown method {value!r} (one of {', '.join(sorted(AUTH_METHODS))})")


def _check_enc(rules: MetadataRules, path: str, value: Any) -> None:
    if rules._string(path, value) and ENC_MEMBERS[path] not in rules.meta:
        rules.add(path, f"needs {ENC_MEMBERS[path]} (OIDC Registration §2)")


Check = Callable[[MetadataRules, str, Any], object]
_CHECKS: dict[str, Check] = {
    "redirect_uris": MetadataRules._string_list,
    "grant_types": MetadataRules._string_list,
    "response_types": MetadataRules._string_list,
    "application_type": lambda r, p, v: r._choice(p, v, ("web", "native")),
    "subject_type": lambda r, p, v: r._choice(p, v, ("public", "pairwise")),
    "token_endpoint_auth_method": _check_auth_method,
    "jwks": MetadataRules._jwks,
    "scope": MetadataRules._scope,
    "default_max_age": MetadataRules._max_age,
    **{name: MetadataRules._web_url for name in WEB_URI_MEMBERS},
    **{name: MetadataRules._uri_list for name in URI_LIST_MEMBERS},
    **{name: MetadataRules._string for name in STRING_MEMBERS},
    **{name: MetadataRules._string_list for name in STRING_LIST_MEMBERS},
    **{name: MetadataRules._bool for name in BOOL_MEMBERS},
    **{name: MetadataRules._alg for name in ALG_MEMBERS},
    **{name: _check_enc for name in ENC_MEMBERS},
}


def _json_problem(value: Any, path: str) -> tuple[str, str] | None:
    """TOML has values JSON has not (dates, times, inf/nan): they cannot be registered."""
    if isinstance(value, bool | int | str) or value is None:
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, "must be a finite number")
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _json_problem(item, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _json_problem(item, f"{path}.{key}")
            if found is not None:
                return found
        return None
    return (path, f"a TOML {type(value).__name__} has no JSON form; use a string")


def _is_absolute_uri(value: str) -> bool:
    scheme, sep, rest = value.partition(":")
    return bool(sep and rest and SCHEME.fullmatch(scheme))


def _absolute_uri_problem(uri: str) -> str | None:
    if any(c.isspace() for c in uri):
        return "must not contain whitespace"
    if "#" in uri:
        return "fragment not allowed"
    if not _is_absolute_uri(uri):
        return "must be an absolute URI"
    return None


def _redirect_problem(uri: str, app: str, implicit: bool) -> str | None:
    """RFC 6749 §3.1.2, RFC 8252 §7 (native apps), OIDC Registration §2 (web clients)."""
    basic = _absolute_uri_problem(uri)
    if basic is not None:
        return basic
    scheme = uri.partition(":")[0].lower()
    if scheme in ("javascript", "data", "vbscript", "file"):
        return f"the {scheme}: scheme is not allowed"
    if scheme in ("http", "https"):
        why = check_web_url(uri, require_https=False)
        if why is not None:
            return why
        host = urlsplit(uri).hostname or ""
        if scheme == "http" and not is_loopback(host):
            what = "native clients" if app == "native" else "web clients"
            return f"{what} may use http only on a loopback host"
        if app == "web" and implicit and (scheme == "http" or is_loopback(host)):
            return "web clients using the implicit grant need https and not a loopback host"
        return None
    if app == "web":
        return "web clients need https redirect URIs (custom schemes are for native clients)"
    if "." not in scheme:  # RFC 8252 §7.1: a reverse domain name
        return "a native app's private-use scheme must be a reverse domain name (com.example.app)"
    return None
