"""What a mailbox holds, read straight from the store (for assertions)."""

from __future__ import annotations

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
