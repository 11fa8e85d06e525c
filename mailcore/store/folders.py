"""Folders of a mailbox: the standard set, UID and modseq allocation, and expunging."""

from __future__ import annotations

import time
from collections.abc import Iterable

from django.db import transaction
from django.db.models import F, Max, Sum

from mailcore.models import Expunged, Folder, Mailbox, Message

INBOX = "INBOX"
DEFAULT_FOLDERS: list[tuple[str, str]] = [
    (INBOX, Folder.SpecialUse.NONE),
    ("Sent", Folder.SpecialUse.SENT),
    ("Drafts", Folder.SpecialUse.DRAFTS),
    ("Trash", Folder.SpecialUse.TRASH),
    ("Junk", Folder.SpecialUse.JUNK),
    ("Archive", Folder.SpecialUse.ARCHIVE),
]


def next_uidvalidity(mailbox: Mailbox) -> int:
    """Return a UIDVALIDITY no folder of this mailbox has had: the clock, or one past the last."""
    latest = Folder.objects.for_mailbox(mailbox).aggregate(m=Max("uidvalidity"))["m"] or 0
    return max(int(time.time()) & 0xFFFFFFFF, latest + 1)


def create_folder(mailbox: Mailbox, name: str, special_use: str = "") -> Folder:
    return Folder.objects.create(
        mailbox=mailbox, name=name, special_use=special_use,
        uidvalidity=next_uidvalidity(mailbox),
    )


def create_default_folders(mailbox: Mailbox) -> None:
    """Create INBOX, Sent, Drafts, Trash, Junk and Archive for a new mailbox."""
    for name, special_use in DEFAULT_FOLDERS:
        create_folder(mailbox, name, special_use)


def lock_folder(mailbox_id: int, name: str = INBOX) -> Folder:
    """Return the folder locked for this transaction (UID and modseq allocation)."""
    return Folder.objects.select_for_update().get(mailbox_id=mailbox_id, name=name)


def expunge(folder: Folder, message_ids: Iterable[int]) -> int:
    """Remove messages from a locked folder, leaving tombstones; return how many went."""
    assert transaction.get_connection().in_atomic_block
    doomed = list(Message.objects.filter(folder=folder, pk__in=list(message_ids))
                  .values_list("pk", "uid", "size"))
    if not doomed:
        return 0
    folder.highestmodseq += 1
    Expunged.objects.bulk_create(
        Expunged(folder=folder, uid=uid, modseq=folder.highestmodseq) for _, uid, _ in doomed
    )
    Message.objects.filter(pk__in=[pk for pk, _, _ in doomed]).delete()
    folder.save(update_fields=["highestmodseq"])
    freed = sum(size for _, _, size in doomed)
    Mailbox.objects.filter(pk=folder.mailbox_id).update(used_bytes=F("used_bytes") - freed)
    return len(doomed)


def recount_usage(mailbox: Mailbox) -> int:
    """Recompute a mailbox's used bytes from its messages (repair after manual changes)."""
    used = Message.objects.filter(folder__mailbox=mailbox).aggregate(s=Sum("size"))["s"] or 0
    Mailbox.objects.filter(pk=mailbox.pk).update(used_bytes=used)
    return used
