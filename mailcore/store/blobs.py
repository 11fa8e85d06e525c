"""The blob store seam: raw messages written once, durably, addressed by their SHA-256."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone

from mailcore.models import Blob, Message, OutboundMessage


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
        directory = path.parent
        if not _touch(path):
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        # Also when the file exists: another writer may have renamed it but not yet
        # made the rename durable.
        _fsync_dir(directory)
        return key

    def get(self, key: str) -> bytes:
        with open(self._name(key), "rb", buffering=0) as fh:
            return fh.readall()

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


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_store: tuple[object, FileBlobStore] | None = None  # (BLOB_DIR as configured, its store)


def blob_store() -> FileBlobStore:
    global _store
    where = settings.BLOB_DIR  # tests change it
    if _store is None or _store[0] != where:
        _store = (where, FileBlobStore(Path(where)))
    return _store[1]


def collect_orphans(grace_seconds: float = 3600) -> int:
    """Delete blobs no message or queue entry points at, older than grace; return the count.

    Rows go first, then files: a row never points at a missing file. Files with no row
    (a crash between writing the file and committing the row) are removed after a day.
    """
    store = blob_store()
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    orphans = Blob.objects.filter(created_at__lt=cutoff).exclude(
        Exists(Message.objects.filter(blob=OuterRef("pk")))
    ).exclude(Exists(OutboundMessage.objects.filter(blob=OuterRef("pk"))))
    removed = 0
    for key in list(orphans.values_list("key", flat=True)[:10_000]):
        # The same conditions again in the DELETE: a delivery may have just referenced it.
        deleted, _ = orphans.filter(pk=key).delete()
        if deleted and store.discard_if_stale(key, grace_seconds):
            removed += 1
    file_grace = max(grace_seconds, 86400)
    for key in store.keys_older_than(file_grace):
        if not Blob.objects.filter(pk=key).exists() and store.discard_if_stale(key, file_grace):
            removed += 1
    return removed
