"""DKIM (RFC 6376): each domain's signing key, its DNS record, and signing outgoing mail;
ARC (RFC 8617): sealing the mail a domain forwards."""

from __future__ import annotations

import base64
import logging

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailcore.models import Domain

log = logging.getLogger("mailcore.dkim")

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


def signing_domain(name: str) -> Domain | None:
    """Return the verified, active domain of this name if it has a signing key."""
    return (Domain.objects.receiving().exclude(dkim_private_key="")
            .filter(name=name.lower().rstrip(".")).first())


def sign_as(raw: bytes, name: str) -> bytes:
    """Return raw signed by the hosted domain of this name (unchanged if we hold no key)."""
    domain = signing_domain(name)
    return sign(raw, domain) if domain is not None else raw


# Headers an ARC-Message-Signature covers (RFC 8617 section 4.1.2 takes DKIM's rules):
# dkimpy refuses the trace fields, the DKIM signatures and the A-R fields.
ARC_SIGNED_HEADERS = SIGNED_HEADERS


def arc_seal(raw: bytes, name: str, authserv_id: str) -> bytes:
    """Return raw with an ARC set on top, sealed with the domain's DKIM key (RFC 8617 section
    5.1): ARC-Authentication-Results copies our Authentication-Results (authserv_id), and
    the chain's validation is the arc= result found there.

    Unchanged if we hold no key for the domain or the message has no Authentication-Results
    of ours to seal (nothing to vouch for).
    """
    domain = signing_domain(name)
    if domain is None:
        return raw
    present = {line.split(b":", 1)[0].strip().lower()
               for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n") if b":" in line}
    headers = [h for h in ARC_SIGNED_HEADERS if h in present]
    if b"from" not in headers:
        return raw  # RFC 8617 section 4.1.2: From must be signed; nothing to seal without it
    try:
        fields = dkim.arc_sign(raw, domain.dkim_selector.encode(), domain.name.encode(),
                               domain.dkim_private_key.encode(), authserv_id.encode(),
                               include_headers=headers)
    except dkim.DKIMException as exc:
        # A chain we cannot extend (past 50 sets, a malformed set): forwarded as it is.
        log.warning("not ARC-sealing for %s: %s", domain.name, exc)
        return raw
    return b"".join(fields) + raw
