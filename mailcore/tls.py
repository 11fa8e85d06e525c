"""TLS for the mail listeners: the configured certificate, or a self-signed one made once."""

from __future__ import annotations

import datetime
import ipaddress
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


# The names a client on this machine may use: the README's examples say 127.0.0.1, and
# clients check it against the certificate's IP entries, never its DNS names (RFC 6125
# section 1.7.2).
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


def subject_alt_names(hostname: str) -> list[x509.GeneralName]:
    """Return the SAN entries for a self-signed certificate: local names and hostname.

    An address goes in as an IPAddress entry (RFC 5280 section 4.2.1.6), a name as a
    DNSName; hostname may be either.
    """
    entries: list[x509.GeneralName] = []
    for name in (*LOCAL_NAMES, hostname):
        if not name:
            continue
        try:
            entry: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            entry = x509.DNSName(name.lower().rstrip("."))
        if entry not in entries:
            entries.append(entry)
    return entries


def _write_self_signed(cert_path: Path, key_path: Path, hostname: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    # A common name holds at most 64 characters (RFC 5280 appendix A); clients read the SANs.
    common_name = hostname if hostname and len(hostname) <= 64 else "localhost"
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(subject_alt_names(hostname)),
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
