"""Messages in a folder as IMAP and webmail see them: state, flags, copy, move, append, expunge.

Every change bumps the folder's HIGHESTMODSEQ and stamps the changed messages with it,
so any session can ask "what changed since modseq N" (RFC 7162) and stay in sync.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import itertools
import logging
import operator
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from mailcore import dbpool, hooks
from mailcore.message import mime
from mailcore.models import Expunged, Folder, Mailbox, Message
from mailcore.store import delivery, events, fulltext, sql, structure
from mailcore.store.blobs import blob_store
from mailcore.store.delivery import QuotaExceeded
from mailcore.store.folders import FolderError, canonical_name, find_folder

log = logging.getLogger("mailcore.store")

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


class MessageRow:
    """Some of a message row's columns, as attributes named as the model's fields ("id"
    as "pk")."""

    def __init__(self, names: Sequence[str], values: Sequence) -> None:
        self.__dict__.update(zip(names, values, strict=True))

    @classmethod
    def decoded(cls, names: Sequence[str], rows: Iterable[Sequence]) -> list[MessageRow]:
        """Return database rows of these Message columns, decoded as the ORM would.

        Each row is a list underneath (see _row_class): made in C, without a Python call
        per row, which a FETCH of 50,000 messages would otherwise pay for each.
        """
        return list(map(_row_class(tuple(names)), sql.decode_rows(Message, names, rows)))


@functools.cache
def _row_class(names: tuple[str, ...]) -> type[MessageRow]:
    """Return a MessageRow made from a row of these columns: a list whose items are the
    columns' attributes (read and written through properties); compared and hashed by
    identity as any MessageRow. Attributes beyond the columns are kept as usual."""
    def column(index: int) -> property:
        def set_value(row: list, value: object) -> None:
            row[index] = value
        return property(operator.itemgetter(index), set_value)

    namespace = {"pk" if name == "id" else name: column(index)
                 for index, name in enumerate(names)}
    namespace.update(__init__=list.__init__, __eq__=object.__eq__, __ne__=object.__ne__,
                     __hash__=object.__hash__, __repr__=object.__repr__)
    return type("MessageRow", (MessageRow, list), namespace)


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


def _uid_bounds(uids: Iterable[int]) -> tuple[list[tuple[int, int]], set[int] | None]:
    """Return (UID ranges to select, the members to keep in Python or None).

    `uid IN (...)` with tens of thousands of values exceeds what SQLite (and psycopg's
    parameters) accept; a few ranges are exact in SQL, many become their bounding range
    and the caller keeps only the members.
    """
    members = set(uids)
    ranges = uid_ranges(members)
    if len(ranges) <= MAX_UID_RANGES:
        return ranges, None
    return [(ranges[0][0], ranges[-1][1])], members


def _with_uids(queryset, uids: Iterable[int]) -> list:
    """Evaluate queryset restricted to these UIDs (see _uid_bounds)."""
    ranges, members = _uid_bounds(uids)
    condition = Q(pk__in=[])
    for low, high in ranges:
        condition |= Q(uid__gte=low, uid__lte=high)
    rows = list(queryset.filter(condition))
    return rows if members is None else [r for r in rows if r.uid in members]


# The system flags a message has, by its (seen, answered, flagged, deleted, draft) values.
SYSTEM_FLAG_SETS = {
    key: tuple(name for name, on in zip(SYSTEM_FLAGS, key, strict=True) if on)
    for key in itertools.product((False, True), repeat=len(SYSTEM_FLAGS))}


def flags_of(message: Message) -> tuple[str, ...]:
    # One dict look-up instead of five getattr calls: FETCH FLAGS calls this per message.
    # (1 and True hash alike, so raw 0/1 columns find their entry too.)
    system = SYSTEM_FLAG_SETS[(message.seen, message.answered, message.flagged,
                               message.deleted, message.draft)]
    keywords = message.keywords
    return system + tuple(keywords) if keywords else system


_STATE_FIELDS = ("pk", "uid", "modseq", "keywords", *SYSTEM_FLAGS.values())


def _state(row: Message) -> MessageState:
    return MessageState(row.pk, row.uid, row.modseq, flags_of(row))


# Hand-written SQL (mailcore.store.sql) for what IMAP does at every command: reading a
# folder's counters and changes, flag changes, appends and expunges. An IDLE/NOOP sync
# is one statement (three when something changed) and a STORE four, each built once; the
# ORM's querysets cost more Python time than the database spends running these. The
# statements per operation are pinned in tests/test_store_sql.py.

# What a tombstone keeps of its message, in the columns both tables name alike.
_KEPT_FIELDS = ("blob_id", "size", "internal_date", *SYSTEM_FLAGS.values(), "keywords",
                "envelope", "bodystructure")
_FOLDER_FIELDS = ("id", "mailbox_id", "name", "special_use", "uidvalidity", "uidnext",
                  "highestmodseq")
_FLAG_FIELDS = ("id", "uid", "modseq", *SYSTEM_FLAGS.values(), "keywords")


@dataclass(frozen=True)
class _Statements:
    folder: str
    folder_named: str
    lock_folder: str
    lock_mailbox: str
    flags: str  # {uids}: a condition on uid
    all_flags: str
    changed: str
    gone: str
    update_flags: str
    set_modseq: str
    uids: str
    first_unseen: str
    keywords: str
    deleted: str  # {uids}: "" or "AND" a condition on uid
    tombstone: str  # {ids}: placeholders for message ids
    delete: str  # {ids}: placeholders for message ids
    release: str
    kept: str  # {uids}: a condition on uid
    recent: str
    lock_recent: str
    claim_recent: str
    uid: str  # the uid column, for conditions built per call


@sql.statements
def _sql() -> _Statements:
    names = {"folder": Folder, "message": Message, "mailbox": Mailbox, "expunged": Expunged}

    def render(template: str) -> str:
        return sql.render(template, **names)

    no_keywords = "'[]'::jsonb" if connection.vendor == "postgresql" else "'[]'"
    flags = sql.select(Message, _FLAG_FIELDS, render(
        "{message.folder_id} = %s AND {{uids}} ORDER BY {message.uid}"))
    return _Statements(
        folder=sql.select(Folder, _FOLDER_FIELDS, render("{folder.id} = %s")),
        folder_named=sql.select(Folder, _FOLDER_FIELDS,
                                render("{folder.mailbox_id} = %s AND {folder.name} = %s")),
        lock_folder=sql.select(Folder, _FOLDER_FIELDS, render("{folder.id} = %s"))
        + sql.for_update(),
        lock_mailbox=render("SELECT {mailbox.id} FROM {mailbox} WHERE {mailbox.id} = "
                            "(SELECT {folder.mailbox_id} FROM {folder} WHERE {folder.id} = %s)")
        + sql.for_update(),
        flags=flags,
        all_flags=flags.format(uids=render("{message.uid} >= 0")),
        changed=sql.select(Message, _FLAG_FIELDS, render(
            "{message.folder_id} = %s AND {message.modseq} > %s ORDER BY {message.uid}")),
        gone=sql.select(Expunged, ["uid"], render(
            "{expunged.folder_id} = %s AND {expunged.modseq} > %s")),
        update_flags=render(
            "UPDATE {message} SET {message.modseq} = %s, {message.seen} = %s, "
            "{message.answered} = %s, {message.flagged} = %s, {message.deleted} = %s, "
            "{message.draft} = %s, {message.keywords} = %s WHERE {message.id} = %s"),
        set_modseq=render("UPDATE {folder} SET {folder.highestmodseq} = %s "
                          "WHERE {folder.id} = %s"),
        uids=sql.select(Message, ["uid"], render(
            "{message.folder_id} = %s ORDER BY {message.uid}")),
        first_unseen=sql.select(Message, ["uid"], render(
            "{message.folder_id} = %s AND NOT {message.seen} ORDER BY {message.uid} LIMIT 1")),
        keywords=render("SELECT DISTINCT {message.keywords} FROM {message} "
                        "WHERE {message.folder_id} = %s AND {message.keywords} <> ")
        + no_keywords,
        deleted=sql.select(Message, ["id", "uid", "size"], render(
            "{message.folder_id} = %s AND {message.deleted} {{uids}} ORDER BY {message.uid}")),
        tombstone=render(
            "INSERT INTO {expunged} ({expunged.folder_id}, {expunged.uid}, {expunged.modseq}, "
            + ", ".join(f"{{expunged.{name}}}" for name in _KEPT_FIELDS)
            + ", {expunged.kept_until}) SELECT {message.folder_id}, {message.uid}, %s, "
            + ", ".join(f"{{message.{name}}}" for name in _KEPT_FIELDS)
            + ", %s FROM {message} WHERE {message.id} IN ({{ids}})"),
        kept=sql.select(Expunged, ["id", "uid", "modseq", *_KEPT_FIELDS], render(
            "{expunged.folder_id} = %s AND {expunged.blob_id} IS NOT NULL AND {{uids}} "
            "ORDER BY {expunged.uid}")),
        delete=render("DELETE FROM {message} WHERE {message.id} IN ({{ids}})"),
        release=render("UPDATE {mailbox} SET {mailbox.used_bytes} = {mailbox.used_bytes} - %s "
                       "WHERE {mailbox.id} = %s"),
        recent=sql.select(Folder, ["recent_uid"], render("{folder.id} = %s")),
        lock_recent=sql.select(Folder, ["recent_uid"], render("{folder.id} = %s"))
        + sql.for_update(),
        claim_recent=render("UPDATE {folder} SET {folder.recent_uid} = %s WHERE {folder.id} = %s"),
        uid=sql.column(Message, "uid"),
    )


def _read_folder(cursor, folder_id: int, statement: str | None = None) -> FolderState:
    cursor.execute(statement or _sql().folder, [folder_id])
    row = cursor.fetchone()
    if row is None:
        raise Folder.DoesNotExist(f"no folder {folder_id}")
    return FolderState(*row)


def _uid_condition(uids: Iterable[int]) -> tuple[str, list[int], set[int] | None]:
    """Return (SQL condition on uid, its parameters, members to keep in Python or None)."""
    ranges, members = _uid_bounds(uids)
    if not ranges:
        return f"{_sql().uid} < 0", [], None
    condition, params = sql.ranges_condition(_sql().uid, ranges)
    return condition, params, members


def _flag_rows(cursor, statement: str, params: list) -> list[MessageRow]:
    """Run a statement selecting _FLAG_FIELDS; return its rows (STORE changes them)."""
    cursor.execute(statement, params)
    return MessageRow.decoded(_FLAG_FIELDS, cursor.fetchall())


def snapshot(folder_id: int) -> tuple[FolderState, list[MessageState]]:
    """Return the folder and all its messages in UID order."""
    with connection.cursor() as cursor:
        folder = _read_folder(cursor, folder_id)
        rows = _flag_rows(cursor, _sql().all_flags, [folder_id])
    return folder, [_state(r) for r in rows]


def changes_since(folder_id: int, modseq: int
                  ) -> tuple[FolderState, list[MessageState], list[int]]:
    """Return the folder, messages changed or added after modseq, and UIDs expunged since.

    No transaction: the folder row is read first, and every change a writer commits
    raises its HIGHESTMODSEQ in the same transaction, so a change made while this reads
    is reported now or, being above the folder's modseq returned, at the next call.
    """
    with connection.cursor() as cursor:
        folder = _read_folder(cursor, folder_id)
        if folder.highestmodseq <= modseq:
            return folder, [], []
        statements = _sql()
        changed = _flag_rows(cursor, statements.changed, [folder_id, modseq])
        cursor.execute(statements.gone, [folder_id, modseq])
        gone = sorted(uid for uid, in cursor.fetchall())
    return folder, [_state(r) for r in changed], gone


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
    states, refused, _, _ = store_flags_with_modseqs(folder_id, uids, op, flags, unchanged_since)
    return states, refused


def store_flags_with_modseqs(folder_id: int, uids: Sequence[int], op: str,
                             flags: Iterable[str], unchanged_since: int | None = None
                             ) -> tuple[list[MessageState], list[int], int, int]:
    """store_flags(), also returning the folder's HIGHESTMODSEQ before and after.

    A session that had seen everything up to "before" knows the change to "after" was
    its own alone, and need not announce it to itself again.
    """
    system, keywords = split_flags(flags)
    condition, params, members = _uid_condition(uids)
    statements = _sql()
    with dbpool.writing(durable=False), connection.cursor() as cursor:
        folder = _read_folder(cursor, folder_id, statements.lock_folder)
        rows = _flag_rows(cursor, statements.flags.format(uids=condition),
                          [folder_id, *params])
        if members is not None:
            rows = [r for r in rows if r.uid in members]
        refused = {r.uid for r in rows
                   if unchanged_since is not None and r.modseq > unchanged_since}
        modseq = folder.highestmodseq + 1
        changed = [r for r in rows
                   if r.uid not in refused and _apply(r, op, system, keywords)]
        for row in changed:
            row.modseq = modseq
        if changed:
            cursor.executemany(statements.update_flags, [
                [modseq, r.seen, r.answered, r.flagged, r.deleted, r.draft,
                 sql.prep(Message, "keywords", r.keywords), r.pk] for r in changed])
            cursor.execute(statements.set_modseq, [modseq, folder_id])
            events.changed(folder.mailbox_id, folder_id, modseq)
    after = modseq if changed else folder.highestmodseq
    return ([_state(r) for r in rows if r.uid not in refused], sorted(refused),
            folder.highestmodseq, after)


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
    with dbpool.writing():
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
        _report_judgement(mailbox.pk, source, target, [r.blob_id for r in rows])
        return pairs


def _report_judgement(mailbox_id: int, source: Folder, target: Folder, keys: list[str]
                      ) -> None:
    """Report messages filed into Junk (spam) or out of it (ham: anywhere but Trash).

    Any folder marked \\Junk (RFC 6154) counts, whatever its name; the spam filter learns
    from the report on the worker once the transaction commits, never in this session.
    """
    junk, trash = Folder.SpecialUse.JUNK, Folder.SpecialUse.TRASH
    if target.special_use == junk and source.special_use != junk:
        spam = True
    elif source.special_use == junk and target.special_use not in (junk, trash):
        spam = False
    else:
        return
    judgement = hooks.Judged(mailbox_id, sorted(set(keys)), spam)
    transaction.on_commit(lambda: _report(judgement))


def _report(judgement: hooks.Judged) -> None:
    try:
        hooks.judged(judgement)
    except Exception:  # the broker being down must not undo the user's move
        log.warning("could not report messages filed as %s",
                    "spam" if judgement.spam else "ham", exc_info=True)


def append(folder_id: int, raw: bytes, flags: Iterable[str] = (),
           internal_date: datetime | None = None) -> tuple[int, int]:
    """Store raw as a new message in a folder; return (UIDVALIDITY, UID). Raises QuotaExceeded.

    The blob is durable before the row is committed (RFC 3501 APPEND's OK means stored).
    """
    uidvalidity, uids = append_many(folder_id, [(raw, flags, internal_date)])
    return uidvalidity, uids[0]


def append_many(folder_id: int, items: Sequence[tuple[bytes, Iterable[str], datetime | None]]
                ) -> tuple[int, list[int]]:
    """Append messages (raw, flags, internal date) all or none (RFC 3502 MULTIAPPEND).

    Return (UIDVALIDITY, new UIDs). Raises QuotaExceeded.
    """
    added = _append(folder_id, items)
    return added.uidvalidity, [state.uid for state in added.states]


@dataclass(frozen=True)
class Appended:
    """Messages appended to a folder, and its HIGHESTMODSEQ before and after."""

    folder_id: int
    uidvalidity: int
    states: list[MessageState]
    before: int
    after: int


def _append(folder_id: int, items: Sequence[tuple[bytes, Iterable[str], datetime | None]]
            ) -> Appended:
    """append_many(), telling what the messages are and the folder's modseq around them.

    Blobs are written (and synced) before the write transaction, which only adds rows.
    """
    store, now = blob_store(), timezone.now()
    prepared = []
    for raw, flags, when in items:
        system, keywords = split_flags(flags)
        prepared.append((store.put(raw), len(raw), when or now,
                         structure.describe(raw),
                         {"keywords": keywords, **{SYSTEM_FLAGS[f]: True for f in system}},
                         fulltext.searchable(raw)))
    if not prepared:
        raise ValueError("nothing to append")
    size = sum(item[1] for item in prepared)
    with dbpool.writing(), connection.cursor() as cursor:
        cursor.execute(_sql().lock_mailbox, [folder_id])
        found = cursor.fetchone()
        if found is None:
            raise Folder.DoesNotExist(f"no folder {folder_id}")
        mailbox_id = found[0]
        if delivery.charge(cursor, [mailbox_id], size):
            raise delivery.quota_exceeded([mailbox_id])
        states = []
        for key, length, when, fields, flags, text in prepared:
            delivery.record_blob(cursor, key, length, now, text)
            stored = delivery.insert(cursor, folder_id, key, length, when, fields, flags)
            system = tuple(name for name, field in SYSTEM_FLAGS.items() if flags.get(field))
            states.append(MessageState(stored.message_id, stored.uid, stored.modseq,
                                       system + tuple(flags["keywords"])))
    # The folder was locked throughout: the messages took consecutive modseqs.
    return Appended(folder_id, stored.uidvalidity, states, states[0].modseq - 1,
                    states[-1].modseq)


def expunge_deleted(folder_id: int, uids: Sequence[int] | None = None) -> list[int]:
    """Remove messages flagged \\Deleted (only those among uids, if given); return their UIDs."""
    return expunge_deleted_with_modseqs(folder_id, uids)[0]


def expunge_deleted_with_modseqs(folder_id: int, uids: Sequence[int] | None = None
                                 ) -> tuple[list[int], int, int]:
    """expunge_deleted(), also returning the folder's HIGHESTMODSEQ before and after."""
    condition, params, members = ("", [], None) if uids is None else _uid_condition(uids)
    statements = _sql()
    with dbpool.writing(durable=False), connection.cursor() as cursor:
        cursor.execute(statements.lock_mailbox, [folder_id])
        folder = _read_folder(cursor, folder_id, statements.lock_folder)
        cursor.execute(statements.deleted.format(uids=condition and f"AND {condition}"),
                       [folder_id, *params])
        rows = [row for row in cursor.fetchall() if members is None or row[1] in members]
        after = expunge_rows(cursor, folder, rows) if rows else folder.highestmodseq
    return [uid for _, uid, _ in rows], folder.highestmodseq, after


_BATCH = 500


def expunge(folder: Folder, message_ids: Iterable[int]) -> int:
    """Remove messages from a locked folder, leaving tombstones; return how many went."""
    assert transaction.get_connection().in_atomic_block
    ids = list(message_ids)
    # In batches: an IN list of a whole large folder exceeds SQLite's parameter limit.
    doomed = [row for start in range(0, len(ids), _BATCH)
              for row in Message.objects.filter(folder=folder, pk__in=ids[start:start + _BATCH])
              .values_list("pk", "uid", "size")]
    if doomed:
        with connection.cursor() as cursor:
            folder.highestmodseq = expunge_rows(cursor, folder, doomed)
    return len(doomed)


def expunge_rows(cursor, folder, rows: Sequence[tuple[int, int, int]]) -> int:
    """Remove messages (id, uid, size) of a locked folder, leaving tombstones.

    Each tombstone keeps what FETCH shows of its message for settings.IMAP_EXPUNGED_KEEP
    seconds (RFC 2180 section 4.1.1: sessions not yet told may still read it).
    folder: anything with id, mailbox_id and highestmodseq. Return its new HIGHESTMODSEQ.
    """
    assert transaction.get_connection().in_atomic_block
    statements = _sql()
    modseq = folder.highestmodseq + 1
    kept_until = sql.prep(Expunged, "kept_until", timezone.now() + timedelta(
        seconds=settings.IMAP_EXPUNGED_KEEP))
    for start in range(0, len(rows), _BATCH):
        ids = [pk for pk, _, _ in rows[start:start + _BATCH]]
        marks = ", ".join(["%s"] * len(ids))
        cursor.execute(statements.tombstone.format(ids=marks), [modseq, kept_until, *ids])
        cursor.execute(statements.delete.format(ids=marks), ids)
    cursor.execute(statements.set_modseq, [modseq, folder.id])
    cursor.execute(statements.release, [sum(size for _, _, size in rows), folder.mailbox_id])
    events.changed(folder.mailbox_id, folder.id, modseq)
    return modseq


def fetch_kept(folder_id: int, uids: Sequence[int]) -> list[MessageRow]:
    """Return what expunged messages keep for FETCH (RFC 2180 4.1.1), as fetch_rows() does.

    Only messages still kept (see expunge_rows()); each row's modseq is its expunge's.
    """
    if not uids:
        return []
    condition, params, members = _uid_condition(uids)
    names = ("id", "uid", "modseq", *_KEPT_FIELDS)
    with connection.cursor() as cursor:
        cursor.execute(_sql().kept.format(uids=condition), [folder_id, *params])
        rows = [MessageRow(["pk" if n == "id" else n for n in names], values)
                for values in sql.decode(Expunged, names, cursor.fetchall())]
    return rows if members is None else [row for row in rows if row.uid in members]


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
    recent: tuple[int, int] = (0, 0)  # [low, high): the UIDs \Recent in this session


def open_folder(folder: int | FolderState) -> OpenedFolder:
    """Return a folder's state and its UIDs (for SELECT and EXAMINE).

    The folder row is read first (or was, by the caller): whatever changes after it (a
    delivery, an expunge) has a higher modseq, so the session's first sync reports it
    whatever the uids show.
    """
    with connection.cursor() as cursor:
        if isinstance(folder, int):
            folder = _read_folder(cursor, folder)
        folder_id = folder.id
        statements = _sql()
        cursor.execute(statements.uids, [folder_id])
        uids = array("I")
        while batch := cursor.fetchmany(5000):
            uids.extend(uid for uid, in batch)
        cursor.execute(statements.first_unseen, [folder_id])
        first_unseen = cursor.fetchone()
        cursor.execute(statements.keywords, [folder_id])
        keywords: dict[str, None] = {}
        for names, in sql.decode(Message, ["keywords"], cursor.fetchall()):
            keywords.update(dict.fromkeys(names or ()))
    return OpenedFolder(folder, uids, first_unseen and first_unseen[0], tuple(keywords))


_ROW_FIELDS = ("id", "uid", "modseq", "keywords", *SYSTEM_FLAGS.values())


@sql.statements
def _fetch_sql(names: tuple[str, ...], changed_since: bool) -> str:
    where = "{message.folder_id} = %s AND {{uids}}" + (
        " AND {message.modseq} > %s" if changed_since else "")
    return sql.select(Message, names, sql.render(where + " ORDER BY {message.uid}",
                                                  message=Message))


def fetch_rows(folder_id: int, uids: Sequence[int], fields: Iterable[str],
               changed_since: int | None = None) -> list[MessageRow]:
    """Return message rows (only the named fields, plus uid and flags) in UID order.

    Rows without their envelope or bodystructure (stored before they were computed at
    delivery) get them computed from the blob and saved, when either field is asked for.
    """
    wanted = set(fields) - {"pk", "id"}
    structure_wanted = bool(wanted & {"envelope", "bodystructure"})
    if structure_wanted:
        wanted |= {"envelope", "bodystructure", "blob_id"}  # what a backfill reads
    names = (*_ROW_FIELDS, *sorted(wanted - set(_ROW_FIELDS)))
    condition, params, members = _uid_condition(uids)
    statement = _fetch_sql(names, changed_since is not None)
    params = [folder_id, *params, *([] if changed_since is None else [changed_since])]
    with connection.cursor() as cursor:
        cursor.execute(statement.format(uids=condition), params)
        rows = MessageRow.decoded(names, cursor.fetchall())
    if members is not None:
        rows = [row for row in rows if row.uid in members]
    if structure_wanted:
        for row in rows:
            if row.envelope is None or row.bodystructure is None:
                structure.backfill(row, blob_store().get(row.blob_id))
    return rows


def read_headers(rows: Sequence[MessageRow]) -> None:
    """Give each row (with blob_id, and header unless expunged) its header block in .header.

    Rows stored before the store kept headers get theirs from the blob, saved for next
    time; a header too long to keep, or an expunged message's, is read from the blob.
    """
    store = blob_store()
    for row in rows:
        if not hasattr(row, "header"):
            row.header = b""
    structure.fill_headers(rows, store.get)
    for row in rows:
        if not row.header:
            raw = store.get(row.blob_id)
            row.header = raw[:mime.header_end(raw)]


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


def select_folder(mailbox_id: int, name: str, recent: str = "none") -> OpenedFolder:
    """Open a folder by name (SELECT/EXAMINE); raise FolderError if there is none.

    recent: "take" (SELECT) claims the messages no session has seen as \\Recent yet,
    "peek" (EXAMINE) shows them so without claiming, "none" (IMAP4rev2) skips it.
    """
    opened = open_folder(_folder_named(mailbox_id, name))
    if recent == "none":
        return opened
    below = max(opened.folder.uidnext, opened.uids[-1] + 1 if opened.uids else 0)
    # Claimed up to the newest message there is, not up to UIDNEXT: the UIDs between
    # were expunged (a client's APPEND of a draft, then its EXPUNGE), and claiming them
    # would be a write for nothing at every SELECT after.
    first = claim_recent(opened.folder.id, opened.uids[-1] + 1 if opened.uids else 0,
                         take=recent == "take")
    return dataclasses.replace(opened, recent=(first, below))


def claim_recent(folder_id: int, below: int, take: bool) -> int:
    """Return the first UID no session has seen as \\Recent; claim those below `below`.

    RFC 3501 section 2.3.2: a message is \\Recent in the one session that first learns
    of it, by SELECT or by being told of its arrival. The folder keeps the first UID
    not yet claimed; claiming moves it up under the folder's lock, so two sessions never
    both claim a message. take=False (EXAMINE) only looks.
    """
    # Read first, unlocked: recent_uid only grows, so a value at or above `below` means
    # there is nothing to claim, and SELECT or a sync stays a reader (no write lock, no
    # transaction) unless messages arrived that no session has seen yet.
    statements = _sql()
    with connection.cursor() as cursor:
        cursor.execute(statements.recent, [folder_id])
        row = cursor.fetchone()
        if row is None:
            return below  # deleted meanwhile: nothing to claim
        first = row[0]
        if not take or first >= below:
            return first
    with dbpool.writing(durable=False), connection.cursor() as cursor:
        cursor.execute(statements.lock_recent, [folder_id])
        row = cursor.fetchone()
        if row is None:
            return below
        first = row[0]
        if first < below:
            cursor.execute(statements.claim_recent, [below, folder_id])
    return first


def _folder_named(mailbox_id: int, name: str) -> FolderState:
    """Return a mailbox's folder by name (find_folder's rules); raise FolderError if none."""
    with connection.cursor() as cursor:
        cursor.execute(_sql().folder_named, [mailbox_id, canonical_name(name)])
        row = cursor.fetchone()
    if row is None:
        raise FolderError("NONEXISTENT", "No such folder")
    return FolderState(*row)


def sync_state(folder_id: int, modseq: int
               ) -> tuple[FolderState, list[MessageState], list[int]] | None:
    """Return changes_since(folder_id, modseq), or None if the folder no longer exists."""
    try:
        return changes_since(folder_id, modseq)
    except Folder.DoesNotExist:
        return None


def copy_to(folder_id: int, uids: Sequence[int], mailbox_id: int, target_name: str,
            move: bool = False) -> tuple[int, int, list[tuple[int, int]]]:
    """Copy (or move) messages to a folder found by name.

    Return (its UIDVALIDITY, its id, [(source UID, new UID)]). Raise FolderError when
    there is no such folder, QuotaExceeded when a copy does not fit.
    """
    target = find_folder(mailbox_id, target_name)
    return target.uidvalidity, target.pk, copy(folder_id, uids, target.pk, move)


def append_to(mailbox_id: int, name: str,
              items: Sequence[tuple[bytes, Iterable[str], datetime | None]]) -> Appended:
    """Append messages to a folder found by name (all or none).

    Raise FolderError when there is no such folder, QuotaExceeded when they do not fit.
    """
    return _append(_folder_named(mailbox_id, name).id, items)
