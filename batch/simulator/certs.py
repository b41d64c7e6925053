"""Simulated tenant, TLS and signing keys: a private CA, the server certificate, the token key.

Everything is generated with ``cryptography`` on first start, kept in the state directory
and reused, so a client that trusted the CA once keeps trusting it. Files are written
atomically under a file lock, because two processes may start on the same state at once.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from filelock import FileLock

from batch.files import PRIVATE_FILE, atomic_write, private_dir

CA_FILE = "ca.pem"
SERVER_CERT_FILE = "server.pem"
SERVER_KEY_FILE = "server.key"
SIGNING_KEY_FILE = "token-signing.key"


@dataclass(frozen=True)
class TlsMaterial:
    """Paths of the CA certificate, the server certificate and key, and the token key."""

    ca_path: Path
    cert_path: Path
    key_path: Path
    signing_key_path: Path


def ensure_tls_material(state_dir: Path) -> TlsMaterial:
    """Create (once) and return the CA, server certificate and token-signing key."""
    private_dir(state_dir)
    material = TlsMaterial(
        ca_path=state_dir / CA_FILE,
        cert_path=state_dir / SERVER_CERT_FILE,
        key_path=state_dir / SERVER_KEY_FILE,
        signing_key_path=state_dir / SIGNING_KEY_FILE,
    )
    with FileLock(str(state_dir / "certs.lock"), mode=PRIVATE_FILE):
        if not (
            material.ca_path.is_file()
            and material.cert_path.is_file()
            and material.key_path.is_file()
        ):
            _create_ca_and_server_cert(material)
        if not material.signing_key_path.is_file():
            _write_atomic(material.signing_key_path, _private_pem(_new_key()), private=True)
    return material


def certificate_thumbprints(certificate_pem: bytes) -> tuple[str, str]:
    """The base64url SHA-1 and SHA-256 thumbprints (``x5t``, ``x5t#S256``) of a PEM cert."""
    cert = x509.load_pem_x509_certificate(certificate_pem)
    der = cert.public_bytes(serialization.Encoding.DER)
    return (
        _b64url(hashlib.sha1(der).digest()),  # noqa: S324 - x5t is SHA-1 by definition
        _b64url(hashlib.sha256(der).digest()),
    )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _create_ca_and_server_cert(material: TlsMaterial) -> None:
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = _new_key()
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "m365batch"),
            x509.NameAttribute(NameOID.COMMON_NAME, "m365batch simulated tenant CA"),
        ]
    )
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = _new_key()
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("localhost"),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_atomic(material.key_path, _private_pem(server_key), private=True)
    _write_atomic(material.cert_path, server_cert.public_bytes(serialization.Encoding.PEM))
    # The CA goes last: its presence marks the set as complete.
    _write_atomic(material.ca_path, ca_cert.public_bytes(serialization.Encoding.PEM))


def _write_atomic(path: Path, data: bytes, *, private: bool = False) -> None:
    # the state folder is the owner's alone: certificates too are written 0600
    atomic_write(path, data, overwrite=True, mode=PRIVATE_FILE)
