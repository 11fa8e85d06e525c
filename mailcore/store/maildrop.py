"""POP3 maildrops: a mailbox's INBOX as POP3 sees it, its exclusive lock, and the UPDATE state."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import DateTimeField, ExpressionWrapper, Q
from django.db.models.functions import Now

from mailcore import dbpool
from mailcore.models import Mailbox, Message
from mailcore.store import events
from mailcore.store.blobs import blob_store
from mailcore.store.folders import INBOX, lock_folder
from mailcore.store.messages import expunge


class MaildropLocked(Exception):
    """Another live session holds the maildrop's lock: this session's changes are refused."""


@dataclass(frozen=True)
class DropMessage:
    id: int
    size: int
    uidl: str
    blob_key: str


def _expiry(ttl: float) -> ExpressionWrapper:
    return ExpressionWrapper(Now() + timedelta(seconds=ttl), output_field=DateTimeField())


def acquire(mailbox_id: int, token: str, ttl: float) -> bool:
    """Take the maildrop's lock for a session; False if another live session holds it.

    The lock's expiry is the database's clock, not this machine's: the nodes sharing the
    database may disagree about the time, and one whose clock runs ahead would otherwise
    take a lock another node's session still holds.
    """
    with dbpool.writing():
        taken = Mailbox.objects.filter(pk=mailbox_id).filter(
            Q(pop3_lock="") | Q(pop3_lock_until__lt=Now()) | Q(pop3_lock=token)
        ).update(pop3_lock=token, pop3_lock_until=_expiry(ttl))
    return taken == 1


def release(mailbox_id: int, token: str) -> None:
    """Give up the maildrop's lock if this session still holds it."""
    with dbpool.writing():
        Mailbox.objects.filter(pk=mailbox_id, pop3_lock=token).update(
            pop3_lock="", pop3_lock_until=None)


def listing(mailbox_id: int) -> list[DropMessage]:
    """Return the maildrop: INBOX messages not hidden from POP3, oldest first."""
    rows = (Message.objects.filter(folder__mailbox_id=mailbox_id, folder__name=INBOX,
                                   pop3_hidden=False)
            .order_by("uid").values_list("pk", "size", "uid", "folder__uidvalidity", "blob_id"))
    # UIDL: the folder's UIDVALIDITY and the message's UID never repeat (RFC 1939 section 7).
    return [DropMessage(pk, size, f"{validity}.{uid}", key)
            for pk, size, uid, validity, key in rows]


def read(message: DropMessage) -> bytes:
    """Return a message's raw bytes exactly as stored."""
    return blob_store().get(message.blob_key)


def update(mailbox_id: int, token: str, deleted_ids: Iterable[int]) -> None:
    """Apply a session's deletions per the mailbox's POP3 policy and release the lock.

    RFC 1939 section 6: deletions happen only here, in the UPDATE state after QUIT. Raise
    MaildropLocked, changing nothing, if this session's lock lapsed and another session
    took it: access to a maildrop is exclusive (RFC 1939 section 4).
    """
    deleted_ids = list(deleted_ids)
    with dbpool.writing():
        mailbox = Mailbox.objects.select_for_update().get(pk=mailbox_id)
        held_by_another = (Mailbox.objects.filter(pk=mailbox_id, pop3_lock_until__gte=Now())
                           .exclude(pop3_lock__in=("", token)).exists())
        if held_by_another:
            raise MaildropLocked(mailbox_id)
        if deleted_ids:
            inbox = lock_folder(mailbox_id, INBOX)
            if mailbox.pop3_policy == Mailbox.Pop3Policy.KEEP:
                inbox.highestmodseq += 1
                Message.objects.filter(folder=inbox, pk__in=deleted_ids).update(
                    seen=True, pop3_hidden=True, modseq=inbox.highestmodseq)
                inbox.save(update_fields=["highestmodseq"])
                events.changed(mailbox_id, inbox.pk, inbox.highestmodseq)
            else:
                expunge(inbox, deleted_ids)
        if mailbox.pop3_lock == token:
            mailbox.pop3_lock, mailbox.pop3_lock_until = "", None
            mailbox.save(update_fields=["pop3_lock", "pop3_lock_until"])
