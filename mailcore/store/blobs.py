"""The blob store seam: raw messages written once, durably, addressed by their SHA-256.

Files under BLOB_DIR by default; S3-compatible object storage with BLOB_STORE=s3://...
(mailcore.store.s3). Either way the orphan collector here removes what no row points at.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, connection
from django.db.models import Exists, OuterRef
from django.utils import timezone

from mailcore import dbpool
from mailcore.models import Blob, Expunged, Message, MessageText, OutboundMessage
from mailcore.store import sql
from mailcore.store.blobcache import BlobCache

if TYPE_CHECKING:
    from mailcore.store.s3 import S3BlobStore


class FileBlobStore:
    """Blobs as files under root/ab/cd/<sha256>, fsynced with their directory before use."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._prefix = os.path.join(self.root, "")

    def path(self, key: str) -> Path:
        return Path(self._name(key))

    def _name(self, key: str) -> str:
        # A string, not Path joins: FETCH reads thousands of blobs a second.
        return f"{self._prefix}{key[:2]}/{key[2:4]}/{key}"

    def put(self, data: bytes) -> str:
        """Store data durably and return its key."""
        key = hashlib.sha256(data).hexdigest()
        path = self.path(key)
        if _touch(path):
            # Also when the file exists: another writer may have renamed it but not yet
            # made the rename durable.
            _fsync_dir(path.parent)
        else:
            self.write(key, data)
        return key

    def get(self, key: str) -> bytes:
        with open(self._name(key), "rb", buffering=0) as fh:
            return fh.readall()

    read = get

    def write(self, key: str, data: bytes) -> None:
        """Write key's file (data must hash to key) and make it durable: file, then folder."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_durably(path, data)

    def size(self, key: str) -> int | None:
        """Return the blob's size, or None if there is none."""
        try:
            return os.stat(self._name(key)).st_size
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def listing(self, after: str = "") -> Iterator[tuple[str, int, datetime]]:
        """Yield (key, size, last modified) of every blob file, in key order."""
        if not self.root.exists():
            return
        for first in sorted(self.root.iterdir()):
            if not first.is_dir() or first.name < after[:2]:
                continue
            for second in sorted(first.iterdir()):
                if not second.is_dir():
                    continue
                for path in sorted(second.iterdir()):
                    if path.name.startswith(".") or path.name <= after:
                        continue
                    try:
                        stat = path.stat()
                    except FileNotFoundError:
                        continue
                    yield path.name, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC)

    def discard_if_stale(self, key: str, seconds: float) -> bool:
        """Remove a blob file unless put() touched it in the last seconds; return if removed.

        The file is first renamed aside, so a put() racing with this either finds no file
        and writes it anew, or has touched it and it is put back.
        """
        path = self.path(key)
        aside = path.with_name(f".tmp-gc-{key}")
        try:
            os.replace(path, aside)
        except FileNotFoundError:
            return False
        if aside.stat().st_mtime >= time.time() - seconds:
            if path.exists():
                aside.unlink()
            else:
                os.replace(aside, path)
            return False
        aside.unlink()
        return True

    def keys_older_than(self, seconds: float) -> Iterator[str]:
        """Yield keys of blob files older than seconds, removing stale temporary files."""
        cutoff = time.time() - seconds
        if not self.root.exists():
            return
        for path in self.root.glob("*/*/*"):
            try:
                if path.stat().st_mtime >= cutoff:
                    continue
            except FileNotFoundError:
                continue
            if path.name.startswith(".tmp-"):
                path.unlink(missing_ok=True)
            else:
                yield path.name


def _touch(path: Path) -> bool:
    """Mark an existing blob as in use now; return False if there is no such file."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    return True


def write_durably(path: Path, data: bytes) -> None:
    """Write a whole file that survives a crash: data fsynced, renamed into place, the
    folder fsynced after the rename. A reader never sees half of it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# (the settings it was made from, the store)
_store: tuple[tuple, FileBlobStore | S3BlobStore] | None = None


def blob_store() -> FileBlobStore | S3BlobStore:
    """Return the store BLOB_STORE names: files under BLOB_DIR, or an S3 bucket."""
    global _store
    # Read each time: tests change the settings. The process id: a forked worker makes its
    # own S3 client, whose connections are not to be shared with its parent's.
    wanted = (settings.BLOB_STORE, settings.BLOB_DIR, settings.BLOB_S3_ENDPOINT,
              settings.BLOB_S3_REGION, settings.BLOB_S3_ADDRESSING, settings.BLOB_S3_PART_SIZE,
              settings.BLOB_S3_ACCESS_KEY_ID, settings.BLOB_S3_SECRET_ACCESS_KEY,
              settings.BLOB_CACHE_BYTES, settings.BLOB_CACHE_DIR, os.getpid())
    if _store is None or _store[0] != wanted:
        _store = (wanted, open_store(settings.BLOB_STORE))
    return _store[1]


def open_store(location: str) -> FileBlobStore | S3BlobStore:
    """Return the store at location: "" or "files" (BLOB_DIR), a folder, or s3://bucket/prefix."""
    if not location.startswith("s3://"):
        return FileBlobStore(Path(settings.BLOB_DIR if location in ("", "files") else location))
    from mailcore.store.s3 import Connection, Location, S3BlobStore

    cache = None
    if settings.BLOB_CACHE_BYTES > 0:
        cache = BlobCache(Path(settings.BLOB_CACHE_DIR), settings.BLOB_CACHE_BYTES)
    where = Connection(settings.BLOB_S3_ENDPOINT, settings.BLOB_S3_REGION,
                       settings.BLOB_S3_ADDRESSING, settings.BLOB_S3_ACCESS_KEY_ID,
                       settings.BLOB_S3_SECRET_ACCESS_KEY)
    return S3BlobStore(Location.parse(location), where, settings.BLOB_S3_PART_SIZE, cache)


def release_expunged() -> int:
    """Let go of what tombstones kept of expunged messages past their time; return how many.

    (RFC 2180 section 4.1.1: kept for sessions not yet told; see messages.expunge_rows.)
    """
    return Expunged.objects.filter(kept_until__lt=timezone.now()).update(
        blob=None, size=None, internal_date=None, keywords=[], envelope=None,
        bodystructure=None, kept_until=None)


def collect_orphans(grace_seconds: float = 3600) -> int:
    """Delete blobs no message, kept expunged message or queue entry points at, older than
    grace; return the count.

    Rows go first, then files: a row never points at a missing file. Files with no row
    (a crash between writing the file and committing the row) are removed after a day.
    On S3 the same, with the key's row as the lock a concurrent put() waits on (s3.py).
    """
    release_expunged()
    store = blob_store()
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    orphans = Blob.objects.filter(created_at__lt=cutoff).exclude(
        Exists(Message.objects.filter(blob=OuterRef("pk")))
    ).exclude(Exists(OutboundMessage.objects.filter(blob=OuterRef("pk")))
    ).exclude(Exists(Expunged.objects.filter(blob=OuterRef("pk"))))
    removed = 0
    for key in list(orphans.values_list("key", flat=True)[:10_000]):
        if _forget_orphan(key, cutoff) and store.discard_if_stale(key, grace_seconds):
            removed += 1
    file_grace = max(grace_seconds, 86400)
    for key in store.keys_older_than(file_grace):
        if not Blob.objects.filter(pk=key).exists() and store.discard_if_stale(key, file_grace):
            removed += 1
    return removed


def _forget_orphan(key: str, cutoff) -> bool:
    """Delete an orphan's row (and its kept search text) if it still is one; return whether
    it was deleted.

    The same conditions again in the DELETEs themselves (the ORM's delete() would delete by
    key after its own SELECT): a delivery may have just referenced or claimed the blob.
    """
    cutoff = sql.prep(Blob, "created_at", cutoff)
    try:
        with dbpool.writing(durable=False), connection.cursor() as cursor:
            cursor.execute(_orphan_text_sql(), [key, key, cutoff])
            cursor.execute(_orphan_sql(), [key, cutoff])
            return cursor.rowcount == 1
    except IntegrityError:
        # A message committed after this statement's snapshot points at it: not an orphan.
        return False


_ORPHAN = (
    "{blob.key} = %s AND {blob.created_at} < %s "
    "AND NOT EXISTS (SELECT 1 FROM {message} WHERE {message.blob_id} = {blob}.{blob.key}) "
    "AND NOT EXISTS (SELECT 1 FROM {outbound} WHERE {outbound.blob_id} = {blob}.{blob.key}) "
    "AND NOT EXISTS (SELECT 1 FROM {expunged} WHERE {expunged.blob_id} = {blob}.{blob.key})")


@sql.statements
def _orphan_sql() -> str:
    return sql.render("DELETE FROM {blob} WHERE " + _ORPHAN, blob=Blob, message=Message,
                      outbound=OutboundMessage, expunged=Expunged)


@sql.statements
def _orphan_text_sql() -> str:
    # The search text Postgres keeps per blob (store/fulltext.py) goes with it; the ORM's
    # cascade does not run for a raw DELETE, and the foreign key would refuse it.
    return sql.render("DELETE FROM {text} WHERE {text.blob_id} = %s AND EXISTS "
                      "(SELECT 1 FROM {blob} WHERE " + _ORPHAN + ")", text=MessageText,
                      blob=Blob, message=Message, outbound=OutboundMessage,
                      expunged=Expunged)
