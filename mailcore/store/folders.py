"""Folders of a mailbox: the standard set, UID allocation, and the folder tree."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Count, F, Q, Sum

from mailcore import dbpool
from mailcore.models import Expunged, Folder, Mailbox, Message, Subscription
from mailcore.store import events

INBOX = "INBOX"
JUNK = "Junk"  # the standard Junk folder's name (special-use \\Junk)
DEFAULT_FOLDERS: list[tuple[str, str]] = [
    (INBOX, Folder.SpecialUse.NONE),
    ("Sent", Folder.SpecialUse.SENT),
    ("Drafts", Folder.SpecialUse.DRAFTS),
    ("Trash", Folder.SpecialUse.TRASH),
    (JUNK, Folder.SpecialUse.JUNK),
    ("Archive", Folder.SpecialUse.ARCHIVE),
]


def next_uidvalidity(mailbox: Mailbox) -> int:
    """Return a UIDVALIDITY this mailbox never used: the clock, or one past the last given.

    Callers hold the transaction that creates the folder, so the counter moves with it.
    """
    last = Mailbox.objects.values_list("last_uidvalidity", flat=True).get(pk=mailbox.pk)
    value = max(int(time.time()) & 0xFFFFFFFF, last + 1)
    Mailbox.objects.filter(pk=mailbox.pk).update(last_uidvalidity=value)
    return value


def create_folder(mailbox: Mailbox, name: str, special_use: str = "") -> Folder:
    return Folder.objects.create(
        mailbox=mailbox, name=name, special_use=special_use,
        uidvalidity=next_uidvalidity(mailbox),
    )


def create_default_folders(mailbox: Mailbox) -> None:
    """Create INBOX, Sent, Drafts, Trash, Junk and Archive for a new mailbox, subscribed.

    (As Dovecot's "auto = subscribe": clients that show only subscribed folders show
    these.)
    """
    for name, special_use in DEFAULT_FOLDERS:
        create_folder(mailbox, name, special_use)
    Subscription.objects.bulk_create(
        Subscription(mailbox=mailbox, name=name) for name, _ in DEFAULT_FOLDERS)


def lock_folder(mailbox_id: int, name: str = INBOX) -> Folder:
    """Return the folder locked for this transaction (UID and modseq allocation)."""
    return Folder.objects.select_for_update().get(mailbox_id=mailbox_id, name=name)


def recount_usage(mailbox: Mailbox) -> int:
    """Recompute a mailbox's used bytes from its messages (repair after manual changes)."""
    used = Message.objects.filter(folder__mailbox=mailbox).aggregate(s=Sum("size"))["s"] or 0
    Mailbox.objects.filter(pk=mailbox.pk).update(used_bytes=used)
    return used


# The folder tree (IMAP CREATE, DELETE, RENAME, SUBSCRIBE, STATUS; webmail) ------------------

SEPARATOR = "/"


class FolderError(Exception):
    """A folder operation refused; code is an IMAP response code (RFC 5530) naming why."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code, self.text = code, text


def canonical_name(name: str) -> str:
    """Return a folder name as stored: INBOX in upper case, no trailing separator."""
    name = name.rstrip(SEPARATOR)
    if name.upper() == INBOX:
        return INBOX
    if name.upper().startswith(INBOX + SEPARATOR):
        return INBOX + name[len(INBOX):]
    return name


def _check_name(name: str) -> str:
    name = canonical_name(name)
    parts = name.split(SEPARATOR)
    if not name or any(not p for p in parts) or len(name) > 500:
        raise FolderError("CANNOT", "Invalid folder name")
    if any(ch in name for ch in "*%\r\n\0") or any(not ch.isprintable() for ch in name):
        raise FolderError("CANNOT", "Invalid characters in folder name")
    return name


def find_folder(mailbox_id: int, name: str) -> Folder:
    try:
        return Folder.objects.get(mailbox_id=mailbox_id, name=canonical_name(name))
    except Folder.DoesNotExist:
        raise FolderError("NONEXISTENT", "No such folder") from None


def list_folders(mailbox_id: int) -> list[Folder]:
    return list(Folder.objects.filter(mailbox_id=mailbox_id).order_by("name"))


@dataclass(frozen=True)
class Listed:
    """A name LIST shows: plain values, safe to hand to the event loop."""

    name: str
    special_use: str
    subscribed: bool
    exists: bool = True  # False: a subscribed name with no folder


def list_entries(mailbox_id: int) -> list[Listed]:
    """Return a mailbox's folders and subscribed names by name (for IMAP LIST and LSUB)."""
    subscribed = set(Subscription.objects.filter(mailbox_id=mailbox_id)
                     .values_list("name", flat=True))
    rows = Folder.objects.filter(mailbox_id=mailbox_id).values_list("name", "special_use")
    entries = {name: Listed(name, special_use, name in subscribed) for name, special_use in rows}
    for name in subscribed - set(entries):
        entries[name] = Listed(name, "", True, exists=False)
    return [entries[name] for name in sorted(entries)]


def _create_parents(mailbox: Mailbox, name: str) -> None:
    parts = name.split(SEPARATOR)
    for depth in range(1, len(parts)):
        parent = SEPARATOR.join(parts[:depth])
        if not Folder.objects.filter(mailbox=mailbox, name=parent).exists():
            create_folder(mailbox, parent)


@dbpool.writing()
def add_folder(mailbox_id: int, name: str, special_use: str = "",
               subscribe: bool = False) -> Folder:
    """Create a folder (and any missing parents); refuse an existing name.

    IMAP CREATE subscribes nothing (RFC 3501 section 6.3.6); the webmail subscribes what
    it creates, as IMAP clients do after their CREATE.
    """
    name = _check_name(name)
    mailbox = Mailbox.objects.select_for_update().get(pk=mailbox_id)
    if Folder.objects.filter(mailbox=mailbox, name=name).exists():
        raise FolderError("ALREADYEXISTS", "Folder already exists")
    if special_use and special_use not in Folder.SpecialUse.values:
        raise FolderError("USEATTR", "Unsupported special-use attribute")
    _create_parents(mailbox, name)
    folder = create_folder(mailbox, name, special_use)
    if subscribe:
        Subscription.objects.get_or_create(mailbox=mailbox, name=name)
    events.changed(mailbox_id)  # for sessions told of new names (IMAP NOTIFY)
    return folder


@dbpool.writing()
def remove_folder(mailbox_id: int, name: str) -> None:
    """Delete a folder and its messages; INBOX and folders with children stay."""
    mailbox = Mailbox.objects.select_for_update().get(pk=mailbox_id)
    folder = find_folder(mailbox_id, name)
    if folder.name == INBOX:
        raise FolderError("CANNOT", "INBOX cannot be deleted")
    if Folder.objects.filter(mailbox=mailbox, name__startswith=folder.name + SEPARATOR).exists():
        raise FolderError("HASCHILDREN", "Folder has subfolders; delete them first")
    freed = Message.objects.filter(folder=folder).aggregate(s=Sum("size"))["s"] or 0
    folder.delete()
    Mailbox.objects.filter(pk=mailbox_id).update(used_bytes=F("used_bytes") - freed)
    events.changed(mailbox_id)  # a session with it selected must learn it is gone


@dbpool.writing()
def rename_folder(mailbox_id: int, old: str, new: str) -> None:
    """Rename a folder and its subfolders (RFC 3501 section 6.3.5).

    Renaming INBOX moves its messages to a new folder and leaves INBOX empty.
    """
    mailbox = Mailbox.objects.select_for_update().get(pk=mailbox_id)
    folder = find_folder(mailbox_id, old)
    new = _check_name(new)
    if Folder.objects.filter(mailbox=mailbox, name=new).exists():
        raise FolderError("ALREADYEXISTS", "Target folder already exists")
    if new.startswith(folder.name + SEPARATOR):
        raise FolderError("CANNOT", "Cannot move a folder into itself")
    _create_parents(mailbox, new)
    if folder.name == INBOX:
        target = create_folder(mailbox, new)
        inbox = lock_folder(mailbox_id, INBOX)
        moved = list(Message.objects.filter(folder=inbox).order_by("uid"))
        old_uids = [message.uid for message in moved]
        target.highestmodseq += 1
        for message in moved:
            message.folder, message.uid = target, target.uidnext
            message.modseq = target.highestmodseq
            target.uidnext += 1
        Message.objects.bulk_update(moved, ["folder", "uid", "modseq"])
        target.save(update_fields=["uidnext", "highestmodseq"])
        inbox.highestmodseq += 1
        Expunged.objects.bulk_create(
            Expunged(folder=inbox, uid=uid, modseq=inbox.highestmodseq) for uid in old_uids)
        inbox.save(update_fields=["highestmodseq"])
        events.changed(mailbox_id)
        return
    prefix = folder.name + SEPARATOR
    children = list(Folder.objects.filter(mailbox=mailbox, name__startswith=prefix))
    old_name = folder.name
    folder.name = new
    folder.save(update_fields=["name"])
    for child in children:
        child.name = new + SEPARATOR + child.name[len(prefix):]
        child.save(update_fields=["name"])
    _rename_subscriptions(mailbox, old_name, new)
    events.changed(mailbox_id)


def _rename_subscriptions(mailbox: Mailbox, old: str, new: str) -> None:
    """Move the subscriptions of a renamed folder and its subfolders along (as Dovecot)."""
    prefix = old + SEPARATOR
    moved = Subscription.objects.filter(mailbox=mailbox).filter(
        Q(name=old) | Q(name__startswith=prefix))
    for subscription in list(moved):
        name = new + subscription.name[len(old):]
        if Subscription.objects.filter(mailbox=mailbox, name=name).exists():
            subscription.delete()
        else:
            subscription.name = name
            subscription.save(update_fields=["name"])


def subscribe(mailbox_id: int, name: str, subscribed: bool) -> None:
    """Add a name to the subscriptions, or remove it (RFC 9051 sections 6.3.7, 6.3.8).

    The name need not exist (RFC 3501 section 6.3.6), but must be one a folder could have.
    """
    if subscribed:
        _, added = Subscription.objects.get_or_create(mailbox_id=mailbox_id,
                                                      name=_check_name(name))
        if added:
            events.changed(mailbox_id)
    elif Subscription.objects.filter(mailbox_id=mailbox_id,
                                     name=canonical_name(name)).delete()[0]:
        events.changed(mailbox_id)


def subscriptions(mailbox_id: int) -> list[str]:
    """Return the subscribed names of a mailbox, sorted."""
    return list(Subscription.objects.filter(mailbox_id=mailbox_id).order_by("name")
                .values_list("name", flat=True))


def status(folder: Folder) -> dict[str, int]:
    """Return the counters STATUS and webmail show for a folder."""
    rows = Message.objects.filter(folder=folder)
    counts = rows.aggregate(size=Sum("size"))
    return {
        "MESSAGES": rows.count(),
        "UNSEEN": rows.filter(seen=False).count(),
        "DELETED": rows.filter(deleted=True).count(),
        "RECENT": rows.filter(uid__gte=folder.recent_uid).count(),  # not yet seen by any
        "UIDNEXT": folder.uidnext,
        "UIDVALIDITY": folder.uidvalidity,
        "HIGHESTMODSEQ": folder.highestmodseq,
        "SIZE": counts["size"] or 0,
    }


def folder_status(mailbox_id: int, name: str) -> dict[str, int]:
    """Return status() of a folder found by name; raise FolderError if there is none."""
    return status(find_folder(mailbox_id, name))


def statuses(mailbox_id: int, names: Iterable[str]) -> dict[str, dict[str, int]]:
    """Return status() of several folders by name (LIST-STATUS, RFC 5819)."""
    wanted = set(names)
    return {f.name: status(f) for f in list_folders(mailbox_id) if f.name in wanted}


def usage(mailbox_id: int, name: str | None = None) -> tuple[int, int]:
    """Return a mailbox's (used bytes, quota bytes; 0 for none), checking a folder exists."""
    if name is not None:
        find_folder(mailbox_id, name)
    return Mailbox.objects.values_list("used_bytes", "quota_bytes").get(pk=mailbox_id)


@dataclass(frozen=True)
class Overview:
    """What IMAP NOTIFY compares to tell what changed in a folder (plain values)."""

    name: str
    uidvalidity: int
    messages: int
    uidnext: int
    highestmodseq: int


def overview(mailbox_id: int) -> tuple[dict[int, Overview], frozenset[str]]:
    """Return every folder of a mailbox by id, and its subscribed names: two queries."""
    rows = (Folder.objects.filter(mailbox_id=mailbox_id).annotate(n=Count("messages"))
            .values_list("id", "name", "uidvalidity", "n", "uidnext", "highestmodseq"))
    folders = {row[0]: Overview(*row[1:]) for row in rows}
    return folders, frozenset(subscriptions(mailbox_id))
