"""Delivery: store one accepted message once, for every local recipient and remote forward."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from mailcore import hooks
from mailcore.message import sortkeys
from mailcore.models import (
    Blob,
    Folder,
    Mailbox,
    Message,
    OutboundMessage,
    OutboundRecipient,
)
from mailcore.store import events, fulltext, groupcommit, sql, structure
from mailcore.store.blobs import blob_store
from mailcore.store.folders import INBOX, JUNK, create_folder

log = logging.getLogger("mailcore.store")


class QuotaExceeded(Exception):
    """The message does not fit in these mailboxes; nothing was stored."""

    def __init__(self, addresses: list[str]) -> None:
        super().__init__(", ".join(addresses))
        self.addresses = addresses


@dataclass
class Delivered:
    blob_key: str
    message_ids: list[int]
    outbound_id: int | None


def deliver(raw: bytes, mail_from: str, mailbox_ids: Iterable[int],
            remote: Iterable[str] = (), folder: str = INBOX,
            sender_mailbox_id: int | None = None, system: bool = False, junk: bool = False,
            forward_from: str | None = None) -> Delivered:
    """Store raw in each mailbox's folder and queue it for remote recipients, durably.

    With junk, each mailbox gets it in its Junk folder (special-use \\Junk, RFC 6154)
    instead of folder; a mailbox without one gets the standard Junk folder made for it.
    forward_from: the envelope sender of the copy queued for remote recipients, when it is
    not mail_from (SRS, for mail we forward).

    The blob is on disk (fsynced) before the rows that point at it are committed; when
    this returns, the message survives a crash. Raises QuotaExceeded, storing nothing,
    if it would take any mailbox over its quota. Once committed it reports the arrival
    and the queued message through mailcore.hooks (vacation replies, a delivery attempt):
    the store schedules no worker task itself. system marks the mail the system sends
    itself (a DSN, a notice, a vacation reply, the panel's mail) in the outbound queue.
    """
    mailbox_ids = sorted(set(mailbox_ids))
    remote = sorted(set(remote))
    size = len(raw)
    fields = structure.describe(raw)
    text = fulltext.searchable(raw) if mailbox_ids else None  # only a mailbox is searched
    key = blob_store().put(raw)
    now = timezone.now()

    def write() -> Delivered:
        with connection.cursor() as cursor:
            full = charge(cursor, mailbox_ids, size)
            if full:
                raise quota_exceeded(full)
            record_blob(cursor, key, size, now, text)
            message_ids = [insert(cursor, _Junk(mailbox_id) if junk else (mailbox_id, folder),
                                  key, size, now, fields).message_id
                           for mailbox_id in mailbox_ids]
        outbound_id = None
        if remote:
            outbound = OutboundMessage.objects.create(
                blob_id=key, mail_from=mail_from if forward_from is None else forward_from,
                sender_id=sender_mailbox_id, system=system,
                expires_at=now + timedelta(seconds=settings.OUTBOUND_LIFETIME))
            OutboundRecipient.objects.bulk_create(
                OutboundRecipient(message=outbound, address=a, next_attempt_at=now)
                for a in remote)
            outbound_id = outbound.pk
        return Delivered(key, message_ids, outbound_id)

    nested = connection.in_atomic_block
    # On SQLite concurrent deliveries share a transaction and its flush (groupcommit).
    delivered = groupcommit.commit(write)
    arrival = hooks.Arrival(mailbox_ids, key, mail_from, folder, junk=junk)
    if nested:  # the caller's transaction commits it: tell of it then
        if mailbox_ids:
            transaction.on_commit(lambda: hooks.arrived(arrival))
        if delivered.outbound_id is not None:
            transaction.on_commit(lambda: _kick(delivered.outbound_id))
    else:  # committed; told here, in this thread, not while holding the writer lock
        if mailbox_ids:
            _tell_arrival(arrival)
        if delivered.outbound_id is not None:
            _kick(delivered.outbound_id)
    return delivered


# Hand-written SQL (mailcore.store.sql): delivery is the hottest write path, and four plain
# statements per mailbox instead of the ORM's dozen more than double delivered messages per
# second (bench/smtp_pop3.py). IMAP APPEND stores through the same statements.

_MESSAGE_FIELDS = ("folder_id", "uid", "blob_id", "size", "internal_date", "modseq",
                   "seen", "answered", "flagged", "deleted", "draft", "keywords",
                   "pop3_hidden", "subject", "from_addr", "to_addrs", "cc_addrs",
                   "message_id", "sent_date", "sent_on", "envelope", "bodystructure", "header",
                   *sortkeys.SORT_FIELDS, "thread_root")


@dataclass(frozen=True)
class _Statements:
    charge: str
    blob: str
    allocate_by_name: str
    allocate_by_id: str
    allocate_junk: str
    message: str


@sql.statements
def _sql() -> _Statements:
    bump = ("UPDATE {folder} SET {folder.uidnext} = {folder.uidnext} + 1, "
            "{folder.highestmodseq} = {folder.highestmodseq} + 1")
    allocated = ("RETURNING {folder.id}, {folder.mailbox_id}, {folder.uidvalidity}, "
                 "{folder.uidnext} - 1, {folder.highestmodseq}")
    return _Statements(
        # The quota check and the charge in one statement, which also locks the row.
        charge=sql.render(
            "UPDATE {mailbox} SET {mailbox.used_bytes} = {mailbox.used_bytes} + %s "
            "WHERE {mailbox.id} = %s AND ({mailbox.quota_bytes} = 0 "
            "OR {mailbox.used_bytes} + %s <= {mailbox.quota_bytes})", mailbox=Mailbox),
        blob=sql.render(
            "INSERT INTO {blob} ({blob.key}, {blob.size}, {blob.created_at}) "
            "VALUES (%s, %s, %s) ON CONFLICT ({blob.key}) DO NOTHING", blob=Blob),
        allocate_by_name=sql.render(
            bump + " WHERE {folder.mailbox_id} = %s AND {folder.name} = %s " + allocated,
            folder=Folder),
        allocate_by_id=sql.render(bump + " WHERE {folder.id} = %s " + allocated,
                                  folder=Folder),
        # The mailbox's first folder marked \\Junk, whatever its name (RFC 6154).
        allocate_junk=sql.render(
            bump + " WHERE {folder.id} = (SELECT MIN({folder.id}) FROM {folder} "
            "WHERE {folder.mailbox_id} = %s AND {folder.special_use} = %s) " + allocated,
            folder=Folder),
        message=(f"INSERT INTO {sql.table(Message)} ({sql.columns(Message, _MESSAGE_FIELDS)}) "
                 f"VALUES ({', '.join(['%s'] * len(_MESSAGE_FIELDS))}) "
                 f"RETURNING {sql.column(Message, 'id')}"),
    )


def charge(cursor, mailbox_ids: list[int], size: int) -> list[int]:
    """Add size to each mailbox's usage, in id order; return the ones it would overfill.

    This is also the mailbox row lock every writer takes first (then the folder's).
    """
    full = []
    for mailbox_id in mailbox_ids:
        cursor.execute(_sql().charge, [size, mailbox_id, size])
        if cursor.rowcount != 1:
            full.append(mailbox_id)
    return full


def quota_exceeded(mailbox_ids: list[int]) -> QuotaExceeded:
    return QuotaExceeded([m.address for m in Mailbox.objects.filter(pk__in=mailbox_ids)
                          .select_related("domain").order_by("pk")])


def record_blob(cursor, key: str, size: int, now, text: str | None = None) -> None:
    """Record a blob (once), with its searchable text where it is kept (fulltext)."""
    cursor.execute(_sql().blob, [key, size, sql.prep(Blob, "created_at", now)])
    fulltext.record(cursor, key, text)


@dataclass(frozen=True)
class Stored:
    message_id: int
    mailbox_id: int
    folder_id: int
    uidvalidity: int
    uid: int
    modseq: int


@dataclass(frozen=True)
class _Junk:
    """A mailbox's Junk folder, as a place to insert into."""

    mailbox_id: int


def insert(cursor, folder: tuple[int, str] | int | _Junk, key: str, size: int,
           internal_date, fields: dict, flags: dict | None = None) -> Stored:
    """Allocate a UID in a folder (an id, (mailbox id, name), or a mailbox's Junk folder)
    and add the message row.

    flags: Message field values to set (seen, keywords, ...) other than the defaults.
    The folder's sessions hear of it once the transaction commits.
    """
    row = _allocate(cursor, folder)
    if row is None:
        raise Folder.DoesNotExist(f"no folder {folder}")
    folder_id, mailbox_id, uidvalidity, uid, modseq = row
    values = {"folder_id": folder_id, "uid": uid, "blob_id": key, "size": size,
              "internal_date": internal_date, "modseq": modseq, "seen": False,
              "answered": False, "flagged": False, "deleted": False, "draft": False,
              "keywords": [], "pop3_hidden": False, **fields, **(flags or {})}
    cursor.execute(_sql().message, sql.prep_row(Message, _MESSAGE_FIELDS, values))
    events.changed(mailbox_id, folder_id, modseq)
    return Stored(cursor.fetchone()[0], mailbox_id, folder_id, uidvalidity, uid, modseq)


def _allocate(cursor, folder: tuple[int, str] | int | _Junk) -> tuple | None:
    """Take a folder's next UID and modseq; return (folder id, mailbox id, UIDVALIDITY,
    UID, modseq), or None if there is no such folder."""
    if isinstance(folder, int):
        cursor.execute(_sql().allocate_by_id, [folder])
    elif isinstance(folder, _Junk):
        cursor.execute(_sql().allocate_junk, [folder.mailbox_id, Folder.SpecialUse.JUNK.value])
        row = cursor.fetchone()
        if row is not None:
            return row
        # None marked \\Junk (deleted over IMAP, or the mark removed): the standard one.
        cursor.execute(_sql().allocate_by_id, [_junk_folder_id(folder.mailbox_id)])
    else:
        cursor.execute(_sql().allocate_by_name, list(folder))
    return cursor.fetchone()


def _junk_folder_id(mailbox_id: int) -> int:
    """Return the id of the folder named Junk, made (special-use \\Junk) if missing.

    The caller holds the mailbox's row lock (charge()), so no other writer makes it meanwhile.
    """
    found = Folder.objects.filter(mailbox_id=mailbox_id, name=JUNK).values_list("pk", flat=True)
    if found:
        return found[0]
    return create_folder(Mailbox.objects.get(pk=mailbox_id), JUNK, Folder.SpecialUse.JUNK).pk


def _tell_arrival(arrival: hooks.Arrival) -> None:
    """Report a committed arrival; the message is stored whatever the hook does."""
    try:
        hooks.arrived(arrival)
    except Exception:
        log.warning("the arrival hook failed for blob %s", arrival.blob_key, exc_info=True)


def _kick(outbound_id: int) -> None:
    """Ask the worker to try a newly queued message now (the sweep finds it otherwise)."""
    try:
        hooks.outbound_due([outbound_id])
    except Exception:  # the broker being down must not fail an accepted message
        log.warning("could not notify the worker of outbound message %d", outbound_id,
                    exc_info=True)
