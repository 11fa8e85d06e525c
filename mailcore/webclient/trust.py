"""The trust line webmail shows on a message: is it really from the domain it names?

It reads the Authentication-Results field our SMTP listener put on top when the message
arrived (RFC 8601, authserv-id MAIL_HOSTNAME); nothing is checked again here. Only the
topmost field counts: ours is added above everything the sender wrote, and any field
claiming our authserv-id that came with the message was removed on arrival.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import getaddresses

from django.conf import settings

from mailcore.message.summary import split_header_block

_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)")
_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.M)


@dataclass(frozen=True)
class Trust:
    verified: bool
    domain: str  # the From address's domain the verdict is about

    @property
    def text(self) -> str:
        if self.verified:
            return f"Verified: this message comes from {self.domain}"
        return f"Could not verify that this came from {self.domain}"


def _fields(raw: bytes) -> list[tuple[str, str]]:
    head = split_header_block(raw)
    return [(name.decode("ascii", "replace").lower(),
             re.sub(r"\r?\n", "", value.decode("utf-8", "replace")))
            for name, value in _FIELD.findall(head)]


def results(value: str) -> tuple[str, list[tuple[str, str, dict[str, str]]]]:
    """Return an Authentication-Results value's authserv-id and its (method, result,
    properties) entries (RFC 8601 section 2.2), comments left out."""
    value = _COMMENT.sub(" ", value)
    parts = [p.strip() for p in value.split(";")]
    entries = []
    for part in parts[1:]:
        words = part.split()
        if not words or "=" not in words[0]:
            continue
        method, _, result = words[0].partition("=")
        props = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        entries.append((method.lower(), result.lower(),
                        {k.lower(): v.strip('"').lower() for k, v in props.items()}))
    authserv = parts[0].split()[0].strip('"').lower() if parts and parts[0].split() else ""
    return authserv, entries


def _aligned(domain: str, other: str) -> bool:
    # Relaxed alignment (RFC 7489 section 3.1): one is the other or a subdomain of it.
    return bool(other) and (domain == other or domain.endswith("." + other)
                            or other.endswith("." + domain))


def trust_of(raw: bytes) -> Trust | None:
    """Return the trust line of a stored message, or None when we did not check it (mail
    our own users sent, or received before the checks ran)."""
    fields = _fields(raw)
    ours = next((v for n, v in fields if n == "authentication-results"), None)
    if ours is None:
        return None
    authserv, entries = results(ours)
    if authserv != settings.MAIL_HOSTNAME.lower().rstrip("."):
        return None
    from_values = [v for n, v in fields if n == "from"]
    addresses = [a for _, a in getaddresses(from_values) if "@" in a]
    domain = addresses[0].rpartition("@")[2].lower().rstrip(".>") if addresses else ""
    dmarc = next(((r, p) for m, r, p in entries if m == "dmarc"), None)
    if dmarc is not None and dmarc[1].get("header.from"):
        domain = dmarc[1]["header.from"]
    if not domain:
        return None
    if dmarc is not None and dmarc[0] == "pass":
        return Trust(True, domain)
    if dmarc is not None and dmarc[0] not in ("none", ""):
        return Trust(False, domain)
    # No DMARC policy to go by: a passing DKIM signature or SPF of the same domain will do.
    verified = any(
        r == "pass" and (_aligned(domain, p.get("header.d", "")) if m == "dkim"
                         else _aligned(domain, p.get("smtp.mailfrom", "").rpartition("@")[2]))
        for m, r, p in entries if m in ("dkim", "spf"))
    return Trust(verified, domain)
