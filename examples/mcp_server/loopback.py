"""Serve ASGI apps with uvicorn on free loopback ports, optionally over TLS with a throwaway CA."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "127.0.0.1"


def free_socket() -> socket.socket:
    """A listening-ready TCP socket bound to a free loopback port (no port race)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    return sock


@dataclass
class LoopbackTLS:
    """A CA and a certificate for 127.0.0.1 signed by it, written to a temporary directory."""

    directory: Path
    ca_file: Path
    cert_file: Path
    key_file: Path

    def client_context(self) -> ssl.SSLContext:
        """An SSL context that trusts only this CA (for the IdP's outbound fetches)."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@contextlib.contextmanager
def loopback_tls() -> Iterator[LoopbackTLS]:
    """Yield a LoopbackTLS valid for an hour; files are removed afterwards."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("rs_guard test CA"))
        .issuer_name(_name("rs_guard test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(HOST))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    with tempfile.TemporaryDirectory(prefix="rs_guard_tls_") as tmp:
        directory = Path(tmp)
        tls = LoopbackTLS(
            directory, directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
        )
        tls.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        tls.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        tls.key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        tls.key_file.chmod(0o600)
        yield tls


class _QuietServer(uvicorn.Server):
    """uvicorn without signal handlers: it runs inside someone else's event loop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve(
    app: Any, *, sock: socket.socket | None = None, tls: LoopbackTLS | None = None
) -> AsyncIterator[str]:
    """Run `app` with uvicorn in this event loop; yields its base URL, stops it on exit."""
    sock = sock or free_socket()
    port = sock.getsockname()[1]
    # A client that keeps a connection open must not hold up shutdown for long.
    options: dict[str, Any] = {"log_level": "warning", "lifespan": "on"}
    options["timeout_graceful_shutdown"] = 1
    if tls is not None:
        options.update(ssl_certfile=str(tls.cert_file), ssl_keyfile=str(tls.key_file))
    config = uvicorn.Config(app, **options)
    server = _QuietServer(config)
    scheme = "https" if tls is not None else "http"
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        with anyio.fail_after(10):
            while not server.started:
                if server.should_exit:
                    raise RuntimeError("uvicorn failed to start")
                await anyio.sleep(0.01)
        try:
            yield f"{scheme}://{HOST}:{port}"
        finally:
            server.should_exit = True
    sock.close()
