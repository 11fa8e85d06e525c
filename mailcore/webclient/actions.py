"""Acting on selected messages: read, unread, flag, move, archive, junk, delete, empty."""

from __future__ import annotations

from collections.abc import Sequence

from mailcore.models import Message
from mailcore.store import messages as store_messages
from mailcore.store.delivery import QuotaExceeded
from mailcore.webclient.folder_list import get_folder, role_of, special_folder

_FLAG_ACTIONS = {
    "read": ("add", "\\Seen"),
    "unread": ("remove", "\\Seen"),
    "flag": ("add", "\\Flagged"),
    "unflag": ("remove", "\\Flagged"),
}
ACTIONS = (*_FLAG_ACTIONS, "move", "archive", "junk", "notjunk", "delete")


class ActionRefused(Exception):
    """The action cannot be done; the text says why, for the user."""


def apply(mailbox_id: int, folder_id: int, uids: Sequence[int], action: str,
          target_id: int | None = None) -> str:
    """Do action on the messages; return a short account of it for the user."""
    folder = get_folder(mailbox_id, folder_id)
    uids = sorted(set(uids))
    if not uids:
        raise ActionRefused("Select one or more messages first.")
    count = len(uids)
    things = "message" if count == 1 else f"{count} messages"
    if action in _FLAG_ACTIONS:
        op, flag = _FLAG_ACTIONS[action]
        store_messages.store_flags(folder.pk, uids, op, [flag])
        done = {"read": "marked read", "unread": "marked unread", "flag": "flagged",
                "unflag": "unflagged"}[action]
        return f"{things.capitalize()} {done}."
    if action == "move":
        if target_id is None:
            raise ActionRefused("Choose a folder to move to.")
        target = get_folder(mailbox_id, target_id)
        _move(folder.pk, uids, target.pk)
        return f"{things.capitalize()} moved to {target.name}."
    if action in ("archive", "junk"):
        target = special_folder(mailbox_id, action)
        assert target is not None
        _move(folder.pk, uids, target.pk)
        return f"{things.capitalize()} moved to {target.name}."
    if action == "notjunk":
        target = special_folder(mailbox_id, "inbox")
        assert target is not None
        _move(folder.pk, uids, target.pk)
        return f"{things.capitalize()} moved to the inbox."
    if action == "delete":
        if role_of(folder) == "trash":
            _destroy(folder.pk, uids)
            return f"{things.capitalize()} deleted for good."
        trash = special_folder(mailbox_id, "trash")
        assert trash is not None
        _move(folder.pk, uids, trash.pk)
        return f"{things.capitalize()} moved to {trash.name}."
    raise ActionRefused("Unknown action.")


def _move(folder_id: int, uids: Sequence[int], target_id: int) -> None:
    if folder_id == target_id:
        return
    try:
        store_messages.copy(folder_id, uids, target_id, move=True)
    except QuotaExceeded:  # a move frees what it takes; kept for a store that disagrees
        raise ActionRefused("The mailbox is full.") from None


def _destroy(folder_id: int, uids: Sequence[int]) -> None:
    store_messages.store_flags(folder_id, uids, "add", ["\\Deleted"])
    store_messages.expunge_deleted(folder_id, uids)


def empty(mailbox_id: int, folder_id: int) -> int:
    """Delete every message of the Trash or Junk folder for good; return how many went."""
    folder = get_folder(mailbox_id, folder_id)
    if role_of(folder) not in ("trash", "junk"):
        raise ActionRefused("Only Trash and Junk can be emptied.")
    uids = list(Message.objects.filter(folder=folder).values_list("uid", flat=True))
    if uids:
        _destroy(folder.pk, uids)
    return len(uids)


def mark_all_read(mailbox_id: int, folder_id: int) -> int:
    folder = get_folder(mailbox_id, folder_id)
    uids = list(Message.objects.filter(folder=folder, seen=False).values_list("uid", flat=True))
    if uids:
        store_messages.store_flags(folder.pk, uids, "add", ["\\Seen"])
    return len(uids)
