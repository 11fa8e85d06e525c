"""Messages in a folder as IMAP and webmail see them: state, flags, copy, move, append, expunge.

Every change bumps the folder's HIGHESTMODSEQ and stamps the changed messages with it,
so any session can ask "what changed since modseq N" (RFC 7162) and stay in sync.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from mailcore.models import Blob, Expunged, Folder, Mailbox, Message
from mailcore.store import events, structure
from mailcore.store.blobs import blob_store
from mailcore.store.delivery import QuotaExceeded
from mailcore.store.folders import expunge, find_folder
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


MAX_UID_RANGES = 64  # beyond this many ranges, filter in Python instead of in SQL


def uid_ranges(uids: Iterable[int]) -> list[tuple[int, int]]:
    """Return sorted UIDs as merged inclusive (low, high) ranges."""
    ranges: list[tuple[int, int]] = []
    for uid in sorted(set(uids)):
        if ranges and ranges[-1][1] == uid - 1:
            ranges[-1] = (ranges[-1][0], uid)
        else:
            ranges.append((uid, uid))
    return ranges


def _uid_filter(uids: Iterable[int]) -> tuple[Q, set[int] | None]:
    """Return (a condition on uid, the members to check in Python or None).

    `uid IN (...)` with tens of thousands of values exceeds what SQLite (and psycopg's
    parameters) accept; a few ranges are exact in SQL, many become their bounding range
    and the caller keeps only the members.
    """
    members = set(uids)
    ranges = uid_ranges(members)
    if not ranges:
        return Q(pk__in=[]), None
    if len(ranges) <= MAX_UID_RANGES:
        condition = Q()
        for low, high in ranges:
            condition |= Q(uid=low) if low == high else Q(uid__gte=low, uid__lte=high)
        return condition, None
    return Q(uid__gte=ranges[0][0], uid__lte=ranges[-1][1]), members


def _with_uids(queryset, uids: Iterable[int], uid_of=lambda row: row.uid) -> list:
    """Evaluate queryset restricted to these UIDs (see _uid_filter)."""
    condition, members = _uid_filter(uids)
    rows = list(queryset.filter(condition))
    return rows if members is None else [r for r in rows if uid_of(r) in members]


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
    return _with_uids(Message.objects.filter(folder_id=folder_id).order_by("uid"), uids)


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
        rows = _with_uids(Message.objects.filter(folder_id=folder_id)
                          .order_by("uid").only(*_STATE_FIELDS), uids)
        refused = {r.uid for r in rows
                   if unchanged_since is not None and r.modseq > unchanged_since}
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
        return [_state(r) for r in rows if r.uid not in refused], sorted(refused)


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
        rows = _with_uids(Message.objects.filter(folder_id=folder_id).order_by("uid"), uids)
        if not rows:
            return []
        size = sum(r.size for r in rows)
        if not move:
            _check_quota(mailbox, size)
        target.highestmodseq += 1
        pairs, copies = [], []
        for row in rows:
            pairs.append((row.uid, target.uidnext))
            copies.append(Message(**{
                **{f.attname: getattr(row, f.attname) for f in Message._meta.concrete_fields},
                "id": None, "folder_id": target.pk, "uid": target.uidnext,
                "modseq": target.highestmodseq, "pop3_hidden": False,
            }))
            target.uidnext += 1
        Message.objects.bulk_create(copies, batch_size=500)
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
    fields = {**summarize(raw), **structure.compute(raw)}
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
        doomed = Message.objects.filter(folder_id=folder_id, deleted=True).order_by("uid")
        if uids is not None:
            rows = _with_uids(doomed.values_list("pk", "uid"), uids, uid_of=lambda r: r[1])
        else:
            rows = list(doomed.values_list("pk", "uid"))
        if rows:
            expunge(folder, [pk for pk, _ in rows])
            events.changed(folder.mailbox_id)
        return [uid for _, uid in rows]


def folder_size(folder_id: int) -> int:
    return Message.objects.filter(folder_id=folder_id).aggregate(s=Sum("size"))["s"] or 0


# For IMAP sessions: opening a folder, fetching, appending several, vanished UIDs ---------

@dataclass(frozen=True)
class OpenedFolder:
    """What SELECT reports, and the UID list a session numbers its messages by."""

    folder: FolderState
    uids: array  # array("I"): 4 bytes a message, in UID order
    first_unseen: int | None  # UID of the first message without \Seen
    keywords: tuple[str, ...]  # keywords set on some message


def open_folder(folder_id: int) -> OpenedFolder:
    """Return a folder's state and its UIDs (for SELECT and EXAMINE).

    The folder row is read first: whatever changes after it (a delivery, an expunge)
    has a higher modseq, so the session's first sync reports it whatever the uids show.
    """
    folder = Folder.objects.get(pk=folder_id)
    rows = Message.objects.filter(folder_id=folder_id)
    uids = array("I", rows.order_by("uid").values_list("uid", flat=True).iterator(2000))
    first_unseen = (rows.filter(seen=False).order_by("uid")
                    .values_list("uid", flat=True).first())
    keywords: dict[str, None] = {}
    for names in rows.exclude(keywords=[]).values_list("keywords", flat=True).iterator(2000):
        keywords.update(dict.fromkeys(names or ()))
    return OpenedFolder(_folder_state(folder), uids, first_unseen, tuple(keywords))


def fetch_rows(folder_id: int, uids: Sequence[int], fields: Iterable[str],
               changed_since: int | None = None) -> list[Message]:
    """Return message rows (only the named fields, plus uid and flags) in UID order.

    Rows without their envelope or bodystructure (stored before they were computed at
    delivery) get them computed from the blob and saved, when either field is asked for.
    """
    names = {"pk", "uid", "modseq", "keywords", *SYSTEM_FLAGS.values(), *fields}
    structure_wanted = bool(names & {"envelope", "bodystructure"})
    if structure_wanted:
        names |= {"envelope", "bodystructure", "blob_id"}  # what a backfill reads
    rows = Message.objects.filter(folder_id=folder_id).order_by("uid")
    if changed_since is not None:
        rows = rows.filter(modseq__gt=changed_since)
    rows = _with_uids(rows.only(*names), uids)
    if structure_wanted:
        for row in rows:
            if row.envelope is None or row.bodystructure is None:
                structure.backfill(row, blob_store().get(row.blob_id))
    return rows


def read_many(messages: Sequence[Message]) -> list[bytes]:
    """Return the raw bytes of each message, in order."""
    store = blob_store()
    return [store.get(m.blob_id) for m in messages]


def vanished(folder_id: int, modseq: int,
             ranges: Sequence[tuple[int, int]] | None = None) -> list[int]:
    """Return UIDs expunged after modseq, only those in ranges if given (RFC 7162 3.2.5).

    ranges are sorted, merged inclusive (low, high) UID ranges (SequenceSet.resolve()).
    """
    gone = sorted(set(Expunged.objects.filter(folder_id=folder_id, modseq__gt=modseq)
                      .values_list("uid", flat=True)))
    if ranges is None:
        return gone
    lows = [low for low, _ in ranges]
    return [uid for uid in gone
            if (i := bisect.bisect_right(lows, uid) - 1) >= 0 and uid <= ranges[i][1]]


def append_many(folder_id: int, items: Sequence[tuple[bytes, Iterable[str], datetime | None]]
                ) -> tuple[int, list[int]]:
    """Append messages (raw, flags, internal date) all or none (RFC 3502 MULTIAPPEND).

    Return (UIDVALIDITY, new UIDs). Raises QuotaExceeded.
    """
    with transaction.atomic():
        results = [append(folder_id, raw, flags, when) for raw, flags, when in items]
    return results[0][0], [uid for _, uid in results]


def select_folder(mailbox_id: int, name: str) -> OpenedFolder:
    """Open a folder by name (SELECT/EXAMINE); raise FolderError if there is none."""
    return open_folder(find_folder(mailbox_id, name).pk)


def sync_state(folder_id: int, modseq: int
               ) -> tuple[FolderState, list[MessageState], list[int]] | None:
    """Return changes_since(folder_id, modseq), or None if the folder no longer exists."""
    try:
        return changes_since(folder_id, modseq)
    except Folder.DoesNotExist:
        return None


def store_flags_tracked(folder_id: int, uids: Sequence[int], op: str, flags: Iterable[str],
                        unchanged_since: int | None = None
                        ) -> tuple[list[MessageState], list[int], int, int]:
    """store_flags(), also returning the folder's HIGHESTMODSEQ before and after.

    A session that had seen everything up to "before" knows the change to "after" was
    its own alone, and need not announce it to itself again.
    """
    with transaction.atomic():
        before = _lock(folder_id).highestmodseq
        states, refused = store_flags(folder_id, uids, op, flags, unchanged_since)
        after = Folder.objects.values_list("highestmodseq", flat=True).get(pk=folder_id)
    return states, refused, before, after


def copy_to(folder_id: int, uids: Sequence[int], mailbox_id: int, target_name: str,
            move: bool = False) -> tuple[int, int, list[tuple[int, int]]]:
    """Copy (or move) messages to a folder found by name.

    Return (its UIDVALIDITY, its id, [(source UID, new UID)]). Raise FolderError when
    there is no such folder, QuotaExceeded when a copy does not fit.
    """
    target = find_folder(mailbox_id, target_name)
    return target.uidvalidity, target.pk, copy(folder_id, uids, target.pk, move)


def append_to(mailbox_id: int, name: str,
              items: Sequence[tuple[bytes, Iterable[str], datetime | None]]
              ) -> tuple[int, int, list[int]]:
    """Append messages to a folder found by name: (its id, UIDVALIDITY, new UIDs).

    Raise FolderError when there is no such folder, QuotaExceeded when they do not fit.
    """
    folder = find_folder(mailbox_id, name)
    uidvalidity, uids = append_many(folder.pk, items)
    return folder.pk, uidvalidity, uids
