"""DKIM (RFC 6376): each domain's signing key, its DNS record, and signing outgoing mail."""

from __future__ import annotations

import base64

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailcore.models import Domain

SIGNED_HEADERS = [b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"reply-to",
                  b"in-reply-to", b"references", b"mime-version", b"content-type",
                  b"content-transfer-encoding", b"list-unsubscribe"]


def generate_private_key() -> str:
    """Return a new 2048-bit RSA private key as PEM (PKCS#1, as dkimpy reads it)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


def public_key_b64(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def dns_record(domain: Domain) -> tuple[str, str]:
    """Return (name, TXT value) to publish for the domain's DKIM key."""
    return (f"{domain.dkim_selector}._domainkey.{domain.name}",
            f"v=DKIM1; k=rsa; p={public_key_b64(domain.dkim_private_key)}")


class DomainNotVerified(Exception):
    """Signing was asked for a domain whose ownership is not proven."""


def sign(raw: bytes, domain: Domain) -> bytes:
    """Return raw with a DKIM-Signature for domain on top (raw unchanged if it has no key).

    Raise DomainNotVerified for a pending claim or an inactive domain: a second guard
    behind the sender rules, so nobody's signature vouches for a name they never proved.
    """
    if domain.verified_at is None or not domain.is_active:
        raise DomainNotVerified(domain.name)
    if not domain.dkim_private_key:
        return raw
    present = {line.split(b":", 1)[0].strip().lower()
               for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n") if b":" in line}
    headers = [h for h in SIGNED_HEADERS if h in present] or [b"from"]
    signature = dkim.sign(raw, domain.dkim_selector.encode(), domain.name.encode(),
                          domain.dkim_private_key.encode(), include_headers=headers,
                          canonicalize=(b"relaxed", b"relaxed"))
    return signature + raw
