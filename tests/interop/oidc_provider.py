"""node-oidc-provider as a test server: its keys, its process, and a browser-less login.

The provider runs under the suite's Node (tests/interop/nodejs.py) through our launcher
(node/oidc_provider_launcher.mjs, which documents its configuration knobs) on a loopback port.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import jwt as pyjwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from .nodejs import NODE_DIR, node_binary, node_package

LAUNCHER = NODE_DIR / "oidc_provider_launcher.mjs"
READY = "oidc-provider ready "


def private_jwk(alg: str, kid: str) -> dict[str, Any]:
    """A fresh private signing JWK for `alg` (ES256, RS256, PS256, EdDSA or Ed25519)."""
    key: Any
    if alg == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
        jwk = ECAlgorithm.to_jwk(key, as_dict=True)
    elif alg in ("RS256", "PS256"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = RSAAlgorithm.to_jwk(key, as_dict=True)
    elif alg in ("EdDSA", "Ed25519"):
        key = ed25519.Ed25519PrivateKey.generate()
        jwk = OKPAlgorithm.to_jwk(key, as_dict=True)
    else:
        raise ValueError(alg)
    # PyJWT marks a private JWK `key_ops: ["sign"]`, and the OP publishes that member as it is
    # in its jwks_uri, where a verifier rightly ignores a key not for "verify" (RFC 7517 §4.3).
    jwk.pop("key_ops", None)
    # `alg` on the key ties it to one algorithm: the RSA keys for RS256 and PS256 stay apart.
    return {**jwk, "kid": kid, "use": "sig", "alg": alg}


class ProviderFailed(RuntimeError):
    """The provider did not start; the message carries the end of its log."""


@dataclass
class OidcProvider:
    """One node-oidc-provider process, configured by `config` (the launcher's knobs)."""

    config: dict[str, Any]
    log_path: Path
    info: dict[str, Any] = field(default_factory=dict)
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        return str(self.info["issuer"])

    @property
    def port(self) -> int:
        return int(self.info["port"])

    def start(self, *, timeout: float = 30.0) -> None:
        node = node_binary()
        node_package("oidc-provider")
        config_path = self.log_path.with_suffix(".config.json")
        config_path.write_text(json.dumps(self.config))
        config_path.chmod(0o600)  # it holds private keys
        log = self.log_path.open("ab")
        # The log is appended to across restarts: only lines after this point are this run's.
        offset = log.tell()
        # stdin stays an open pipe: the launcher exits when it closes, so no orphan outlives us.
        self._proc = subprocess.Popen(
            [str(node), str(LAUNCHER), str(config_path)],
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            with self.log_path.open("rb") as output:
                output.seek(offset)
                lines = output.read().decode(errors="replace").splitlines()
            for line in lines:
                if line.startswith(READY):
                    self.info = json.loads(line[len(READY) :])
                    return
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_path.read_text(errors="replace")[-3000:]
                raise ProviderFailed(f"node-oidc-provider did not start:\n{tail}")
            time.sleep(0.05)

    def restart(self, config: dict[str, Any]) -> None:
        """Stop, then start again with `config` on the same port: the issuer stays the same."""
        port = self.port
        self.stop()
        self.config = {**config, "port": port}
        self.start()

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def metadata(self) -> dict[str, Any]:
        answer = httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=10)
        answer.raise_for_status()
        doc: dict[str, Any] = answer.json()
        return doc


# ----- the grants, as a client does them -------------------------------------------------------


def dpop_proof(key: ec.EllipticCurvePrivateKey, method: str, url: str) -> str:
    """An RFC 9449 §4.2 DPoP proof by `key` (ES256) for one request."""
    public = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    claims = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": url, "iat": int(time.time())}
    return pyjwt.encode(claims, key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": public})


def client_credentials(
    op: OidcProvider,
    client_id: str,
    secret: str,
    *,
    resource: str,
    scope: str,
    dpop_key: ec.EllipticCurvePrivateKey | None = None,
) -> dict[str, Any]:
    """A token response for the client credentials grant (RFC 6749 §4.4) for one resource;
    with `dpop_key`, a DPoP-bound one (RFC 9449 §5)."""
    endpoint = op.metadata()["token_endpoint"]
    headers = {} if dpop_key is None else {"DPoP": dpop_proof(dpop_key, "POST", endpoint)}
    answer = httpx.post(
        endpoint,
        data={"grant_type": "client_credentials", "scope": scope, "resource": resource},
        auth=(client_id, secret),
        headers=headers,
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


_FORM = re.compile(r'<form[^>]*action="([^"]*)"[^>]*>(.*?)</form>', re.S)
_PROMPT = re.compile(r'name="prompt" value="([^"]*)"')


def _fill_form(page_url: str, page: str, user: str) -> tuple[str, dict[str, str]]:
    """Where the provider's interaction page posts, and what a person would submit."""
    found = _FORM.search(page)
    assert found is not None, page[:500]
    action, inner = urljoin(page_url, html.unescape(found.group(1))), found.group(2)
    prompt = _PROMPT.search(inner)
    assert prompt is not None, inner
    if prompt.group(1) == "login":
        return action, {"prompt": "login", "login": user, "password": "any password"}
    return action, {"prompt": prompt.group(1)}


def code_flow(
    op: OidcProvider,
    client_id: str,
    redirect_uri: str,
    *,
    resource: str | None,
    scope: str,
    user: str,
) -> dict[str, Any]:
    """Authorization code + PKCE (RFC 7636, S256) through the provider's own login and consent
    pages (devInteractions), over HTTP as a browser would: cookies kept, redirects followed by
    hand up to the redirect back to the client, whose `code` is then exchanged. With no
    `resource` (RFC 8707) the OP issues a token for its own userinfo endpoint."""
    extra = {} if resource is None else {"resource": resource}
    meta = op.metadata()
    verifier, challenge = _pkce()
    state = secrets.token_urlsafe(16)
    with httpx.Client(timeout=10, follow_redirects=False) as browser:
        url = httpx.URL(
            meta["authorization_endpoint"],
            params={
                "client_id": client_id,
                "response_type": "code",
                "redirect_uri": redirect_uri,
                "scope": scope,
                **extra,
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
        answer = browser.get(url)
        for _ in range(10):
            assert answer.is_redirect, (answer.status_code, answer.text[:500])
            location = urljoin(str(answer.url), answer.headers["location"])
            if location.startswith(redirect_uri):
                break
            answer = browser.get(location)
            if answer.status_code == 200:
                # The login form, then the consent form: filled in as a person would.
                action, form = _fill_form(location, answer.text, user)
                answer = browser.post(action, data=form)
        else:
            raise AssertionError("the authorization request did not come back to the client")
    query = parse_qs(urlsplit(location).query)
    assert query.get("state") == [state], query
    assert query.get("iss") == [op.issuer], query  # RFC 9207
    token = httpx.post(
        meta["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "client_id": client_id,
            **extra,
        },
        timeout=10,
    )
    assert token.status_code == 200, token.text
    body: dict[str, Any] = token.json()
    return body


def revoke(op: OidcProvider, client_id: str, secret: str, token: str) -> None:
    """RFC 7009 revocation by the client the token was issued to."""
    answer = httpx.post(
        op.metadata()["revocation_endpoint"],
        data={"token": token, "token_type_hint": "access_token"},
        auth=(client_id, secret),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def jws_header(token: str) -> dict[str, Any]:
    """The protected header of a compact JWS, unverified (to see what the OP sent)."""
    head = token.split(".", 1)[0]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    return data


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a compact JWS, unverified (to compare with what rs_guard reports)."""
    body = token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return data
