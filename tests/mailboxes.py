"""What a mailbox holds, read straight from the store (for assertions)."""

from __future__ import annotations

from django.db.models import F

from mailcore.models import Folder, Message
from mailcore.store.blobs import blob_store
from mailcore.store.folders import INBOX


def inbox(mailbox) -> list[Message]:
    """Return the messages in a mailbox's INBOX, in UID order."""
    return list(Message.objects.filter(folder__mailbox=mailbox, folder__name=INBOX)
                .order_by("uid"))


def inbox_folder(mailbox) -> Folder:
    return Folder.objects.get(mailbox=mailbox, name=INBOX)


def raw_of(message: Message) -> bytes:
    return blob_store().get(message.blob_id)


def seen_by_an_earlier_session(mailbox) -> None:
    """Let the messages in a mailbox count as already selected by another session.

    None is \\Recent then (RFC 3501 section 2.3.2), for tests about something else;
    tests/test_imap_conformance.py covers \\Recent.
    """
    Folder.objects.filter(mailbox=mailbox).update(recent_uid=F("uidnext"))
