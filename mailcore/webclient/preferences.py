"""A mailbox's own webmail settings: display name, signature and the vacation auto-reply.

The reply itself is sent by the worker (mailcore.sending.vacation); this stores its settings.
"""

from __future__ import annotations

from datetime import date

from django.db import transaction

from mailcore.models import Mailbox, MailboxSettings, VacationReply


def set_display_name(mailbox_id: int, name: str) -> None:
    """Set the name shown beside the mailbox's address in the mail it sends."""
    cleaned = " ".join(name.replace("\r", " ").replace("\n", " ").split())[:200]
    Mailbox.objects.filter(pk=mailbox_id).update(display_name=cleaned)


def storage(mailbox_id: int) -> tuple[int, int]:
    """Return the bytes the mailbox uses and its quota (0: unlimited)."""
    return Mailbox.objects.values_list("used_bytes", "quota_bytes").get(pk=mailbox_id)


def get(mailbox_id: int) -> MailboxSettings:
    """Return the mailbox's settings (defaults when it never saved any)."""
    return MailboxSettings.objects.filter(mailbox_id=mailbox_id).first() or MailboxSettings(
        mailbox_id=mailbox_id)


def signature(mailbox_id: int) -> str:
    return get(mailbox_id).signature


@transaction.atomic
def save(mailbox_id: int, *, signature: str, vacation_enabled: bool, vacation_subject: str,
         vacation_body: str, vacation_start: date | None, vacation_end: date | None,
         vacation_interval_days: int) -> MailboxSettings:
    """Store the settings; switching the vacation reply on forgets whom it answered."""
    current = get(mailbox_id)
    if vacation_enabled and not current.vacation_enabled:
        VacationReply.objects.filter(mailbox_id=mailbox_id).delete()
    current.signature = signature.replace("\r\n", "\n")
    current.vacation_enabled = vacation_enabled
    current.vacation_subject = " ".join(vacation_subject.split())[:200]
    current.vacation_body = vacation_body.replace("\r\n", "\n")
    current.vacation_start, current.vacation_end = vacation_start, vacation_end
    current.vacation_interval_days = max(1, min(30, vacation_interval_days))
    current.save()
    return current
