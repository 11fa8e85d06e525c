"""SRS, the Sender Rewriting Scheme: the envelope sender of mail we forward, and bounces back.

A message forwarded to another domain keeps SPF only if its envelope sender is ours: it
leaves as SRS0=<hash>=<day>=<original domain>=<original local part>@<our domain>, and a
bounce sent to that address is decoded back to the original sender. srslib implements
the Guarded scheme as libsrs2 and postsrsd write it (a forwarded SRS0 becomes SRS1), with
an HMAC-SHA1 hash under SRS_SECRET, valid for SRS_VALIDITY_DAYS.

Deviation from srslib: an address whose hash is shorter than ours is refused (srslib
checks as many characters as the address brings, so a one-character hash would be
guessed one time in 36), and so is anything that is not exactly SRS's form.
"""

from __future__ import annotations

import re

import srslib
from django.conf import settings

_LOOKS_LIKE = re.compile(r"^srs[01][-+=]", re.I)
# Base64 characters of the HMAC, compared without case: some 31 bits (libsrs2 and postsrsd
# write 4; they read ours, as the length is the address's own).
HASH_LENGTH = 6


def looks_like(address: str) -> bool:
    """Return whether an address (or local part) has SRS's form, valid or not."""
    return bool(_LOOKS_LIKE.match(address))


def _scheme() -> srslib.SRS:
    return srslib.SRS(settings.SRS_SECRET, prev_secrets=settings.SRS_PREVIOUS_SECRETS,
                      validity_days=settings.SRS_VALIDITY_DAYS, hash_length=HASH_LENGTH)


def forward(sender: str, domain: str) -> str:
    """Return the envelope sender for mail from sender that we forward, rewritten to domain.

    The null reverse-path (a bounce) stays null: nothing may answer it.
    """
    if not sender:
        return ""
    return _scheme().forward(sender, settings.SRS_DOMAIN or domain)


def reverse(address: str) -> str | None:
    """Return where a bounce to an SRS address of ours goes, or None if it is not one we
    made (forged, altered, or expired)."""
    local = address.rpartition("@")[0]
    hashes = re.match(r"^srs[01][-+=]([^=]+)=", local, re.I)
    if hashes is None or len(hashes.group(1)) < HASH_LENGTH:
        return None
    try:
        original = _scheme().reverse(address)
    except (srslib.Error, ValueError):
        return None
    if "@" not in original or not original.rpartition("@")[0]:
        return None
    return original
