"""The registry of reason codes: every `reason` rs_guard reports, its answer, cause and fix.

A rejection or failure carries a stable `reason` (on the error, in the `token_rejected` /
`event_rejected` / `*_failed` observability events and in the `rs_guard` log lines). This module
is the one place that says what each code means. The documentation's reason-code page is
rendered from it (`docs/hooks/reason_codes.py`), and a test checks it both ways against the
code: every `reason` the library sets is here, and nothing here is a code the library never says.

Codes in angle brackets (`jwks_http_<status>`) stand for a family built at run time from a
prefix and a detail (an HTTP status, an OAuth error code, a fetch failure kind).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final


@dataclass(frozen=True, slots=True)
class Reason:
    """What a reason code means to the caller and to the operator."""

    status: int | None
    """HTTP status of the answer; None when the code names a failure event, not an answer."""
    error: str | None
    """The error code of the answer (`invalid_token`...); None for a bare challenge or a 503."""
    cause: str
    """The usual cause, in Markdown."""
    fix: str = ""
    """What to do about it, in Markdown."""


def _freeze(entries: dict[str, Reason]) -> Mapping[str, Reason]:
    return MappingProxyType(entries)


# Rows shared by several codes: the rendered table groups codes with the same Reason.
_JWKS_FAILED = Reason(
    503,
    None,
    "no keys yet and the JWKS (or discovery) fetch failed that way; `jwks_issuer_mismatch`: "
    "the metadata names another issuer (RFC 8414 §3.3); `jwks_no_usable_keys`: every JWK was "
    "unusable (`use: enc`, private, symmetric, small RSA, unknown `kty`...)",
    "fix the IdP or the configured `issuer`; nothing is cached, the next request retries",
)
_INTROSPECTION_FAILED = Reason(
    503,
    None,
    "the introspection endpoint failed or answered without a boolean `active` "
    "(`introspection_http_401`: wrong introspection credentials)",
    "fix the IdP or the credentials; failures are not cached",
)
_PPID_FAILED = Reason(
    503,
    None,
    "PPID conversion failed (known answers are still served for `stale_for`)",
    "bring the IdP back; allow the pair at the IdP",
)
_TOKEN_FAILED = Reason(
    503,
    None,
    "this service's own token request (client credentials, token exchange) failed",
    "check the service's client registration and the IdP",
)
_SCOPE_SHORT = Reason(
    403,
    "insufficient_scope",
    "a required scope is missing; the challenge's `scope` lists all of them "
    "(`exchange_invalid_scope`: token exchange asked for more than the received token holds)",
    "request those scopes",
)

_DPOP_PROOF = Reason(
    401,
    "invalid_dpop_proof",
    "the `DPoP` proof fails a check of RFC 9449 §4.3: missing or repeated, not a JWT, too "
    "large, a claim missing, `typ` not `dpop+jwt`, `alg` not allowed, `jku`/`x5c`/`crit`, an "
    "unusable or private `jwk`, bad signature, `htm`/`htu` not this request, `iat` outside "
    "the window, `ath` not this token's hash, or a `jti` already seen (`dpop_replayed`)",
    "make a fresh proof for every request, for its exact method and URL",
)
_DPOP_NONCE = Reason(
    401,
    "use_dpop_nonce",
    "the resource demands a server nonce (RFC 9449 §9) and the proof has none, or a stale one",
    "retry once with the `DPoP-Nonce` of the answer (`DPoPAuth` does)",
)

REASONS: Final[Mapping[str, Reason]] = _freeze(
    {
        # -- credentials (RFC 6750 §2) --------------------------------------------------------
        "missing_token": Reason(
            401,
            None,
            "no `Authorization: Bearer` header (or another scheme: Basic, DPoP...)",
            "send `Authorization: Bearer <access token>`; the challenge's `scope` names what the "
            "route needs",
        ),
        "malformed_header": Reason(
            400,
            "invalid_request",
            "`Bearer` without a token, a tab or two words after it, characters outside RFC "
            "6750's b64token (`\"`, `,`, `=` inside)",
            "exactly `Bearer`, spaces, the token",
        ),
        "multiple_credentials": Reason(
            400,
            "invalid_request",
            "two `Authorization` headers, or a token in the header and in the query/body",
            "send the token once",
        ),
        "token_in_query": Reason(
            400,
            "invalid_request",
            '`access_token` in the query string while `bearer_methods` lacks `"query"`',
            "use the header (query tokens end up in logs)",
        ),
        "body_too_large": Reason(
            400,
            "invalid_request",
            "a form body over 64 KiB while body tokens are enabled",
            "send the token in the header",
        ),
        "invalid_request": Reason(
            400, "invalid_request", "another malformed request", "see the `error_description`"
        ),
        # -- the token itself (RFC 9068, RFC 8725) --------------------------------------------
        "token_too_large": Reason(
            401,
            "invalid_token",
            "longer than `max_token_bytes` (8 KiB)",
            "check what is being sent; raise `max_token_bytes` for very large tokens",
        ),
        "malformed": Reason(
            401,
            "invalid_token",
            "not a compact JWS: JWE (5 parts), JSON serialisation, padding, non-canonical "
            "base64url, header or claims not a JSON object, `NaN`, `enc`/`zip` header",
            "send the access token itself, as issued",
        ),
        "duplicate_member": Reason(
            401,
            "invalid_token",
            "a JSON member twice in the header or claims (for `ToolGuard`: in the MCP request "
            "body, answered 400 `invalid_request`)",
            "the token (or body) was altered, or its issuer is broken",
        ),
        "bad_alg": Reason(
            401,
            "invalid_token",
            "`alg` missing, `none` in any spelling, HMAC, or not in `algorithms`",
            "add the IdP's (asymmetric) algorithm to `algorithms=`",
        ),
        "bad_typ": Reason(
            401,
            "invalid_token",
            "header `typ` is not `at+jwt` / `application/at+jwt` (an ID token says `JWT`, an "
            "event `secevent+jwt`)",
            "send the access token, not the ID token; make the IdP issue RFC 9068 tokens",
        ),
        "crit": Reason(
            401,
            "invalid_token",
            "a `crit` header (no extension is understood)",
            "issue tokens without critical extensions",
        ),
        "embedded_key": Reason(
            401,
            "invalid_token",
            "`jku`, `jwk`, `x5u` or `x5c` header: the token tries to pick its own key",
            "never honoured; issue tokens without them",
        ),
        "bad_kid": Reason(
            401,
            "invalid_token",
            "`kid` not a non-empty string of at most 256 characters",
            "fix the issuer",
        ),
        "unknown_kid": Reason(
            401,
            "invalid_token",
            "`kid` not in a JWKS fetched after the token arrived: a retired key, a forged kid, "
            "another IdP's token",
            "publish new keys before signing with them; check `issuer`",
        ),
        "alg_key_mismatch": Reason(
            401,
            "invalid_token",
            "the named key cannot verify that `alg` (RS256 on an EC key, ES384 on P-256, PS256 "
            "on an RS256-only key)",
            "issue with the key's own algorithm",
        ),
        "bad_signature": Reason(
            401,
            "invalid_token",
            "the signature does not verify (tampered, truncated, DER instead of raw r‖s, "
            "degenerate ECDSA values)",
            "the token was altered or signed by someone else",
        ),
        "key_retired": Reason(
            401,
            "invalid_token",
            "a cached token whose key has left the JWKS",
            "get a new token",
        ),
        "missing_claim": Reason(
            401,
            "invalid_token",
            "one of `iss`, `exp`, `aud`, `sub`, `client_id`, `iat`, `jti` (RFC 9068 §2.2) absent",
            "make the IdP issue RFC 9068 tokens, or set `required_claims` on `JWTValidator`",
        ),
        "bad_claim_type": Reason(
            401,
            "invalid_token",
            "a claim of the wrong JSON type: string/bool/null/huge `exp`, `iat`, `nbf`; "
            "non-string `sub`, `client_id`, `jti`; non-string `scope`",
            "fix the issuer (`scope` is one space-separated string)",
        ),
        "id_token": Reason(
            401,
            "invalid_token",
            "`nonce`, `at_hash`, `c_hash` or `s_hash`: an ID token dressed as an access token",
            "send the access token",
        ),
        "not_access_token": Reason(
            401,
            "invalid_token",
            "under a relaxed token profile, a claim says this is another kind of token: "
            "Keycloak `typ` not `Bearer` (an ID or refresh token), Cognito `token_use` not "
            "`access`, Entra `ver` of the other version, or neither `scp` nor `roles` (Entra)",
            "send the access token; for Entra, configure the profile of the version the API "
            "receives (`accessTokenAcceptedVersion`)",
        ),
        "bad_tenant": Reason(
            401,
            "invalid_token",
            "a token whose `iss` names one allowed tenant carries another tenant's `tid`",
            "the token was not issued by that tenant; check `tenants=`",
        ),
        "security_event_token": Reason(
            401,
            "invalid_token",
            "an `events` claim: a webhook event sent as an access token",
            "send the access token",
        ),
        "bad_issuer": Reason(
            401,
            "invalid_token",
            "`iss` not exactly the configured `issuer` (trailing slash, scheme, case)",
            "configure the issuer exactly as the IdP writes it",
        ),
        "bad_audience": Reason(
            401,
            "invalid_token",
            "`aud` does not name this resource: a token for another API, for the IdP, or a "
            "client id",
            "request the token with `resource=` (RFC 8707) / the right audience; check "
            "`resource`/`audience`",
        ),
        "expired": Reason(
            401,
            "invalid_token",
            "`exp` + `leeway` passed (re-checked on cached tokens too)",
            "refresh the token; check clocks",
        ),
        "not_yet_valid": Reason(
            401, "invalid_token", "`nbf` - `leeway` is in the future", "check clocks"
        ),
        "issued_in_future": Reason(
            401, "invalid_token", "`iat` more than `leeway` ahead", "check clocks"
        ),
        "invalid_token": Reason(
            401,
            "invalid_token",
            "another invalid token (the default reason of `InvalidToken` when no finer one "
            "applies, e.g. one raised by your own validator)",
            "see the `error_description`",
        ),
        # -- introspection (RFC 7662) ---------------------------------------------------------
        "inactive": Reason(
            401,
            "invalid_token",
            "introspection answered `active: false` (revoked, expired, unknown)",
            "get a new token",
        ),
        "bad_token_type": Reason(
            401,
            "invalid_token",
            "introspection `token_type` not an access token (a refresh token)",
            "send the access token",
        ),
        # -- subject translation (PPIDs) -------------------------------------------------------
        "missing_client_id": Reason(
            401,
            "invalid_token",
            "subject translation needs `client_id` and the token has none",
            "issue RFC 9068 tokens",
        ),
        "client_token": Reason(
            401,
            "invalid_token",
            "PPID translation: a client-credentials token (`sub` = `client_id`) where a user is "
            "needed",
            'use a user\'s token, or `client_tokens="keep"`',
        ),
        "conversion_denied": Reason(
            401,
            "invalid_token",
            "the IdP will not convert subjects from this client for this resource",
            "allow the pair at the IdP",
        ),
        "unknown_subject": Reason(
            401,
            "invalid_token",
            "the IdP does not know the token's subject (user deleted)",
            "sign in again",
        ),
        # -- service to service (RFC 8693) -----------------------------------------------------
        "exchange_invalid_grant": Reason(
            401,
            "invalid_token",
            "token exchange refused the subject token (`invalid_request` per RFC 8693 §2.2.2, "
            "or `invalid_grant`)",
            "get a new token",
        ),
        # -- requirements (RFC 6750 §3.1, RFC 9470) --------------------------------------------
        "insufficient_scope": _SCOPE_SHORT,
        "exchange_invalid_scope": _SCOPE_SHORT,
        "insufficient_user_authentication": Reason(
            401,
            "insufficient_user_authentication",
            "`acr`, `auth_time` (`max_age`) or a required claim not met; `acr_values` / "
            "`max_age` / `claims` say what is needed",
            "re-authorize with those parameters (RFC 9470)",
        ),
        "insufficient_scope_and_authentication": Reason(
            401,
            "insufficient_user_authentication",
            "a scope is missing and `acr` / `auth_time` / a required claim is not met either; "
            "the challenge carries `scope` with the RFC 9470 parameters",
            "re-authorize once, asking for that `scope` with those parameters",
        ),
        # -- the IdP could not be asked: 503 + Retry-After --------------------------------------
        "keys_unavailable": Reason(
            503,
            None,
            "no usable keys: the JWKS has failed for longer than `jwks_stale_for`, even for "
            "cached tokens",
            "bring the IdP back; the guard recovers by itself within `jwks_cooldown`, and "
            "`Retry-After` says when it fetches again",
        ),
        "unknown_kid_pending": Reason(
            503,
            None,
            "a token whose claims all hold names a `kid` absent from keys fetched before it "
            "arrived, and the last unknown-kid refetch was less than `jwks_cooldown` ago (an IdP "
            "rotating twice in a row, or forged kids probing)",
            "retry after `Retry-After` seconds: the guard refetches then and accepts the token "
            "if its key was published",
        ),
        "jwks_timeout": _JWKS_FAILED,
        "jwks_unreachable": _JWKS_FAILED,
        "jwks_http_<status>": _JWKS_FAILED,
        "jwks_response_too_large": _JWKS_FAILED,
        "jwks_response_not_json": _JWKS_FAILED,
        "jwks_no_usable_keys": _JWKS_FAILED,
        "jwks_issuer_mismatch": _JWKS_FAILED,
        "jwks_missing_jwks_uri": _JWKS_FAILED,
        "introspection_timeout": _INTROSPECTION_FAILED,
        "introspection_unreachable": _INTROSPECTION_FAILED,
        "introspection_http_<status>": _INTROSPECTION_FAILED,
        "introspection_response_too_large": _INTROSPECTION_FAILED,
        "introspection_response_not_json": _INTROSPECTION_FAILED,
        "introspection_garbage": _INTROSPECTION_FAILED,
        "introspection_unavailable": _INTROSPECTION_FAILED,
        "ppid_timeout": _PPID_FAILED,
        "ppid_unreachable": _PPID_FAILED,
        "ppid_http_<status>": _PPID_FAILED,
        "ppid_garbage": _PPID_FAILED,
        "ppid_response_<kind>": _PPID_FAILED,
        "ppid_discovery_<kind>": _PPID_FAILED,
        "ppid_cancelled": _PPID_FAILED,
        "ppid_internal_error": _PPID_FAILED,
        "ppid_unavailable": _PPID_FAILED,
        "ppid_denied": _PPID_FAILED,
        "token_timeout": _TOKEN_FAILED,
        "token_discovery_failed": _TOKEN_FAILED,
        "token_garbage": _TOKEN_FAILED,
        "token_http_<status>": _TOKEN_FAILED,
        "token_<error>": _TOKEN_FAILED,
        "token_service_unavailable": _TOKEN_FAILED,
        "token_request_refused": _TOKEN_FAILED,
        "server_error": Reason(
            503, None, "the IdP could not be asked", "retry after `Retry-After`"
        ),
        # -- DPoP (RFC 9449; rs_guard.dpop) ---------------------------------------------------
        "dpop_invalid_proof": _DPOP_PROOF,
        "dpop_too_large": _DPOP_PROOF,
        "dpop_malformed": _DPOP_PROOF,
        "dpop_missing_proof": _DPOP_PROOF,
        "dpop_multiple_proofs": _DPOP_PROOF,
        "dpop_missing_claim": _DPOP_PROOF,
        "dpop_bad_typ": _DPOP_PROOF,
        "dpop_bad_alg": _DPOP_PROOF,
        "dpop_bad_header": _DPOP_PROOF,
        "dpop_bad_key": _DPOP_PROOF,
        "dpop_private_key": _DPOP_PROOF,
        "dpop_bad_signature": _DPOP_PROOF,
        "dpop_htm_mismatch": _DPOP_PROOF,
        "dpop_htu_mismatch": _DPOP_PROOF,
        "dpop_iat_window": _DPOP_PROOF,
        "dpop_ath_mismatch": _DPOP_PROOF,
        "dpop_replayed": _DPOP_PROOF,
        "dpop_nonce_required": _DPOP_NONCE,
        "dpop_nonce_invalid": _DPOP_NONCE,
        "dpop_key_mismatch": Reason(
            401,
            "invalid_token",
            "the DPoP proof is signed by another key than the one the token is bound to "
            "(`cnf.jkt`, RFC 9449 §6)",
            "sign proofs with the key the token was issued for",
        ),
        "dpop_token_not_bound": Reason(
            401,
            "invalid_token",
            "`Authorization: DPoP` with a token that has no `cnf.jkt` (not DPoP-bound)",
            "request a DPoP-bound token (send a proof to the token endpoint), or use Bearer",
        ),
        "dpop_bound_token_as_bearer": Reason(
            401,
            "invalid_token",
            "a DPoP-bound token (`cnf.jkt`) presented as `Bearer` (RFC 9449 §7.2 downgrade); "
            "also refused by a guard without `dpop=`",
            "send it as `Authorization: DPoP` with a proof (`rs_guard.dpop.DPoPAuth`)",
        ),
        "dpop_required": Reason(
            401,
            "invalid_token",
            "a Bearer token on a route whose DPoP policy is `required`",
            "request a DPoP-bound token and send it with a proof",
        ),
        "dpop_not_accepted": Reason(
            401,
            "invalid_token",
            "`Authorization: DPoP` on a route whose DPoP policy is `off`",
            "use Bearer there, or change the route's policy",
        ),
        # continuous access evaluation (rs_guard.ssf): the guard's `revocations=`
        "subject_revoked": Reason(
            401,
            "invalid_token",
            "an SSF event (CAEP session-revoked, RISC account-disabled / account-purged, a "
            "revoked token) refused the subject's tokens issued at or before it",
            "sign in again: tokens issued after the event are accepted",
        ),
        "credential_changed": Reason(
            401,
            "invalid_token",
            "CAEP credential-change (or `refuse_authenticated`): the token's `auth_time` is "
            "not newer than the event",
            "authenticate again",
        ),
        "session_revoked": Reason(
            401,
            "invalid_token",
            "CAEP session-revoked named the token's session (`sid`)",
            "sign in again",
        ),
        "assurance_lowered": Reason(
            401,
            "insufficient_user_authentication",
            "CAEP assurance-level-change (down): a route that needs an `acr` refuses "
            "authentications not newer than the event (RFC 9470 challenge)",
            "authenticate again at the level the challenge names",
        ),
        "revocations_unavailable": Reason(
            401,
            "invalid_token",
            '`RedisRevocations(on_outage="refuse")`: Redis is unreachable and the token was '
            "issued before the outage began",
            'bring Redis back; or choose `on_outage="serve"`',
        ),
    }
)
"""Reasons of `token_rejected`: what the client of a guarded route was answered, and why."""

_EVENT_MALFORMED = Reason(
    400,
    "invalid_request",
    "not one compact JWS of at most 16 KiB sent as `application/secevent+jwt`; `crit`/`enc`/`zip`",
    "send the event token itself, as the IdP signed it",
)
_EVENT_KEY = Reason(
    400,
    "invalid_key",
    "as for access tokens (see the table above)",
    "publish new keys before signing with them; check `issuer`",
)
_EVENT_UNSIGNED = Reason(
    400,
    "authentication_failed",
    "`alg: none`, or the signature does not verify",
    "the event was altered or not signed by the IdP",
)
_EVENT_CLAIM = Reason(
    400,
    "invalid_request",
    "an ID token (`nonce`), or a claim missing or of the wrong type",
    "fix the issuer of the event",
)
_EVENT_TIME = Reason(
    400,
    "invalid_request",
    "`iat` older than `max_age` (+ leeway) or ahead of the clock; `exp` passed",
    "check clocks; deliver events promptly",
)
_EVENT_STORE = Reason(
    503,
    None,
    "the replay store (Redis) is down or the memory store is full",
    "bring the store back; the sender retries",
)
_HANDLER_REFUSED = Reason(
    400,
    "<code>",
    "a handler raised `EventError(code)`; the answer's `err` is that code",
    "see the `description`",
)

EVENT_REASONS: Final[Mapping[str, Reason]] = _freeze(
    {
        "malformed": _EVENT_MALFORMED,
        "too_large": _EVENT_MALFORMED,
        "bad_content_type": _EVENT_MALFORMED,
        "unsupported_header": _EVENT_MALFORMED,
        "bad_typ": Reason(
            400,
            "invalid_request",
            "`typ` not `secevent+jwt`: an access or ID token sent as an event",
            "send the event token",
        ),
        "unsigned": _EVENT_UNSIGNED,
        "bad_signature": _EVENT_UNSIGNED,
        "bad_alg": _EVENT_KEY,
        "embedded_key": _EVENT_KEY,
        "bad_kid": _EVENT_KEY,
        "unknown_kid": _EVENT_KEY,
        "alg_key_mismatch": _EVENT_KEY,
        "bad_issuer": Reason(400, "invalid_issuer", "another IdP's event", "check `issuer`"),
        "bad_audience": Reason(
            400,
            "invalid_audience",
            "an event addressed to another receiver",
            "check `audience` (this service's client id at the IdP)",
        ),
        "nonce": _EVENT_CLAIM,
        "bad_events": _EVENT_CLAIM,
        "bad_jti": _EVENT_CLAIM,
        "bad_sub": _EVENT_CLAIM,
        "bad_iat": _EVENT_CLAIM,
        "bad_azp": _EVENT_CLAIM,
        "stale": _EVENT_TIME,
        "future": _EVENT_TIME,
        "expired": _EVENT_TIME,
        "replayed": Reason(
            400,
            "invalid_request",
            "this (`iss`, `jti`) was already accepted (re-encoded copies included: replay is "
            "keyed on `jti`)",
            "nothing: the event was already processed",
        ),
        "publisher_not_allowed": Reason(
            400,
            "access_denied",
            "`azp` not in the verifier's `publishers`",
            "add the publisher to `publishers`",
        ),
        "unknown_event_type": Reason(
            400,
            "invalid_request",
            "no handler for an event type",
            "add a handler, or `EventReceiver(..., ignore_unknown_events=True)`",
        ),
        "invalid_request": _HANDLER_REFUSED,
        "invalid_key": _HANDLER_REFUSED,
        "invalid_issuer": _HANDLER_REFUSED,
        "invalid_audience": _HANDLER_REFUSED,
        "authentication_failed": _HANDLER_REFUSED,
        "access_denied": _HANDLER_REFUSED,
        "event_in_progress": Reason(
            503,
            None,
            "the same event is being processed by another delivery",
            "nothing: the sender retries",
        ),
        "replay_store_unavailable": _EVENT_STORE,
        "replay_store_unreachable": _EVENT_STORE,
        "replay_store_full": _EVENT_STORE,
        "handler_timeout": Reason(
            503, None, "a handler ran past `handler_timeout`", "make the handler faster"
        ),
        # SSF receiver (rs_guard.ssf.SignalReceiver)
        "bad_subject": Reason(
            400,
            "invalid_request",
            "`sub_id` (or the event's `subject`) is not an RFC 9493 subject identifier",
            "fix the transmitter",
        ),
        "bad_stream": Reason(
            400,
            "invalid_request",
            "a verification event for another stream than the receiver's `stream_id`",
            "check the stream the receiver was configured with",
        ),
        "bad_state": Reason(
            400,
            "invalid_state",
            "a verification event whose `state` was never requested (SSF 1.0 §8.1.4.1)",
            "request verification with `Transmitter.request_verification`",
        ),
        "revocations_full": Reason(
            503,
            None,
            "the revocation table holds `max_entries` subjects (nothing is evicted)",
            "raise `max_entries`; the transmitter retries",
        ),
        "revocations_unreachable": Reason(
            503,
            None,
            "Redis is unreachable: the revocation is enforced on this replica only",
            "bring Redis back; the transmitter retries and every replica then enforces it",
        ),
    }
)
"""Reasons of `event_rejected`: what `EventReceiver` answered a webhook delivery (RFC 8935)."""

_FETCH = "the fetch failed that way"
_SSF_CALL = Reason(
    None,
    None,
    "`TransmitterUnavailable`: the transmitter's answer or configuration is unusable (a "
    "stream without the required members or from another issuer, an endpoint it does not "
    "advertise, poll on a push stream, an issuer that is not https, metadata naming another "
    "issuer: SSF 1.0 §7.2.4)",
)

FAILURE_REASONS: Final[Mapping[str, Reason]] = _freeze(
    {
        "timeout": Reason(
            None,
            None,
            "`jwks_refresh_failed`, `introspection_failed`, `ppid_failed`, "
            "`token_request_failed`: the IdP did not answer within the deadline",
        ),
        "unreachable": Reason(
            None,
            None,
            "`jwks_refresh_failed`, `introspection_failed`, `ppid_failed`: no connection",
        ),
        "http_<status>": Reason(
            None, None, "any of the `*_failed` events: the IdP answered with that HTTP status"
        ),
        "response_not_json": Reason(None, None, f"`jwks_refresh_failed` and others: {_FETCH}"),
        "response_too_large": Reason(None, None, f"`jwks_refresh_failed` and others: {_FETCH}"),
        "issuer_mismatch": Reason(
            None,
            None,
            "`jwks_refresh_failed`: the discovery document names another issuer",
        ),
        "no_usable_keys": Reason(
            None, None, "`jwks_refresh_failed`: the JWKS held no key rs_guard can use"
        ),
        "no_active_member": Reason(
            None, None, "`introspection_failed`: the answer has no boolean `active`"
        ),
        "internal_error": Reason(
            None, None, "`ppid_failed`: an unexpected error in the translator (logged)"
        ),
        "bad_response": Reason(
            None,
            None,
            "`token_request_failed`: the token endpoint's answer was not a usable token response",
        ),
        "discovery_<kind>": Reason(
            None,
            None,
            "`token_request_failed`: the issuer's discovery document could not be fetched",
        ),
        "transmitter_unavailable": Reason(
            None, None, "`TransmitterUnavailable`: an SSF transmitter call failed"
        ),
        "ssf_<kind>": Reason(
            None,
            None,
            "`TransmitterUnavailable`: the transmitter could not be fetched that way "
            "(`ssf_timeout`, `ssf_unreachable`, `ssf_response_not_json`...)",
        ),
        "ssf_bad_answer": _SSF_CALL,
        "ssf_no_endpoint": _SSF_CALL,
        "ssf_not_poll": _SSF_CALL,
        "ssf_not_https": _SSF_CALL,
        "ssf_issuer_mismatch": _SSF_CALL,
        "ssf_http_<status>": Reason(
            None, None, "`TransmitterUnavailable`: the transmitter answered that HTTP status"
        ),
        "replay_store": Reason(
            None,
            None,
            "`event_commit_failed` / `event_release_failed`: the replay store failed after the "
            "handlers ran",
        ),
        # `rs-guard clients` (rs_guard.clients): the `reason` of each ClientsError class.
        "clients_error": Reason(None, None, "`rs-guard clients`: a refusal or failure"),
        "clients_file_invalid": Reason(
            None,
            None,
            "`rs-guard clients`: the clients file is unreadable or invalid",
            "Fix each listed problem (file, client and field are named).",
        ),
        "clients_state_invalid": Reason(
            None, None, "`rs-guard clients`: the state file is unreadable, foreign or unsafe"
        ),
        "clients_secret_undelivered": Reason(
            None,
            None,
            "`rs-guard clients`: an issued client secret could not be delivered",
            "Fix the secrets directory or command and apply again: the secret is retried.",
        ),
        "clients_apply_failed": Reason(
            None,
            None,
            "`rs-guard clients apply`: some changes failed (the rest was done)",
            "Apply again: the state matches what was done, a rerun converges.",
        ),
        "clients_server_error": Reason(
            None, None, "`rs-guard clients`: the authorization server refused or is unreachable"
        ),
        "clients_discovery_failed": Reason(
            None, None, "`rs-guard clients`: no usable registration endpoint"
        ),
        "clients_initial_access_token": Reason(
            None,
            None,
            "`rs-guard clients`: registration refused with 401/403 (RFC 7591 §3)",
            "Set the environment variable the file's `initial_access_token_env` names.",
        ),
        "clients_registration_refused": Reason(
            None, None, "`rs-guard clients`: an RFC 7591 / 7592 error response (400 ...)"
        ),
        "clients_registration_access_token_rejected": Reason(
            None,
            None,
            "`rs-guard clients`: the registration access token was refused (401)",
            "`rs-guard clients import` with a new token, or `forget` and apply again.",
        ),
    }
)
"""Reasons of the failure events (`jwks_refresh_failed`, `introspection_failed`, `ppid_failed`,
`token_request_failed`, `event_commit_failed`, `event_release_failed`): no answer of their own;
the request they served gets one of the 503 reasons above."""

ALL_CODES: Final[frozenset[str]] = frozenset({*REASONS, *EVENT_REASONS, *FAILURE_REASONS})
"""Every code of the three tables."""
