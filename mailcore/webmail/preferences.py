"""A mailbox's own webmail settings: display name, signature and the vacation auto-reply."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.db import transaction

from mailcore.models import Mailbox, MailboxSettings, VacationReply
from mailcore.webmail.vacation import Vacation


def set_display_name(mailbox: Mailbox, name: str) -> None:
    """Set the name shown beside the mailbox's address in the mail it sends."""
    mailbox.display_name = " ".join(name.replace("\r", " ").replace("\n", " ").split())[:200]
    mailbox.save(update_fields=["display_name"])


def get(mailbox: Mailbox) -> MailboxSettings:
    """Return the mailbox's settings (defaults when it never saved any)."""
    return MailboxSettings.objects.filter(mailbox=mailbox).first() or MailboxSettings(
        mailbox=mailbox)


def signature(mailbox: Mailbox) -> str:
    return get(mailbox).signature


@transaction.atomic
def save(mailbox: Mailbox, *, signature: str, vacation_enabled: bool, vacation_subject: str,
         vacation_body: str, vacation_start: date | None, vacation_end: date | None,
         vacation_interval_days: int) -> MailboxSettings:
    """Store the settings; switching the vacation reply on forgets whom it answered."""
    current = get(mailbox)
    if vacation_enabled and not current.vacation_enabled:
        VacationReply.objects.filter(mailbox=mailbox).delete()
    current.signature = signature.replace("\r\n", "\n")
    current.vacation_enabled = vacation_enabled
    current.vacation_subject = " ".join(vacation_subject.split())[:200]
    current.vacation_body = vacation_body.replace("\r\n", "\n")
    current.vacation_start, current.vacation_end = vacation_start, vacation_end
    current.vacation_interval_days = max(1, min(30, vacation_interval_days))
    current.save()
    return current


def vacation_of(row: MailboxSettings) -> Vacation:
    return Vacation(enabled=row.vacation_enabled, subject=row.vacation_subject,
                    body=row.vacation_body, start=row.vacation_start, end=row.vacation_end,
                    interval=timedelta(days=row.vacation_interval_days))


class StoredReplyLog:
    """The vacation ReplyLog backed by VacationReply rows."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    def replied_since(self, sender: str, since: datetime) -> bool:
        return VacationReply.objects.filter(mailbox=self.mailbox, sender=sender,
                                            replied_at__gte=since).exists()

    def record(self, sender: str, when: datetime) -> None:
        VacationReply.objects.update_or_create(mailbox=self.mailbox, sender=sender,
                                               defaults={"replied_at": when})


def answer(mailbox_id: int, raw: bytes, envelope_sender: str) -> str:
    """Run a mailbox's vacation reply for a message just delivered; return the decision."""
    from mailcore.webmail.vacation import respond

    row = (MailboxSettings.objects.select_related("mailbox__domain")
           .filter(mailbox_id=mailbox_id, vacation_enabled=True).first())
    if row is None:
        return "off"
    return respond(vacation_of(row), row.mailbox, raw, envelope_sender,
                   StoredReplyLog(row.mailbox)).reason
