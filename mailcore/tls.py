"""TLS for the mail listeners: the configured certificate, or a self-signed one made once."""

from __future__ import annotations

import datetime
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings


def certificate_paths() -> tuple[Path, Path]:
    """Return (cert, key): the configured files, or a self-signed pair created on first use."""
    if settings.TLS_CERT_FILE and settings.TLS_KEY_FILE:
        return Path(settings.TLS_CERT_FILE), Path(settings.TLS_KEY_FILE)
    directory = Path(settings.TLS_DIR)
    cert, key = directory / "cert.pem", directory / "key.pem"
    if not (cert.exists() and key.exists()):
        directory.mkdir(parents=True, exist_ok=True)
        _write_self_signed(cert, key, settings.MAIL_HOSTNAME)
    return cert, key


def _write_self_signed(cert_path: Path, key_path: Path, hostname: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    names = ["localhost"] + ([hostname] if hostname and hostname != "localhost" else [])
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[-1])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    # Write to temporary names and rename, so concurrent first starts never see half a pair.
    tmp_key = key_path.with_suffix(f".{os.getpid()}.tmp")
    tmp_cert = cert_path.with_suffix(f".{os.getpid()}.tmp")
    tmp_key.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    tmp_key.chmod(0o600)
    tmp_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp_key, key_path)
    os.replace(tmp_cert, cert_path)


def server_context() -> ssl.SSLContext:
    cert, key = certificate_paths()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context
