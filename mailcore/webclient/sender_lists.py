"""A mailbox's always-allow and always-block lists of senders (addresses or domains).

The end of DATA reads them (mailcore.inbound.spam) before Rspamd's verdict. Every function
takes the mailbox the session acts for: a rule of another mailbox is never found.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction

from mailcore.addresses import AddressError, normalize_address, normalize_domain
from mailcore.models import SenderRule

MAX_RULES = 1000  # per mailbox


class ListError(ValueError):
    """The entry is not an address or a domain, or cannot be added; the text says why."""


def normalize_pattern(text: str) -> str:
    """Return an entry as stored: a lower-case address, or a domain ("@example.com" too)."""
    text = text.strip()
    try:
        if "@" in text.lstrip("@"):
            return normalize_address(text)
        return normalize_domain(text.lstrip("@"))
    except AddressError:
        raise ListError(f"{text[:100]!r} is neither an address nor a domain name.") from None


def rules(mailbox_id: int) -> dict[str, list[SenderRule]]:
    """Return the mailbox's rules by kind ("allow", "block"), each list by pattern."""
    found: dict[str, list[SenderRule]] = {kind: [] for kind in SenderRule.Kind.values}
    for rule in SenderRule.objects.for_mailbox(mailbox_id).order_by("pattern"):
        found[rule.kind].append(rule)
    return found


def add(mailbox_id: int, kind: str, text: str) -> SenderRule:
    """Put a sender on the mailbox's allow or block list (moving it off the other one)."""
    if kind not in SenderRule.Kind.values:
        raise ListError("Choose allow or block.")
    pattern = normalize_pattern(text)
    with transaction.atomic():
        mine = SenderRule.objects.for_mailbox(mailbox_id)
        if mine.count() >= MAX_RULES:
            raise ListError(f"A mailbox keeps at most {MAX_RULES} senders on its lists.")
        mine.filter(pattern=pattern).delete()
        try:
            return SenderRule.objects.create(mailbox_id=mailbox_id, kind=kind, pattern=pattern)
        except IntegrityError:  # added meanwhile by another request
            raise ListError(f"{pattern} is already on a list.") from None


def remove(mailbox_id: int, rule_id: int) -> bool:
    """Take an entry off the mailbox's lists; return whether it was one of its entries."""
    deleted, _ = SenderRule.objects.for_mailbox(mailbox_id).filter(pk=rule_id).delete()
    return bool(deleted)
