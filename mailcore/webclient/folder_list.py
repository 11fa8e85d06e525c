"""A mailbox's folders as webmail shows them: roles, unread counts, and changes by name."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, QuerySet

from mailcore.models import Folder, Message
from mailcore.store import folders as store_folders
from mailcore.store.folders import INBOX, SEPARATOR, FolderError

# Special-use attribute (RFC 6154) -> role, and the folder created when one is missing.
ROLES = {
    Folder.SpecialUse.SENT: "sent",
    Folder.SpecialUse.DRAFTS: "drafts",
    Folder.SpecialUse.TRASH: "trash",
    Folder.SpecialUse.JUNK: "junk",
    Folder.SpecialUse.ARCHIVE: "archive",
}
_USES = {role: use for use, role in ROLES.items()}
_DEFAULT_NAMES = {"sent": "Sent", "drafts": "Drafts", "trash": "Trash", "junk": "Junk",
                  "archive": "Archive"}
MAX_NAME_LENGTH = 500  # a folder's full name, as the store checks it (the column holds 512)
_ORDER = ["inbox", "drafts", "sent", "archive", "junk", "trash"]


class NoSuchFolder(Exception):
    """The folder does not exist, or belongs to another mailbox."""


@dataclass
class FolderItem:
    id: int
    name: str  # full name, "Projects/2025"
    label: str  # last component, "2025"
    depth: int
    role: str  # "inbox", "sent", "drafts", "trash", "junk", "archive" or ""
    unread: int
    total: int | None  # None unless asked for (a count over every message of the folder)


def role_of(folder: Folder) -> str:
    if folder.name == INBOX:
        return "inbox"
    return ROLES.get(folder.special_use, "")


def get_folder(mailbox_id: int, folder_id: int) -> Folder:
    """Return a folder of this mailbox; raise NoSuchFolder for anyone else's."""
    folder = Folder.objects.filter(pk=folder_id, mailbox_id=mailbox_id).first()
    if folder is None:
        raise NoSuchFolder(folder_id)
    return folder


def folder_list(mailbox_id: int, totals: bool = False) -> list[FolderItem]:
    """Return the mailbox's folders, INBOX and the special ones first, with unread counts.

    totals: count every folder's messages too (the folders page; every other page shows
    only unread counts, which an index answers without reading a 50,000-message folder).
    """
    folders = store_folders.list_folders(mailbox_id)
    unread = unread_counts(mailbox_id)
    total = {}
    if totals:
        total = dict(Message.objects.filter(folder__mailbox_id=mailbox_id).values("folder_id")
                     .annotate(n=Count("id")).values_list("folder_id", "n"))
    items = []
    for folder in folders:
        parts = folder.name.split(SEPARATOR)
        items.append(FolderItem(folder.pk, folder.name, parts[-1], len(parts) - 1,
                                role_of(folder), unread.get(folder.pk, 0),
                                total.get(folder.pk, 0) if totals else None))

    def key(item: FolderItem) -> tuple:
        # Top-level special folders in a fixed order, then the rest as a tree by name.
        top = item.name.split(SEPARATOR)[0]
        top_item = next((i for i in items if i.name == top), None)
        role = top_item.role if top_item else ""
        rank = _ORDER.index(role) if role in _ORDER else len(_ORDER)
        return rank, item.name.casefold().split(SEPARATOR)

    return sorted(items, key=key)


def unread_counts(mailbox_id: int) -> dict[int, int]:
    """Return unread messages per folder id (folders without any are left out)."""
    return dict(unread_query(mailbox_id).values_list("folder_id", "n"))


def unread_query(mailbox_id: int) -> QuerySet:
    """Return the query of unread_counts(): the message_folder_unread index's condition,
    so that only unread rows are read (a page's sidebar, on every page)."""
    return (Message.objects.filter(folder__mailbox_id=mailbox_id, seen=False, deleted=False)
            .values("folder_id").annotate(n=Count("id")))


def inbox(mailbox_id: int) -> Folder:
    return store_folders.find_folder(mailbox_id, INBOX)


def special_folder(mailbox_id: int, role: str, create: bool = True) -> Folder | None:
    """Return the folder with this role (special-use first, then the usual name).

    With create, a missing one is made (a mailbox whose Trash was deleted over IMAP).
    """
    if role == "inbox":
        return inbox(mailbox_id)
    use = _USES[role]
    folder = (Folder.objects.filter(mailbox_id=mailbox_id, special_use=use).order_by("pk")
              .first())
    if folder is None:
        folder = Folder.objects.filter(mailbox_id=mailbox_id,
                                       name__iexact=_DEFAULT_NAMES[role]).first()
    if folder is None and create:
        try:
            folder = store_folders.add_folder(mailbox_id, _DEFAULT_NAMES[role], use,
                                              subscribe=True)
        except FolderError:  # made meanwhile by another session
            folder = store_folders.find_folder(mailbox_id, _DEFAULT_NAMES[role])
    return folder


def create(mailbox_id: int, name: str, parent_id: int | None = None) -> Folder:
    """Create a folder (under a parent, if given); raise FolderError with a reason."""
    name = name.strip()
    if SEPARATOR in name:
        raise FolderError("CANNOT", f"A folder name cannot contain “{SEPARATOR}”.")
    if parent_id:
        name = get_folder(mailbox_id, parent_id).name + SEPARATOR + name
    return store_folders.add_folder(mailbox_id, name, subscribe=True)


def rename(mailbox_id: int, folder_id: int, new_label: str) -> Folder:
    """Rename a folder in place (its subfolders follow); special folders keep their name."""
    folder = get_folder(mailbox_id, folder_id)
    if role_of(folder):
        raise FolderError("CANNOT", f"{folder.name} is a special folder and keeps its name.")
    new_label = new_label.strip()
    if SEPARATOR in new_label:
        raise FolderError("CANNOT", f"A folder name cannot contain “{SEPARATOR}”.")
    parent, _, _ = folder.name.rpartition(SEPARATOR)
    new_name = f"{parent}{SEPARATOR}{new_label}" if parent else new_label
    # Subfolders are renamed along: the longest of them must still fit a folder name.
    longest = max((len(name) for name in Folder.objects.filter(
        mailbox_id=mailbox_id, name__startswith=folder.name + SEPARATOR)
        .values_list("name", flat=True)), default=len(folder.name))
    if longest - len(folder.name) + len(new_name) > MAX_NAME_LENGTH:
        raise FolderError("CANNOT", "The new name is too long for the folders inside it.")
    store_folders.rename_folder(mailbox_id, folder.name, new_name)
    return get_folder(mailbox_id, folder_id)


def delete(mailbox_id: int, folder_id: int) -> None:
    """Delete a folder and its mail; INBOX, special folders and parents stay."""
    folder = get_folder(mailbox_id, folder_id)
    if role_of(folder):
        raise FolderError("CANNOT", f"{folder.name} is a special folder and cannot be deleted.")
    store_folders.remove_folder(mailbox_id, folder.name)
    # Gone for good: IMAP clients showing subscribed folders should not keep showing it.
    store_folders.subscribe(mailbox_id, folder.name, False)
