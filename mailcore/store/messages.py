"""Messages in a folder as IMAP and webmail see them: state, flags, copy, move, append, expunge.

Every change bumps the folder's HIGHESTMODSEQ and stamps the changed messages with it,
so any session can ask "what changed since modseq N" (RFC 7162) and stay in sync.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from mailcore.models import Blob, Expunged, Folder, Mailbox, Message
from mailcore.store import events
from mailcore.store.blobs import blob_store
from mailcore.store.delivery import QuotaExceeded
from mailcore.store.folders import expunge
from mailcore.store.headers import summarize

SYSTEM_FLAGS = {"\\Seen": "seen", "\\Answered": "answered", "\\Flagged": "flagged",
                "\\Deleted": "deleted", "\\Draft": "draft"}
_MAX_KEYWORDS = 100


@dataclass(frozen=True)
class FolderState:
    id: int
    mailbox_id: int
    name: str
    special_use: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int


@dataclass(frozen=True)
class MessageState:
    """What a session keeps per message: enough to number it and report flag changes."""

    id: int
    uid: int
    modseq: int
    flags: tuple[str, ...]


def _folder_state(folder: Folder) -> FolderState:
    return FolderState(folder.pk, folder.mailbox_id, folder.name, folder.special_use,
                       folder.uidvalidity, folder.uidnext, folder.highestmodseq)


def flags_of(message: Message) -> tuple[str, ...]:
    system = tuple(name for name, field in SYSTEM_FLAGS.items() if getattr(message, field))
    return system + tuple(message.keywords or ())


_STATE_FIELDS = ("pk", "uid", "modseq", "keywords", *SYSTEM_FLAGS.values())


def _state(row: Message) -> MessageState:
    return MessageState(row.pk, row.uid, row.modseq, flags_of(row))


def folder_state(folder_id: int) -> FolderState:
    return _folder_state(Folder.objects.get(pk=folder_id))


def snapshot(folder_id: int) -> tuple[FolderState, list[MessageState]]:
    """Return the folder and all its messages in UID order (for SELECT)."""
    with transaction.atomic():
        folder = Folder.objects.get(pk=folder_id)
        rows = Message.objects.filter(folder_id=folder_id).order_by("uid").only(*_STATE_FIELDS)
        return _folder_state(folder), [_state(r) for r in rows]


def changes_since(folder_id: int, modseq: int
                  ) -> tuple[FolderState, list[MessageState], list[int]]:
    """Return the folder, messages changed or added after modseq, and UIDs expunged since."""
    with transaction.atomic():
        folder = Folder.objects.get(pk=folder_id)
        if folder.highestmodseq <= modseq:
            return _folder_state(folder), [], []
        changed = (Message.objects.filter(folder_id=folder_id, modseq__gt=modseq)
                   .order_by("uid").only(*_STATE_FIELDS))
        gone = (Expunged.objects.filter(folder_id=folder_id, modseq__gt=modseq)
                .order_by("uid").values_list("uid", flat=True))
        return _folder_state(folder), [_state(r) for r in changed], list(gone)


def load(folder_id: int, uids: Sequence[int]) -> list[Message]:
    """Return full message rows (for FETCH) in UID order."""
    return list(Message.objects.filter(folder_id=folder_id, uid__in=list(uids)).order_by("uid"))


def read(message: Message) -> bytes:
    return blob_store().get(message.blob_id)


def _lock(folder_id: int) -> Folder:
    return Folder.objects.select_for_update().get(pk=folder_id)


def _apply(message: Message, op: str, system: set[str], keywords: list[str]) -> bool:
    """Change message's flags in place; return whether anything changed."""
    before = flags_of(message)
    for name, field in SYSTEM_FLAGS.items():
        if op == "set":
            setattr(message, field, name in system)
        elif name in system:
            setattr(message, field, op == "add")
    current = list(message.keywords or [])
    if op == "set":
        current = list(dict.fromkeys(keywords))
    elif op == "add":
        current += [k for k in keywords if k not in current]
    else:
        current = [k for k in current if k not in keywords]
    message.keywords = current[:_MAX_KEYWORDS]
    return flags_of(message) != before


def split_flags(flags: Iterable[str]) -> tuple[set[str], list[str]]:
    """Return (system flags, keywords) from IMAP flag names, system flags case-insensitively."""
    canonical = {name.lower(): name for name in SYSTEM_FLAGS}
    system, keywords = set(), []
    for flag in flags:
        if flag.lower() in canonical:
            system.add(canonical[flag.lower()])
        elif not flag.startswith("\\") and flag not in keywords:
            keywords.append(flag)
    return system, keywords


def store_flags(folder_id: int, uids: Sequence[int], op: str, flags: Iterable[str],
                unchanged_since: int | None = None
                ) -> tuple[list[MessageState], list[int]]:
    """Set, add or remove flags on messages (op: "set", "add", "remove").

    Return (the messages' new states, UIDs refused by UNCHANGEDSINCE, RFC 7162 3.1.3).
    Messages whose flags end up the same keep their modseq.
    """
    system, keywords = split_flags(flags)
    with transaction.atomic():
        folder = _lock(folder_id)
        rows = list(Message.objects.filter(folder_id=folder_id, uid__in=list(uids))
                    .order_by("uid").only(*_STATE_FIELDS))
        refused = [r.uid for r in rows
                   if unchanged_since is not None and r.modseq > unchanged_since]
        changed = []
        modseq = folder.highestmodseq + 1
        for row in rows:
            if row.uid in refused:
                continue
            if _apply(row, op, system, keywords):
                row.modseq = modseq
                changed.append(row)
        if changed:
            Message.objects.bulk_update(changed, ["modseq", "keywords", *SYSTEM_FLAGS.values()])
            folder.highestmodseq = modseq
            folder.save(update_fields=["highestmodseq"])
            events.changed(folder.mailbox_id)
        return [_state(r) for r in rows if r.uid not in refused], refused


def _lock_with_mailbox(folder_id: int) -> tuple[Mailbox, Folder]:
    """Lock a folder and its mailbox, mailbox first: the order every writer uses."""
    mailbox_id = Folder.objects.values_list("mailbox_id", flat=True).get(pk=folder_id)
    mailbox = Mailbox.objects.select_for_update().select_related("domain").get(pk=mailbox_id)
    return mailbox, _lock(folder_id)


def _check_quota(mailbox: Mailbox, extra: int) -> None:
    if mailbox.is_over_quota(extra):
        raise QuotaExceeded([mailbox.address])


def copy(folder_id: int, uids: Sequence[int], target_id: int, move: bool = False
         ) -> list[tuple[int, int]]:
    """Copy (or move) messages to another folder of the same mailbox.

    Return [(source UID, new UID)] in source UID order (for COPYUID, RFC 4315).
    A copy counts against the quota; a move does not. Raises QuotaExceeded.
    """
    with transaction.atomic():
        mailbox, source = _lock_with_mailbox(folder_id)
        target = _lock(target_id)
        if target.mailbox_id != source.mailbox_id:
            raise ValueError("copy across mailboxes")
        rows = list(Message.objects.filter(folder_id=folder_id, uid__in=list(uids))
                    .order_by("uid"))
        if not rows:
            return []
        size = sum(r.size for r in rows)
        if not move:
            _check_quota(mailbox, size)
        target.highestmodseq += 1
        pairs = []
        for row in rows:
            old_uid, old_pk = row.uid, row.pk
            row.pk = None
            row.folder_id = target.pk
            row.uid = target.uidnext
            row.modseq = target.highestmodseq
            row.pop3_hidden = False
            target.uidnext += 1
            row.save(force_insert=True)
            pairs.append((old_uid, row.uid))
            row.pk = old_pk
        target.save(update_fields=["uidnext", "highestmodseq"])
        if move:
            # Lowers the quota use for the moved messages; the copies add it back below.
            expunge(source, [r.pk for r in rows])
        Mailbox.objects.filter(pk=mailbox.pk).update(used_bytes=F("used_bytes") + size)
        events.changed(source.mailbox_id)
        return pairs


def append(folder_id: int, raw: bytes, flags: Iterable[str] = (),
           internal_date: datetime | None = None) -> tuple[int, int]:
    """Store raw as a new message in a folder; return (UIDVALIDITY, UID). Raises QuotaExceeded.

    The blob is durable before the row is committed (RFC 3501 APPEND's OK means stored).
    """
    system, keywords = split_flags(flags)
    fields = summarize(raw)
    key = blob_store().put(raw)
    with transaction.atomic():
        mailbox, folder = _lock_with_mailbox(folder_id)
        _check_quota(mailbox, len(raw))
        Blob.objects.get_or_create(key=key, defaults={"size": len(raw)})
        folder.highestmodseq += 1
        message = Message(
            folder=folder, uid=folder.uidnext, blob_id=key, size=len(raw),
            internal_date=internal_date or timezone.now(), modseq=folder.highestmodseq,
            keywords=keywords, **{SYSTEM_FLAGS[f]: True for f in system}, **fields,
        )
        message.save(force_insert=True)
        folder.uidnext += 1
        folder.save(update_fields=["uidnext", "highestmodseq"])
        Mailbox.objects.filter(pk=folder.mailbox_id).update(
            used_bytes=F("used_bytes") + len(raw))
        events.changed(folder.mailbox_id)
        return folder.uidvalidity, message.uid


def expunge_deleted(folder_id: int, uids: Sequence[int] | None = None) -> list[int]:
    """Remove messages flagged \\Deleted (only those among uids, if given); return their UIDs."""
    with transaction.atomic():
        _, folder = _lock_with_mailbox(folder_id)
        doomed = Message.objects.filter(folder_id=folder_id, deleted=True)
        if uids is not None:
            doomed = doomed.filter(uid__in=list(uids))
        rows = list(doomed.order_by("uid").values_list("pk", "uid"))
        if rows:
            expunge(folder, [pk for pk, _ in rows])
            events.changed(folder.mailbox_id)
        return [uid for _, uid in rows]


def folder_size(folder_id: int) -> int:
    return Message.objects.filter(folder_id=folder_id).aggregate(s=Sum("size"))["s"] or 0
